"""Synthetic dataset: random intermetallic structures and their tight-binding ε_inter(ω) and ω_D.

Modules: ``prototypes`` (structures), ``slater_koster`` (parameters, hopping blocks),
``hamiltonian`` (H(k), ∂H/∂k), ``optics`` (k mesh, Fermi level, ε, ω_D), ``generate``
(chunked parallel generation), ``cli`` (``lightning-dielectric data synth``), ``reference``
(plausibility check on fcc metals). Physics and sources: docs/synthetic_data.md.
"""
