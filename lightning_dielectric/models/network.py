"""``DielectricNetwork``: the base of this package's networks; each owns the graph it reads."""

from __future__ import annotations

import torch
from pytorch_lightning.core.mixins import HyperparametersMixin

from lightning_dielectric.data.graphs import DEFAULT_CUTOFF


class DielectricNetwork(HyperparametersMixin, torch.nn.Module):
    """A network ``CrystalGraph`` batch → (ε_inter (B, 2001, 2), ω_D (B,) eV) that declares the graph
    it reads; the DataModule builds exactly that graph (``lightning fit`` links the two, ``predict``
    and ``evaluate`` build it from a checkpoint's network):

    - ``cutoff``: edges up to this length, Å (where the network's radial basis ends);
    - ``threebody_cutoff``: triplets of two edges leaving one atom, both up to this length, Å;
      None when the network reads no triplets.

    Subclasses call ``self.save_hyperparameters()`` first in ``__init__``, so that ``config``
    rebuilds them (it is what a checkpoint stores).
    """

    cutoff: float = DEFAULT_CUTOFF
    threebody_cutoff: float | None = None

    @property
    def graph_cutoffs(self) -> dict[str, float | None]:
        """``cutoff`` and ``threebody_cutoff`` (Å), as keyword arguments of ``build_graph`` and the DataModule."""
        return {"cutoff": self.cutoff, "threebody_cutoff": self.threebody_cutoff}

    @property
    def config(self) -> dict:
        """``{"class_path", "init_args"}`` that rebuild this network (the form LightningCLI uses)."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(self.hparams)}
