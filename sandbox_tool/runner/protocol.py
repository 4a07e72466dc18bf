"""Names and small helpers shared by the host and the runner (stdlib only).

The runner's request has two parts. The **setup** says how to build the
runner's sandbox and is known before the code is::

    {"paths": {"work": str, "tmp": str, "meta": str},
     "isolation": null | {"network": bool, "nproc": int, "skip_layers": [str],
                          "scratch_mb": int, "ro_files": [str], "copy_out_max_bytes": int}}

The **execution** part says what to run and under which limits::

    {"code": str, "inputs": any, "env": {str: str}, "max_result_bytes": int,
     "limits": {"memory_bytes": int | null, "cpu_seconds": int | null,
                "file_bytes": int | null, "open_files": int | null,
                "processes": int | null},
     "import_policy": {"unlisted": "allow" | "deny", "allow": [str], "deny": [str]},
     "builtins_policy": {"deny": [str], "restrict_open": bool}}

A cold runner reads both, merged, on stdin, and writes its worker report to a
file. A warm runner gets the setup when it is forked; the execution part, with
``"one_shot": true`` for a single execution, comes later as the first
length-prefixed frame on its channel, and the worker answers there, with the
same report plus the artifacts, in frames (see :mod:`.session`).

Supervisor report (supervisor -> host, JSON on the control pipe, whose fd
number is the bootstrap's second argument)::

    {"exit_code": int | null, "signal": int | null, "maxrss_kb": int,
     "cpu_seconds": float, "subreaper": bool, "isolation": null | {...layers...}}

Worker report (a cold run's file ``<meta>/worker.json``, a warm run's answer
frame): ``{"status": "ok", "result", "result_repr", "result_type",
"result_truncated"}`` or ``{"status": "error", "kind": KIND_*, "exception",
"message", "traceback", "lineno", "line", ...}`` (see :mod:`.worker`).
"""

import os
import stat

WORKER_REPORT = "worker.json"
FIGURES_DIR = "figures"
MPLCONFIG_DIR = "mplconfig"
USER_FILENAME = "<code>"
MAX_ARTIFACT_FILES = 100
"""At most this many artifacts (figures first, then files) come back from one execution."""

# kinds of worker error reports
KIND_EXCEPTION = "exception"
KIND_SYNTAX = "syntax"
KIND_IMPORT = "import"
KIND_BUILTIN = "builtin"
KIND_MEMORY = "memory"
KIND_EXIT = "exit"

BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.supervisor import main; main(int(sys.argv[2]), *sys.argv[3:])"
)


def read_regular(path: str, limit: int) -> bytes | None:
    """A regular file's content, never through a symlink (the code controls the files);
    None if it is not one or holds more than ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else None
    finally:
        os.close(fd)
