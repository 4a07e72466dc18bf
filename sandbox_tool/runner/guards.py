"""The import and builtins policies, as applied inside the sandbox.

Policy, not a boundary: they judge what the user's own code asks for (frames
compiled from ``<code>``) and leave libraries alone. The operating system
around the interpreter is what contains the code.
"""

from __future__ import annotations

import builtins
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from .protocol import USER_FILENAME


class ImportNotAllowedError(ModuleNotFoundError):
    """Raised in the user's code for a refused import (a ModuleNotFoundError, so
    ``try: import x / except ImportError:`` fallbacks keep working)."""

    def __init__(self, module: str) -> None:
        super().__init__(
            f"import of '{module}' is not allowed by the sandbox's import policy", name=module
        )
        self.module = module


class BuiltinNotAllowedError(PermissionError):
    """Raised in the user's code for a refused builtin."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.builtin = name


def module_allowed(
    module: str, allow: frozenset[str], deny: frozenset[str], unlisted_allowed: bool
) -> bool:
    """The import policy's rule, shared with the host: the most specific name that
    matches ``module`` or one of its parents decides; deny wins a tie."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in deny:
            return False
        if prefix in allow:
            return True
    return unlisted_allowed


class ImportRules:
    """The host's ``ImportPolicy`` (same semantics: most specific rule wins)."""

    def __init__(self, unlisted: str, allow: list[str], deny: list[str]) -> None:
        self.unlisted_allowed = unlisted == "allow"
        self.allow = frozenset(allow)
        self.deny = frozenset(deny)

    def allows(self, module: str) -> bool:
        return module_allowed(module, self.allow, self.deny, self.unlisted_allowed)

    def check(self, name: str, fromlist: Any) -> None:
        """Raise ImportNotAllowedError unless ``import name`` (``from name import x``) may run."""
        if self.allows(name):
            # ``from pkg import sub`` where only ``pkg.sub`` is denied
            for item in fromlist or ():
                if isinstance(item, str) and item != "*" and not self.allows(f"{name}.{item}"):
                    raise ImportNotAllowedError(f"{name}.{item}")
            return
        # ``from os import path`` when only ``os.path`` is allowed
        items = [i for i in (fromlist or ()) if isinstance(i, str) and i != "*"]
        if items and all(self.allows(f"{name}.{item}") for item in items):
            return
        raise ImportNotAllowedError(name)


def _from_user_code(depth: int) -> bool:
    try:
        return sys._getframe(depth + 1).f_code.co_filename == USER_FILENAME
    except ValueError:
        return False


def install_import_guard(rules: ImportRules) -> None:
    """Judge imports made from the user's frames; pass the others through."""
    if not rules.deny and rules.unlisted_allowed:
        return
    real_import = builtins.__import__
    real_import_module = importlib.import_module
    real_importlib_import = importlib.__import__

    def guarded_import(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and _from_user_code(1):
            rules.check(name, fromlist)
        return real_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name: str, package: str | None = None) -> Any:
        if not name.startswith(".") and _from_user_code(1):
            rules.check(name, ())
        return real_import_module(name, package)

    def guarded_importlib_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if _from_user_code(1):
            rules.check(name, args[2] if len(args) > 2 else kwargs.get("fromlist", ()))
        return real_importlib_import(name, *args, **kwargs)

    builtins.__import__ = guarded_import
    importlib.import_module = guarded_import_module
    importlib.__import__ = guarded_importlib_import


def _refused(name: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise BuiltinNotAllowedError(
            name, f"{name}() is not allowed by the sandbox's builtins policy"
        )

    refused.__name__ = name
    return refused


_resolved: dict[tuple[str, ...], list[str]] = {}


def resolve_roots(roots: list[str]) -> list[str]:
    """The real paths of the directories ``open`` may use (resolved once per process: a
    pre-forked worker does it before its request arrives)."""
    key = tuple(roots)
    if key not in _resolved:
        _resolved[key] = [os.path.realpath(r) for r in roots]
    return _resolved[key]


def user_builtins(deny: list[str], restrict_open: bool, roots: list[str]) -> dict[str, Any]:
    """The ``__builtins__`` dict of the user's namespace (libraries keep the real one)."""
    namespace = dict(builtins.__dict__)
    for name in deny:
        if name in namespace:
            namespace[name] = _refused(name)
    if restrict_open:
        real_open = builtins.open
        real_roots = resolve_roots(roots)

        def open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(file, int):
                path = os.path.realpath(os.fspath(file))
                if not any(path == r or path.startswith(r + os.sep) for r in real_roots):
                    raise BuiltinNotAllowedError(
                        "open",
                        f"open() may only use files in the working directory ({roots[0]}) "
                        f"or the temp directory; {os.fspath(file)!r} is outside them",
                    )
            return real_open(file, *args, **kwargs)

        namespace["open"] = open
    return namespace
