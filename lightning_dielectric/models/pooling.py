"""Vector attention pooling: atom features (n, w) → structure features (B, w)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter, softmax

from lightning_dielectric.models.members import member_linear


class VectorAttentionPooling(torch.nn.Module):
    """h_b = Σ_{i ∈ b} softmax_{i ∈ b}(W x_i + c) ⊙ x_i: a Linear(w → w) score per atom and channel,
    normalised over the atoms of each structure separately for every channel (of every member)."""

    def __init__(self, width: int):
        super().__init__()
        self.score = torch.nn.Linear(width, width)

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        alpha = softmax(member_linear(x, self.score.weight, self.score.bias), batch, num_nodes=num_graphs)
        return scatter(alpha * x, batch, dim=0, dim_size=num_graphs, reduce="sum")
