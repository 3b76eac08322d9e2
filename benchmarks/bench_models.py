"""Training throughput of the model families (forward + backward + AdamW step), CPU, fp32.

Structures are intermetallic-like cells (sc/bcc/fcc/hcp prototypes and small supercells, 1–12
atoms, ≈ 16 Å³/atom, random metallic species, strained and jittered); graphs (cutoff 5.5 Å,
three-body cutoff 4.0 Å) and batches are built before timing, so the numbers measure the model.
Run: ``python -m benchmarks.bench_models [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch_geometric.data import Batch

from lightning_dielectric.data import build_graph
from lightning_dielectric.data.graphs import DEFAULT_CUTOFF, DEFAULT_THREEBODY_CUTOFF
from lightning_dielectric.models import build_model, count_parameters
from lightning_dielectric.models.reference import direct_forward

METALS = [3, 4, 11, 12, 13, 19, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 42, 44, 45, 46, 47, 48,
          49, 50, 57, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83]
PROTOTYPES = {  # fractional positions in a cubic (or hexagonal-like) conventional cell
    "bcc": [[0, 0, 0], [0.5, 0.5, 0.5]],
    "fcc": [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
    "sc": [[0, 0, 0]],
    "hcp": [[0, 0, 0], [1 / 3, 2 / 3, 0.5]],
}
SUPERCELLS = [(1, 1, 1), (2, 1, 1), (1, 1, 2), (2, 2, 1)]
HEXAGONAL = np.array([[1.0, 0.0, 0.0], [-0.5, np.sqrt(3) / 2, 0.0], [0.0, 0.0, 1.633]])
MAX_ATOMS = 12
VOLUME_PER_ATOM = 16.0  # Å³, typical of transition-metal intermetallics
WARMUP = 2


def intermetallic_graphs(n: int, seed: int = 0) -> list:
    """``n`` random intermetallic-like crystal graphs with triplets (the default cutoffs, 5.5 / 4.0 Å)."""
    rng = np.random.default_rng(seed)
    graphs = []
    while len(graphs) < n:
        name = str(rng.choice(list(PROTOTYPES)))
        reps = np.array(SUPERCELLS[int(rng.integers(len(SUPERCELLS)))])
        grid = np.stack(np.meshgrid(*(np.arange(r) for r in reps), indexing="ij"), -1).reshape(-1, 3)
        frac = ((np.array(PROTOTYPES[name])[None] + grid[:, None]) / reps).reshape(-1, 3)
        if len(frac) > MAX_ATOMS:
            continue
        base = HEXAGONAL if name == "hcp" else np.eye(3)
        base = base * reps[:, None]
        scale = (VOLUME_PER_ATOM * len(frac) / abs(np.linalg.det(base))) ** (1 / 3)
        lattice = scale * base @ (np.eye(3) + rng.normal(0, 0.02, (3, 3)))
        pos = (frac + rng.normal(0, 0.01, frac.shape)) @ lattice
        species = rng.choice(METALS, size=int(rng.integers(1, 4)), replace=False)
        z = rng.choice(species, len(frac))
        graphs.append(build_graph(lattice, z, pos, cutoff=DEFAULT_CUTOFF, threebody_cutoff=DEFAULT_THREEBODY_CUTOFF))
    return graphs


class Direct(torch.nn.Module):
    """The same model and parameters run per edge and per triplet through PyG's message passing
    (``models.reference.direct_forward``, the models' forward before edge pairing): the reference for
    the paired and factorised computation."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.inner = model

    def forward(self, data):
        return direct_forward(self.inner, data)


class TrainStep:
    """One training step (forward, MAE loss, backward, AdamW step); returns (wall s, CPU s)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.train()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-6)

    def __call__(self, batch) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        eps, drude = self.model(batch)
        loss = (eps - batch.eps).abs().mean() + (drude - batch.drude).abs().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - start, time.process_time() - cpu_start


def run(quick: bool = False) -> str:
    width, batch_size = (64, 8) if quick else (256, 32)
    steps = 2 if quick else 10
    graphs = intermetallic_graphs(batch_size * 4, seed=0)
    rng = np.random.default_rng(1)
    for g in graphs:  # targets, so the loss is realistic
        g.eps = torch.from_numpy(rng.normal(1.0, 1.0, (1, 2001, 2)).astype(np.float32))
        g.drude = torch.tensor([float(rng.uniform(2, 10))])
    batches = [Batch.from_data_list(graphs[i:i + batch_size]) for i in range(0, len(graphs), batch_size)]
    atoms = np.mean([g.num_nodes for g in graphs])
    edges = np.mean([g.edge_index.size(1) for g in graphs])
    triplets = np.mean([g.triplet_index.size(1) for g in graphs])
    lines = [
        "## Models: training throughput (CPU, fp32)",
        "",
        f"Forward + backward + AdamW step at w = {width}, batch {batch_size}; median of {steps} steps per model "
        f"(models interleaved step by step) after {WARMUP} warm-up steps; {torch.get_num_threads()} torch threads. Intermetallic-like structures: {atoms:.1f} atoms, "
        f"{edges:.0f} edges (≤ {DEFAULT_CUTOFF} Å), {triplets:.0f} triplets (≤ {DEFAULT_THREEBODY_CUTOFF} Å) per structure on average.",
        "",
        "| model | parameters | structures/s | wall ms/step | CPU s/step |",
        "|---|---:|---:|---:|---:|",
    ]
    graph_families = ["2b-cgc", "2b-tc", "3b"]
    labels = [f"{f}{v}" for f in graph_families for v in ("", ", direct (reference)")] + ["magpie"]
    if not quick:  # torch.compile(dynamic=True) compiles in the warm-up steps (minutes per model on 2 cores)
        labels += [f"{f}, compiled" for f in graph_families]
    steppers = {}
    for label in labels:
        torch.manual_seed(0)
        model = build_model(label.split(",")[0], width)
        if "direct" in label:
            model = Direct(model)
        if "compiled" in label:
            model.compile(dynamic=True)
        steppers[label] = TrainStep(model)
    times = {label: [] for label in labels}
    for i in range(WARMUP + steps):  # interleaved, so drifting machine load hits every model alike
        for label in labels:
            wall_cpu = steppers[label](batches[i % len(batches)])
            if i >= WARMUP:
                times[label].append(wall_cpu)
    for label in labels:
        wall, cpu = np.median(np.array(times[label]), axis=0)
        lines.append(
            f"| {label} | {count_parameters(label.split(',')[0], width):,} | {batch_size / wall:.1f} "
            f"| {1000 * wall:.0f} | {cpu:.2f} |"
        )
    lines += [
        "",
        "Direct (reference) rows run the same parameters per edge and per triplet through PyG's message "
        "passing (`CGConv`, `TransformerConv`); the package computes length and angle features once per "
        "edge pair and triplet pair and projects atom features once per atom (docs/models.md). Compiled "
        "rows: `torch.compile(dynamic=True)` of the package's model, compilation excluded. "
        "CPU s/step is process CPU time (all threads), less sensitive than wall time to other load on "
        "the machine.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_models")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    print(run(quick=parser.parse_args().quick))
