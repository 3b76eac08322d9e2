"""OptiMetal2B: two-body message passing (CGConv or TransformerConv) on the periodic crystal graph."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_dielectric.data.graphs import DEFAULT_CUTOFF
from lightning_dielectric.models.blocks import InteractionBlock, make_conv, mlp
from lightning_dielectric.models.embeddings import ElementEncoding, GaussianRBF
from lightning_dielectric.models.geometry import edge_vectors, graph_batch
from lightning_dielectric.models.heads import DielectricHeads
from lightning_dielectric.models.network import DielectricNetwork
from lightning_dielectric.models.pairs import edge_pairs, mlp_hidden_on_pairs
from lightning_dielectric.models.pooling import VectorAttentionPooling


class OptiMetal2B(DielectricNetwork):
    """Crystal graph → (ε_inter (B, 2001, 2), ω_D (B,) eV).

    Atoms: group/period one-hot (24) → MLP 24 → w → w → w. Edges: 32 Gaussian RBFs of the
    distance (0–``cutoff`` Å, where the graph's edges end too) → MLP 32 → w → w → w.
    ``num_blocks`` interaction blocks with ``conv`` = ``"cgc"`` (CGConv) or ``"tc"``
    (TransformerConv, 2 heads of w/2), vector attention pooling, then the spectra (width
    ``spectra_width``, default 4w) and Drude heads.

    Edge features depend on the distance only, so they and their projections in the convolutions
    are computed once per edge pair {i → j (S), j → i (−S)} (``models.pairs``), exactly; the edge
    MLP's last Linear is folded into those projections (``convs.project_edges``). On CPU the
    TransformerConv also computes its atom-only terms once per ordered atom pair
    (``EdgePairs.with_atom_pairs``; on a GPU that would cost a host sync per batch).
    """

    def __init__(self, width: int = 256, conv: Literal["cgc", "tc"] = "cgc", spectra_width: int | None = None,
                 num_blocks: int = 2, cutoff: float = DEFAULT_CUTOFF, num_rbf: int = 32):
        super().__init__()
        self.save_hyperparameters()
        self.cutoff = float(cutoff)
        self.elements = ElementEncoding()
        self.rbf = GaussianRBF(num_rbf, cutoff)
        self.node_mlp = mlp([ElementEncoding.out_dim, width, width, width])
        self.edge_mlp = mlp([num_rbf, width, width, width])
        self.blocks = torch.nn.ModuleList(
            InteractionBlock(make_conv(conv, width), width) for _ in range(num_blocks)
        )
        self.pool = VectorAttentionPooling(width)
        self.heads = DielectricHeads(width, spectra_width)

    def forward(self, data) -> tuple[Tensor, Tensor]:
        batch, num_graphs = graph_batch(data)
        pairs = edge_pairs(data.edge_index, data.cell_offset, data.z.size(0))
        if self.hparams.conv == "tc" and data.pos.device.type == "cpu":
            pairs = pairs.with_atom_pairs(data.edge_index, data.z.size(0))
        rep = pairs.rep
        vec = edge_vectors(data.pos, data.cell, data.cell_offset[rep], data.edge_index[:, rep], batch)
        x = self.node_mlp(self.elements(data.z))
        hidden = mlp_hidden_on_pairs(self.edge_mlp, self.rbf(vec.norm(dim=-1)))  # (P, w): one row per edge pair
        e = (hidden, self.edge_mlp.lins[-1])  # e = lins[-1](hidden), only ever projected
        for block in self.blocks:
            x = block(x, data.edge_index, e, batch, num_graphs, pairs)
        return self.heads(self.pool(x, batch, num_graphs))
