"""Data layer: Parquet dataset format, ingest, splits, periodic graphs and the streaming DataModule."""

from .datamodule import DielectricDataModule
from .graphs import CrystalGraph, build_graph

__all__ = ["CrystalGraph", "DielectricDataModule", "build_graph"]
