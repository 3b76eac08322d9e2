"""FLOP counting: closed-form counts of dense layers, and the per-family width polynomial."""

from __future__ import annotations

import pytest
import torch

from lightning_dielectric.models.families import build_model
from lightning_dielectric.training.flops import family_flops_per_structure, flops_per_structure, synthetic_batches


def test_linear_layer_flops_in_closed_form():
    # y = x Wᵀ + b over a batch of B rows: B·out multiply-accumulates per input feature → 2·B·in·out FLOPs.
    layer = torch.nn.Linear(7, 5)
    batches = [torch.randn(3, 7), torch.randn(4, 7)]
    assert flops_per_structure(layer, batches) == pytest.approx(2 * 7 * 5)
    assert layer.training  # mode restored


def test_two_layer_mlp_flops_add_up():
    mlp = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    assert flops_per_structure(mlp, [torch.randn(6, 10)]) == pytest.approx(2 * (10 * 20 + 20 * 3))


def test_no_structures_is_an_error():
    with pytest.raises(ValueError, match="no structures"):
        flops_per_structure(torch.nn.Linear(2, 2), [])


@pytest.mark.parametrize("family", ["2b-cgc", "2b-tc", "3b"])
def test_family_width_polynomial_matches_a_direct_count(family):
    batches = synthetic_batches(n=6, batch_size=3)
    estimated = family_flops_per_structure(family, [48], batches)[48]
    torch.manual_seed(0)
    assert estimated == pytest.approx(flops_per_structure(build_model(family, 48), batches), rel=1e-9)
