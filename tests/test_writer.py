"""The single writer (pipeline/store/writer.py): group commit, order, and a bad write alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pipeline.config import FeedConfig
from pipeline.errors import StoreWriteError
from pipeline.messages import EntryBatch, PollResult
from pipeline.store import Store, Writer
from pipeline.times import utcnow


def result(feed: int) -> PollResult:
    return PollResult(feed_id=feed, started_at=utcnow(), duration_ms=1, status=304, bytes=0,
                      error=None, next_poll_at="2099-01-01T00:00:00Z",
                      consecutive_failures=0, current_interval=900.0)


def open_store(tmp_path: Path) -> tuple[Store, int]:
    store = Store.open(tmp_path / "nw.db")
    store.sync_feeds([FeedConfig(url="http://a.example/feed")])
    return store, store.feeds(include_all=True)[0].id


def test_a_failed_write_does_not_take_the_rest_of_its_group_down(tmp_path: Path) -> None:
    store, feed_id = open_store(tmp_path)

    async def go() -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        group = [(result(feed_id), loop.create_future()), (result(999), loop.create_future()),
                 (result(feed_id), loop.create_future())]
        Writer(store)._commit(group)
        return [future for _, future in group]

    first, broken, last = asyncio.run(go())
    assert first.result().new_entries == 0 and last.result().new_entries == 0
    assert isinstance(broken.exception(), StoreWriteError)  # no feed 999: a foreign key
    assert store.db["fetches"].count == 2
    store.close()


def test_writes_handed_over_together_commit_together_in_order(tmp_path: Path) -> None:
    store, feed_id = open_store(tmp_path)
    commits: list[list[Any]] = []
    record = store.record_batch

    def recording(items: Any) -> Any:
        commits.append(list(items))
        return record(items)

    store.record_batch = recording  # type: ignore[method-assign]
    handed = [*(EntryBatch(feed_id, ()) for _ in range(5)), result(feed_id)]

    async def go() -> None:
        async with Writer(store) as writer:
            await asyncio.gather(*(writer.write(item) for item in handed))

    asyncio.run(go())
    assert len(commits) < len(handed)  # grouped into fewer transactions
    assert [id(item) for group in commits for item in group] == [id(item) for item in handed]
    assert store.db["fetches"].count == 1
    store.close()
