# All set-up happens here: `make test` and `make sweep` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SWEEP ?= sweeps/quick.yaml
DATA ?=
RUNS ?= runs

.PHONY: install test sweep bench tensorboard clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU machines: take the local CPU build of torch first so no CUDA build is pulled.
	# A user with a GPU and torch already in $(VENV) keeps it (pip sees it satisfied).
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,postgres]"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m benchmarks.run

tensorboard: install
	$(VENV)/bin/tensorboard --logdir $(RUNS)

clean:
	rm -rf $(VENV) *.egg-info
