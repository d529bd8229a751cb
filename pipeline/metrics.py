"""Prometheus metrics for the daemon (optional: `metrics: {port: 9464}` in the config).

Each `Metrics` has its own registry, so several runners in one process (tests) never share
counters. The endpoint is prometheus-client's own HTTP server on a daemon thread; it only
reads these in-memory values and never touches the database.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pipeline.errors import MetricsError
from pipeline.messages import EXACT, JOINING_KINDS, NEAR, PollResult, PollSummary
from pipeline.outcome import poll_outcome
from pipeline.schedule import Health

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)


class Metrics:
    """Counters of polls by outcome, entries, articles and duplicates; poll durations;
    feeds due, queued or being polled, at the daemon's latest look."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("newswire_polls", "Feed polls by outcome", ["outcome"], registry=r)
        self.new_entries = Counter("newswire_new_entries", "Feed items seen for the first time",
                                   registry=r)
        self.new_articles = Counter("newswire_new_articles", "Articles stored", registry=r)
        self.duplicates = Counter("newswire_duplicates",
                                  "New articles recorded as copies of stored ones, by kind",
                                  ["kind"], registry=r)
        self.fetched_bytes = Counter("newswire_feed_bytes", "Decoded feed bytes fetched",
                                     registry=r)
        self.poll_duration = Histogram("newswire_poll_duration_seconds",
                                       "Duration of one feed poll, pages included",
                                       buckets=DURATION_BUCKETS, registry=r)
        self.due_feeds = Gauge("newswire_due_feeds", "Feeds due, queued or being polled",
                               registry=r)
        self.feeds = Gauge("newswire_feeds", "Feeds by health at the latest look for due feeds "
                           "(dead: schedule.dead_after failures in a row)", ["health"],
                           registry=r)
        self.config_reloaded = Gauge(
            "newswire_config_last_reload_successful", "Whether the config file read at the "
            "latest reload (or the start) was taken (0: the daemon runs on the one before)",
            registry=r)
        self.config_reloaded_at = Gauge(
            "newswire_config_last_reload_success_timestamp_seconds",
            "When the daemon last took its config file", registry=r)
        self.observe_reload(True)  # the config it starts with
        for kind in JOINING_KINDS:  # export zeros, so rates work from the first scrape
            self.duplicates.labels(kind)
        self._server: Any = None

    def observe_pass(self, due: int, health: dict[str, int]) -> None:
        self.due_feeds.set(due)
        for name in Health:
            self.feeds.labels(name.value).set(health.get(name, 0))

    def observe_reload(self, taken: bool) -> None:
        self.config_reloaded.set(int(taken))
        if taken:
            self.config_reloaded_at.set_to_current_time()

    def observe_poll(self, result: PollResult, summary: PollSummary) -> None:
        self.polls.labels(poll_outcome(result)).inc()
        self.new_entries.inc(summary.new_entries)
        self.new_articles.inc(summary.new_articles)
        self.duplicates.labels(EXACT).inc(summary.exact_duplicates)
        self.duplicates.labels(NEAR).inc(summary.near_duplicates)
        self.fetched_bytes.inc(result.bytes)
        self.poll_duration.observe(result.duration_ms / 1000)

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics endpoint; returns the port (useful with port 0)."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"metrics endpoint cannot listen on {host}:{port}: {exc}") from None
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
