"""Run every ``benchmarks/bench_*.py`` and write the results, with the machine, to docs/benchmarks.md.

Usage: ``python -m benchmarks.run [--quick] [--only data,models] [--out docs/benchmarks.md]``.
Speed targets are judged as numbers measured in one run on one machine (ratios where a
comparison is made), never by timed unit tests.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"- CPU: {cpu}, {psutil.cpu_count(logical=True)} logical cores\n"
        f"- memory: {psutil.virtual_memory().total / 2**30:.1f} GiB\n"
        f"- GPU: {gpu}\n"
        f"- Python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.release()}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run, not for reporting)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names, e.g. data,models")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s) {sorted(unknown)}; have {names}")
        names = wanted
    header = (
        "# Benchmarks\n\nWritten by `make bench` (`python -m benchmarks.run"
        + (" --quick" if args.quick else "")
        + f"`) on {time.strftime('%Y-%m-%d')}.\n\nMachine:\n\n{machine()}\n"
    )
    sections = []
    for name in names:  # the file is rewritten after each benchmark, so a long run keeps what it measured
        print(f"== benchmark {name}", flush=True)
        start = time.perf_counter()
        section = importlib.import_module(f"benchmarks.bench_{name}").run(quick=args.quick)
        sections.append(section.rstrip() + f"\n\n_{name}: {time.perf_counter() - start:.0f} s wall_\n")
        print(section, flush=True)
        Path(args.out).write_text(header + "\n".join(sections))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
