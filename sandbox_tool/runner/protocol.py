"""Names shared by the host and the runner (stdlib only; the host imports it too).

Request (host -> supervisor, JSON on stdin)::

    {"code": str, "inputs": any, "max_result_bytes": int,
     "limits": {"memory_bytes": int | null, "cpu_seconds": int | null,
                "file_bytes": int | null, "open_files": int | null,
                "processes": int | null},
     "import_policy": {"unlisted": "allow" | "deny", "allow": [str], "deny": [str]},
     "builtins_policy": {"deny": [str], "restrict_open": bool},
     "paths": {"work": str, "tmp": str, "meta": str}}

Supervisor report (supervisor -> host, JSON on the control pipe, whose fd
number is the bootstrap's second argument)::

    {"exit_code": int | null, "signal": int | null, "maxrss_kb": int,
     "cpu_seconds": float, "subreaper": bool}

Worker report (file ``<meta>/worker.json``): see :func:`runner.worker.report_ok`
and :func:`runner.worker.report_error`.
"""

WORKER_REPORT = "worker.json"
FIGURES_DIR = "figures"
MPLCONFIG_DIR = "mplconfig"
USER_FILENAME = "<code>"

# kinds of worker error reports
KIND_EXCEPTION = "exception"
KIND_SYNTAX = "syntax"
KIND_IMPORT = "import"
KIND_BUILTIN = "builtin"
KIND_MEMORY = "memory"
KIND_EXIT = "exit"

BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.supervisor import main; main(int(sys.argv[2]))"
)
