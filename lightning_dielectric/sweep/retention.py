"""Which checkpoint files a finished run keeps (``keep_checkpoints``).

- ``all``: every checkpoint stays (the best by ``val/loss`` and ``last.ckpt``, with optimizer state).
- ``best``: the best checkpoint(s) stay as written; ``last.ckpt`` goes (it is only needed to resume).
- ``best-weights``: as ``best``, and each kept checkpoint is rewritten without training state
  (optimizer, scheduler, loops, callbacks): the weights and the hyper-parameters that rebuild the
  network and its data settings, which is all ``predict``, ``evaluate`` and ``lightning test`` read.

A folder without a best checkpoint keeps ``last.ckpt`` as its only weights. Only ever applied to a
run that has finished: a running or interrupted run needs its ``last.ckpt`` to resume.
"""

from __future__ import annotations

import os
from pathlib import Path

KEEP = ("all", "best", "best-weights")
LAST = "last.ckpt"
# What a checkpoint needs to be loaded and evaluated; everything else is training state.
WEIGHT_KEYS = ("epoch", "global_step", "pytorch-lightning_version", "state_dict", "hparams_name", "hyper_parameters",
               "datamodule_hparams_name", "datamodule_hyper_parameters")


def weights_only(path: Path) -> int:
    """Rewrite the checkpoint ``path`` (atomically) with only :data:`WEIGHT_KEYS`; bytes freed."""
    import torch

    before = path.stat().st_size
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if set(checkpoint) <= set(WEIGHT_KEYS):
        return 0
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v for k, v in checkpoint.items() if k in WEIGHT_KEYS}, tmp)
    os.replace(tmp, path)
    return before - path.stat().st_size


def apply(run_dir: Path, keep: str) -> int:
    """Apply ``keep`` to every checkpoint folder under the finished run ``run_dir``; bytes freed."""
    if keep not in KEEP:
        raise ValueError(f"keep_checkpoints: expected one of {', '.join(KEEP)}, got {keep!r}")
    if keep == "all":
        return 0
    freed = 0
    for folder in sorted({p.parent for p in Path(run_dir).rglob("*.ckpt")}):
        best = sorted(p for p in folder.glob("*.ckpt") if p.name != LAST)
        if len(best) > 1 and (folder / LAST).exists():  # a best written by a killed attempt after its last.ckpt
            recorded = _recorded_best(folder / LAST)
            if recorded in best:
                for orphan in (p for p in best if p != recorded):
                    freed += orphan.stat().st_size
                    orphan.unlink()
                best = [recorded]
        if best and (folder / LAST).exists():
            freed += (folder / LAST).stat().st_size
            (folder / LAST).unlink()
        if keep == "best-weights":
            freed += sum(weights_only(p) for p in best or [folder / LAST])
    return freed


def _recorded_best(last: Path) -> Path | None:
    """The best checkpoint that ``last``'s ModelCheckpoint state names (None when it names none)."""
    import torch

    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_path"):
            return last.parent / Path(state["best_model_path"]).name
    return None
