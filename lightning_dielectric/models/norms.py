"""Per-structure layer normalisation with the channel sums taken before the per-graph scatter."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import LayerNorm


class GraphLayerNorm(LayerNorm):
    """PyG ``LayerNorm(w, mode="graph")`` (same parameters, keys and output): over all rows and
    channels of each structure, y = (x − μ_b) / √(σ²_b + ε) ⊙ γ + β (biased variance).

    Each row's channel sum is taken first, so the per-structure sums scatter (n,) scalars rather
    than (n, w) rows; sums accumulate in float32 under autocast. A fused network's member-major
    features (n, K·w) are normalised per structure and member (``models.members``).
    """

    def __init__(self, width: int):
        super().__init__(width, mode="graph")

    def forward(self, x: Tensor, batch: Tensor, batch_size: int) -> Tensor:
        acc = torch.promote_types(x.dtype, torch.float32)
        x = x.unflatten(-1, (-1, self.in_channels))  # (n, K, w)
        count = torch.zeros(batch_size, 1, dtype=acc, device=x.device).index_add_(
            0, batch, torch.ones(batch.size(0), 1, dtype=acc, device=x.device)).clamp_(min=1) * x.size(-1)
        mean = count.new_zeros(batch_size, x.size(1)).index_add(0, batch, x.sum(-1, dtype=acc)) / count
        x = x - mean.index_select(0, batch).unsqueeze(-1)
        var = torch.zeros_like(mean).index_add(0, batch, (x * x).sum(-1)) / count
        scale = (var + self.eps).rsqrt().index_select(0, batch).unsqueeze(-1)
        return torch.addcmul(self.bias, (x * scale).flatten(1), self.weight)
