"""Cost of the training wrapper and the metrics, CPU, fp32.

1. ``DielectricModule`` under ``Trainer.fit`` (loss, logging, grad norm, LR schedule, clipping) vs a
   bare PyTorch loop doing the same forward + MAE loss + backward + clip + AdamW step (the fused
   kernel, as the module uses) on the same pre-built batches (OptiMetal2B-CGC, intermetallic-like
   structures from ``bench_models``); the two alternate in rounds, each keeping its best epoch.
2. ``per_material_metrics`` (all metrics incl. ΔE colour) and the colour part alone, materials/s.

Run: ``python -m benchmarks.bench_training [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Batch

from benchmarks.bench_models import intermetallic_graphs
from lightning_dielectric.data.schema import ENERGY_GRID
from lightning_dielectric.models import build_model
from lightning_dielectric.training.metrics import per_material_metrics
from lightning_dielectric.training.module import DielectricModule
from lightning_dielectric.training.optics import delta_e


def batches(n_batches: int, batch_size: int) -> list[Batch]:
    graphs = intermetallic_graphs(n_batches * batch_size)
    rng = np.random.default_rng(0)
    for g in graphs:
        g.eps = torch.from_numpy(rng.normal(1.0, 1.0, (1, len(ENERGY_GRID), 2)).astype(np.float32))
        g.drude = torch.tensor([rng.uniform(2, 15)], dtype=torch.float32)
        g.mat_id = "x"
    return [Batch.from_data_list(graphs[i : i + batch_size]) for i in range(0, len(graphs), batch_size)]


def bare_rate(data: list[Batch], width: int, epochs: int) -> float:
    """Structures/s of the fastest of ``epochs`` timed epochs (after one warm-up epoch)."""
    torch.manual_seed(0)
    model = build_model("2b-cgc", width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # as DielectricModule on CPU
    model.train()
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for batch in data:
            eps, drude = model(batch)
            loss = (eps - batch.eps).abs().mean() + (drude - batch.drude).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
            optimizer.step()
        times.append(time.perf_counter() - start)
    return sum(b.num_graphs for b in data) / min(times[1:])


class _EpochTimer(pl.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self.start)


def lightning_rate(data: list[Batch], width: int, epochs: int) -> float:
    """Structures/s of the fastest of ``epochs`` timed ``Trainer.fit`` epochs (after one warm-up epoch)."""
    torch.manual_seed(0)
    module = DielectricModule(build_model("2b-cgc", width), lr=1e-4, warmup_epochs=1, plot_every_n_epochs=0)
    timer = _EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=epochs + 1, logger=pl.loggers.TensorBoardLogger(tempfile.mkdtemp()),
        callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        gradient_clip_val=100.0, log_every_n_steps=10, limit_val_batches=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(data, batch_size=None, collate_fn=lambda b: b))
    return sum(b.num_graphs for b in data) / min(timer.times[1:])


def metric_rates(n: int, repeats: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    pred = torch.from_numpy(rng.normal(1.0, 1.0, (n, len(ENERGY_GRID), 2)).astype(np.float32))
    true = torch.from_numpy(rng.normal(1.0, 1.0, (n, len(ENERGY_GRID), 2)).astype(np.float32))
    drude = torch.from_numpy(rng.uniform(2, 15, n).astype(np.float32))
    per_material_metrics(pred, drude, true, drude)  # warm-up (builds the colour tables)
    start = time.perf_counter()
    for _ in range(repeats):
        per_material_metrics(pred, drude, true, drude)
    all_rate = repeats * n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(repeats):
        delta_e(pred, drude, true, drude)
    return all_rate, repeats * n / (time.perf_counter() - start)


def run(quick: bool = False) -> str:
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    width, batch_size = (32, 32) if quick else (64, 32)
    n_batches, epochs, rounds = (4, 1, 1) if quick else (8, 4, 3)
    data = batches(n_batches, batch_size)
    bare, wrapped = 0.0, 0.0
    for _ in range(rounds):  # alternating, so that a slow spell of the machine does not fall on one side only
        bare = max(bare, bare_rate(data, width, epochs))
        wrapped = max(wrapped, lightning_rate(data, width, epochs))
    all_rate, colour_rate = metric_rates(256, 2 if quick else 10)
    return "\n".join([
        "## Training wrapper and metrics", "",
        f"OptiMetal2B-CGC w = {width}, batch {batch_size}, {n_batches} pre-built batches; fastest of {epochs} epochs "
        f"after a warm-up epoch, best of {rounds} alternating round(s) (robust to other load on the machine), CPU "
        f"fp32, {torch.get_num_threads()} threads, fused AdamW in both:", "",
        "| loop | structures/s |", "|---|---|",
        f"| bare PyTorch (forward, MAE loss, backward, clip, AdamW) | {bare:,.0f} |",
        f"| `DielectricModule` in `Trainer.fit` (+ logging, grad norm, LR schedule) | {wrapped:,.0f} |", "",
        f"Wrapper overhead: {100 * (bare / wrapped - 1):+.1f} % time per structure.", "",
        "Metrics on 256 materials (float64):", "",
        "| part | materials/s |", "|---|---|",
        f"| all per-material metrics (MAE, R², SC, Drude, ΔE) | {all_rate:,.0f} |",
        f"| ΔE colour pipeline alone | {colour_rate:,.0f} |", "",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_training")
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick))
