"""Load and validate the YAML configuration.

Every error names the file, the key and the problem, so a typo in a cron-driven config is
found from the log line alone. Nothing here touches the network or the database.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.opml import read_opml
from pipeline.values import check_feed_url

DEFAULT_CONFIG = Path("config/newswire.yaml")
# libyaml's safe loader when PyYAML has it: the pure-Python one takes a second per 5,000
# feeds, and every command reads the config.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_USER_AGENT = "newswire/0.1 (+https://example.org/newswire)"


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 20.0
    max_bytes: int = 15_000_000
    user_agent: str = DEFAULT_USER_AGENT
    allow_networks: tuple[str, ...] = ()
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    max_redirects: int = 5
    respect_robots: bool = True


@dataclass(frozen=True)
class ScheduleConfig:
    interval: float = 900.0
    min_interval: float = 300.0
    max_interval: float = 86_400.0
    max_backoff: float = 86_400.0
    unconditional_every: float = 86_400.0
    tick: float = 5.0
    stop_grace: float = 60.0  # the daemon's time to finish in-flight polls on SIGTERM
    dead_after: int = 5  # failures in a row after which a feed counts as dead (still probed)
    fetch_log_days: int = 30  # raw fetch-log rows kept; older polls live on as daily totals


@dataclass(frozen=True)
class ExtractConfig:
    workers: int = 0  # 0 = one per CPU
    timeout: float = 30.0
    max_tasks_per_worker: int = 200
    max_entries_per_poll: int = 500


# News agencies whose own copy of a story is its cluster's canonical member (see
# pipeline.neardup.is_agency_copy). An entry with a dot is a host (and its subdomains);
# any other entry is a site name, matched whole, ignoring case and punctuation.
DEFAULT_AGENCIES: tuple[str, ...] = (
    "Reuters", "Thomson Reuters", "Associated Press", "AP", "AP News", "AFP",
    "Agence France-Presse", "Agence France Presse", "dpa", "dpa international",
    "Deutsche Presse-Agentur", "ANSA", "EFE", "Agencia EFE", "Kyodo News", "PA Media",
    "Press Association", "Canadian Press", "AAP", "Australian Associated Press",
    "reuters.com", "apnews.com", "ap.org", "afp.com", "dpa.com", "dpa-international.com",
    "ansa.it", "efe.com", "kyodonews.net", "pamediagroup.com", "thecanadianpress.com",
    "aap.com.au",
)


@dataclass(frozen=True)
class DedupeConfig:
    band_window_days: int = 30  # 0 = never prune the near-duplicate index
    threshold: float = 0.8  # estimated containment for a near duplicate
    related_threshold: float = 0.6  # ... and for a "related" edge
    agencies: tuple[str, ...] = DEFAULT_AGENCIES


@dataclass(frozen=True)
class MetricsConfig:
    """The daemon's Prometheus endpoint; absent from the config means no endpoint."""

    port: int = 9464
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class FeedConfig:
    url: str
    name: str | None = None
    interval: float | None = None
    cron: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    database: Path
    feeds: tuple[FeedConfig, ...]
    fetch: FetchConfig = field(default_factory=FetchConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    dedupe: DedupeConfig = field(default_factory=DedupeConfig)
    metrics: MetricsConfig | None = None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """`90s`, `15m`, `2h`, `1d`, `500ms` or a bare number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration: {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 2h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def resolve_config_path(cli_path: str | os.PathLike[str] | None) -> Path:
    """`--config`, else `$NEWSWIRE_CONFIG`, else `config/newswire.yaml`."""
    if cli_path:
        return Path(cli_path)
    env = os.environ.get("NEWSWIRE_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


class _Reader:
    """Reads one mapping of the config, remembering which keys were used."""

    def __init__(self, path: Path, prefix: str, data: Any) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, prefix or "(top level)", "must be a mapping")
        self.path, self.prefix, self.data = path, prefix, data

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def get(self, name: str, convert: Any, default: Any) -> Any:
        if name not in self.data or self.data[name] is None:
            return default
        try:
            return convert(self.data[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(self.path, self.key(name), str(exc)) from None

    def reject_unknown(self, known: set[str]) -> None:
        for name in self.data:
            if name not in known:
                raise ConfigError(self.path, self.key(str(name)), "unknown key")


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a non-negative integer, got {value!r}")
    return value


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"must be a non-negative number, got {value!r}")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def _networks(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of CIDRs, e.g. ['127.0.0.1/32']")
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ValueError(f"not a network: {item!r}") from None
    return tuple(str(item) for item in value)


def _cron(value: Any) -> str:
    from apscheduler.triggers.cron import CronTrigger

    CronTrigger.from_crontab(_text(value))  # raises ValueError on a bad expression
    return value


def _read_fetch(path: Path, data: Any) -> FetchConfig:
    r = _Reader(path, "fetch", data)
    r.reject_unknown({"timeout", "max_bytes", "user_agent", "allow_networks",
                      "per_host_concurrency", "per_host_delay", "max_redirects",
                      "respect_robots"})
    d = FetchConfig()
    concurrency = r.get("per_host_concurrency", _positive_int, d.per_host_concurrency)
    if concurrency < 1:
        raise ConfigError(path, "fetch.per_host_concurrency", "must be at least 1")
    return FetchConfig(
        timeout=r.get("timeout", parse_duration, d.timeout),
        max_bytes=r.get("max_bytes", _positive_int, d.max_bytes),
        user_agent=r.get("user_agent", _text, d.user_agent),
        allow_networks=r.get("allow_networks", _networks, d.allow_networks),
        per_host_concurrency=concurrency,
        per_host_delay=r.get("per_host_delay", parse_duration, d.per_host_delay),
        max_redirects=r.get("max_redirects", _positive_int, d.max_redirects),
        respect_robots=r.get("respect_robots", _boolean, d.respect_robots),
    )


def _read_schedule(path: Path, data: Any) -> ScheduleConfig:
    r = _Reader(path, "schedule", data)
    r.reject_unknown({"interval", "min_interval", "max_interval", "max_backoff",
                      "unconditional_every", "tick", "stop_grace", "dead_after",
                      "fetch_log_days"})
    d = ScheduleConfig()
    config = ScheduleConfig(
        interval=r.get("interval", parse_duration, d.interval),
        min_interval=r.get("min_interval", parse_duration, d.min_interval),
        max_interval=r.get("max_interval", parse_duration, d.max_interval),
        max_backoff=r.get("max_backoff", parse_duration, d.max_backoff),
        unconditional_every=r.get("unconditional_every", parse_duration, d.unconditional_every),
        tick=r.get("tick", parse_duration, d.tick),
        stop_grace=r.get("stop_grace", parse_duration, d.stop_grace),
        dead_after=r.get("dead_after", _positive_int, d.dead_after),
        fetch_log_days=r.get("fetch_log_days", _positive_int, d.fetch_log_days),
    )
    # An interval the bounds would silently override is refused, naming both keys.
    if not config.min_interval <= config.interval <= config.max_interval:
        raise ConfigError(path, "schedule.interval",
                          f"{config.interval:g}s is outside schedule.min_interval "
                          f"({config.min_interval:g}s) .. schedule.max_interval "
                          f"({config.max_interval:g}s): change one of them")
    if config.dead_after < 1:
        raise ConfigError(path, "schedule.dead_after", "must be at least 1")
    return config


def _read_extract(path: Path, data: Any) -> ExtractConfig:
    r = _Reader(path, "extract", data)
    r.reject_unknown({"workers", "timeout", "max_tasks_per_worker", "max_entries_per_poll"})
    d = ExtractConfig()
    return ExtractConfig(
        workers=r.get("workers", _positive_int, d.workers),
        timeout=r.get("timeout", parse_duration, d.timeout),
        max_tasks_per_worker=r.get("max_tasks_per_worker", _positive_int,
                                   d.max_tasks_per_worker),
        max_entries_per_poll=r.get("max_entries_per_poll", _positive_int,
                                   d.max_entries_per_poll),
    )


def _read_dedupe(path: Path, data: Any) -> DedupeConfig:
    r = _Reader(path, "dedupe", data)
    r.reject_unknown({"band_window_days", "threshold", "related_threshold", "agencies"})
    d = DedupeConfig()
    threshold = r.get("threshold", _fraction, d.threshold)
    related = r.get("related_threshold", _fraction, d.related_threshold)
    if related > threshold:
        raise ConfigError(path, "dedupe.related_threshold",
                          f"must not exceed dedupe.threshold ({threshold})")
    return DedupeConfig(
        band_window_days=r.get("band_window_days", _positive_int, d.band_window_days),
        threshold=threshold,
        related_threshold=related,
        agencies=r.get("agencies", _names, d.agencies),
    )


def _fraction(value: Any) -> float:
    number = _positive_number(value)
    if number > 1:
        raise ValueError(f"must be between 0 and 1, got {value!r}")
    return number


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of site names or hosts")
    return tuple(_text(item).strip() for item in value)


def _read_metrics(path: Path, data: Any) -> MetricsConfig | None:
    if data is None or data is False:
        return None
    r = _Reader(path, "metrics", {} if data is True else data)
    r.reject_unknown({"port", "host"})
    d = MetricsConfig()
    port = r.get("port", _positive_int, d.port)
    if port > 65535:
        raise ConfigError(path, "metrics.port", f"not a TCP port: {port}")
    host = r.get("host", _text, d.host)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(path, "metrics.host", f"must be an IP address, got {host!r}") from None
    return MetricsConfig(port=port, host=host)


def _read_feeds(path: Path, data: Any) -> tuple[FeedConfig, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(path, "feeds", "must be a list of feeds")
    feeds: list[FeedConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        prefix = f"feeds[{i}]"
        if isinstance(item, str):
            item = {"url": item}
        r = _Reader(path, prefix, item)
        r.reject_unknown({"url", "name", "interval", "cron"})
        if "url" not in r.data:
            raise ConfigError(path, f"{prefix}.url", "missing")
        url = r.get("url", check_feed_url, None)
        if url in seen:
            raise ConfigError(path, f"{prefix}.url", f"duplicate feed {url!r}")
        seen.add(url)
        feeds.append(FeedConfig(
            url=url,
            name=r.get("name", _text, None),
            interval=r.get("interval", parse_duration, None),
            cron=r.get("cron", _cron, None),
        ))
    return tuple(feeds)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError naming the key on any problem."""
    path = resolve_config_path(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "(file)", f"cannot read: {exc}") from None
    try:
        raw = yaml.load(raw_text, Loader=_YAML_LOADER)  # a safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(path, "(file)", f"invalid YAML: {exc}") from None
    top = _Reader(path, "", raw)
    top.reject_unknown({"database", "fetch", "schedule", "extract", "dedupe", "feeds", "opml",
                        "metrics"})
    base = path.resolve().parent
    database = top.get("database", _text, None)
    if database is None:
        raise ConfigError(path, "database", "missing")
    feeds = list(_read_feeds(path, raw.get("feeds")))
    opml = top.get("opml", _text, None)
    if opml is not None:
        feeds.extend(_feeds_from_opml(path, base / opml, {f.url for f in feeds}))
    if not feeds:
        raise ConfigError(path, "feeds", "no feeds configured")
    return Config(
        path=path.resolve(),
        database=(base / database).resolve() if database != ":memory:" else Path(database),
        feeds=tuple(feeds),
        fetch=_read_fetch(path, raw.get("fetch")),
        schedule=_read_schedule(path, raw.get("schedule")),
        extract=_read_extract(path, raw.get("extract")),
        dedupe=_read_dedupe(path, raw.get("dedupe")),
        metrics=_read_metrics(path, raw.get("metrics")),
    )


def _feeds_from_opml(path: Path, opml_path: Path, known: set[str]) -> list[FeedConfig]:
    try:
        outlines = read_opml(opml_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(path, "opml", f"cannot read {opml_path}: {exc}") from None
    return [FeedConfig(url=o.url, name=o.title) for o in outlines if o.url not in known]
