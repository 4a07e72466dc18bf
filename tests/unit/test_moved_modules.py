"""Modules moved by the engines' restructuring still import, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {
    "pool": ("runners.pool", "WarmPool"),
    "workspace": ("runners.workspace", "Workspace"),
    "seatbelt": ("isolation.seatbelt", "seatbelt_profile"),
    "gate": ("runners.gate", "Gate"),
    "proctree": ("runners.proctree", "kill_tree"),
    "fontcache": ("runners.fontcache", "warm"),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_warns_and_gives_the_same_objects(old: str) -> None:
    new, name = MOVED[old]
    sys.modules.pop(f"sandbox_tool.engines.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"moved to sandbox_tool.engines.{new}"):
        legacy = importlib.import_module(f"sandbox_tool.engines.{old}")
    current = importlib.import_module(f"sandbox_tool.engines.{new}")
    assert getattr(legacy, name) is getattr(current, name)
