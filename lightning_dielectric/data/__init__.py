"""Data layer: Parquet dataset format, ingest, splits, periodic graphs and the streaming DataModule."""

from .graphs import CrystalGraph, build_graph

__all__ = ["CrystalGraph", "build_graph"]
