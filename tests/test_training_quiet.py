"""``lightning fit`` prints no warning caused by the package's own CLI wiring."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "quick" / "optimetal2b_cgc.yaml"
WARNING_LINE = re.compile(r"^\S+\.py:\d+: ", re.M)  # how Lightning's rank_zero_warn / warnings print


@pytest.mark.slow
def test_quick_fit_prints_no_wiring_warning(tiny_dataset, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_dielectric", "fit", "--config", str(QUICK), "--data.root", str(tiny_dataset),
         "--data.batch_size", "16", "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1",
         "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false"],
        capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lightning fit: finished" in proc.stderr  # the run really happened
    assert "args parameter" not in proc.stderr
    assert not WARNING_LINE.findall(proc.stderr), proc.stderr
