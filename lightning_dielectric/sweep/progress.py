"""Live display of a sweep (done / running / failed / pending, ETA) and the per-axis status table.

ETA: each point has a relative cost (:attr:`GridPoint.cost`, ~ epochs · D · N); the rate is the cost finished
since the display started (whole points by any worker, plus the finished epochs of this driver's
running trials) per second, and the ETA is the remaining cost over that rate.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lightning_dielectric.sweep.driver import Running
from lightning_dielectric.sweep.grid import GridPoint
from lightning_dielectric.sweep.store import PointState

STATUSES = ("done", "running", "failed", "pending")
AXIS = {"data": lambda p: f"D={p.train_size}", "width": lambda p: f"w={p.width}", "grid": lambda p: f"w={p.width}"}


def counts_table(points: list[GridPoint], states: dict[str, PointState], *, per_axis: bool) -> Table:
    """Counts per family and design (and per axis value: D on the data line, w otherwise)."""
    rows: dict[tuple[str, ...], Counter] = {}
    for p in points:
        for design in p.designs:
            row = (p.family, design, AXIS[design](p)) if per_axis else (p.family, design)
            rows.setdefault(row, Counter())[states[p.key].status] += 1
    table = Table(box=None, pad_edge=False)
    for name in ("family", "design") + (("axis",) if per_axis else ()):
        table.add_column(name)
    for name in STATUSES:
        table.add_column(name, justify="right")
    def order(row: tuple[str, ...]) -> tuple:
        return row[:2] + ((int(row[2].split("=")[1]),) if per_axis else ())

    for row in sorted(rows, key=order):
        c = rows[row]
        table.add_row(*row, *(str(c[s]) if c[s] else "·" for s in STATUSES))
    return table


class LiveView:
    """Renders the sweep state; :meth:`render` is called every refresh."""

    def __init__(self, name: str, points: list[GridPoint], states: dict[str, PointState]) -> None:
        self.name = name
        self.points = points
        self.t0 = time.monotonic()
        self.cost0 = self._done_cost(states)

    def _done_cost(self, states: dict[str, PointState]) -> float:
        return sum(p.cost for p in self.points if states[p.key].status == "done")

    def eta_s(self, states: dict[str, PointState], running: dict[str, Running]) -> float | None:
        """Seconds to finish the remaining points at the rate seen so far (None: no rate yet)."""
        partial = sum(r.point.cost * min(r.epochs_done(), r.point.epochs) / r.point.epochs for r in running.values())
        done = self._done_cost(states)
        rate = (done - self.cost0 + partial) / max(time.monotonic() - self.t0, 1e-9)
        remaining = sum(p.cost for p in self.points if states[p.key].status in ("pending", "running")) - partial
        return remaining / rate if rate > 0 else None

    def render(self, states: dict[str, PointState], running: dict[str, Running]) -> Group:
        c = Counter(s.status for s in states.values())
        eta = self.eta_s(states, running)
        head = Text.assemble(
            (f"sweep {self.name}: ", "bold"),
            f"{c['done']}/{len(self.points)} done · {c['running']} running · {c['failed']} failed · "
            f"{c['pending']} pending · elapsed {_hms(time.monotonic() - self.t0)} · "
            f"ETA {_hms(eta) if eta is not None else '–'}",
        )
        bar = ProgressBar(total=max(len(self.points), 1), completed=c["done"] + c["failed"], width=60)
        here = Table(box=None, pad_edge=False, title=None)
        for name in ("running here", "elapsed", "epoch"):
            here.add_column(name)
        for r in running.values():
            here.add_row(r.point.key, _hms(time.monotonic() - r.started), f"{r.epochs_done()}/{r.point.epochs}")
        return Group(head, bar, counts_table(self.points, states, per_axis=False), here)

    def line(self, states: dict[str, PointState], running: dict[str, Running]) -> str:
        """One-line summary for non-terminal output."""
        c = Counter(s.status for s in states.values())
        eta = self.eta_s(states, running)
        return (
            f"[sweep] {c['done']}/{len(self.points)} done, {c['running']} running, {c['failed']} failed, "
            f"{c['pending']} pending; ETA {_hms(eta) if eta is not None else '–'}"
        )


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
