"""``lightning-dielectric``: the package's command line (everything except training, which is
the ``lightning`` LightningCLI in ``training/cli.py``).

Each command is a ``main(argv) -> int`` function in the module that owns it; this file only
routes to it, importing nothing heavy until a command is chosen.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data ingest": ("lightning_dielectric.data.ingest:main", "convert the published dataset (CSE JSON or HDF5) to Parquet"),
    "data synth": ("lightning_dielectric.synthetic.cli:main", "generate the tight-binding synthetic dataset"),
    "data info": ("lightning_dielectric.data.info:main", "counts, elements and spectra statistics of a dataset, with plots"),
    "params": ("lightning_dielectric.training.params:main", "exact parameter count of a configured model"),
    "predict": ("lightning_dielectric.training.predict:main", "predict ε_inter, ω_D and colour for CIF/POSCAR files"),
    "import-model": ("lightning_dielectric.training.import_paper:main", "convert one of the paper's model files to a checkpoint"),
    "evaluate": ("lightning_dielectric.training.ensemble:main", "test metrics of an ensemble of checkpoints, with calibration"),
    "sweep run": ("lightning_dielectric.sweep.cli:run_main", "run (or resume) an Optuna scaling sweep"),
    "sweep status": ("lightning_dielectric.sweep.cli:status_main", "done / running / failed / pending per axis"),
    "sweep export": ("lightning_dielectric.sweep.cli:export_main", "write the runs table (Parquet and CSV)"),
    "sweep reset": ("lightning_dielectric.sweep.cli:reset_main", "make failed points pending again"),
    "sweep prune": ("lightning_dielectric.sweep.cli:prune_main", "drop checkpoints of done points (--keep)"),
    "sweep dashboard": ("lightning_dielectric.sweep.cli:dashboard_main", "serve the sweep's Optuna storage (optuna-dashboard)"),
    "laws fit": ("lightning_dielectric.laws.cli:fit_main", "fit 1D and 2D scaling laws and write the report"),
    "laws import-optimetal": ("lightning_dielectric.laws.cli:import_main", "convert the paper's published JSON to a runs table"),
    "laws plan": ("lightning_dielectric.laws.cli:plan_main", "training-set size needed for a target loss"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: lightning-dielectric COMMAND [ARGS] (COMMAND --help for its arguments)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for words in (2, 1):
        name = " ".join(argv[:words])
        if name in COMMANDS and len(argv) >= words:
            module, func = COMMANDS[name][0].split(":")
            return int(getattr(importlib.import_module(module), func)(argv[words:]) or 0)
    print(_usage(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
    return 0 if argv and argv[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
