"""A stand-in for ``lightning fit`` in the sweep driver's unit tests (the end-to-end tests use the real CLI).

``python tests/sweep_fake_trial.py TRIAL.yaml [CKPT]``: "trains" ``trainer.max_epochs`` epochs of
``SWEEP_FAKE_EPOCH_S`` seconds each, writing ``checkpoints/last.ckpt`` (the next epoch, JSON) and
``result.json`` like the RunResult callback, and appends "start EPOCH" to ``attempts.log``. Its loss is
a deterministic function of width and train size. ``SWEEP_FAKE_FAIL=<substring of run dir>`` makes it
exit 1 (or ``SWEEP_FAKE_FAIL_STATUS``); ``SWEEP_FAKE_STOP=<substring of run dir>`` makes a fresh attempt stop cleanly (exit 0) after
one epoch with ``finished: false``; ``SWEEP_FAKE_DIVERGE=<substring of run dir>`` records every epoch as
a fused member stopped in epoch 0 (``stopped_epoch: 0``, best epoch 0).
"""

import json
import os
import sys
import time
from pathlib import Path

import yaml

from lightning_dielectric.training.run_record import RECORD_FILE, RunRecord

config = yaml.safe_load(Path(sys.argv[1]).read_text())
run_dir = Path(sys.argv[1]).parent
ckpt = Path(sys.argv[2]) if len(sys.argv) > 2 else None
width = config["model"]["model"]["init_args"]["width"]
d = config["data"]["train_size"]
epochs = config["trainer"]["max_epochs"]
start = json.loads(ckpt.read_text())["epoch"] if ckpt else 0
with open(run_dir / "attempts.log", "a") as f:
    f.write(f"start {start} pid {os.getpid()} threads {os.environ.get('OMP_NUM_THREADS')}\n")
if os.environ.get("SWEEP_FAKE_FAIL") and os.environ["SWEEP_FAKE_FAIL"] in str(run_dir):
    sys.exit(int(os.environ.get("SWEEP_FAKE_FAIL_STATUS", "1")))
(run_dir / "checkpoints").mkdir(exist_ok=True)
for epoch in range(start, epochs):
    time.sleep(float(os.environ.get("SWEEP_FAKE_EPOCH_S", "0.05")))
    loss = 1.0 + 100.0 / width + 1000.0 / d
    diverged = bool(os.environ.get("SWEEP_FAKE_DIVERGE")) and os.environ["SWEEP_FAKE_DIVERGE"] in str(run_dir)
    RunRecord(val_loss=loss, eps_loss=loss - 0.5, drude_loss=0.5, delta_e=10.0 / width,
              best_epoch=0 if diverged else epoch, stopped_epoch=0 if diverged else None,
              epochs_done=epoch + 1, max_epochs=epochs, finished=epoch + 1 == epochs, num_parameters=width * 1000,
              family=config["result"]["family"], flops_per_structure=None, structures_seen=0, flops=None,
              train_wall_s=0.0, device="cpu", num_devices=1, device_hours=0.0).write(run_dir / RECORD_FILE)
    (run_dir / "checkpoints" / "last.ckpt").write_text(json.dumps({"epoch": epoch + 1}))
    if ckpt is None and os.environ.get("SWEEP_FAKE_STOP") and os.environ["SWEEP_FAKE_STOP"] in str(run_dir):
        sys.exit(0)
