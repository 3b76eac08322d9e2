"""Progress display: counts per family/design/axis and a cost-weighted ETA."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from lightning_dielectric.sweep.driver import Running
from lightning_dielectric.sweep.grid import GridPoint
from lightning_dielectric.sweep.progress import LiveView, counts_table
from lightning_dielectric.sweep.store import PointState
from lightning_dielectric.training.run_record import RECORD_FILE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_training_run_record import sample_record  # noqa: E402


def points() -> list[GridPoint]:
    return [
        GridPoint("2b-cgc", 8, d, 0, 10, ("data",) if d != 400 else ("data", "width")) for d in (100, 200, 400)
    ] + [GridPoint("2b-cgc", 16, 400, 0, 10, ("width",))]


def render(renderable) -> str:
    console = Console(record=True, width=120)
    console.print(renderable)
    return console.export_text()


def test_counts_per_axis():
    pts = points()
    states = {p.key: PointState(s) for p, s in zip(pts, ["done", "running", "failed", "pending"])}
    text = render(counts_table(pts, states, per_axis=True))
    rows = [line.split() for line in text.splitlines()[1:]]
    assert ["2b-cgc", "data", "D=100", "1", "·", "·", "·"] in rows
    assert ["2b-cgc", "data", "D=400", "·", "·", "1", "·"] in rows
    assert ["2b-cgc", "width", "w=8", "·", "·", "1", "·"] in rows  # the shared point counts on both lines
    assert ["2b-cgc", "width", "w=16", "·", "·", "·", "1"] in rows


def test_eta_weights_points_by_cost(tmp_path, monkeypatch):
    pts = points()
    states = {p.key: PointState("pending") for p in pts}
    view = LiveView("t", pts, states)
    assert view.eta_s(states, {}) is None  # nothing finished yet: no rate
    clock = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    view.t0 = clock[0]
    clock[0] += 100.0
    states[pts[0].key] = PointState("done")  # D=100 done in 100 s
    remaining = sum(p.cost for p in pts[1:])
    assert view.eta_s(states, {}) == pytest.approx(100.0 * remaining / pts[0].cost)
    # a running trial halfway through its epochs counts as half done
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sample_record(epochs_done=5, max_epochs=10, finished=False).write(run_dir / RECORD_FILE)
    running = {pts[1].key: Running(pts[1], Path(run_dir))}
    states[pts[1].key] = PointState("running")
    done = pts[0].cost + pts[1].cost / 2
    assert view.eta_s(states, running) == pytest.approx(100.0 * (remaining - pts[1].cost / 2) / done)
    text = render(view.render(states, running))
    assert "1/4 done · 1 running · 0 failed · 2 pending" in text and pts[1].key in text and "5/10" in text
