"""The sizes the host accepts from a runner, derived from :class:`ExecutionOptions` in
one place: what a legitimate answer can weigh, so anything larger is refused unread.

>>> b = Budgets.of(ExecutionOptions(max_output_bytes=1 << 20, max_artifact_bytes=0))
>>> b.answer_frame_bytes < 4 << 20
True
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox_tool.options import ExecutionOptions

__all__ = ["Budgets"]

#: A result's repr is cut to this many characters by the runner (``runner.convert``);
#: JSON may escape each into at most six bytes.
_REPR_BYTES = 6 * 10_000
#: Traceback, error message, usage, names and the answer's keys.
_ANSWER_OVERHEAD = 1 << 20
#: Per artifact: its name, kind and the JSON around them.
_ARTIFACT_OVERHEAD = 1 << 10
#: The runner's own files in a copy-out beside the code's: its report and figures' names.
_COPY_OUT_OVERHEAD = 64 << 20


@dataclass(frozen=True)
class Budgets:
    """Byte budgets for one execution."""

    output_bytes: int
    """stdout and stderr together (``max_output_bytes``)."""
    result_bytes: int
    """The result as JSON; a larger one comes back as a shortened repr."""
    artifact_bytes: int
    """All artifacts of one execution together (``max_artifact_bytes``)."""
    answer_frame_bytes: int
    """The largest answer frame: the result (JSON and repr), an error's traceback and
    every artifact in base64."""
    answer_text_bytes: int
    """The largest answer frame less its artifacts' base64: a result, repr and error."""
    report_file_bytes: int
    """The largest worker report file (a run that could not answer on its channel)."""
    copy_out_bytes: int
    """What the process engine's sandbox copies out of its size-capped tmpfs at the end."""

    @classmethod
    def of(cls, options: ExecutionOptions) -> Budgets:
        from sandbox_tool.runner.protocol import MAX_ARTIFACT_FILES

        # the result's JSON, and an error's message and traceback, each up to the output
        # limit (plus JSON escaping), and the repr
        text = 4 * options.max_output_bytes + _REPR_BYTES + _ANSWER_OVERHEAD
        base64_bytes = 4 * ((options.max_artifact_bytes + 2) // 3)
        return cls(
            output_bytes=options.max_output_bytes,
            result_bytes=options.max_output_bytes,
            artifact_bytes=options.max_artifact_bytes,
            answer_frame_bytes=text + base64_bytes + MAX_ARTIFACT_FILES * _ARTIFACT_OVERHEAD,
            answer_text_bytes=text,
            report_file_bytes=text,
            copy_out_bytes=cls.copy_out_for(options.max_artifact_bytes),
        )

    @staticmethod
    def copy_out_for(max_artifact_bytes: int) -> int:
        """:attr:`copy_out_bytes` for ``max_artifact_bytes`` (a runner built ahead of time
        knows only its settings key, not the options)."""
        return max_artifact_bytes + _COPY_OUT_OVERHEAD
