"""Package requirements as the environments accept them: a name, optional extras, an
optional version specifier (``scikit-learn``, ``pandas[excel]``, ``statsmodels==0.14.4``,
``numpy>=2,<3``). Nothing else: no URL, path, marker or installer option, so that a
requirement can never make the installer fetch from elsewhere or change how it runs.

>>> str(Requirement.parse("Scikit_Learn >= 1.5"))
'scikit-learn>=1.5'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Requirement", "normalize_name", "parse_requirements"]

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_CLAUSE = re.compile(r"^(===|==|!=|~=|<=|>=|<|>)([A-Za-z0-9.*+!_-]+)$")
_FORM = re.compile(r"^\s*([^\s\[\]<>=!~,;@]+)\s*(?:\[([^\]]*)\])?\s*(.*?)\s*$")
#: Longest requirement accepted (a name is at most a few dozen characters).
MAX_LENGTH = 200


def normalize_name(name: str) -> str:
    """The name as the package index compares it (PEP 503): ``Scikit_Learn`` ->
    ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, order=True)
class Requirement:
    """One package asked for. ``name`` is normalized; ``specifier`` is the version
    clauses without spaces (``""``: any version)."""

    name: str
    extras: tuple[str, ...] = ()
    specifier: str = ""

    @classmethod
    def parse(cls, text: str) -> Requirement:
        """Parse ``text``; ``ValueError`` saying what form is accepted."""
        if not isinstance(text, str):
            raise ValueError(f"a requirement is a str, not {type(text).__name__}")
        shown = text if len(text) <= 60 else text[:57] + "..."
        if len(text) > MAX_LENGTH or "\0" in text or "\n" in text:
            raise ValueError(f"{shown!r} is not a package requirement")
        match = _FORM.match(text)
        if match is None or text.lstrip().startswith("-"):
            raise ValueError(
                f"{shown!r} is not a package requirement: give a name with an optional "
                "version, such as 'statsmodels' or 'statsmodels==0.14.4' (no URLs, paths, "
                "markers or installer options)"
            )
        name, extras_text, spec_text = match.groups()
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a valid package name")
        extras: tuple[str, ...] = ()
        if extras_text is not None:
            parts = [e.strip() for e in extras_text.split(",") if e.strip()]
            bad = [e for e in parts if not _NAME.match(e)]
            if bad:
                raise ValueError(f"{shown!r}: {bad[0]!r} is not a valid extra name")
            extras = tuple(sorted({normalize_name(e) for e in parts}))
        clauses = []
        if spec_text:
            for clause in spec_text.split(","):
                clause = re.sub(r"\s+", "", clause)
                if not _CLAUSE.match(clause):
                    raise ValueError(
                        f"{shown!r}: {clause or spec_text!r} is not a version specifier "
                        "(use ==, !=, >=, <=, >, <, ~= followed by a version)"
                    )
                clauses.append(clause)
        return cls(normalize_name(name), extras, ",".join(clauses))

    def __str__(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.name}{extras}{self.specifier}"

    @property
    def pinned_version(self) -> str | None:
        """The version when the specifier is a single exact ``==`` (no wildcard)."""
        match = _CLAUSE.match(self.specifier) if "," not in self.specifier else None
        if match and match.group(1) in ("==", "===") and "*" not in match.group(2):
            return match.group(2)
        return None


def parse_requirements(items: Iterable[str] | str) -> tuple[Requirement, ...]:
    """Parse, merge and sort ``items``; the same package twice with two different
    specifiers is refused (``ValueError``)."""
    if isinstance(items, str):
        raise ValueError("give a list of package names, not a single string")
    found: dict[str, Requirement] = {}
    for item in items:
        req = Requirement.parse(item)
        other = found.get(req.name)
        if other is not None and other.specifier != req.specifier:
            raise ValueError(f"{req.name} is asked for twice: {other} and {req}; keep one")
        if other is not None:
            req = Requirement(req.name, tuple(sorted({*other.extras, *req.extras})), req.specifier)
        found[req.name] = req
    return tuple(sorted(found.values()))
