"""``DielectricModule(compile=True)``: the model is compiled in place and agrees with eager mode."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from lightning_dielectric.models import build_model
from lightning_dielectric.training.module import DielectricModule

sys.path.insert(0, str(Path(__file__).parent))
from test_models_pairs import float64_batch, structures  # noqa: E402


def test_compile_option_compiles_in_place_and_keeps_checkpoint_keys():
    torch.manual_seed(0)
    model = build_model("2b-tc", 8)
    keys = list(model.state_dict())
    module = DielectricModule(model, compile=True)
    assert module.model is model and model._compiled_call_impl is not None  # nn.Module.compile, lazy
    assert [k.removeprefix("model.") for k in module.state_dict() if k.startswith("model.")] == keys
    assert DielectricModule(build_model("2b-tc", 8)).model._compiled_call_impl is None


@pytest.mark.slow
def test_compiled_model_equals_eager_on_two_batch_sizes():
    """Inductor on CPU, dynamic shapes: outputs and gradients as in eager mode, no recompilation
    for a second batch of another size (compiling takes a few minutes on 2 cores). In float64, so
    the fused kernels' different rounding stays far below the tolerance."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = build_model("2b-cgc", 8).double().train()
    compiled = DielectricModule(copy.deepcopy(eager), compile=True).model
    graphs = structures()  # 4 and 6 structures: no batch size that equals a fixed dimension (3) or 1
    for batch in (float64_batch(graphs), float64_batch(graphs[1:] * 2)):
        results = []
        for model in (eager, compiled):
            model.zero_grad()
            eps, drude = model(batch)
            (eps.square().mean() + drude.sum()).backward()
            results.append([eps, drude, *(p.grad for p in model.parameters())])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
