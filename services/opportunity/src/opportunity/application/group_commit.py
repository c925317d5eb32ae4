"""Group commit: commands that arrive while a transaction is being written wait, then go
into the next transaction together; each caller still gets its own answer.

With two writers, one batch is executed and encoded while the other waits for its commit to
reach the disk; the event store still orders the commits."""

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from prometheus_client import Histogram

from opportunity.application.commit_traces import CommitTraces
from opportunity.application.unit_of_work import BatchingApplication, Outcome, Work

# A command, where its answer goes, and the opportunity it changes (if known).
Queued = tuple[Work[Any], "asyncio.Future[Outcome[Any]]", UUID | None]


class GroupCommitter:
    def __init__(
        self,
        app: BatchingApplication,
        max_batch: int,
        writers: int,
        batch_sizes: Histogram,
        traces: CommitTraces | None = None,
    ) -> None:
        self._app = app
        self._traces = traces  # None: tracing is off
        self._max_batch = max_batch
        self._writers = writers
        self._batch_sizes = batch_sizes
        self._queue: asyncio.Queue[Queued] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_saved: Callable[[], None] = lambda: None
        self._writer = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="group-commit")

    async def submit(self, work: Work[Any], touches: UUID | None = None) -> Any:
        """Run `work` in the next batch; its value, or raise its error. `touches`: the
        opportunity it changes, if known (its cached copy is checked before the batch). Traced,
        the wait and the batch are a span of their own (commit_traces.py)."""
        if self._traces is None:
            return await self._queued(work, touches)
        with self._traces.command(work) as noting:
            return await self._queued(noting, touches)

    async def _queued(self, work: Work[Any], touches: UUID | None) -> Any:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop or any(t.done() for t in self._tasks):
            self._loop, self._queue = loop, asyncio.Queue()
            # The writers serve every caller: they keep no request's log ids or span.
            self._tasks = [
                asyncio.create_task(self._write_batches(self._queue), context=contextvars.Context())
                for _ in range(self._writers)
            ]
        future: asyncio.Future[Outcome[Any]] = loop.create_future()
        self._queue.put_nowait((work, future, touches))
        return (await future).unwrap()

    async def close(self) -> None:
        if self._loop is asyncio.get_running_loop():
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writer.shutdown(wait=True)

    async def _write_batches(self, queue: asyncio.Queue[Queued]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < self._max_batch:
                batch.append(queue.get_nowait())
            self._batch_sizes.observe(len(batch))
            works = [work for work, _, _ in batch]
            touched = {touches for _, _, touches in batch if touches is not None}
            try:
                outcomes = await loop.run_in_executor(
                    self._writer, self._app.run_batch, works, touched
                )
            except Exception as exc:  # the store failed: every caller of the batch hears it
                outcomes = [Outcome(error=exc) for _ in batch]
            for (_, future, _), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
            if any(outcome.error is None for outcome in outcomes):
                self.on_saved()
