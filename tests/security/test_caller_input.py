"""What the caller hands in (issue 14, items 10-12): environment variables that the
dynamic loader or the interpreter read when the runner starts, and host files.

On a cold run the runner is started on the host, as the caller (root, here), before its
sandbox exists: a library in ``LD_PRELOAD`` would run there with the caller's rights.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import ExecutionOptions, UsageError

from .harness import Side

PRELOAD_SOURCE = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
    const char *path = getenv("SBX_PRELOAD_MARK");
    if (path) { int fd = open(path, O_WRONLY | O_CREAT, 0644); if (fd >= 0) close(fd); }
}
"""


@pytest.fixture
def preload_library(tmp_path: Path) -> Path:
    """A shared library whose constructor creates the file named by SBX_PRELOAD_MARK."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler here to build the LD_PRELOAD library")
    source = tmp_path / "planted.c"
    source.write_text(PRELOAD_SOURCE)
    library = tmp_path / "planted.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def test_ld_preload_is_refused_before_anything_starts(
    side: Side, preload_library: Path, tmp_path: Path
) -> None:
    mark = tmp_path / "loaded-on-the-host"
    env = {"LD_PRELOAD": str(preload_library), "SBX_PRELOAD_MARK": str(mark)}
    if side.is_baseline:
        # the library is real: any process started with it loads it
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        assert mark.exists()
        mark.unlink()
    with pytest.raises(UsageError, match="LD_PRELOAD"):
        side.sandbox.execute_sync("result = 1", None, {"env_vars": env, "timeout": 20})
    assert not mark.exists(), "the LD_PRELOAD library was loaded"
    # nothing was lost: the next execution works
    assert side.sandbox.execute_sync("result = 1", None, ExecutionOptions()).result == 1


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_session_refuses_oversized_cells_and_keeps_its_state(side: Side) -> None:
    """The audit's inputs nested 100,000 deep leaked RecursionError; 50 MB code got the
    misleading exit-70 error. Both are refused by the session as by execute()."""

    async def run() -> None:
        async with side.sandbox.session(ExecutionOptions(timeout=20)) as session:
            await session.execute("x = 41")
            with pytest.raises(UsageError, match="nested"):
                await session.execute("y = 1", _nested(100_000))
            with pytest.raises(UsageError, match="max_code_bytes"):
                await session.execute("#" * (50 << 20))
            assert (await session.execute("x + 1")).result == 42

    asyncio.run(run())


def test_files_refuse_the_hosts_proc_by_default(side: Side, host_secret: str) -> None:
    """The audit exposed /proc/self/environ (the caller's environment, its secrets) as a
    file. A caller may still choose to, with allow_special_files."""
    options = {"files": {"env.txt": Path("/proc/self/environ")}, "timeout": 20}
    code = "result = open('env.txt', 'rb').read().decode(errors='replace')"
    with pytest.raises(UsageError, match="allow_special_files") as info:
        side.sandbox.execute_sync(code, None, options)
    assert host_secret not in str(info.value)
    chosen = side.sandbox.execute_sync(code, None, {**options, "allow_special_files": True})
    # the caller's explicit choice, as documented: the copy is made by this process
    assert chosen.result == Path("/proc/self/environ").read_bytes().decode(errors="replace")
