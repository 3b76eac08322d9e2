"""A 'model class' that a hostile checkpoint could name: building it leaves a mark file, so the
tests can tell whether loading a checkpoint ran it."""

import os
from pathlib import Path

import torch


class Marker(torch.nn.Module):
    def __init__(self, width: int = 1, conv: str = "", spectra_width: int | None = None, num_blocks: int = 1,
                 cutoff: float = 1.0, num_rbf: int = 1):
        super().__init__()
        Path(os.environ["CHECKPOINT_PAYLOAD_MARK"]).write_text("built")
