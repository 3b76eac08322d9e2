"""Data layer: Parquet dataset format, ingest, splits, periodic graphs and the streaming DataModule.

``build_graph``, ``CrystalGraph`` and ``DielectricDataModule`` are imported on first use, so the
torch-free parts (schema, writer, ingest, info) load without torch.
"""

from importlib import import_module

_EXPORTS = {"CrystalGraph": ".graphs", "build_graph": ".graphs", "DielectricDataModule": ".datamodule"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
