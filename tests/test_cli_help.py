"""Every option of every ``lightning-dielectric`` command has help text that states its default
and, where the values form a fixed set, lists them; and ``--help`` of each command works."""

from __future__ import annotations

import argparse
import re

import pytest

from lightning_dielectric.cli import COMMANDS
from lightning_dielectric.cli import main as cli_main


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def parser_of(command: str, monkeypatch) -> argparse.ArgumentParser:
    """The argparse parser that ``command`` builds (captured when it starts parsing)."""
    def capture(self, *args, **kwargs):
        raise _Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Captured) as captured:
        cli_main([*command.split()])
    return captured.value.parser


def problems(parser: argparse.ArgumentParser) -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        text = (action.help or "") % {"default": action.default, "choices": ", ".join(map(str, action.choices or ())),
                                      "prog": parser.prog, "dest": action.dest}
        if not text.strip():
            found.append(f"{name}: no help")
            continue
        takes_value = action.nargs != 0 and action.option_strings
        if takes_value and not action.required and action.default is not None and "default" not in text:
            found.append(f"{name}: default {action.default!r} not stated")
        if action.choices and not all(str(c) in text or str(c) in str(action.metavar or "{") for c in action.choices):
            if action.metavar is not None or not set(map(str, action.choices)) <= set(re.findall(r"[\w.-]+", text)):
                found.append(f"{name}: valid values not listed")
    return found


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_with_default_and_choices(command, monkeypatch):
    assert problems(parser_of(command, monkeypatch)) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_exits_cleanly(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out
