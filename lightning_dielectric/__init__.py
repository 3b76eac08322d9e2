"""lightning-dielectric: neural scaling-law experiments for GNN prediction of metal dielectric functions.

Sub-packages: ``data`` (schema, ingest, splits, graphs, DataModule), ``synthetic`` (tight-binding
generator), ``models`` (GNN architectures), ``training`` (LightningModule, metrics, CLI),
``sweep`` (Optuna driver), ``laws`` (scaling-law fits, report, planning).
"""

__version__ = "0.1.0"
