"""Fixtures for the isolation primitives' tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

import os
import sys

import pytest

# OpenBLAS must not start threads in a process that forks into namespaces (FIELD_NOTES 1-2).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

if not sys.platform.startswith("linux"):
    collect_ignore_glob = ["test_*.py"]  # the isolation primitives are Linux-only


@pytest.fixture
def exec_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An execution's work, tmp and meta dirs, reachable by a sandbox uid."""
    base = tmp_path_factory.mktemp("exec")
    paths = {}
    for name in ("work", "tmp", "meta"):
        path = base / name
        path.mkdir()
        paths[name] = str(path)
    return paths
