"""The two sides are what they claim to be: otherwise every other test proves nothing."""

from __future__ import annotations

from sandbox_tool import ExecutionOptions

from .harness import ALLOW_ALL, Side


def test_engine_and_degradation(side: Side) -> None:
    res = side.sandbox.execute_sync("result = 1", None, ExecutionOptions(**ALLOW_ALL))
    assert res.result == 1
    assert res.engine == side.engine_name
    if side.is_baseline:
        # the native engine says it is no boundary: the network stays on, for one
        assert any(note.startswith("network") for note in res.degraded), res.degraded
        return
    # a sandbox that silently dropped a layer would make every escape test meaningless
    # the one note allowed: what bounds memory_mb without a cgroup (an honest weakness)
    layers = [note for note in res.degraded if not note.startswith("memory_mb: no cgroup")]
    assert layers == [], f"the sandbox runs degraded: {layers}"
