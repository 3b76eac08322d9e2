"""OptiMetal3B: two-body plus three-body (bond-angle, line-graph) message passing."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_dielectric.data.graphs import DEFAULT_CUTOFF, DEFAULT_THREEBODY_CUTOFF
from lightning_dielectric.models.blocks import TripletBlock, mlp
from lightning_dielectric.models.embeddings import AngleHarmonics, ElementEncoding, GaussianRBF
from lightning_dielectric.models.geometry import edge_vectors, graph_batch, triplet_cosines
from lightning_dielectric.models.heads import DielectricHeads
from lightning_dielectric.models.network import DielectricNetwork
from lightning_dielectric.models.pairs import edge_pairs, mlp_on_pairs, triplet_swap_pairs
from lightning_dielectric.models.pooling import VectorAttentionPooling


class OptiMetal3B(DielectricNetwork):
    """Crystal graph with triplets → (ε_inter (B, 2001, 2), ω_D (B,) eV).

    As OptiMetal2B for atoms and edges, plus angle features: cos θ of each triplet (two edges
    leaving the same atom, both within ``threebody_cutoff`` Å) expanded in Y_l⁰, l = 0…3
    → MLP 4 → w → w → w. ``num_blocks`` :class:`TripletBlock` s update edges, angles, the line
    graph and the atom graph; then vector attention pooling and the two heads.

    Distance and angle features are computed once per edge pair and once per swapped-triplet pair
    (``models.pairs``), and so are the parts of the first block that still depend on them only.

    Reads ``data.triplet_index``: graphs built with ``threebody_cutoff`` (``graph_cutoffs``).
    """

    def __init__(self, width: int = 256, spectra_width: int | None = None, num_blocks: int = 2,
                 heads: int = 8, cutoff: float = DEFAULT_CUTOFF, num_rbf: int = 32,
                 threebody_cutoff: float = DEFAULT_THREEBODY_CUTOFF):
        super().__init__()
        self.save_hyperparameters()
        if not 0 < threebody_cutoff <= cutoff:
            raise ValueError(f"threebody_cutoff must be in (0, cutoff={cutoff}] Å, got {threebody_cutoff}")
        self.cutoff = float(cutoff)
        self.threebody_cutoff = float(threebody_cutoff)
        self.elements = ElementEncoding()
        self.rbf = GaussianRBF(num_rbf, cutoff)
        self.angles = AngleHarmonics()
        self.node_mlp = mlp([ElementEncoding.out_dim, width, width, width])
        self.edge_mlp = mlp([num_rbf, width, width, width])
        self.angle_mlp = mlp([AngleHarmonics.out_dim, width, width, width])
        self.blocks = torch.nn.ModuleList(TripletBlock(width, heads) for _ in range(num_blocks))
        self.pool = VectorAttentionPooling(width)
        self.heads = DielectricHeads(width, spectra_width)

    def forward(self, data) -> tuple[Tensor, Tensor]:
        triplet_index = getattr(data, "triplet_index", None)
        if triplet_index is None:
            raise ValueError("OptiMetal3B needs triplet_index in the batch: build its graphs with "
                             f"threebody_cutoff={self.threebody_cutoff} (its graph_cutoffs)")
        batch, num_graphs = graph_batch(data)
        edge_index = data.edge_index
        vec = edge_vectors(data.pos, data.cell, data.cell_offset, edge_index, batch)
        edge_batch = batch.index_select(0, edge_index[0])
        triplet_batch = edge_batch.index_select(0, triplet_index[0])
        pairs = edge_pairs(edge_index, data.cell_offset, data.z.size(0))
        edge_rep, edge_pair = pairs.rep, pairs.pair
        triplet_rep, triplet_pair = triplet_swap_pairs(triplet_index, edge_index.size(1))
        x = self.node_mlp(self.elements(data.z))
        e = mlp_on_pairs(self.edge_mlp, self.rbf(vec[edge_rep].norm(dim=-1)))  # (P, w): per edge pair
        a = mlp_on_pairs(self.angle_mlp, self.angles(triplet_cosines(vec, triplet_index[:, triplet_rep])))
        for k, block in enumerate(self.blocks):
            pairs = (edge_pair, triplet_pair) if k == 0 else (None, None)  # later blocks see updated e, a
            x, e, a = block(x, e, a, edge_index, triplet_index, batch, edge_batch, triplet_batch, num_graphs, *pairs)
        return self.heads(self.pool(x, batch, num_graphs))
