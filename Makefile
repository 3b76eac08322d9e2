# All set-up happens here: `make test` and `make sweep` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SWEEP ?= sweeps/quick.yaml
SYNTH := data/synthetic
# Dataset of the sweep: the sweep file's data_root unless DATA=/path/to/ingested/dataset is given.
DATA ?=
SYNTH_N ?= 6000
WORKERS ?= 2
RUNS ?= runs

.PHONY: install test sweep synth bench bench-gpu tensorboard dashboard clean

# CPU machines: the local CPU build of torch goes in first so that no CUDA build is pulled.
# A user with a GPU installs the torch they want into $(VENV) first; it is kept.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,postgres,dashboard]"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

# The embedded default dataset (tight-binding physics); rerunning finishes an interrupted run.
$(SYNTH)/dataset.json: | $(VENV)/.installed
	$(VENV)/bin/lightning-dielectric data synth --n $(SYNTH_N) --seed 0 --out $(SYNTH) --workers $(WORKERS)

synth: $(SYNTH)/dataset.json

# Run (or resume) the sweep, then export the runs table and write the scaling-law report.
# The synthetic dataset is generated first when the sweep reads it and it is missing.
sweep: install
	@if [ -z "$(DATA)" ] && grep -Eq '^data_root: *$(SYNTH)/? *$$' $(SWEEP); then $(MAKE) --no-print-directory synth; fi
	$(VENV)/bin/lightning-dielectric sweep run $(SWEEP) $(if $(DATA),--data $(DATA))

bench: install
	$(PY) -m benchmarks.run

# On a machine with a CUDA GPU (about 5 minutes): writes its section into docs/benchmarks.md.
bench-gpu: install
	$(PY) -m benchmarks.run --only gpu

tensorboard: install
	$(VENV)/bin/tensorboard --logdir $(RUNS)

# The sweep's Optuna storage in optuna-dashboard, on 127.0.0.1 (PORT=8080; SWEEP as for make sweep).
PORT ?= 8080
dashboard: install
	$(VENV)/bin/lightning-dielectric sweep dashboard $(SWEEP) --port $(PORT)

clean:
	rm -rf $(VENV) *.egg-info
