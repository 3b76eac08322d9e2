"""``DielectricModule``'s per-step hooks: gradient clipping on CPU gives exactly ``clip_grad_norm_``'s
gradients; step logs follow ``log_every_n_steps``, including 0 (never)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from lightning_dielectric.training.module import DielectricModule


def attached_module(**trainer) -> DielectricModule:
    module = DielectricModule(torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 3)))
    module.trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, **trainer)
    return module


@pytest.mark.parametrize("max_norm", [1e3, 0.5, 0.0])
@pytest.mark.parametrize("bad", [None, math.nan, math.inf])
def test_clipping_equals_clip_grad_norm(max_norm, bad):
    torch.manual_seed(0)
    module = attached_module()
    params = list(module.parameters())
    for p in params:
        p.grad = 3.0 * torch.randn_like(p)
    if bad is not None:
        params[1].grad[0] = bad
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for r, p in zip(reference, params):
        r.grad = p.grad.clone()
    if max_norm:  # Lightning does not clip at 0
        torch.nn.utils.clip_grad_norm_(reference, max_norm)
    optimizer = torch.optim.SGD(params, lr=0.1)
    module.configure_gradient_clipping(optimizer, gradient_clip_val=max_norm, gradient_clip_algorithm="norm")
    for p, r in zip(params, reference):
        torch.testing.assert_close(p.grad, r.grad, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("every, logged", [(0, []), (1, [0, 1, 2, 3, 4, 5]), (3, [2, 5])])
def test_step_logs_follow_log_every_n_steps(every, logged, monkeypatch):
    module = attached_module(log_every_n_steps=every)
    steps = []
    for step in range(6):
        monkeypatch.setattr(DielectricModule, "global_step", property(lambda self, s=step: s))
        if module._step_logged():
            steps.append(step)
    assert steps == logged
    module.on_before_optimizer_step(torch.optim.SGD(module.parameters(), lr=0.1))  # every = 0: no step, no error
