"""Scaling-law analysis: 1D and 2D law forms (``forms``), multi-start fits with AICc and a
bootstrap over seeds (``fit``), runs tables and the paper's JSON import (``runs``), the report
(``report``), data-need planning (``plan``) and the ``laws`` commands (``cli``).

Nothing is imported here, so ``import lightning_dielectric.laws.fit`` stays light (no torch).
"""
