"""A config file for a subcommand: a JSON object whose keys are its long flags.

::

    {"engine": "process", "timeout": 60, "imports": "data-science",
     "allow_import": ["scipy"], "file": ["/data/sales.csv"], "stateless": false}

A key is a flag's name without the leading dashes (``-`` or ``_`` alike: ``max_sessions``,
``no-images``); its value has the flag's type: a number, a string, ``true`` to turn a
switch on, a list of strings for a flag that repeats (``file``, ``allow_import``). Flags
given on the command line win; repeated flags add to the file's list. JSON needs nothing
beyond the standard library on every supported Python.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sandbox_tool.errors import UsageError

__all__ = ["Layered", "layered"]


class Layered:
    """A parser's flags, resolved as defaults < config file < command line."""

    def __init__(self, parser: argparse.ArgumentParser, skip: set[str]) -> None:
        self._actions: dict[str, argparse.Action] = {}  # by flag name, as in the file
        self._defaults: dict[str, Any] = {}  # by dest
        self._kinds: dict[str, argparse.Action] = {}  # by dest
        for action in parser._actions:  # argparse has no public way to list them
            if action.dest in skip or action.default is argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                if option.startswith("--"):
                    self._actions[option[2:].replace("-", "_")] = action
            self._kinds[action.dest] = action
            self._defaults[action.dest] = action.default
            # absent from the namespace unless given on the command line
            action.default = argparse.SUPPRESS

    def resolve(self, args: argparse.Namespace, config: Path | None) -> argparse.Namespace:
        """``args`` with what the command line did not give taken from ``config``, then
        from the defaults."""
        from_file = self._read(config) if config is not None else {}
        given = vars(args)
        merged = dict(vars(args))
        for dest, default in self._defaults.items():
            action = self._kinds[dest]
            if isinstance(action, argparse._AppendAction):
                merged[dest] = [*(default or []), *from_file.get(dest, []), *given.get(dest, [])]
            elif dest not in given:
                merged[dest] = from_file.get(dest, default)
        return argparse.Namespace(**merged)

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"cannot read the config file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise UsageError(f"the config file {path} must hold a JSON object of flag names")
        values = {}
        for key, value in data.items():
            action = self._actions.get(str(key).lstrip("-").replace("-", "_"))
            if action is None:
                known = ", ".join(sorted(self._actions))
                raise UsageError(f"{path}: unknown key {key!r}; the keys are: {known}")
            value = _checked(action, value, f"{path}: {key}")
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                if not value:
                    continue  # a switch left off
                value = action.const
            values[action.dest] = value
        return values


def _checked(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` if it has the type the flag takes (a UsageError naming it otherwise)."""
    if isinstance(action, argparse._AppendAction):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where} must be a list of strings")
        return value
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        expected: tuple[type, ...] = (bool,)
    elif action.type is int:
        expected = (int,)
    elif action.type is float:
        expected = (int, float)
    else:
        expected = (str,)
    if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
        names = " or ".join("true/false" if t is bool else t.__name__ for t in expected)
        raise UsageError(f"{where} must be {names}, not {json.dumps(value)}")
    if action.choices is not None and value not in action.choices:
        raise UsageError(f"{where} must be one of {', '.join(map(str, action.choices))}")
    if callable(action.type) and action.type not in (int, float) and isinstance(value, str):
        return action.type(value)  # e.g. a Path
    return value


def layered(parser: argparse.ArgumentParser, *, skip: set[str] | None = None) -> Layered:
    """Make ``parser``'s flags layered (call once its flags are added)."""
    return Layered(parser, {"help", *(skip or set())})
