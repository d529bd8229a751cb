"""Configuration: durations, lookup order, relative paths and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import (
    RESTART_TO_APPLY,
    ConfigWatch,
    load_config,
    parse_duration,
    reloaded,
    resolve_config_path,
)
from pipeline.errors import ConfigError
from pipeline.values import check_feed_url

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("500ms", 0.5), (30, 30),
    ("1.5h", 5400), (" 10 m ", 600),
])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "10 minutes", "-5", -5, True, "5y", ""])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_feed_urls() -> None:
    assert check_feed_url(" https://a.example/feed ") == "https://a.example/feed"
    for bad in ["ftp://a.example/f", "feed://a.example", "/relative", "http://", 5, ""]:
        with pytest.raises(ValueError):
            check_feed_url(bad)


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSWIRE_CONFIG", raising=False)
    assert resolve_config_path(None) == Path("config/newswire.yaml")
    monkeypatch.setenv("NEWSWIRE_CONFIG", str(tmp_path / "env.yaml"))
    assert resolve_config_path(None) == tmp_path / "env.yaml"
    assert resolve_config_path(tmp_path / "cli.yaml") == tmp_path / "cli.yaml"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "nw.yaml"
    path.write_text("database: ../data/nw.db\nfeeds:\n  - https://a.example/feed\n"
                    "  - url: https://b.example/rss\n    name: B\n    interval: 10m\n"
                    "  - url: https://c.example/rss\n    cron: '*/20 * * * *'\n"
                    "fetch:\n  timeout: 1m\n  allow_networks: ['127.0.0.1/32']\n")
    config = load_config(path)
    assert config.database == (tmp_path / "data" / "nw.db").resolve()
    assert [f.url for f in config.feeds] == ["https://a.example/feed", "https://b.example/rss",
                                             "https://c.example/rss"]
    assert config.feeds[1].name == "B" and config.feeds[1].interval == 600
    assert config.feeds[2].cron == "*/20 * * * *"
    assert config.fetch.timeout == 60
    assert config.fetch.allow_networks == ("127.0.0.1/32",)
    assert config.schedule.interval == 900  # default


@pytest.mark.parametrize(("body", "key", "problem"), [
    ("database: x.db\nfeeds: [https://a.example/f]\nfetch: {timout: 3}\n", "fetch.timout",
     "unknown key"),
    ("database: x.db\nfeeds: [https://a.example/f]\nextra: 1\n", "extra", "unknown key"),
    ("database: x.db\nfeeds: [{url: 'https://a.example/f', cron: 'every day'}]\n",
     "feeds[0].cron", ""),
    ("database: x.db\nfeeds: [https://a.example/f]\nfetch: {allow_networks: [nope]}\n",
     "fetch.allow_networks", "not a network"),
    ("database: x.db\nfeeds: [https://a.example/f]\nfetch: {per_host_concurrency: 0}\n",
     "fetch.per_host_concurrency", "at least 1"),
    ("database: x.db\nfeeds: [https://a.example/f]\nfetch: {max_bytes: lots}\n",
     "fetch.max_bytes", "integer"),
    ("database: x.db\nfeeds: [https://a.example/f]\nschedule: {tick: 0s}\n",
     "schedule.tick", "at least 0.5s"),  # it was raised to 0.5s silently
    ("database: x.db\nfeeds: {url: x}\n", "feeds", "list"),
    ("database: [x\n", "(file)", "invalid YAML"),
    ("- just\n- a list\n", "(top level)", "mapping"),
])
def test_errors_name_file_key_and_problem(tmp_path: Path, body: str, key: str,
                                          problem: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(path) in str(info.value)


def test_a_feed_line_that_does_not_read_is_refused_alone(tmp_path: Path) -> None:
    """One broken feed line must not stop the others (before: the whole config was refused,
    and `once` and the daemon polled nothing). A line whose URL reads names its feed; a
    duplicate or a line without a URL is only reported; the first line of a URL runs."""
    path = tmp_path / "c.yaml"
    path.write_text("database: x.db\nfeeds:\n"
                    "  - https://a.example/f\n"
                    "  - {url: 'https://b.example/f', intervall: 10m}\n"
                    "  - {url: 'https://c.example/f', cron: 'every day'}\n"
                    "  - https://a.example/f\n"
                    "  - {name: no url}\n"
                    "  - {url: 'https://a.example/f', interval: soon}\n")
    config = load_config(path)
    assert [f.url for f in config.feeds] == ["https://a.example/f"]
    assert [(r.key, r.url) for r in config.refused] == [
        ("feeds[1].intervall", "https://b.example/f"), ("feeds[2].cron", "https://c.example/f"),
        ("feeds[3].url", None), ("feeds[4].url", None), ("feeds[5].interval", None)]
    assert config.refused[0].problem == "unknown key"
    assert "duplicate feed" in config.refused[2].problem
    assert config.refused_feeds == {
        "https://b.example/f": "config feeds[1].intervall: unknown key",
        "https://c.example/f": f"config feeds[2].cron: {config.refused[1].problem}"}


def test_a_broken_line_for_a_feed_the_opml_file_lists_names_no_feed(tmp_path: Path) -> None:
    """The OPML file's outline for the URL reads, so that feed runs: the broken line is
    only reported (before, every command said the feed was not polled while `once` polled
    it, and `status` showed it misconfigured)."""
    (tmp_path / "feeds.opml").write_text(
        '<opml version="2.0"><head/><body><outline type="rss" text="B" '
        'xmlUrl="https://b.example/f"/></body></opml>')
    path = tmp_path / "c.yaml"
    path.write_text("database: x.db\nopml: feeds.opml\nfeeds:\n"
                    "  - {url: 'https://b.example/f', intervall: 10m}\n")
    config = load_config(path)
    assert [f.url for f in config.feeds] == ["https://b.example/f"]
    assert [(r.key, r.url) for r in config.refused] == [("feeds[0].intervall", None)]
    assert config.refused_feeds == {}


def test_a_config_whose_every_feed_line_is_broken_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("database: x.db\nfeeds:\n  - {url: 'https://b.example/f', intervall: 1m}\n"
                    "  - {url: 'https://c.example/f', interval: soon}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "feeds[0].intervall" and info.value.problem == "unknown key"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config" / "newswire.yaml")
    assert len(config.feeds) >= 10
    assert config.feeds[0].url == "https://rss.dw.com/rdf/rss-en-all"
    assert config.database == (REPO / "data" / "newswire.db").resolve()


@pytest.mark.parametrize("schedule", ["{interval: 2s}", "{interval: 2d}",
                                      "{interval: 10m, min_interval: 20m}"])
def test_an_interval_outside_its_bounds_is_refused_naming_both(tmp_path: Path,
                                                               schedule: str) -> None:
    """It used to be raised to the floor silently: `interval: 2s` polled every 5 minutes."""
    path = tmp_path / "c.yaml"
    path.write_text(f"database: x.db\nfeeds: [https://a.example/f]\nschedule: {schedule}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "schedule.interval"
    assert "schedule.min_interval" in caught.value.problem
    assert "schedule.max_interval" in caught.value.problem


def test_an_interval_within_lowered_bounds_takes_effect(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("database: x.db\nfeeds: [https://a.example/f]\n"
                    "schedule: {interval: 2s, min_interval: 1s}\n")
    assert load_config(path).schedule.interval == 2


def test_a_reload_keeps_what_the_daemon_was_built_with(tmp_path: Path) -> None:
    """The feeds, filters and schedule of the new file apply; the database, fetcher,
    worker pool and engine of the running daemon stay, and the changed ones are named."""
    path = tmp_path / "newswire.yaml"
    path.write_text("database: a.db\nfeeds: [https://a.example/feed]\n"
                    "extract: {workers: 2, timeout: 30s}\n", encoding="utf-8")
    running = load_config(path)
    path.write_text("database: b.db\nfeeds: [https://a.example/feed, https://b.example/f]\n"
                    "extract: {workers: 4, timeout: 10s}\nschedule: {tick: 2s}\n"
                    "fetch: {user_agent: other}\n", encoding="utf-8")
    new, waiting = reloaded(running, load_config(path))
    assert waiting == ("database", "fetch", "extract.workers")
    assert set(waiting) <= set(RESTART_TO_APPLY)
    assert new.database == running.database and new.fetch == running.fetch
    assert new.extract.workers == 2 and new.extract.timeout == 10
    assert [f.url for f in new.feeds] == ["https://a.example/feed", "https://b.example/f"]
    assert new.schedule.tick == 2
    assert reloaded(running, running) == (running, ())


def test_the_watch_sees_each_change_of_the_config_and_its_opml_file_once(
        tmp_path: Path) -> None:
    path, opml = tmp_path / "newswire.yaml", tmp_path / "feeds.opml"
    path.write_text("database: a.db\nfeeds: [https://a.example/feed]\nopml: feeds.opml\n",
                    encoding="utf-8")
    opml.write_text('<opml version="2.0"><body><outline type="rss" '
                    'xmlUrl="https://b.example/f"/></body></opml>', encoding="utf-8")
    config = load_config(path)
    assert config.files == (path.resolve(), opml.resolve())
    watch = ConfigWatch(config)
    assert not watch.changed()
    opml.write_text(opml.read_text().replace("b.example", "c.example"), encoding="utf-8")
    assert watch.changed() and not watch.changed()
    replacement = tmp_path / "new.yaml"  # an editor's write: a new file renamed over it
    replacement.write_text(path.read_text(), encoding="utf-8")
    replacement.replace(path)
    assert watch.changed() and not watch.changed()
    path.unlink()
    assert watch.changed()
