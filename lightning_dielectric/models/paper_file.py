"""Read a model file in the paper's format (OptiMetal's ``torch.save`` of its best model) safely.

The file is a zip archive holding one pickle: a dict with ``epoch`` (int), ``model_state_dict``
(name → tensor, the paper's module names), ``config_dict`` (a pickled pydantic model of class
``optimetal.utils.utils.ValidateConfigurationDict``, or a plain dict of its fields) and ``precision``
(``None`` = float32; tensors are cast to the model's dtype on import).

It is read with ``torch.load(weights_only=True)``: torch's restricted unpickler, which builds only
tensors, storages and plain containers (dict, list, tuple, set, OrderedDict, numbers, strings) and
stops at any other global. The one class the format needs beyond that is answered by
:class:`PaperConfig`, a stand-in registered under the paper's class path only for the duration of
the call, whose ``__setstate__`` keeps the pickled field dict and runs nothing. Neither the paper's
package nor anything the file names is imported or called, so a tampered file is refused before any
of its code runs.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

PAPER_CONFIG_PATHS = ("optimetal.utils.utils.ValidateConfigurationDict", "optimetal.utils.ValidateConfigurationDict")
"""Where the paper's pickles name their config class (its defining module, and the package re-export)."""


class PaperFormatError(ValueError):
    """A model file that is not a usable paper model file; the message is one line naming the file."""


class PaperConfig:
    """Stand-in for the paper's pydantic config: ``fields`` is the pickled field dict, nothing else."""

    def __setstate__(self, state) -> None:
        # pydantic pickles {'__dict__': fields, '__pydantic_fields_set__': ..., ...}
        fields = state.get("__dict__") if isinstance(state, dict) else None
        self.fields = dict(fields) if isinstance(fields, dict) else {}


@dataclass(frozen=True)
class PaperFile:
    """The parts of a paper model file the importer uses."""

    path: Path
    epoch: int | None
    state_dict: dict[str, torch.Tensor]
    architecture: dict


def _unpickling_error(path: Path, err: Exception) -> PaperFormatError:
    """One line for the restricted unpickler's several-line message: what it refused to load, if named."""
    text = str(err)
    named = re.search(r"GLOBAL (\S+)", text) or re.search(r"unrecognized function (.+?)(?: which|$)", text, re.M)
    if named:
        return PaperFormatError(f"{path}: refused: its pickle names {named.group(1)!r}, which is not a tensor, "
                                "a plain container or the paper's config (nothing from the file was run)")
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    reason = detail.group(1).strip() if detail else type(err).__name__
    return PaperFormatError(f"{path}: cannot read as a torch file of tensors and plain containers ({reason})")


def read_paper_file(path: str | Path) -> PaperFile:
    """Load ``path`` without executing anything from it; :class:`PaperFormatError` if it is tampered,
    unreadable or not in the paper's format."""
    path = Path(path)
    if not path.is_file():
        raise PaperFormatError(f"{path}: no such file")
    stand_ins = [(PaperConfig, name) for name in PAPER_CONFIG_PATHS]
    try:
        with torch.serialization.safe_globals(stand_ins):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # the restricted unpickler met something it does not build
        raise _unpickling_error(path, err) from None
    except Exception as err:  # not a torch file, truncated archive, ...
        reason = str(err).splitlines()[0] if str(err) else ""
        raise PaperFormatError(f"{path}: cannot read as a torch file ({type(err).__name__}: {reason})") from None
    if not isinstance(content, dict) or not {"model_state_dict", "config_dict"} <= set(content):
        keys = sorted(map(str, content)) if isinstance(content, dict) else type(content).__name__
        raise PaperFormatError(f"{path}: not a paper model file "
                               f"(expected model_state_dict and config_dict, found {keys})")
    state_dict = content["model_state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise PaperFormatError(f"{path}: model_state_dict is not a dict of tensors")
    config = content["config_dict"]
    fields = getattr(config, "fields", None) if isinstance(config, PaperConfig) else config
    architecture = fields.get("architecture") if isinstance(fields, dict) else None
    if not isinstance(architecture, dict):
        raise PaperFormatError(f"{path}: config_dict has no 'architecture' dict")
    epoch = content.get("epoch")
    return PaperFile(path, epoch if isinstance(epoch, int) else None, dict(state_dict), architecture)
