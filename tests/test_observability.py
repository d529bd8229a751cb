"""Observability: one structured log line per poll (logfmt or JSON), `status` with backoff and
next poll, and the daemon's optional Prometheus endpoint scraped on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.logs import JsonFormatter, LogfmtFormatter
from tests.conftest import REPO, free_port, run_cli, write_config
from tests.newssite import NewsSite

POLL_FIELDS = {"feed", "status", "bytes", "new_entries", "duration_ms", "outcome"}


def parse_logfmt(line: str) -> dict[str, str]:
    """Inverse of LogfmtFormatter, via shell-like splitting of key="quoted value" pairs."""
    fields = {}
    for token in shlex.split(line.replace("\\n", "\n"), posix=True):
        key, _, value = token.partition("=")
        fields[key] = value
    return fields


def record(msg: str, fields: dict | None = None) -> logging.LogRecord:
    rec = logging.LogRecord("newswire", logging.INFO, __file__, 1, msg, (), None)
    if fields is not None:
        rec.fields = fields
    return rec


def test_logfmt_quotes_what_needs_quoting() -> None:
    line = LogfmtFormatter().format(record("poll", {
        "feed": "http://a.example/f?x=1", "status": 200, "error": 'bad "thing"\nhere',
        "none": None, "ratio": 0.5}))
    assert line.startswith("time=") and " level=info msg=poll " in line
    assert 'feed="http://a.example/f?x=1"' in line
    assert r'error="bad \"thing\"\nhere"' in line
    assert "none=" not in line and "status=200" in line and "ratio=0.5" in line
    assert parse_logfmt(line)["error"] == 'bad "thing"\nhere'


def test_json_lines_are_objects() -> None:
    line = JsonFormatter().format(record("poll", {"feed": "f", "status": None, "bytes": 3}))
    data = json.loads(line)
    assert data["msg"] == "poll" and data["feed"] == "f" and data["bytes"] == 3
    assert "status" not in data and data["level"] == "info"


@pytest.fixture
def two_feeds(site: NewsSite, tmp_path: Path) -> Path:
    site.set_fault("/feeds/atom.xml", "status", code=500)
    return write_config(tmp_path / "newswire.yaml",
                        [site.feed_url("rss"), site.feed_url("atom")])


def test_one_logfmt_line_per_poll(two_feeds: Path, site: NewsSite) -> None:
    result = run_cli("-v", "once", config=two_feeds)
    assert result.code == 0, result.stderr
    polls = [parse_logfmt(line) for line in result.stderr.splitlines() if " msg=poll " in line]
    assert len(polls) == 2
    by_feed = {p["feed"]: p for p in polls}
    ok, failed = by_feed[site.feed_url("rss")], by_feed[site.feed_url("atom")]
    assert set(ok) >= POLL_FIELDS and set(failed) >= POLL_FIELDS
    assert (ok["status"], ok["outcome"], ok["new_entries"]) == ("200", "ok", "5")
    assert int(ok["bytes"]) > 1000 and int(ok["duration_ms"]) >= 0
    assert (failed["status"], failed["outcome"], failed["error"]) == ("500", "failed",
                                                                     "HTTP 500")


def test_one_json_line_per_poll(two_feeds: Path) -> None:
    result = run_cli("--log-format", "json", "-v", "once", config=two_feeds)
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    polls = [line for line in lines if line["msg"] == "poll"]
    assert len(polls) == 2
    assert all(set(p) >= POLL_FIELDS for p in polls)
    assert sorted(p["outcome"] for p in polls) == ["failed", "ok"]


def test_status_shows_backoff_throttling_and_next_poll(site: NewsSite, tmp_path: Path) -> None:
    site.set_fault("/feeds/atom.xml", "status", code=500)
    site.set_fault("/feeds/rdf.xml", "status", code=429, headers={"Retry-After": "3600"})
    gone = site.route("/gone.xml", "gone", status=410)
    config = write_config(tmp_path / "newswire.yaml", [
        site.feed_url("rss"), site.feed_url("atom"), site.feed_url("rdf"), gone],
        schedule={"interval": "30m"})
    once = run_cli("once", config=config)
    assert once.code == 0, once.stderr
    # The summary counts each poll as its log line and metrics name it: throttled is not
    # updated, gone is a failure.
    assert "4 feeds polled: 1 updated, 0 not modified, 1 throttled, 2 failed;" in once.stdout
    result = run_cli("status", config=config)
    assert result.code == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert re.search(r"\bok\b.*in \d+m \(.*every \d+m \(adaptive\)", lines["1"])
    assert re.search(r"\bfailing\b.*in \d+(\.\d)?[mh] .*backoff after 1 failure\b", lines["2"])
    assert re.search(r"\bthrottled\b.*in (59|60)m .*throttled \(429 Retry-After\)", lines["3"])
    assert re.search(r"\bgone\b.*never.*stopped \(410 Gone\)", lines["4"])


@pytest.mark.parametrize(("metrics", "key"), [
    ({"port": 70000}, "metrics.port"), ({"host": "localhost"}, "metrics.host"),
    ({"path": "/m"}, "metrics.path")])
def test_metrics_config_errors_name_the_key(tmp_path: Path, metrics: dict, key: str) -> None:
    config = write_config(tmp_path / "c.yaml", ["http://127.0.0.1:1/f"], metrics=metrics)
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(config)


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path / "c.yaml", ["http://127.0.0.1:1/f"])
                       ).metrics is None




def scrape(url: str, timeout: float = 30) -> dict[str, float]:
    """Samples of the endpoint as {'name{labels}': value}, waiting for it to come up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_daemon_serves_prometheus_metrics(site: NewsSite, tmp_path: Path) -> None:
    site.set_fault("/feeds/atom.xml", "status", code=503, headers={"Retry-After": "3600"})
    site.set_fault("/feeds/rdf.xml", "status", code=500)
    port = free_port()
    config = write_config(tmp_path / "newswire.yaml",
                          [site.feed_url("rss"), site.feed_url("atom"), site.feed_url("rdf"),
                           site.feed_url("json")],
                          schedule={"tick": "0.5s"}, metrics={"port": port})
    daemon = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                               "daemon"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        samples = scrape(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(
                v for k, v in samples.items() if k.startswith("newswire_polls_total")) < 4:
            time.sleep(0.2)
            samples = scrape(url)
        assert samples['newswire_polls_total{outcome="ok"}'] == 2
        assert samples['newswire_polls_total{outcome="throttled"}'] == 1
        assert samples['newswire_polls_total{outcome="failed"}'] == 1
        assert samples["newswire_new_articles_total"] == 5
        assert samples["newswire_new_entries_total"] == 10
        assert samples['newswire_duplicates_total{kind="exact"}'] == 0
        assert samples["newswire_poll_duration_seconds_count"] == 4
        assert samples['newswire_poll_duration_seconds_bucket{le="+Inf"}'] == 4
        assert samples["newswire_poll_duration_seconds_sum"] > 0
        assert samples["newswire_feed_bytes_total"] > 1000
        assert "newswire_due_feeds" in samples
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "metrics endpoint" in err and f"127.0.0.1:{port}" in err
    with pytest.raises(OSError):  # the endpoint went away with the daemon
        urllib.request.urlopen(url, timeout=2)


def test_metrics_port_in_use_is_a_clear_error(site: NewsSite, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                              metrics={"port": port})
        result = run_cli("daemon", config=config, timeout=60)
    assert result.code == 2
    assert f"metrics endpoint cannot listen on 127.0.0.1:{port}" in result.stderr
