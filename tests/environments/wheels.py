"""Wheels and sdists made by the tests themselves (stdlib only, no network): a tiny
package whose distribution name differs from its import name, as ``scikit-learn`` and
``sklearn`` do."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

__all__ = ["make_sdist", "make_wheel"]


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    directory: Path,
    dist: str = "tiny-dist",
    version: str = "1.0",
    module: str = "tinymod",
    source: str = "VALUE = 42\n",
    requires: tuple[str, ...] = (),
) -> Path:
    """A pure-Python wheel of ``dist`` providing the module ``module``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = dist.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{module}/__init__.py": source.encode(),
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        f"{info}/top_level.txt": f"{module}\n".encode(),
    }
    record = "\n".join(_record_line(p, d) for p, d in files.items()) + f"\n{info}/RECORD,,\n"
    path = directory / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, data in files.items():
            whl.writestr(name, data)
        whl.writestr(f"{info}/RECORD", record)
    return path


def make_sdist(directory: Path, dist: str = "source-only", version: str = "1.0") -> Path:
    """A source distribution (no wheel): installing it means running its build."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{dist.replace('-', '_')}-{version}"
    files = {
        f"{stem}/PKG-INFO": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{stem}/pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{dist}"\nversion = "{version}"\n',
        f"{stem}/source_only.py": "X = 1\n",
    }
    path = directory / f"{stem}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path
