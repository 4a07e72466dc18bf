"""Batches on a real local Ray cluster started here: a head (no CPU, so it runs no
actor) and two worker nodes, every process on this machine and bound to 127.0.0.1.
One cluster for the module; its start costs about ten seconds."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.batch import BatchItem, BatchResult
from sandbox_tool.engines.process import ProcessEngine

# Loopback only: without it Ray resolves 127.0.0.1 to the machine's address. No usage
# report either. Read when ray is imported, and inherited by every node's processes.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(LOOPBACK_ENV)
ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'sandbox-tool[ray]'")
# imported earlier by another test module, it read the environment before us
ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ProcessEngine.probe().available, reason="process engine unavailable"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    # Ray records the cluster's address in <tmp>/ray/ whatever temp_dir says, and fails
    # when that directory does not exist yet (a fresh machine, or /tmp cleared at boot)
    os.makedirs(os.path.join(tempfile.gettempdir(), "ray"), exist_ok=True)
    common = {"node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "temp_dir": temp, **common},
    )
    try:
        for _ in range(2):
            nodes.add_node(num_cpus=1, **common)
        ray.init(address=nodes.address, logging_level="ERROR", log_to_driver=False)
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def items(count: int, sleep: float) -> list[BatchItem]:
    code = f"import time, os\ntime.sleep({sleep})\nresult = inputs * 10"
    return [BatchItem(id=i, code=code, inputs=i) for i in range(count)]


def no_worker_left(seconds: float = 15.0) -> bool:
    """Whether every actor process has gone (ray.kill returns before it has)."""
    deadline = time.monotonic() + seconds
    while worker_pids():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def worker_pids() -> list[int]:
    """The actors' processes (Ray names them ``ray::SandboxWorker...``)."""
    import psutil

    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if "SandboxWorker" in (p.info["name"] or "") + " ".join(p.info["cmdline"] or [])
    ]


def test_a_batch_runs_on_every_node_and_streams_back(cluster: Any) -> None:
    from sandbox_tool.batch.ray_executor import RayExecutor

    executor = RayExecutor(None, chunk_size=3)
    raw: list[Any] = [*items(12, 0.05), "1/0", {"id": "bad", "code": "x", "nope": 1}]
    results = {r.id: r for r in executor.map_sync(raw, engine="process", concurrency=2)}
    assert set(results) == set(range(14))  # a malformed item is tagged with its position
    assert all(results[i].result is not None and results[i].result.result == i * 10
               for i in range(12))  # fmt: skip
    assert type(results[12].error).__name__ == "ExecutionError"
    assert type(results[13].error).__name__ == "UsageError"
    assert no_worker_left()  # the actors were stopped at the end


def test_a_worker_killed_mid_batch_loses_only_its_chunks_which_are_retried(cluster: Any) -> None:
    from sandbox_tool.batch.ray_executor import RayExecutor

    executor = RayExecutor(None, chunk_size=4)

    async def main() -> dict[Any, BatchResult]:
        got: dict[Any, BatchResult] = {}
        async with executor.map(items(40, 0.3), engine="process", concurrency=2) as results:
            async for res in results:
                got[res.id] = res
                if len(got) == 6:
                    victim = worker_pids()[0]
                    os.kill(victim, signal.SIGKILL)
        return got

    results = asyncio.run(main())
    assert sorted(results) == list(range(40))
    assert all(r.result is not None and r.result.result == r.id * 10 for r in results.values())
    assert no_worker_left()


def test_the_cli_runs_a_batch_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"id": {i}, "code": "result = {i} + 1"}}\n' for i in range(8)))
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox_tool", "batch", str(source), "-o", str(tmp_path / "o"),
         "--ray", cluster.address, "--engine", "process", "--chunk-size", "2"],
        capture_output=True, text=True, timeout=180, env={**os.environ, **LOOPBACK_ENV},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "o").read_text().splitlines()
    import json

    assert sorted(json.loads(x)["result"] for x in lines) == list(range(1, 9))
