"""Fused members: K networks of one architecture evaluated as one network (fused seed training).

Layout. A fused network of K members is the solo network with every parameter, and every
BatchNorm running statistic, stacked along its first (output) dimension: member k owns rows
``k·out … (k+1)·out − 1`` of each weight (K·out, in), bias (K·out,) and norm vector (K·w,).
Features are member-major, (rows, K·w) with member k in columns ``k·w … (k+1)·w − 1``, so one
gather, scatter, softmax or element-wise op serves all members, and BatchNorm over K·w channels
keeps each member's statistics exactly. Linear maps become block-diagonal (:func:`member_linear`:
one BLAS call per member on a CPU, one batched matmul elsewhere); the first layer reads the
members' shared input (element one-hot, radial basis) as an ordinary Linear(in → K·out). A network with K = 1 is the
solo network: same parameters, state-dict keys and computation.

Module attributes (``in_channels``, ``num_features``, …) keep the per-member (solo) sizes; the
number of members is read from tensor shapes, K = input columns / weight columns.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

STAT_BUFFERS = ("running_mean", "running_var")
"""BatchNorm buffers stacked per member (``num_batches_tracked`` is one count shared by all)."""
COUNTER = "num_batches_tracked"


def member_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Member k's Linear on member k's columns of ``x``: x (…, K·in), weight (K·out, in), bias
    (K·out,) → (…, K·out). K = 1 (including the members' shared input) is ``F.linear``.

    On a CPU (without autocast or compilation): :class:`ColumnBlockLinear`, one BLAS call per member
    on its column blocks. Elsewhere one batched matmul, written so that the larger of the weight
    and the activations keeps its memory layout (the other is transposed, forward and backward).
    """
    members = x.size(-1) // weight.size(1)
    if members == 1:
        return F.linear(x, weight, bias)
    if x.device.type == "cpu" and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling():
        return ColumnBlockLinear.apply(x, weight, bias)
    return batched_member_linear(x, weight, bias)


def batched_member_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """:func:`member_linear` for K > 1 as one batched matmul (accelerators, autocast, compilation)."""
    members = x.size(-1) // weight.size(1)
    lead, out = x.shape[:-1], weight.size(0) // members
    rows = x.reshape(-1, members, weight.size(1)).transpose(0, 1)  # (K, n, in)
    w = weight.view(members, out, -1)  # (K, out, in)
    if rows.size(1) >= w.size(2):  # many rows: y_k = x_k W_kᵀ (+ b_k in the same kernel)
        y = torch.bmm(rows, w.transpose(1, 2)) if bias is None else \
            torch.baddbmm(bias.view(members, 1, out), rows, w.transpose(1, 2))
        return y.transpose(0, 1).reshape(*lead, members * out)
    y = torch.bmm(w, rows.transpose(1, 2)).permute(2, 0, 1)  # few rows, large weight: y_kᵀ = W_k x_kᵀ
    if bias is not None:
        y = y + bias.view(members, out)
    return y.reshape(*lead, members * out)


class ColumnBlockLinear(torch.autograd.Function):
    """:func:`member_linear` as K matrix products on column blocks, forward and backward: member k's
    y_k = x_k W_kᵀ + b_k, ∂x_k = ∂y_k W_k, ∂W_k = ∂y_kᵀ x_k, each one BLAS call that reads x_k and
    writes y_k in place inside the member-major (rows, K·w) tensors (their row stride is the
    leading dimension), so nothing is transposed or copied and member k's products are the ones a
    solo Linear computes. ∂b is the column sum of ∂y. Once differentiable (no double backward).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        inp = weight.size(1)
        members = x.size(-1) // inp
        out = weight.size(0) // members
        rows = x.reshape(-1, members * inp)
        y = rows.new_empty(rows.size(0), members * out)
        for k in range(members):
            xk, wk, yk = rows[:, k * inp:(k + 1) * inp], weight[k * out:(k + 1) * out].t(), y[:, k * out:(k + 1) * out]
            if bias is None:
                torch.mm(xk, wk, out=yk)
            else:
                torch.addmm(bias[k * out:(k + 1) * out], xk, wk, out=yk)
        ctx.save_for_backward(rows, weight)
        ctx.lead, ctx.has_bias = x.shape[:-1], bias is not None
        return y.view(*x.shape[:-1], members * out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        rows, weight = ctx.saved_tensors
        inp = weight.size(1)
        members = rows.size(1) // inp
        out = weight.size(0) // members
        grad = grad.reshape(-1, members * out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.new_empty(grad.size(0), members * inp)
            for k in range(members):
                torch.mm(grad[:, k * out:(k + 1) * out], weight[k * out:(k + 1) * out], out=grad_x[:, k * inp:(k + 1) * inp])
            grad_x = grad_x.view(*ctx.lead, members * inp)
        if ctx.needs_input_grad[1]:
            grad_w = weight.new_empty(weight.shape)
            for k in range(members):
                torch.mm(grad[:, k * out:(k + 1) * out].t(), rows[:, k * inp:(k + 1) * inp], out=grad_w[k * out:(k + 1) * out])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b


def member_matmul(a: Tensor, b: Tensor, members: int) -> Tensor:
    """Per-member product a_k @ b_k of member-stacked matrices a (K·p, q) and b (K·q, r) (or b (K·q,)
    a vector per member) → (K·p, r) (or (K·p,))."""
    p = a.size(0) // members
    product = torch.bmm(a.view(members, p, -1), b.view(members, a.size(1), -1))
    return product.reshape(members * p, *b.shape[1:])


def fuse(networks: list[torch.nn.Module]) -> torch.nn.Module:
    """One network of K = len(networks) members of one architecture (module doc); member k holds
    ``networks[k]``'s parameters and running statistics. ``fuse([net])`` is a copy of ``net``."""
    fused = copy.deepcopy(networks[0])
    members = len(networks)
    per_member = [dict(_named_stacked(net)) for net in networks]
    for key, (module, name, tensor) in _named_stacked(fused):
        value = torch.cat([states[key][2].detach() for states in per_member])
        if isinstance(tensor, torch.nn.Parameter):
            setattr(module, name, torch.nn.Parameter(value, requires_grad=tensor.requires_grad))
        else:
            module.register_buffer(name, value)
    fused.members = members
    return fused


def member_state(fused: torch.nn.Module, index: int) -> dict[str, Tensor]:
    """The state dict of member ``index`` of ``fused``: what a solo network of its architecture
    loads (stacked tensors sliced, shared ones such as ``num_batches_tracked`` copied)."""
    members = getattr(fused, "members", 1)
    stacked = {key for key, _ in _named_stacked(fused)}
    return {key: (value.chunk(members)[index] if key in stacked else value).detach().clone()
            for key, value in fused.state_dict().items()}


def member_by_member(fused: torch.nn.Module, solo: torch.nn.Module, *inputs) -> tuple[Tensor, ...]:
    """``fused(*inputs)`` computed one member at a time: the solo network ``solo`` (same architecture;
    its own tensors are never read, so it may live on the meta device) run with member k's slices of
    the stacked parameters and running statistics, outputs stacked along a new leading member axis.

    Each member's forward and backward are its solo computation on contiguous tensors; gradients and
    running-statistic updates land in the stacked tensors. A shared counter (``num_batches_tracked``)
    advances once per call, as in the stacked network. ``solo`` takes ``fused``'s training mode.
    """
    solo.train(fused.training)
    members = fused.members
    stacked = dict(_named_stacked(fused))
    tensors = dict(fused.named_parameters())
    tensors.update(fused.named_buffers())
    views = {key: tensors[key].view(members, -1, *tensors[key].shape[1:]).unbind(0) for key in stacked}
    outputs = []
    for k in range(members):
        state = {key: views[key][k] if key in views else value.clone() if k and key.endswith(COUNTER) else value
                 for key, value in tensors.items()}
        outputs.append(functional_call(solo, state, inputs))
    return tuple(torch.stack(out) for out in zip(*outputs))


def _named_stacked(module: torch.nn.Module) -> list[tuple[str, tuple[torch.nn.Module, str, Tensor]]]:
    """(state-dict key, (module, name, tensor)) of every tensor that is stacked per member: all
    parameters, and the running statistics of BatchNorm layers (constant buffers such as lookup
    tables are shared)."""
    out = []
    for prefix, sub in module.named_modules():
        names = [name for name, _ in sub.named_parameters(recurse=False)]
        if isinstance(sub, _BatchNorm) and sub.track_running_stats:
            names += STAT_BUFFERS
        out += [(f"{prefix}.{name}".lstrip("."), (sub, name, getattr(sub, name))) for name in names]
    return out
