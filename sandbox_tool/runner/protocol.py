"""The messages between the host and the runner, and names both sides share (stdlib only).

Every message is JSON; its shape is declared here once, as ``TypedDict`` classes (the
runner supports Python 3.10, so optional keys live in ``total=False`` bases whose names
end in ``Optional``). Where each one travels:

- :class:`RunnerSetup`: how to build the runner's sandbox, known before the code is. A
  runner started cold reads it as the first frame of its channel; the warm template
  gets it in a fork message (:class:`ForkMessage`).
- :class:`ExecutionRequest`: what to run and under which limits. A warm runner gets it
  as the first frame of its channel, without ``code`` (each :class:`Cell` brings its
  own), with ``"one_shot": true`` for a single execution. It answers with a
  :class:`ReadyFrame` (or a :class:`RunnerErrorFrame`), then each :class:`Cell` with an
  :class:`AnswerFrame`.
- :class:`WorkerReport`: what the code produced, a union tagged by ``status``, sent in
  an :class:`AnswerFrame` with the artifacts and the usage; a one-shot whose code broke
  its channel writes it to ``<meta>/worker.json`` (:data:`WORKER_REPORT`) instead.
- :class:`SupervisorReport`: how the process ended, from the supervisor, on the control
  pipe (the bootstrap's second argument), which the worker never holds.

Frames are length-prefixed (:mod:`.framing`). An answer's artifacts follow it as raw
frames (a length, then the bytes, no JSON), one per :class:`ArtifactItem`.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

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
    "from runner.roles.supervisor import main; main(int(sys.argv[2]), *sys.argv[3:])"
)


# ------------------------------------------------------------------ the runner's setup


class Paths(TypedDict):
    """The execution's directories on the host (and at the same paths in a sandbox)."""

    work: str
    """The code's working directory: its input files, and the files it writes."""
    tmp: str
    """Its temporary directory (also at ``/tmp`` in a sandbox)."""
    meta: str
    """The runner's own directory: the worker's report, the figures, matplotlib's config."""


class IsolationSetupOptional(TypedDict, total=False):
    """Keys of :class:`IsolationSetup` no engine sends today, honoured when present."""

    extra_ro: list[str]
    """More paths bound read-only into the sandbox (other import roots)."""
    copy_out_max_files: int
    """At most this many files are copied back out of the scratch dirs."""


class IsolationSetup(IsolationSetupOptional):
    """How to sandbox the worker (the process engine's namespaces, landlock, seccomp)."""

    network: bool
    """Keep the host's network (False: a private network namespace with only ``lo``)."""
    nproc: int
    """The sandbox's cap on its tasks (processes and threads)."""
    skip_layers: list[str]
    """Layers left out, a degraded mode the caller accepted (``"landlock"``, ``"seccomp"``)."""
    scratch_mb: int
    """The size of the tmpfs that holds the writable dirs."""
    ro_files: list[str]
    """Files in ``work`` bound read-only instead of copied in (not counted in scratch_mb)."""
    copy_out_max_bytes: int
    """At most this many bytes are copied back from the scratch dirs when the sandbox ends."""


class Confinement(TypedDict, total=False):
    """What a worker without a sandbox of its own applies to itself before it waits for
    code (:mod:`.layers.confine`): the native engine's filter, a gVisor runner's root,
    uid and filter."""

    mode: str
    """How the engine calls this confinement in results (``"native"``, ``"gvisor"``)."""
    chroot: str
    """A root prepared for this runner (by the gVisor template)."""
    uid: int
    """Change from root to this uid and gid, with every capability dropped."""
    nproc: int
    """``RLIMIT_NPROC`` set once the uid changed (a uid of the runner's own: only its tasks
    count)."""
    process_cap: int
    """The cap on the runner's tasks that ``nproc`` gives (reported as is)."""
    umask: int
    seccomp: dict[str, Any]
    """A spec for :func:`.layers.seccomp.apply` (sets ``no_new_privs`` first)."""
    namespaces: dict[str, bool]
    """The namespaces the runner entered before the worker was forked (reported as is)."""
    private_root: bool
    """The runner's supervisor put the worker in a root of its own (reported as is)."""


class RunnerSetupOptional(TypedDict, total=False):
    isolation: IsolationSetup | None
    """Absent or None: no sandbox (the native engine); the worker is a plain child."""
    confine: Confinement | None
    """Absent or None: the worker applies nothing to itself beyond its rlimits."""


class RunnerSetup(RunnerSetupOptional):
    """How to build a runner, known before the code is."""

    paths: Paths
    env: dict[str, str]
    """The code's environment (a pre-forked worker applies the usual one while it waits)."""


# --------------------------------------------------------------- the execution request


class Limits(TypedDict):
    """Resource limits of one execution; None: not limited."""

    memory_bytes: int | None
    """``RLIMIT_AS``: virtual memory."""
    cpu_seconds: int | None
    """``RLIMIT_CPU`` (soft; the hard limit is a second later). None in a session's first
    request: each :class:`Cell` names its own."""
    file_bytes: int | None
    """``RLIMIT_FSIZE``: the largest file the code may write."""
    open_files: int | None
    """``RLIMIT_NOFILE``."""
    processes: int | None
    """``RLIMIT_NPROC`` on top of the uid's current count (None in a sandbox, whose own
    cap is :attr:`IsolationSetup.nproc`)."""
    pending_signals: int | None
    """``RLIMIT_SIGPENDING``: queued signals are counted per user up the user namespaces,
    so to the host's user too; a sandbox that queued its fill would take the host's."""


class ImportPolicySpec(TypedDict):
    """The import policy (a good error message, not the security boundary)."""

    unlisted: Literal["allow", "deny"]
    """What happens to a module in neither list."""
    allow: list[str]
    deny: list[str]


class BuiltinsPolicySpec(TypedDict):
    """The builtins the code is refused (policy, not the security boundary)."""

    deny: list[str]
    """Names of builtins that raise when called."""
    restrict_open: bool
    """``open`` reaches only the work and tmp dirs."""


class ExecutionRequestOptional(TypedDict, total=False):
    code: str
    """The code to run; absent in a framed runner's request, whose cells bring it."""
    one_shot: bool
    """A framed runner runs one cell, answers and exits (a warm one-shot execution)."""
    scope: Literal["batch"]
    """A batch scope: each cell runs in a fresh process forked by the runner, which
    never runs code itself (:mod:`runner.roles.scoped`)."""


class ExecutionRequest(ExecutionRequestOptional):
    """What to run and under which limits."""

    inputs: Any
    """The value of ``inputs`` in the code's namespace (any JSON)."""
    env: dict[str, str]
    """The code's environment."""
    max_result_bytes: int
    """The largest result (as JSON) the report carries; larger ones come back as a repr."""
    limits: Limits
    import_policy: ImportPolicySpec
    builtins_policy: BuiltinsPolicySpec


class RunnerRequest(RunnerSetup, ExecutionRequest, total=False):
    """The setup and the request, merged: what the worker starts the code's namespace
    from."""

    framed: bool
    """Set by the runner itself (always true: every runner answers on its channel)."""


class CellOptional(TypedDict, total=False):
    cpu_seconds: int | None
    """A session cell's CPU budget: the soft ``RLIMIT_CPU`` moves forward by this much."""
    inputs: Any
    """A new value for ``inputs`` (a session cell that passes one)."""


class Cell(CellOptional):
    """One piece of code for a framed runner."""

    code: str
    marker: str
    """Written to the cell's stdout and stderr once it has run, so that the host can cut
    the streams per cell (the code cannot guess it)."""
    max_artifact_bytes: int
    """At most this many bytes of figures and files come back in the answer."""


# ------------------------------------------------------------------- the runner's frames


class IsolationSummary(TypedDict):
    """The layers a sandboxed worker runs under, reported before any user code ran (the
    sandbox's full report without mount lists and timings; None: not in that report)."""

    mode: str | None
    """``"root"`` or ``"userns"``: how the namespaces were made."""
    namespaces: dict[str, bool] | None
    """Which namespaces are private (user, pid, mount, ipc, uts, cgroup, net)."""
    uid: int | None
    """The worker's uid inside the sandbox."""
    host_uid: int | None
    """The uid it runs as on the host."""
    private_root: bool
    """The root file system is a private tmpfs with only the plan's paths."""
    capabilities_dropped: bool | None
    no_new_privs: bool | None
    process_cap: int | None
    """The sandbox's task cap, or None."""
    landlock: dict[str, Any]
    """``applied``, ``abi``, ``scoped`` and ``net`` (the network rights it handles)."""
    seccomp: dict[str, Any]
    """``applied``, ``arch`` and ``socket_families``."""
    disk_mb: int | None
    """The scratch tmpfs's size, or None without one."""
    setup_ms: float | None
    """How long building the sandbox took."""


class ReadyFrame(TypedDict):
    """A framed runner's answer to its :class:`ExecutionRequest`: ready for cells."""

    status: Literal["ready"]
    isolation: IsolationSummary | None
    """None without a sandbox."""
    usage: Usage
    """What the worker had used when it became ready (a session's CPU budgets start from
    it)."""


class RunnerErrorFrame(TypedDict):
    """The runner could not run the code (no user code ran, or its report was lost); a
    frame on the channel, or a cold run's report file."""

    status: Literal["runner_error"]
    message: str


class ReportOptional(TypedDict, total=False):
    figure_error: str
    """The figures could not be captured (or, in an answer, the artifacts were lost)."""


class ResultFields(TypedDict):
    """The code's value, as :func:`.convert.convert_result` makes it."""

    result: Any
    """The value as JSON, or its repr when it is too large or not JSON-able."""
    result_repr: str
    result_type: str
    """The qualified name of its type."""
    result_truncated: bool


class OkReport(ResultFields, ReportOptional):
    """The code ran to its end (or called ``sys.exit(0)``)."""

    status: Literal["ok"]


class ErrorReportOptional(ReportOptional, total=False):
    offset: int | None
    """A syntax error's column."""
    module: str
    """An import the policy refused (kind ``import``)."""
    name: str
    """A builtin the policy refused (kind ``builtin``)."""


class ErrorReport(ErrorReportOptional):
    """The code raised (or exited with a non-zero status)."""

    status: Literal["error"]
    kind: str
    """One of the ``KIND_*`` names above."""
    exception: str
    """The exception's class name."""
    message: str
    traceback: str
    """Trimmed to the code's own frames."""
    lineno: int | None
    """The line of the code where it was raised."""
    line: str | None
    """That line's text."""


WorkerReport = OkReport | ErrorReport
"""What the code produced, tagged by ``status``."""


class ArtifactItem(TypedDict):
    """A figure or a file in an :class:`AnswerFrame`."""

    name: str
    """A figure's file name, or a file's path relative to the work dir."""
    kind: Literal["figure", "file"]
    size: int
    """Its length in bytes: its content follows the answer frame as a raw frame of this
    length (the artifacts' raw frames come in the order of the list)."""


class Usage(TypedDict):
    """CPU and memory a framed runner has used so far (with the children it reaped)."""

    cpu_seconds: float
    maxrss_kb: int


class AnswerFieldsOptional(TypedDict, total=False):
    artifacts_truncated: bool
    """Some figures or files did not fit ``max_artifact_bytes`` or the file count (absent
    when the artifacts were lost: see ``figure_error``)."""


class AnswerFields(AnswerFieldsOptional):
    """What an answer frame adds to the worker's report."""

    artifacts: list[ArtifactItem]
    """The cell's figures, then the files it created or changed."""
    usage: Usage


class OkAnswer(OkReport, AnswerFields):
    pass


class ErrorAnswer(ErrorReport, AnswerFields):
    pass


AnswerFrame = OkAnswer | ErrorAnswer
"""A framed runner's answer to one :class:`Cell`."""


# ----------------------------------------------------------------- the supervisor's report


class SupervisorReportOptional(TypedDict, total=False):
    subreaper: bool
    """The supervisor is the child subreaper (Linux): daemonised grandchildren were killed
    too. Absent when the sandbox could not be built."""
    isolation: IsolationSummary | None
    """The layers the worker ran under (sandboxed runners only)."""
    message: str
    """Why the sandbox could not be built (then ``exit_code`` is 71 and no code ran)."""


class SupervisorReport(SupervisorReportOptional):
    """How the worker ended, as its supervisor saw it."""

    exit_code: int | None
    """Its exit status, or None if a signal ended it."""
    signal: int | None
    """The signal that ended it (SIGXCPU, SIGKILL after a timeout, ...)."""
    maxrss_kb: int
    """Its peak resident memory."""
    cpu_seconds: float
    """The CPU time it and its reaped children used."""


class ItemEnded(SupervisorReport):
    """A batch scope's answer for a cell whose process ended without a valid answer."""

    status: Literal["ended"]


# ----------------------------------------------------------------------- the warm template


class TemplateConfig(TypedDict, total=False):
    """The host's first message to the warm template."""

    preload: list[str]
    """Modules imported once, before any runner is forked."""


class TemplateReady(TypedDict):
    """The template's answer once it has imported its modules."""

    ready: Literal[True]
    failed: dict[str, str]
    """Modules that failed to import, with the reason."""
    threads: int
    """Threads the template runs (1, or runners could not unshare their namespaces)."""
    huge_page_regions: int
    """Heap regions backed by huge pages."""
    python: str
    ready_ms: float


class ForkMessage(TypedDict):
    """Asks the template for a runner; comes with four fds (the runner's channel, stdout,
    stderr and control pipe)."""

    setup: RunnerSetup


class ForkAnswer(TypedDict, total=False):
    """The template's answer to a :class:`ForkMessage`: ``pid`` or ``error``."""

    pid: int
    """The new runner's supervisor."""
    error: str
    """Why no runner was forked."""
