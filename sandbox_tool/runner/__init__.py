"""The in-sandbox runner: the only code of ours that runs inside a sandbox.

Standard library only, so it runs on any interpreter (3.10+) without
sandbox_tool installed there. Engines start it as::

    python -I -B -c BOOTSTRAP <dir holding this package> <control fd> framed

with its channel on stdin (:mod:`.roles.cells`: the runner's setup, then the
request and the cells as frames), the pipes for the code's stdout and stderr on
fds 1 and 2, and the host's control pipe on the given fd. A warm template
(:mod:`.roles.template`) forks the same runner with its request still to come on
such a channel.

The modules, by what they hold (none imports one that imports it back)::

    protocol.py   the messages, as TypedDicts, and the names both sides share
    framing.py    length-prefixed frames over a fd, write_all
    syscalls.py   libc (loaded once), prctl and its PR_* options, errno-checked calls
    roles/        the processes: supervisor, worker, template, and cells (the
                  worker's framed channel: one-shots and sessions)
    layers/       the sandbox (Linux): plan, namespaces (the three processes), rootfs,
                  privileges, limits, landlock, seccomp, scratch and copyout, probe
    convert.py guards.py mplbackend.py   what the code meets: results, policies, figures

Two parts, so that nothing the code does can lose or forge the outcome:

- the **supervisor** (:mod:`.roles.supervisor`) reads the request, starts the worker
  (forks it, or starts the sandbox whose innermost process becomes the worker:
  :mod:`.layers.namespaces`), waits for it, kills whatever it left behind (it is the
  child subreaper on Linux, so daemonised grandchildren come back to it), and
  writes its report, exit status, signal, peak memory and CPU time, on the
  control pipe, which the worker never holds;
- the **worker** (:mod:`.roles.worker`) applies the limits and policies, runs the
  code, converts the result, saves the figures and reports: to a file in the
  execution's private directory (a cold run), or as a frame on its channel
  with the artifacts (a warm run or a session).

The host trusts the supervisor's report for what happened to the process
(killed by CPU limit, memory, a signal) and reads the worker's report for what
the code produced. Code that forges the worker's report only lies about its
own result.
"""
