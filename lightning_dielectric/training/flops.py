"""Training compute in floating-point operations (FLOPs), measured with ``torch.utils.flop_counter``.

Conventions (see ``docs/scaling_laws.md``):

* One FLOP is one floating-point addition or multiplication; a multiply–accumulate counts 2.
  ``FlopCounterMode`` counts the matrix products and convolutions (``mm``, ``addmm``, ``bmm``,
  ``baddbmm``, convolutions, attention); element-wise, scatter and gather operations are not
  counted. For these models the dense layers dominate (every layer is a ``Linear`` over nodes,
  edges or triplets), so the count is a lower bound that scales like the true cost.
* Forward FLOPs per structure: the forward FLOPs of a few batches divided by their structures.
* Training FLOPs = ``TRAIN_FLOP_FACTOR`` × forward FLOPs per structure × structures seen in
  training steps. The factor 3 is the usual convention (Kaplan et al. 2020, C ≈ 6ND = 3 × 2ND):
  the backward pass computes, for every matrix product, one product of the same size for the
  gradient of the input and one for the gradient of the weights. Validation is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from lightning_dielectric.data.graphs import DEFAULT_CUTOFF, DEFAULT_THREEBODY_CUTOFF

TRAIN_FLOP_FACTOR = 3.0


def forward_flops(model: torch.nn.Module, batches: Iterable, call=None) -> tuple[int, int]:
    """(total forward FLOPs, structures) over ``batches``, in eval mode without gradients.

    ``call(model, batch)`` runs one forward (default ``model(batch)``); a batch's structure count
    is its ``num_graphs`` (PyG) or its first dimension. The model's train/eval mode is restored.
    """
    call = call or (lambda m, b: m(b))
    was_training = model.training
    model.eval()
    total, structures = 0, 0
    try:
        with torch.no_grad():
            for batch in batches:
                counter = FlopCounterMode(display=False)
                with counter:
                    call(model, batch)
                total += counter.get_total_flops()
                structures += int(getattr(batch, "num_graphs", None) or len(batch))
    finally:
        model.train(was_training)
    return total, structures


def flops_per_structure(model: torch.nn.Module, batches: Iterable, call=None) -> float:
    """Forward FLOPs per structure over ``batches`` (see :func:`forward_flops`)."""
    total, structures = forward_flops(model, batches, call)
    if structures == 0:
        raise ValueError("no structures to count FLOPs on")
    return total / structures


def synthetic_batches(n: int = 32, batch_size: int = 8, seed: int = 0,
                      threebody_cutoff: float | None = DEFAULT_THREEBODY_CUTOFF):
    """``n`` random structures of the synthetic generator (``synthetic.prototypes``) as graph
    batches with the default cutoffs (``DEFAULT_CUTOFF``, triplets ``threebody_cutoff``): the
    stand-in for a dataset."""
    from torch_geometric.data import Batch

    from lightning_dielectric.data import build_graph
    from lightning_dielectric.synthetic.prototypes import random_structure

    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(n):
        lattice, numbers, positions, _ = random_structure(rng)
        graphs.append(build_graph(lattice, numbers, positions, DEFAULT_CUTOFF, threebody_cutoff))
    return [Batch.from_data_list(graphs[i : i + batch_size]) for i in range(0, n, batch_size)]


def family_flops_per_structure(family: str, widths: Iterable[int], batches=None) -> dict[int, float]:
    """Forward FLOPs per structure of ``family`` at each width, on ``batches`` (default: the
    synthetic ones). Every counted product is m × k × n with each factor a constant or a multiple
    of the width (a weight-by-weight product such as 2B's folded edge projection has all three),
    so the count is a cubic in w: it is measured exactly at widths 8, 16, 24 and 32 and evaluated
    at the requested widths (large widths need no memory or time)."""
    from lightning_dielectric.models.families import build_model

    batches = batches if batches is not None else synthetic_batches()
    torch.manual_seed(0)
    probe = np.array([8.0, 16.0, 24.0, 32.0])
    counts = [flops_per_structure(build_model(family, int(w)), batches) for w in probe]
    coeffs = np.polyfit(probe, counts, 3)
    return {int(w): float(np.polyval(coeffs, float(w))) for w in widths}
