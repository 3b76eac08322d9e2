"""One-line messages for configuration errors of the ``lightning`` CLI (and the sweep's check of
trial configs), with the closest valid keys for a mistyped one.

jsonargparse reports a wrong key in one of three ways, all turned into ``unknown key`` (a key
that ``lightning fit`` sets from another, ``LINKED_KEYS``, gets where to set it instead):

- ``unrecognized arguments: --model.widht 32`` (command line),
- ``Subcommand 'fit' does not accept option 'model.widht'`` or ``Group 'model' does not accept
  option 'widht'`` (config file),
- ``Parser key "model.model": ... Option 'widht' is not accepted`` (inside a class's init_args);

every other message (a wrong value) is folded onto one line.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass

CONFIG_ERROR_STATUS = 2  # exit status of ``lightning`` on a configuration error (the sweep does not retry)
GRAPH_KEYS = ("cutoff", "threebody_cutoff")
# The DataModule's graph cutoffs are linked to the network's (``lightning fit`` sets them from the model).
LINKED_KEYS = {f"data.{key}": f"model.model.init_args.{key}" for key in GRAPH_KEYS}
# Keys whose value is a class (class_path/init_args): their init_args come from these classes.
_SUBCLASS_KEYS = {
    "model.model": ("lightning_dielectric.models", ("OptiMetal2B", "OptiMetal3B", "MagpieBaseline")),
    "trainer.logger": ("pytorch_lightning.loggers", ("TensorBoardLogger",)),
}


@dataclass(frozen=True)
class ConfigError:
    """A parse error: the unknown dotted ``key`` and its ``close`` valid keys, or (``key`` None) a
    wrong value described by ``text`` on one line."""

    key: str | None
    close: tuple[str, ...] = ()
    text: str = ""

    def describe(self, prefix: str = "") -> str:
        """One line; ``prefix`` goes before every key (``--`` on the command line)."""
        if self.key is None:
            return self.text
        if self.key in LINKED_KEYS:
            return (f"{prefix}{self.key} cannot be set: the DataModule builds the graph the model reads; "
                    f"set {prefix}{LINKED_KEYS[self.key]} instead")
        hint = f" (did you mean {' or '.join(prefix + k for k in self.close)}?)" if self.close else ""
        return f"unknown key {prefix}{self.key}{hint}"


def explain(message: str, valid_keys: Iterable[str]) -> ConfigError:
    """Turn a jsonargparse error ``message`` into one line; an unknown key gets ``did you mean``."""
    key = unknown_key(message)
    if key is None:
        return ConfigError(None, text=_value_error(message))
    return ConfigError(key, tuple(closest_keys(key, candidate_keys(valid_keys))))


def _value_error(message: str) -> str:
    """``invalid value 'abc' for trainer.max_epochs (expected int or None)``, else the message on one line."""
    where = re.search(r"Parser key \"([\w.]+)\"", message)
    given = re.findall(r"Given value: (.*)", message)
    if where and given:
        expected = re.findall(r"Expected a <class '(?:[\w.]+\.)?(\w+)'>", message)
        names = [("None" if e == "NoneType" else e) for e in dict.fromkeys(expected)]
        return f"invalid value {given[-1].strip()!r} for {where.group(1)}" + (
            f" (expected {' or '.join(names)})" if names else "")
    return " ".join(line.strip() for line in message.splitlines() if line.strip())[:400]


def unknown_key(message: str) -> str | None:
    """The dotted key jsonargparse did not accept, or None if the message is about a value."""
    if m := re.search(r"unrecognized arguments: --?([\w.\-]+)", message):
        return m.group(1)
    if m := re.search(r"Parser key \"([\w.]+)\":.*?Option '([\w.\-]+)' is not accepted", message, re.S):
        return f"{m.group(1)}.init_args.{m.group(2)}"
    if m := re.search(r"(?:Group '([\w.]+)' )?does not accept (?:nested key|option) '([\w.\-]+)'", message):
        return ".".join(filter(None, m.groups()))
    if m := re.match(r"Option '([\w.\-]+)' is not accepted", message):
        return m.group(1)
    if m := re.search(r"Linked \"([\w.]+)\" must be given via|^argument .* --> ([\w.]+):", message):
        return m.group(1) or m.group(2)  # a link target (LINKED_KEYS)
    return None


def candidate_keys(valid_keys: Iterable[str]) -> list[str]:
    """The parser's keys plus the init_args of the classes the class-valued keys usually hold."""
    import importlib

    keys = [k for k in valid_keys if k and not k.endswith(".help") and k not in ("help", "config", "print_config")]
    for prefix, (module, names) in _SUBCLASS_KEYS.items():
        if prefix not in keys:
            continue
        for name in names:
            cls = getattr(importlib.import_module(module), name)
            params = inspect.signature(cls.__init__).parameters
            keys += [f"{prefix}.init_args.{p}" for p in params if p not in ("self", "args", "kwargs")]
    return list(dict.fromkeys(keys))


def closest_keys(key: str, candidates: list[str], n: int = 2) -> list[str]:
    """Close matches of ``key``: by the whole dotted key, then by its last part (``widht`` → ``...width``)."""
    close = difflib.get_close_matches(key, candidates, n=n, cutoff=0.8)
    leaf = key.rsplit(".", 1)[-1]
    leaves = {c.rsplit(".", 1)[-1] for c in candidates}
    near = set(difflib.get_close_matches(leaf, leaves, n=3, cutoff=0.75))
    same_group = key.split(".", 1)[0]
    by_leaf = [c for c in candidates if c.rsplit(".", 1)[-1] in near]
    by_leaf.sort(key=lambda c: (c.split(".", 1)[0] != same_group, len(c)))
    return list(dict.fromkeys(close + by_leaf))[:n]
