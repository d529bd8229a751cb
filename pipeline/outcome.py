"""What one poll comes to: pure functions from the stages' messages to the `PollResult` the
store records, and one word for it that the log line and the metrics share."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum

from pipeline.config import ScheduleConfig
from pipeline.messages import (
    FeedState,
    FetchResult,
    NewEntry,
    ParsedFeed,
    PollResult,
    PollSummary,
)
from pipeline.schedule import THROTTLING, PollOutcome, next_poll, throttled
from pipeline.text import one_line
from pipeline.times import iso

MAX_ERROR = 1_000  # characters of a poll's recorded error


def recorded(error: str | None) -> str | None:
    """A poll's error as it is stored, logged and printed: one clean line (a server's words
    in it, a Content-Type or a parser's message, may carry newlines and terminal escapes),
    at most MAX_ERROR characters."""
    return (one_line(error, MAX_ERROR) if error else "") or None


def response_error(response: FetchResult) -> str | None:
    """Why a feed response is a failure, or None (200 and 304 are not)."""
    if response.error:
        return response.error
    if response.status in (200, 304):
        return None
    return f"HTTP {response.status}"


def poll_result(feed: FeedState, response: FetchResult, parsed: ParsedFeed | None,
                error: str | None, new_entries: int, entries: tuple[NewEntry, ...],
                written: PollSummary, started: datetime, duration_ms: int,
                config: ScheduleConfig) -> PollResult:
    """The record of a poll: what was fetched and parsed, when to poll next, and the last
    batch of its new entries (`written` counts those written in batches before it)."""
    retry_after = response.retry_after(started)
    schedule = next_poll(feed, PollOutcome(
        status=response.status, failed=error is not None, retry_after=retry_after,
        headers=response.headers, ttl_seconds=parsed.ttl_seconds if parsed else None,
        new_entries=new_entries, total_entries=len(parsed.entries) if parsed else 0,
    ), config, now=started)
    if throttled(response.status, retry_after):
        error = None  # throttled, not failed: the next poll honours Retry-After
    return PollResult(
        feed_id=feed.id, started_at=iso(started), duration_ms=duration_ms,
        status=response.status, bytes=len(response.body), error=recorded(error),
        next_poll_at=iso(schedule.at) if schedule.at else None,
        consecutive_failures=schedule.consecutive_failures,
        current_interval=schedule.interval, etag=response.etag,
        last_modified=response.last_modified,
        feed_title=parsed.title if parsed else None,
        feed_link=parsed.link if parsed else None,
        new_url=response.permanent_redirect if error is None else None,
        gone=schedule.gone, conditional=response.conditional,
        warning=parsed.warning if parsed else None, entries=entries,
        skipped_entries=parsed.skipped_entries if parsed else 0,
        batched_entries=written.new_entries, batched_articles=written.new_articles,
    )


def crashed(feed: FeedState, started: datetime, duration_ms: int, exc: Exception,
            config: ScheduleConfig) -> PollResult:
    """The record of a poll that raised: a failure, backed off like any other."""
    schedule = next_poll(feed, PollOutcome(status=None, failed=True), config, now=started)
    return PollResult(
        feed_id=feed.id, started_at=iso(started), duration_ms=duration_ms, status=None,
        bytes=0, error=recorded(f"internal error: {type(exc).__name__}: {exc}"),
        next_poll_at=iso(schedule.at) if schedule.at else None,
        consecutive_failures=schedule.consecutive_failures,
        current_interval=schedule.interval)


def write_failed(result: PollResult, exc: Exception, now: datetime,
                 config: ScheduleConfig) -> PollResult:
    """A poll whose transaction rolled back (disk full, database locked): retried after
    `min_interval` with the old validators, so the next poll fetches everything again
    (entry batches already written are skipped then)."""
    return replace(result, error=recorded(f"storage error: {exc}"), entries=(),
                   storage_error=True,
                   next_poll_at=iso(now + timedelta(seconds=config.min_interval)))


class Outcome(StrEnum):
    """What a poll came to, in one word: the log line, the metrics and `once`'s summary."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    THROTTLED = "throttled"  # 429/503 with Retry-After: a wait, not a failure
    FAILED = "failed"
    GONE = "gone"  # 410
    STORAGE_ERROR = "storage_error"  # fetched, but its write rolled back


def poll_outcome(result: PollResult) -> Outcome:
    """One word for what a poll came to, shared by the log line and the metrics."""
    if result.storage_error:
        return Outcome.STORAGE_ERROR
    if result.gone:
        return Outcome.GONE
    if result.error:
        return Outcome.FAILED
    if result.status in THROTTLING:  # with Retry-After (else it failed, above)
        return Outcome.THROTTLED
    if result.status == 304:
        return Outcome.NOT_MODIFIED
    return Outcome.OK
