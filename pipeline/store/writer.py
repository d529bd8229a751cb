"""The single writer: every write of a run goes through `await writer.write(item)`.

Like Datasette's `execute_write_fn`, one task owns writing: producers hand it polls and entry
batches and wait for their summaries; whatever is waiting is committed together in one short
transaction (group commit), in the order it was handed over, so a poll's batches are always
written before the poll itself. A group whose transaction fails is retried write by write,
so one bad write fails alone and the others go in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

from pipeline.errors import StoreWriteError
from pipeline.messages import EntryBatch, PollResult, PollSummary, RevisionBatch
from pipeline.store.database import Store

WRITE_QUEUE = 64  # writes waiting for the writer before producers wait too
MAX_WRITE_GROUP = 64  # writes committed together in one transaction

Write = PollResult | EntryBatch | RevisionBatch
_Waiting = tuple[Write, "asyncio.Future[PollSummary]"]


class Writer:
    """Use as `async with Writer(store) as writer: summary = await writer.write(result)`.
    Leaving the block waits until everything handed over is written."""

    def __init__(self, store: Store,
                 before_commit: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.before_commit = before_commit  # e.g. the archive's fsync (pipeline.archive)
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue(WRITE_QUEUE)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Writer:
        self._task = asyncio.ensure_future(self._loop())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._task is not None:
            await self._queue.join()  # everything handed over is written
            self._task.cancel()

    async def write(self, item: Write) -> PollSummary:
        """Hand a write over and wait until it is committed (or raise why it was not:
        StoreWriteError, or DatabaseDamaged)."""
        future: asyncio.Future[PollSummary] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _loop(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_WRITE_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                if await self._prepared(group):
                    self._commit(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _prepared(self, group: list[_Waiting]) -> bool:
        """Run `before_commit`; when it fails, the whole group fails with it."""
        if self.before_commit is None:
            return True
        try:
            await self.before_commit()
        except OSError as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(StoreWriteError(f"archive not synced: {exc}"))
            return False
        return True

    def _commit(self, group: list[_Waiting]) -> None:
        try:
            summaries = self.store.record_batch([item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - find the write at fault; others go in alone
            if len(group) == 1:
                future = group[0][1]
                if not future.done():
                    future.set_exception(exc)
                return
            for one in group:
                self._commit([one])
            return
        for (_, future), summary in zip(group, summaries, strict=True):
            if not future.done():
                future.set_result(summary)
