"""``python tests/sweep_fake_driver.py SWEEP.yaml WORKERS``: the sweep driver with ``sweep_fake_trial.py``
as its trial command, run as its own process so tests can kill it or run several at once."""

import sys
from pathlib import Path

from lightning_dielectric.sweep.driver import Driver
from lightning_dielectric.sweep.spec import load_spec

FAKE = str(Path(__file__).with_name("sweep_fake_trial.py"))


def fake_command(spec, point, config, ckpt):
    return [sys.executable, FAKE, str(config)] + ([str(ckpt)] if ckpt else [])


if __name__ == "__main__":
    Driver(load_spec(sys.argv[1]), workers=int(sys.argv[2]), command=fake_command, poll_s=0.2).run()
