"""Edge and triplet pairs, and MLPs evaluated once per pair.

Every directed edge i → j with cell offset S has its reverse j → i with offset −S (see
``data.graphs``), of the same length; every triplet (e₁, e₂) has its swap (e₂, e₁), of the same
angle. Features computed from lengths or angles alone are therefore equal on both members of a
pair and are computed once per pair, then gathered. A pairing is ``(rep, pair)``: ``rep`` (P,)
the index of one member of each pair, ``pair`` (E,) the pair of each edge (``rep[pair[k]]`` is
k or its partner). Both are found on the device by sorting (no Python per edge, no host sync).

Listed pair by pair, the edges are ``rep`` (edge p: b_p → a_p, with (b, a) = ``edge_index[:, rep]``)
followed by their reverses (a_p → b_p). :class:`AtomPairs` groups the edges of that list by their
ordered pair of atoms (the periodic images of one bond).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import MLP

from lightning_dielectric.models.members import member_linear

class AtomPairs(NamedTuple):
    """The distinct ordered atom pairs (i ← j) of a graph's edges listed pair by pair (module doc):
    ``dst`` (U,) and ``src`` (U,) the atoms, ``index`` (E,) the atom pair of each listed edge."""

    dst: Tensor
    src: Tensor
    index: Tensor


class EdgePairs(NamedTuple):
    """An edge pairing: ``rep`` (P,), ``pair`` (E,) (module doc); ``atoms`` the :class:`AtomPairs`
    of the edges listed pair by pair, or None (then every edge is its own)."""

    rep: Tensor
    pair: Tensor
    atoms: AtomPairs | None = None

    def with_atom_pairs(self, edge_index: Tensor, num_nodes: int) -> EdgePairs:
        """This pairing with its :class:`AtomPairs` (``torch.unique``: a host sync on CUDA)."""
        b, a = edge_index.index_select(1, self.rep)
        key = torch.cat([a * num_nodes + b, b * num_nodes + a])  # (dst, src) of the rep edges, then of the reverses
        distinct, index = torch.unique(key, return_inverse=True)
        return self._replace(atoms=AtomPairs(distinct // num_nodes, distinct % num_nodes, index))


def edge_pairs(edge_index: Tensor, cell_offset: Tensor, num_nodes: int) -> EdgePairs:
    """Pairs {i → j (S), j → i (−S)} of a (batched) periodic graph; self-image edges i → i pair S with −S.

    Args: ``edge_index`` (2, E) long, ``cell_offset`` (E, 3) integer-valued, ``num_nodes`` n.
    Returns :class:`EdgePairs` with ``rep`` (E/2,) and ``pair`` (E,) long, without atom pairs.
    """
    src, dst = edge_index
    offset = cell_offset.round().long()
    # orient each edge as the member of its pair with src < dst, or src == dst and S > 0 (lexicographically)
    first_nonzero = torch.where(offset[:, 0] != 0, offset[:, 0], torch.where(offset[:, 1] != 0, offset[:, 1], offset[:, 2]))
    flip = (src > dst) | ((src == dst) & (first_nonzero < 0))
    lo, hi = torch.where(flip, dst, src), torch.where(flip, src, dst)
    offset = torch.where(flip.unsqueeze(-1), -offset, offset)
    if offset.numel():
        reach = offset.abs().amax()
        span = 2 * reach + 1
        offset = offset + reach
        offset_key = (offset[:, 0] * span + offset[:, 1]) * span + offset[:, 2]
    else:
        offset_key = lo
    order = torch.argsort(offset_key, stable=True)  # then by atoms: both sorts together order by (lo, hi, S)
    order = order.index_select(0, torch.argsort((lo * num_nodes + hi).index_select(0, order), stable=True))
    keys = torch.stack([lo, hi, offset_key])
    return EdgePairs(*_adjacent_pairs(order, keys, "edge"))


def triplet_swap_pairs(triplet_index: Tensor, num_edges: int) -> tuple[Tensor, Tensor]:
    """Pairs {(e₁, e₂), (e₂, e₁)} of a (batched) triplet index (2, T); returns ``rep`` (T/2,), ``pair`` (T,)."""
    lo, hi = triplet_index.min(0).values, triplet_index.max(0).values
    key = lo * num_edges + hi
    return _adjacent_pairs(torch.argsort(key), key.unsqueeze(0), "triplet")


def _adjacent_pairs(order: Tensor, keys: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """``order`` sorts the items so that the two members of each pair (equal ``keys`` columns) are adjacent."""
    if order.numel() % 2:
        raise ValueError(f"{order.numel()} {what}s cannot form pairs: every {what} needs its reverse")
    rep, partner = order[0::2], order[1::2]
    same = (keys.index_select(1, rep) == keys.index_select(1, partner)).all()
    torch._assert_async(same, f"some {what} has no reverse (or a duplicate)")
    pair = torch.empty_like(order)
    pair[order] = torch.arange(order.numel(), device=order.device) // 2
    return rep, pair


def gather(rows: Tensor, index: Tensor | None) -> Tensor:
    """``rows[index]`` (one row per pair → one row per edge), or ``rows`` when ``index`` is None."""
    return rows if index is None else rows.index_select(0, index)


def mlp_on_pairs(mlp: MLP, rows: Tensor) -> Tensor:
    """``mlp`` (built by ``blocks.mlp``: Linear → BatchNorm → ReLU, plain last layer) on one row per pair.

    Equals ``mlp`` on both copies of every row, including in training mode: the batch statistics
    of P distinct rows taken twice are those of the P rows (mean, biased variance), and the running
    variance is updated with the unbiased factor of the 2P edges, 2P / (2P − 1).
    """
    last = mlp.lins[-1]
    return member_linear(mlp_hidden_on_pairs(mlp, rows), last.weight, last.bias)


def mlp_hidden_on_pairs(mlp: MLP, rows: Tensor) -> Tensor:
    """The input of ``mlp``'s last Linear for one row per pair (see :func:`mlp_on_pairs`)."""
    paired = mlp.training and rows.size(0) > 0  # else running statistics only (PyG: also for an empty batch)
    h = rows
    for lin, norm, p in zip(mlp.lins[:-1], mlp.norms, mlp.dropout):
        h = member_linear(h, lin.weight, lin.bias)
        h = F.dropout(mlp.act(_batch_norm_twice(norm, h) if paired else norm(h)), p=p, training=mlp.training)
    return h


def _batch_norm_twice(norm: torch.nn.Module, h: Tensor) -> Tensor:
    """Training-mode PyG ``BatchNorm`` ``norm`` on ``h`` (P, C) stacked twice, returned once (P, C);
    updates the running statistics."""
    bn, rows = norm.module, h.size(0)
    if isinstance(bn, torch.nn.SyncBatchNorm):  # statistics across DDP ranks (trainer.sync_batchnorm): stack
        return norm(torch.cat([h, h]))[:rows]
    if rows > 1:  # momentum 1 writes this batch's mean and unbiased (factor P/(P−1)) variance into the scratch buffers
        mean, var = torch.zeros_like(bn.running_mean), torch.zeros_like(bn.running_var)
        out = F.batch_norm(h, mean, var, bn.weight, bn.bias, True, 1.0, bn.eps)
    else:  # one distinct row: its two copies have zero variance, so x̂ = 0 exactly
        out = (h - h) * bn.weight + bn.bias
        mean, var = h.detach()[0].to(bn.running_mean.dtype), torch.zeros_like(bn.running_var)
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.lerp_(mean, momentum)
            to_pairs = 2 * (rows - 1) / (2 * rows - 1)  # var · P/(P−1) → var · 2P/(2P−1): the edges count, not the pairs
            bn.running_var.mul_(1.0 - momentum).add_(var, alpha=momentum * to_pairs)
    return out
