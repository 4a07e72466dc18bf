"""A batch spread over a Ray cluster: ``pip install 'sandbox-tool[ray]'``.

>>> executor = RayExecutor("ray://head:10001")                    # doctest: +SKIP
>>> async with executor.map(items, engine="process") as results:  # doctest: +SKIP
...     async for res in results:
...         print(res.id, res.ok)

One actor per worker node (a node with at least one CPU), each keeping its node's own
warm sandbox pool (:class:`~sandbox_tool.batch.ray_worker.SandboxWorker`) for the whole
batch. Items go out in chunks of ``chunk_size``, at most two chunks per actor at once,
and come back one by one as they complete. When an actor dies (its process killed, its
node lost), only the items of its chunks that had not come back are lost: they are run
again on the actors left (a replacement is started on its node if the node is still
alive), up to ``max_retries`` times each, after which they come back as an
``EngineError``. Ray is imported on first use, never by ``import sandbox_tool``.

Every node needs sandbox_tool (with the engine's requirements: Linux with landlock and
user namespaces for ``process``); item ``files`` paths are read on the node that runs
the item.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sandbox_tool.batch.items import BatchItem, BatchResult, ItemId, coerce_item
from sandbox_tool.batch.jsonl import id_key
from sandbox_tool.batch.mapping import BatchStream, Items, iterate_sync
from sandbox_tool.batch.ray_worker import SandboxWorker
from sandbox_tool.errors import EngineError, EngineUnavailable, SandboxError, UsageError
from sandbox_tool.options import ExecutionOptions

__all__ = ["RayExecutor", "import_ray"]

#: Chunks one actor runs at once: the next one starts while the last items of the
#: other are finishing.
CHUNKS_PER_ACTOR = 2


def import_ray() -> Any:
    """The ``ray`` module, or an error naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(
            "running a batch on Ray needs the ray package: pip install 'sandbox-tool[ray]'"
        ) from exc
    return ray


@dataclass
class _Chunk:
    items: list[BatchItem]
    attempts: int = 0


@dataclass
class _Actor:
    handle: Any
    node_id: str
    info: dict[str, Any] = field(default_factory=dict)
    running: int = 0
    alive: bool = True


class RayExecutor:
    """Runs batches on the Ray cluster at ``address`` (``"auto"``: the one this machine
    belongs to; ``None`` with Ray already initialised: that one). ``actor_options`` are
    passed to each actor (``{"num_cpus": 2}``); ``init_options`` to ``ray.init``."""

    def __init__(
        self,
        address: str | None = "auto",
        *,
        chunk_size: int = 16,
        max_retries: int = 3,
        actor_options: dict[str, Any] | None = None,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        if chunk_size < 1 or max_retries < 0:
            raise UsageError("chunk_size must be at least 1 and max_retries at least 0")
        self.address = address
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.actor_options = {"num_cpus": 1, **(actor_options or {})}
        self.init_options = init_options or {}
        self._connected_here = False

    def _ray(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            options = {"logging_level": logging.WARNING, "log_to_driver": False}
            ray.init(address=self.address, **{**options, **self.init_options})
            self._connected_here = True
        return ray

    def map(
        self,
        items: Items,
        *,
        engine: str = "auto",
        options: ExecutionOptions | None = None,
        concurrency: int | None = None,
    ) -> BatchStream:
        """As :meth:`sandbox_tool.PythonSandbox.map`, on the cluster: ``engine`` and
        ``options`` are each node's sandbox's, ``concurrency`` each node's items at once
        (default: its engine's ``max_concurrent``)."""
        if concurrency is not None and concurrency < 1:
            raise UsageError(f"concurrency must be a positive int, not {concurrency!r}")
        run = _Run(self, engine, options or ExecutionOptions(), concurrency)
        return BatchStream(run.results(items))

    def map_sync(self, items: Items, **kwargs: Any) -> Iterator[BatchResult]:
        """:meth:`map` for code without an event loop."""
        return iterate_sync(lambda: self.map(items, **kwargs), buffer=self.chunk_size)

    async def aclose(self) -> None:
        """Disconnect from the cluster if this executor connected."""
        if self._connected_here:
            self._connected_here = False
            import_ray().shutdown()


class _Run:
    """One batch on the cluster: its actors, its chunks and their retries."""

    def __init__(
        self, owner: RayExecutor, engine: str, options: ExecutionOptions, concurrency: int | None
    ) -> None:
        self.owner = owner
        self.args = (engine, options.model_dump(mode="json"), concurrency)
        self.actors: list[_Actor] = []
        self.replaced: dict[str, int] = {}
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.retry: deque[_Chunk] = deque()
        self.tasks: set[asyncio.Task[None]] = set()

    async def results(self, items: Items) -> AsyncGenerator[BatchResult, None]:
        ray = self.owner._ray()
        self.worker_class = ray.remote(SandboxWorker)
        source = _numbered(items)
        try:
            await self._start_actors(ray, _worker_nodes(ray))
            while True:
                self._schedule(source)
                # counted per actor, not by the tasks: a task that posted its end may
                # not be done yet
                if not any(a.running for a in self.actors) and self.events.empty():
                    return
                kind, payload = await self.events.get()
                if kind == "result":
                    yield payload
                else:
                    for res in await self._chunk_ended(ray, *payload):
                        yield res
        finally:
            await self._stop(ray)

    # -- actors --------------------------------------------------------------------

    async def _start_actors(self, ray: Any, nodes: list[str]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        started = []
        for node in nodes:
            strategy = NodeAffinitySchedulingStrategy(node, soft=False)
            handle = self.worker_class.options(
                scheduling_strategy=strategy,
                max_concurrency=CHUNKS_PER_ACTOR + 2,  # + ready() and shutdown()
                **self.owner.actor_options,
            ).remote(*self.args)
            started.append(_Actor(handle, node))
        infos = await asyncio.gather(
            *(actor.handle.ready.remote() for actor in started), return_exceptions=True
        )
        problems = []
        for actor, info in zip(started, infos, strict=True):
            if isinstance(info, BaseException):
                problems.append(f"node {actor.node_id[:8]}: {info}")
                ray.kill(actor.handle)
            else:
                actor.info = info
                self.actors.append(actor)
        if not any(a.alive for a in self.actors):
            reasons = "; ".join(problems) or "the cluster has no alive node with a CPU"
            raise EngineUnavailable(f"no Ray worker could start a sandbox ({reasons})")

    async def _replace(self, ray: Any, dead: _Actor) -> None:
        """A new actor on the dead one's node, if that node is alive and has not
        needed too many already."""
        count = self.replaced.get(dead.node_id, 0)
        if count >= self.owner.max_retries or dead.node_id not in _worker_nodes(ray):
            return
        self.replaced[dead.node_id] = count + 1
        try:
            await self._start_actors(ray, [dead.node_id])
        except SandboxError:
            pass  # the other actors carry on

    async def _stop(self, ray: Any) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        alive = [a for a in self.actors if a.alive]
        # each actor stops its warm pool, then goes
        await asyncio.gather(*(a.handle.shutdown.remote() for a in alive), return_exceptions=True)
        for actor in alive:
            ray.kill(actor.handle)

    # -- chunks --------------------------------------------------------------------

    def _schedule(self, source: Iterator[BatchItem | BatchResult]) -> None:
        """Give each actor with room a chunk, a retried one first."""
        for actor in self.actors:
            while actor.alive and actor.running < CHUNKS_PER_ACTOR:
                chunk = self.retry.popleft() if self.retry else self._next_chunk(source)
                if chunk is None:
                    return
                actor.running += 1
                task = asyncio.ensure_future(self._run_chunk(actor, chunk))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def _next_chunk(self, source: Iterator[BatchItem | BatchResult]) -> _Chunk | None:
        """Up to ``chunk_size`` items from ``source`` (malformed ones are reported at
        once); None when it has run out."""
        items: list[BatchItem] = []
        for entry in source:
            if isinstance(entry, BatchResult):
                self.events.put_nowait(("result", entry))
                continue
            items.append(entry)
            if len(items) == self.owner.chunk_size:
                break
        return _Chunk(items) if items else None

    async def _run_chunk(self, actor: _Actor, chunk: _Chunk) -> None:
        delivered: set[str] = set()
        failure: BaseException | None = None
        stream = actor.handle.run.remote([i.model_dump(mode="json") for i in chunk.items])
        try:
            async for ref in stream:
                res = BatchResult.from_wire(await ref)
                delivered.add(id_key(res.id))
                self.events.put_nowait(("result", res))
        except asyncio.CancelledError:
            import_ray().cancel(stream)
            raise
        except Exception as exc:  # noqa: BLE001 - the actor (or its node) is gone
            failure = exc
        left = [item for item in chunk.items if id_key(item.id) not in delivered]
        self.events.put_nowait(("ended", (actor, chunk, left, failure)))

    async def _chunk_ended(
        self, ray: Any, actor: _Actor, chunk: _Chunk, left: list[BatchItem], failure: Any
    ) -> list[BatchResult]:
        """Account for a finished chunk; the results of items that will not be retried."""
        actor.running -= 1
        if failure is None:
            return []
        if actor.alive:
            actor.alive = False
            await self._replace(ray, actor)
        if chunk.attempts < self.owner.max_retries and any(a.alive for a in self.actors):
            if left:
                self.retry.append(_Chunk(left, chunk.attempts + 1))
            return []
        reason = (
            f"the Ray worker running this item died {chunk.attempts + 1} times "
            f"(last: {type(failure).__name__}: {str(failure).splitlines()[0]}); raise "
            "RayExecutor.max_retries, or look for what kills the workers"
        )
        return [BatchResult(_id(item), error=EngineError(reason)) for item in left]


def _numbered(items: Items) -> Iterator[BatchItem | BatchResult]:
    """The items with their ids set (their position when they have none); a malformed
    one is its own error result at once."""
    if not isinstance(items, Iterable):
        raise UsageError("RayExecutor.map takes an iterable of items, not an async one")
    for position, raw in enumerate(items):
        try:
            yield coerce_item(raw, position)
        except UsageError as exc:
            yield BatchResult(position, error=exc)


def _id(item: BatchItem) -> ItemId:
    assert item.id is not None  # set by _numbered
    return item.id


def _worker_nodes(ray: Any) -> list[str]:
    """The ids of the alive nodes that have a CPU to give an actor."""
    return [
        node["NodeID"]
        for node in ray.nodes()
        if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) >= 1
    ]
