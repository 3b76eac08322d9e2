"""``python -m lightning_dielectric``: the ``lightning`` training CLI (fit / validate / test / predict)."""

from lightning_dielectric.training.cli import main

main()
