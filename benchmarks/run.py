"""Run every ``benchmarks/bench_*.py`` and write the results, with the machine, to docs/benchmarks.md.

Usage: ``python -m benchmarks.run [--quick] [--only data,models] [--out docs/benchmarks.md]``.
Each benchmark's section sits between ``<!-- bench:NAME -->`` markers; with ``--only`` the named
sections are replaced and the others kept (each keeps the date and machine it was measured on).
Speed targets are judged as numbers measured in one run on one machine (ratios where a
comparison is made), never by timed unit tests.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import re
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


HEADER = ("# Benchmarks\n\nWritten by `make bench` (`python -m benchmarks.run`); a section re-run alone "
          "(`--only NAME`) replaces only itself. Each section names the day and machine it was measured on.\n")


def read_sections(path: Path) -> dict[str, str]:
    """The marked sections of an earlier output, by benchmark name, in order."""
    text = path.read_text() if path.exists() else ""
    return dict(re.findall(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", text, flags=re.S))


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
    out = Path(args.out)
    stamp = f"_measured {time.strftime('%Y-%m-%d')}" + (" (--quick)" if args.quick else "") + "; machine:_\n\n"
    sections = read_sections(out) if args.only else {}
    for name in names:  # the file is rewritten after each benchmark, so a long run keeps what it measured
        print(f"== benchmark {name}", flush=True)
        start = time.perf_counter()
        section = importlib.import_module(f"benchmarks.bench_{name}").run(quick=args.quick)
        sections[name] = (section.rstrip() + f"\n\n_{name}: {time.perf_counter() - start:.0f} s wall_\n\n"
                          + stamp + machine())
        print(section, flush=True)
        out.write_text(HEADER + "".join(f"\n<!-- bench:{k} -->\n{v}<!-- /bench:{k} -->\n" for k, v in sections.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
