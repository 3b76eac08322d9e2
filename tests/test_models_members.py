"""Fused members (``models.members``): one fused network equals its K solo networks exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.data import Batch

from lightning_dielectric.models import FAMILIES, build_model, num_parameters
from lightning_dielectric.models.members import (ColumnBlockLinear, batched_member_linear, fuse, member_by_member,
                                                 member_linear, member_state)
from test_models_forward import structures

K = 3


def solo_networks(family: str, width: int = 16, dtype=torch.float64) -> list[torch.nn.Module]:
    nets = []
    for seed in range(K):
        torch.manual_seed(seed)
        nets.append(build_model(family, width).to(dtype))
    return nets


def rel(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float | None = None) -> float:
    scale = b.abs().max() if scale is None else scale
    return float((a - b).abs().max() / max(float(scale), 1e-300))


@pytest.mark.parametrize("linear", [member_linear, batched_member_linear])  # on a CPU: ColumnBlockLinear; the GPU's
def test_member_linear_is_each_members_linear(linear):
    """Values and gradients (input, weight, bias) equal member k's solo ``F.linear`` on its column
    blocks, for both matmul layouts, without bias, on 3-d input and on a weight that is a column
    slice (as ``split_linear`` passes)."""
    torch.manual_seed(0)
    cases = [((50,), 8, 4, True, False), ((2,), 64, 300, True, False), ((3, 7), 8, 5, False, False), ((40,), 6, 9, True, True)]
    for lead, fan_in, out, with_bias, sliced in cases:
        x = torch.randn(*lead, K * fan_in, dtype=torch.float64, requires_grad=True)
        full = torch.randn(K * out, 2 * fan_in if sliced else fan_in, dtype=torch.float64, requires_grad=True)
        w = full[:, fan_in:] if sliced else full
        b = torch.randn(K * out, dtype=torch.float64, requires_grad=True) if with_bias else None
        y = linear(x, w, b)
        grad = torch.randn_like(y)
        gx, gfull, *gb = torch.autograd.grad(y, [x, full] + ([b] if with_bias else []), grad)
        for k in range(K):
            cols, outs = slice(k * fan_in, (k + 1) * fan_in), slice(k * out, (k + 1) * out)
            xk, wk = x.detach()[..., cols].clone().requires_grad_(), w.detach()[outs].clone().requires_grad_()
            bk = b.detach()[outs].clone().requires_grad_() if with_bias else None
            solo = torch.nn.functional.linear(xk, wk, bk)
            sx, sw, *sb = torch.autograd.grad(solo, [xk, wk] + ([bk] if with_bias else []), grad[..., outs])
            assert rel(y[..., outs], solo) < 1e-13 and rel(gx[..., cols], sx) < 1e-13
            assert rel(gfull[outs][:, fan_in:] if sliced else gfull[outs], sw) < 1e-13
            if with_bias:
                assert rel(gb[0][outs], sb[0]) < 1e-13
        if sliced:
            assert torch.equal(gfull[:, :fan_in], torch.zeros_like(gfull[:, :fan_in]))
    shared = torch.randn(5, 8, dtype=torch.float64)  # the members' shared input: an ordinary Linear
    w, b = torch.randn(K * 4, 8, dtype=torch.float64), torch.randn(K * 4, dtype=torch.float64)
    assert torch.equal(member_linear(shared, w, b), torch.nn.functional.linear(shared, w, b))


def test_column_block_linear_passes_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(6, K * 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(K * 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(K * 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ColumnBlockLinear.apply, (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: ColumnBlockLinear.apply(x, w, None), (x, w))


@pytest.mark.parametrize("compute", ["stacked", "sequential"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fused_training_step_equals_solo_steps(family, compute):
    """Float64, training mode: outputs, every gradient and the BatchNorm running statistics (and
    their shared step counter) of each member equal its solo network's to 1e-10 relative, whether
    the members are evaluated as one stacked network or one after another (``member_by_member``)."""
    torch.set_default_dtype(torch.float64)
    try:
        graphs = structures()
        batch = Batch.from_data_list(graphs + graphs[:2])
        solos = solo_networks(family)
        fused = fuse(solos)
        assert num_parameters(fused) == K * num_parameters(solos[0])
        if compute == "stacked":
            eps, drude = fused(batch)
        else:  # the solo architecture on the meta device: none of its own tensors is read
            eps, drude = member_by_member(fused, copy.deepcopy(solos[0]).to("meta"), batch)
        assert eps.shape == (K, batch.num_graphs, 2001, 2) and drude.shape == (K, batch.num_graphs)
        sum(eps[k].abs().mean() + drude[k].abs().mean() for k in range(K)).backward()
        grads = dict(fused.named_parameters())
        for k, solo in enumerate(solos):
            e, d = solo(batch)
            (e.abs().mean() + d.abs().mean()).backward()
            assert rel(eps[k], e) < 1e-10 and rel(drude[k], d) < 1e-10
            largest = max(p.grad.abs().max() for p in solo.parameters())
            for name, p in solo.named_parameters():
                assert rel(grads[name].grad.chunk(K)[k], p.grad, largest) < 1e-10, name
            mine = member_state(fused, k)
            for key, value in solo.state_dict().items():  # weights and running statistics after the step
                assert mine[key].shape == value.shape
                assert rel(mine[key].double(), value.double(), value.abs().max().clamp(min=1.0)) < 1e-10, key
    finally:
        torch.set_default_dtype(torch.float32)


def test_fuse_of_one_network_is_that_network():
    (solo,) = solo_networks("2b-tc", dtype=torch.float32)[:1]
    fused = fuse([solo])
    batch = Batch.from_data_list(structures())
    fused.eval(), solo.eval()
    with torch.no_grad():
        for a, b in zip(fused(batch), solo(batch)):
            assert torch.equal(a, b)
    assert set(member_state(fused, 0)) == set(solo.state_dict())


def test_member_by_member_follows_the_fused_networks_mode():
    """In evaluation mode the member-by-member outputs are the stacked network's and no running
    statistic moves, although the solo network passed in is in training mode."""
    torch.set_default_dtype(torch.float64)
    try:
        solos = solo_networks("2b-cgc")
        fused = fuse(solos).eval()
        template = copy.deepcopy(solos[0]).to("meta").train()
        batch = Batch.from_data_list(structures())
        before = {key: value.clone() for key, value in fused.state_dict().items()}
        with torch.no_grad():
            stacked = fused(batch)
            sequential = member_by_member(fused, template, batch)
        for a, b in zip(sequential, stacked):
            assert rel(a, b) < 1e-12
        assert all(torch.equal(value, before[key]) for key, value in fused.state_dict().items())
    finally:
        torch.set_default_dtype(torch.float32)
