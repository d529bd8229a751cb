"""Messages (pipeline/messages.py): every message a real run passes between its stages
survives the trip through JSON unchanged."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import run
from pipeline.config import load_config
from pipeline.messages import MESSAGES, Message, Page, PageDone
from pipeline.reextract import reextract
from pipeline.run import Runner
from pipeline.store import Store
from tests.conftest import story, write_config
from tests.newssite import NewsSite

FOOTER = "Our newsroom is independent: support local journalism by subscribing today."


def nested(value: object) -> Iterator[Message]:
    """A message and every message inside it."""
    if isinstance(value, Message):
        yield value
        for field in dataclasses.fields(value):  # type: ignore[arg-type]
            yield from nested(getattr(value, field.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from nested(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from nested(item)


def test_real_messages_round_trip_through_json(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "ENTRY_BATCH", 2)  # a poll in several batches: EntryBatch too
    # one feed after the other: the second finds the first one's articles stored
    monkeypatch.setattr(run, "MAX_FEEDS_IN_FLIGHT", 1)
    seen: list[Message] = []
    with NewsSite() as site:
        for i in range(5):  # every page ends with the same line: the site's boilerplate
            site.add_article(f"story-{i}", f"Story {i}", [*story(f"topic {i}"), FOOTER],
                             datetime.now(UTC) - timedelta(hours=i + 1))
        site.set_fault("/news/story-4.html", "status", code=404)  # a page error travels too
        # Extraction rules travel in the jobs; a text filter reads the stored articles.
        config = load_config(write_config(
            tmp_path / "newswire.yaml",
            [{"url": site.feed_url("rss"), "rules": {"remove": [".ad"]}}, site.feed_url("json")],
            filters={"block": [{"field": "text", "pattern": "no story says this"}]}))
        store = Store.open(config.database)
        store.sync_feeds(config.feeds)

        async def passes() -> None:
            async with Runner(config, store, trace=seen.append) as runner:
                await runner.run_due(include_all=True)
                for i in range(3):  # the site's repeated lines are known by now
                    site.add_article(f"later-{i}", f"Later story {i}", story(f"later {i}"),
                                     datetime.now(UTC) - timedelta(minutes=i))
                old = site.article("story-1")  # a new headline: the page is read again
                site.add_article("story-1", "Story 1, updated", [*old.paragraphs, FOOTER],
                                 old.published)
                await runner.run_due(include_all=True)
            # The first pages kept the footer the site repeats: read again, it goes.
            await reextract(config, store, trace=seen.append)

        asyncio.run(passes())
        store.close()

    kinds = {type(m) for message in seen for m in nested(message)}
    assert kinds == set(MESSAGES)  # every kind of message was seen, alone or inside another
    assert any(getattr(m, "site_lines", None) for m in seen)  # sets, not only empty ones
    for message in seen:
        data = json.loads(json.dumps(message.to_dict()))
        assert type(message).from_dict(data) == message, type(message).__name__


def test_large_bytes_travel_compressed_and_come_back_equal() -> None:
    html = ("<p>" + "The council met on Tuesday to discuss the budget. " * 400 + "</p>").encode()
    already_gzipped = gzip.compress(os.urandom(4096))  # a body still Content-Encoding: gzip
    for body, form in ((html, "$zbytes"), (already_gzipped, "$bytes"), (b"<p>short</p>", "$bytes")):
        done = PageDone("http://127.0.0.1/a", page=Page("http://127.0.0.1/a", "http://127.0.0.1/a",
                                                         body=body))
        data = json.loads(json.dumps(done.to_dict()))
        assert list(data["page"]["body"]) == [form]
        assert PageDone.from_dict(data) == done
    plain = len(json.dumps(PageDone("u", page=Page("u", "u", body=html)).to_dict()))
    assert plain < len(html) / 5  # repetitive HTML: far smaller than its base64 would be
