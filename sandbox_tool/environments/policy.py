"""The install policy: which packages may be installed on request, at which versions.

An allow-list by default (:data:`~sandbox_tool.environments.catalog.CATALOG`), entries
optionally pinned (``"scikit-learn==1.5.2"``: a request for ``scikit-learn`` gets that
version, any other version is refused); a deny-list that wins over everything
(:data:`~sandbox_tool.environments.catalog.KNOWN_MALICIOUS` always); wheels only unless
``source_builds`` (building a source distribution runs its build code on the host).

The policy judges what is asked for, not the dependencies that come with it. It is a
security setting: what it lets in is code that runs on the host when it is imported by
the warm template (as the default stack is), never only inside the sandbox.

>>> InstallPolicy.default().check("sklearn").name     # asked by its import name
'scikit-learn'
>>> str(InstallPolicy.default().allowing("scipy==1.14.1").check("scipy"))
'scipy==1.14.1'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox_tool.environments.catalog import CATALOG, KNOWN_MALICIOUS, import_to_package
from sandbox_tool.environments.requirements import Requirement, normalize_name
from sandbox_tool.errors import PackageNotAllowed

__all__ = ["InstallPolicy"]


def _pins(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        req = Requirement.parse(item)
        out[req.name] = req.specifier
    return out


class InstallPolicy(BaseModel):
    """Which packages may be installed on request (by a developer's options, the CLI or
    a model through the install tool)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: dict[str, str] = Field(default_factory=lambda: dict.fromkeys(CATALOG, ""))
    """Allowed package names (normalized) and their pinned specifier (``""``: any)."""
    allow_any: bool = False
    """Allow every package not denied (pins in ``allow`` still apply)."""
    deny: dict[str, str] = Field(default_factory=dict)
    """Refused package names and why; :data:`KNOWN_MALICIOUS` are always refused too."""
    source_builds: bool = False
    """Let the installer build source distributions (their build code runs on the host).
    Off: only wheels are installed."""

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _normalize(cls, value: Any) -> dict[str, str]:
        if isinstance(value, str):
            raise ValueError("give a mapping or a list of package names, not a single string")
        if isinstance(value, Mapping):
            return {normalize_name(str(k)): str(v) for k, v in value.items()}
        return _pins(value)

    @classmethod
    def default(cls) -> InstallPolicy:
        """The catalog's packages, any version, wheels only."""
        return cls()

    @classmethod
    def only(cls, requirements: Iterable[str]) -> InstallPolicy:
        """Only ``requirements`` (``"openpyxl"``, ``"statsmodels==0.14.4"`` to pin)."""
        return cls(allow=_pins(requirements))

    @classmethod
    def any_package(cls) -> InstallPolicy:
        """Every package on the index except the denied ones. The model then chooses code
        that the warm template imports on the host: use it only for trusted callers."""
        return cls(allow={}, allow_any=True)

    def allowing(self, *requirements: str) -> InstallPolicy:
        """A copy that also allows ``requirements`` (pinned when they carry a version)."""
        extra = _pins(requirements)
        deny = {k: v for k, v in self.deny.items() if k not in extra}
        return self.model_copy(update={"allow": {**self.allow, **extra}, "deny": deny})

    def denying(self, name: str, reason: str = "refused by the install policy") -> InstallPolicy:
        """A copy that refuses ``name``."""
        key = normalize_name(name)
        allow = {k: v for k, v in self.allow.items() if k != key}
        return self.model_copy(update={"allow": allow, "deny": {**self.deny, key: reason}})

    def denied_reason(self, name: str) -> str | None:
        key = normalize_name(name)
        return self.deny.get(key) or KNOWN_MALICIOUS.get(key)

    def check(self, requirement: str | Requirement) -> Requirement:
        """The requirement to install for ``requirement`` (its pin applied; a catalog
        package asked by its import name is mapped to it), or ``PackageNotAllowed``
        naming the package and what may be asked instead."""
        req = requirement if isinstance(requirement, Requirement) else Requirement.parse(
            requirement
        )  # fmt: skip
        if req.name not in self.allow and not self.allow_any:
            mapped = import_to_package(req.name)
            if mapped is not None and mapped in self.allow:
                req = Requirement(mapped, req.extras, req.specifier)
        why = self.denied_reason(req.name)
        if why is not None:
            raise PackageNotAllowed(
                f"{req.name} may not be installed: {why}. Do without it, or ask for "
                "another package",
                package=req.name,
            )
        if req.name not in self.allow and not self.allow_any:
            raise PackageNotAllowed(
                f"{req.name} is not on the list of packages that may be installed here"
                f"{self._suggest(req.name)}. Use an installed library or one of the list, or "
                "ask the developer to allow it (InstallPolicy.allowing)",
                package=req.name,
            )
        pin = self.allow.get(req.name, "")
        if pin and req.specifier and req.specifier != pin:
            raise PackageNotAllowed(
                f"{req} is not allowed: the install policy pins {req.name}{pin}; ask for "
                f"{req.name} without a version",
                package=req.name,
            )
        return Requirement(req.name, req.extras, pin or req.specifier)

    def _suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.allow), n=3, cutoff=0.75)
        return f" (did you mean {' or '.join(close)}?)" if close else ""

    def allowed(self) -> list[str]:
        """The allowed packages, pinned ones with their version, sorted."""
        return [f"{name}{pin}" for name, pin in sorted(self.allow.items())]

    def describe(self, limit: int = 60) -> str:
        """One sentence for humans and models: what may be installed."""
        if self.allow_any:
            text = "any package from the package index"
            denied = sorted(self.deny)
            if denied:
                text += " except " + ", ".join(denied)
            return text
        shown = []
        for name in self.allowed()[:limit]:
            entry = CATALOG.get(Requirement.parse(name).name)
            imported = entry.imports[0] if entry else None
            differs = imported is not None and imported != Requirement.parse(name).name
            shown.append(f"{name} (import {imported})" if differs else name)
        if len(self.allow) > limit:
            shown.append(f"and {len(self.allow) - limit} more")
        return ", ".join(shown) if shown else "nothing"
