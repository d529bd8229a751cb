"""Load and validate the YAML configuration.

Every error names the file, the key and the problem, so a typo in a cron-driven config is
found from the log line alone. Nothing here touches the network or the database.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pipeline.errors import ConfigError
from pipeline.messages import EXTRACT_TIMEOUT, MAX_BYTES, ExtractRules, FeedSettings
from pipeline.opml import read_opml
from pipeline.values import check_feed_url, url_scope

DEFAULT_CONFIG = Path("config/newswire.yaml")
# libyaml's safe loader when PyYAML has it: the pure-Python one takes a second per 5,000
# feeds, and every command reads the config.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_USER_AGENT = "newswire/0.1 (+https://example.org/newswire)"


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 20.0
    max_bytes: int = MAX_BYTES
    user_agent: str = DEFAULT_USER_AGENT
    allow_networks: tuple[str, ...] = ()
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    max_redirects: int = 5
    respect_robots: bool = True


MIN_TICK = 0.5  # seconds: a tighter loop only spends CPU on the due-feeds query


@dataclass(frozen=True)
class ScheduleConfig:
    interval: float = 900.0
    min_interval: float = 300.0
    max_interval: float = 86_400.0
    max_backoff: float = 86_400.0
    unconditional_every: float = 86_400.0
    tick: float = 5.0  # how often the daemon looks for due feeds; at least MIN_TICK
    stop_grace: float = 60.0  # the daemon's time to finish in-flight polls on SIGTERM
    dead_after: int = 5  # failures in a row after which a feed counts as dead (still probed)
    fetch_log_days: int = 30  # raw fetch-log rows kept; older polls live on as daily totals


@dataclass(frozen=True)
class ExtractConfig:
    workers: int = 0  # 0 = one per CPU
    timeout: float = EXTRACT_TIMEOUT
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
    # Verification (pipeline.verify): the share of the shorter body aligned, in order, with
    # the other for a near duplicate (a copy), and for a "related" edge.
    threshold: float = 0.6
    related_threshold: float = 0.3
    agencies: tuple[str, ...] = DEFAULT_AGENCIES


@dataclass(frozen=True)
class ArchiveConfig:
    """The WARC archive of fetched pages and parsed feeds (pipeline.archive)."""

    enabled: bool = True
    dir: Path = Path("archive")  # resolved: beside the database unless the config says
    max_file_bytes: int = 1_000_000_000  # a file is closed at this size (and each UTC day)


@dataclass(frozen=True)
class EngineConfig:
    """Where the stages run: `local` (this process and its worker pool) or `celery` (workers
    anywhere, through a Redis broker; pipeline.celery_engine)."""

    kind: str = "local"
    broker: str = "redis://127.0.0.1:6379/0"
    result_backend: str | None = None  # default: the broker
    result_expires: float = 3600.0  # results never read (a coordinator that died) go then
    feed_queue: str = "newswire.feeds"
    page_queue: str = "newswire.pages"
    task_timeout: float = 600.0  # a task's result later than this is lost: it is sent again
    task_retries: int = 2  # ... this many times, then the run stops (EngineError)
    visibility_timeout: float = 3600.0  # unacknowledged tasks return to the queue after it
    worker_wait: float = 10.0  # how long the coordinator waits for a worker to answer
    max_in_flight: int = 64  # page tasks sent and not yet returned, per coordinator


@dataclass(frozen=True)
class MetricsConfig:
    """The daemon's Prometheus endpoint; absent from the config means no endpoint."""

    port: int = 9464
    host: str = "127.0.0.1"


FILTER_FIELDS = ("title", "url", "text", "author", "language")


@dataclass(frozen=True)
class FilterRule:
    """One keep or block rule: a regular expression searched in one field of an entry
    (case-insensitive unless `case_sensitive`). See pipeline.filters."""

    field: str
    pattern: str
    case_sensitive: bool = False


@dataclass(frozen=True)
class Filters:
    keep: tuple[FilterRule, ...] = ()
    block: tuple[FilterRule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keep or self.block)


@dataclass(frozen=True)
class AuthConfig:
    """HTTP basic auth: the password is read from the environment variable `password_env`
    when a request is made, never written anywhere by newswire."""

    username: str
    password_env: str


@dataclass(frozen=True)
class FeedConfig:
    url: str
    name: str | None = None
    interval: float | None = None
    cron: str | None = None
    user_agent: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    auth: AuthConfig | None = None
    proxy: str | None = None
    fetch_pages: bool = True
    rules: ExtractRules | None = None
    filters: Filters = field(default_factory=Filters)

    def settings(self) -> FeedSettings:
        """The feed's fetching settings, as the message the fetcher receives."""
        return FeedSettings(
            user_agent=self.user_agent, headers=self.headers,
            auth_username=self.auth.username if self.auth else None,
            auth_password_env=self.auth.password_env if self.auth else None,
            proxy=self.proxy, fetch_pages=self.fetch_pages,
            scope=url_scope(self.url))

    @property
    def changes_pages(self) -> bool:
        """Whether its pages are fetched or extracted differently from the defaults."""
        return bool(self.user_agent or self.headers or self.auth or self.proxy
                    or not self.fetch_pages or self.rules)

    @property
    def has_settings(self) -> bool:
        """Whether anything besides url, name and schedule is set."""
        return self.changes_pages or bool(self.filters)


@dataclass(frozen=True)
class RefusedFeed:
    """A feed's line of the config that does not read (an unknown key, a bad value): the
    other feeds run, and this one, when its URL reads, is kept in the database unpolled,
    its health `misconfigured` and the error shown, until the line is fixed."""

    key: str  # where: feeds[3].interval, opml (https://...)
    problem: str
    url: str | None  # the feed it names, when its URL reads and no good line lists it

    @property
    def error(self) -> str:
        return f"config {self.key}: {self.problem}"


@dataclass(frozen=True)
class SiteConfig:
    host: str  # lower case, without `www.`
    rules: ExtractRules


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
    engine: EngineConfig = field(default_factory=EngineConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    filters: Filters = field(default_factory=Filters)  # global: applied to every feed
    sites: tuple[SiteConfig, ...] = ()
    refused: tuple[RefusedFeed, ...] = ()  # feed lines that do not read
    opml: Path | None = None  # the OPML file the feeds were also read from

    @property
    def files(self) -> tuple[Path, ...]:
        """The files this config was read from (a daemon reads them again on change)."""
        return (self.path,) if self.opml is None else (self.path, self.opml)

    @cached_property
    def _feeds_by_url(self) -> dict[str, FeedConfig]:
        return {feed.url: feed for feed in self.feeds}

    @property
    def refused_feeds(self) -> dict[str, str]:
        """The feeds whose config line does not read, by URL: the error each shows."""
        return {r.url: r.error for r in self.refused if r.url is not None}

    def feed_config(self, url: str | None) -> FeedConfig | None:
        """The config entry of the feed listed under this URL, if any."""
        return self._feeds_by_url.get(url) if url else None

    def feed_named(self, name: str) -> FeedConfig | None:
        """The feed with this name (or URL), ignoring case."""
        wanted = name.strip().casefold()
        return next((f for f in self.feeds if (f.name or "").casefold() == wanted
                     or f.url == name.strip()), None)

    def rules_for(self, feed: FeedConfig | None, page_url: str) -> ExtractRules | None:
        """The extraction rules for a page: its feed's own, else its site's."""
        if feed is not None and feed.rules is not None:
            return feed.rules
        try:
            host = (urlsplit(page_url).hostname or "").lower().removeprefix("www.")
        except ValueError:
            return None
        return next((s.rules for s in self.sites if s.host == host), None)


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
    if config.tick < MIN_TICK:
        raise ConfigError(path, "schedule.tick", f"must be at least {MIN_TICK:g}s")
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


def _read_archive(path: Path, data: Any, base: Path, database: Path) -> ArchiveConfig:
    r = _Reader(path, "archive", data)
    r.reject_unknown({"enabled", "dir", "max_file_bytes"})
    d = ArchiveConfig()
    directory = r.get("dir", _text, None)
    size = r.get("max_file_bytes", _positive_int, d.max_file_bytes)
    if size < 1_000_000:
        raise ConfigError(path, "archive.max_file_bytes", "must be at least 1000000")
    return ArchiveConfig(
        enabled=r.get("enabled", _boolean, d.enabled),
        dir=(base / directory).resolve() if directory else database.parent / "archive",
        max_file_bytes=size)


def _read_engine(path: Path, data: Any) -> EngineConfig:
    r = _Reader(path, "engine", data)
    r.reject_unknown({"kind", "broker", "result_backend", "result_expires", "feed_queue",
                      "page_queue", "task_timeout", "task_retries", "visibility_timeout",
                      "worker_wait", "max_in_flight"})
    d = EngineConfig()
    kind = r.get("kind", _text, d.kind)
    if kind not in ("local", "celery"):
        raise ConfigError(path, "engine.kind", f"must be local or celery, got {kind!r}")
    config = EngineConfig(
        kind=kind,
        broker=r.get("broker", _redis_url, d.broker),
        result_backend=r.get("result_backend", _redis_url, d.result_backend),
        result_expires=r.get("result_expires", parse_duration, d.result_expires),
        feed_queue=r.get("feed_queue", _text, d.feed_queue),
        page_queue=r.get("page_queue", _text, d.page_queue),
        task_timeout=r.get("task_timeout", parse_duration, d.task_timeout),
        task_retries=r.get("task_retries", _positive_int, d.task_retries),
        visibility_timeout=r.get("visibility_timeout", parse_duration, d.visibility_timeout),
        worker_wait=r.get("worker_wait", parse_duration, d.worker_wait),
        max_in_flight=r.get("max_in_flight", _positive_int, d.max_in_flight),
    )
    if config.max_in_flight < 1:
        raise ConfigError(path, "engine.max_in_flight", "must be at least 1")
    if config.visibility_timeout <= config.task_timeout:
        # A task still running when its message reappears in the queue would run twice.
        raise ConfigError(path, "engine.visibility_timeout",
                          f"must exceed engine.task_timeout ({config.task_timeout:g}s)")
    return config


def _redis_url(value: Any) -> str:
    text = _text(value).strip()
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"must be a redis:// URL, got {text!r}")
    return text


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


FEED_KEYS = {"url", "name", "interval", "cron", "user_agent", "headers", "auth", "proxy",
             "fetch_pages", "rules", "filters"}


def _read_feeds(path: Path, data: Any) -> tuple[list[FeedConfig], list[RefusedFeed]]:
    if data is None:
        return [], []
    if not isinstance(data, list):
        raise ConfigError(path, "feeds", "must be a list of feeds")
    return _read_lines(path, [(f"feeds[{i}]", item) for i, item in enumerate(data)])


def _read_lines(path: Path, lines: list[tuple[str, Any]]
                ) -> tuple[list[FeedConfig], list[RefusedFeed]]:
    """Feed lines (where each is, what it holds) read one by one: a line that does not
    read is refused on its own, never the whole config (one broken feed must not stop the
    others), and names its feed when its URL reads."""
    feeds: list[FeedConfig] = []
    refused: list[RefusedFeed] = []
    seen: set[str] = set()
    for prefix, item in lines:
        try:
            feed = read_feed(path, prefix, item)
        except ConfigError as exc:
            refused.append(RefusedFeed(exc.key, exc.problem, _line_url(item)))
            continue
        if feed.url in seen:
            refused.append(RefusedFeed(f"{prefix}.url", f"duplicate feed {feed.url!r}", None))
            continue
        seen.add(feed.url)
        feeds.append(feed)
    return feeds, refused


def _line_url(item: Any) -> str | None:
    """The URL a feed line gives, if it reads (the line's other keys may not)."""
    url = item.get("url") if isinstance(item, dict) else item
    try:
        return check_feed_url(url)
    except ValueError:
        return None


def read_feed(path: Path | str, prefix: str, item: Any) -> FeedConfig:
    """One feed's entry (a URL, or a mapping in the config's shape), validated; errors
    name `prefix` and the key. `newswire add` and `import-opml` read their settings here too."""
    path = Path(path)
    if isinstance(item, str):
        item = {"url": item}
    r = _Reader(path, prefix, item)
    r.reject_unknown(FEED_KEYS)
    if "url" not in r.data:
        raise ConfigError(path, r.key("url"), "missing")
    url = r.get("url", check_feed_url, None)
    name = r.get("name", _text, None)
    return FeedConfig(
        url=url,
        name=name,
        interval=r.get("interval", parse_duration, None),
        cron=r.get("cron", _cron, None),
        user_agent=r.get("user_agent", header_value, None),
        headers=r.get("headers", extra_headers, ()),
        auth=_read_auth(path, r.key("auth"), r.data.get("auth")),
        proxy=r.get("proxy", proxy_url, None),
        fetch_pages=r.get("fetch_pages", _boolean, True),
        rules=read_rules(path, r.key("rules"), r.data.get("rules"), f"feed {name or url}"),
        filters=read_filters(path, r.key("filters"), r.data.get("filters")),
    )


def feed_item(feed: FeedConfig, secrets: bool = True) -> dict[str, Any]:
    """A feed's config entry as written in the config file (what `read_feed` reads back).
    Without `secrets`, what may leave the machine (an OPML export): no headers (cookies),
    auth or proxy."""
    item: dict[str, Any] = {"url": feed.url}
    if feed.name:
        item["name"] = feed.name
    if feed.interval is not None:
        item["interval"] = f"{feed.interval:g}s"
    if feed.cron:
        item["cron"] = feed.cron
    if feed.user_agent:
        item["user_agent"] = feed.user_agent
    if secrets and feed.headers:
        item["headers"] = dict(feed.headers)
    if secrets and feed.auth:
        item["auth"] = {"username": feed.auth.username, "password_env": feed.auth.password_env}
    if secrets and feed.proxy:
        item["proxy"] = feed.proxy
    if not feed.fetch_pages:
        item["fetch_pages"] = False
    if feed.rules:
        item["rules"] = rules_item(feed.rules)
    if feed.filters:
        item["filters"] = filters_item(feed.filters)
    return item


def rules_item(rules: ExtractRules) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if rules.body:
        item["body"] = rules.body
    if rules.remove:
        item["remove"] = list(rules.remove)
    return item


def filters_item(filters: Filters) -> dict[str, Any]:
    def rule(r: FilterRule) -> dict[str, Any]:
        return {"field": r.field, "pattern": r.pattern,
                **({"case_sensitive": True} if r.case_sensitive else {})}
    return {kind: [rule(r) for r in getattr(filters, kind)]
            for kind in ("keep", "block") if getattr(filters, kind)}


# --- per-feed settings -----------------------------------------------------------------------

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Headers the fetcher owns (framing, conditional GET, decoding) or another key sets.
_OWN_HEADERS = {
    "host": "set by the URL", "content-length": "set by the request",
    "transfer-encoding": "set by the request", "connection": "hop-by-hop",
    "keep-alive": "hop-by-hop", "te": "hop-by-hop", "trailer": "hop-by-hop",
    "upgrade": "hop-by-hop", "proxy-connection": "hop-by-hop",
    "proxy-authorization": "not supported", "accept-encoding": "newswire decodes bodies itself",
    "if-none-match": "newswire sends the validators itself",
    "if-modified-since": "newswire sends the validators itself",
    "user-agent": "use the feed's user_agent key",
    "authorization": "use the feed's auth key (username and password_env)",
}


def header_value(value: Any) -> str:
    """A header value: one line of text, no control characters."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be a string, got {value!r}")
    text = str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    if not text.isascii() or any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in text):
        raise ValueError("must be one line of ASCII text without control characters")
    return text.strip()


def header_name(name: Any) -> str:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ValueError(f"not an HTTP header name: {name!r}")
    reason = _OWN_HEADERS.get(name.lower())
    if reason:
        raise ValueError(f"header {name!r} cannot be set here: {reason}")
    return name


def extra_headers(value: Any) -> tuple[tuple[str, str], ...]:
    """A mapping of extra request headers (`{Cookie: "consent=yes"}`)."""
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of header names to values, e.g. "
                         "{Cookie: \"consent=yes\"}")
    headers: list[tuple[str, str]] = []
    for name, item in value.items():
        try:
            headers.append((header_name(name), header_value(item)))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return tuple(headers)


def env_name(value: Any) -> str:
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ValueError(f"must be the name of an environment variable (letters, digits "
                         f"and _), got {value!r}")
    return value


def _username(value: Any) -> str:
    text = header_value(value)
    if ":" in text:
        raise ValueError("a basic-auth username cannot contain ':'")
    return text


def _read_auth(path: Path, prefix: str, data: Any) -> AuthConfig | None:
    if data is None:
        return None
    r = _Reader(path, prefix, data)
    if "password" in r.data:
        raise ConfigError(path, f"{prefix}.password", "passwords are not kept in the config: "
                          "put it in an environment variable and name that variable in "
                          f"{prefix}.password_env")
    r.reject_unknown({"username", "password_env"})
    for key in ("username", "password_env"):
        if r.data.get(key) is None:
            raise ConfigError(path, f"{prefix}.{key}", "missing")
    return AuthConfig(username=r.get("username", _username, None),
                      password_env=r.get("password_env", env_name, None))


def proxy_url(value: Any) -> str:
    """An http(s) proxy URL: scheme, host and port only (no credentials, no path)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a proxy URL such as http://proxy.example:3128, got "
                         f"{value!r}")
    text = value.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"not a proxy URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// proxy URL with a host, got {text!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the proxy URL are not supported (they would sit in "
                         "the config file)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a proxy URL has no path or query, got {text!r}")
    return text


def css_selector(value: Any) -> str:
    """A CSS selector that lxml can apply (cssselect's syntax, with :contains() etc.)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a CSS selector, got {value!r}")
    from cssselect import HTMLTranslator, SelectorError

    try:
        HTMLTranslator().css_to_xpath(value.strip())
    except SelectorError as exc:
        raise ValueError(f"not a CSS selector {value.strip()!r}: {exc}") from None
    return value.strip()


def _selectors(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("must be a CSS selector or a list of them")
    return tuple(css_selector(item) for item in items)


def read_rules(path: Path, prefix: str, data: Any, origin: str) -> ExtractRules | None:
    """`{body: SELECTOR, remove: [SELECTOR, ...]}`."""
    if data is None:
        return None
    r = _Reader(path, prefix, data)
    r.reject_unknown({"body", "remove"})
    rules = ExtractRules(body=r.get("body", css_selector, None),
                         remove=r.get("remove", _selectors, ()), origin=origin)
    if rules.body is None and not rules.remove:
        raise ConfigError(path, prefix, "needs `body` (a CSS selector) or `remove` (a list)")
    return rules


def filter_rule(value: Any) -> FilterRule:
    """`{field: title|url|text|author|language, pattern: REGEX, case_sensitive: false}`."""
    if not isinstance(value, dict):
        raise ValueError("each rule is a mapping: {field: title, pattern: \"...\"}")
    unknown = set(value) - {"field", "pattern", "case_sensitive"}
    if unknown:
        raise ValueError(f"unknown key {sorted(map(str, unknown))[0]!r} (use field, pattern, "
                         "case_sensitive)")
    field_name = value.get("field")
    if field_name not in FILTER_FIELDS:
        raise ValueError(f"field must be one of {', '.join(FILTER_FIELDS)}, got "
                         f"{field_name!r}")
    pattern = value.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a regular expression, got {pattern!r}")
    case_sensitive = value.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise ValueError(f"case_sensitive must be true or false, got {case_sensitive!r}")
    try:
        re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
    return FilterRule(field_name, pattern, case_sensitive)


def read_filters(path: Path, prefix: str, data: Any) -> Filters:
    """`{keep: [RULE, ...], block: [RULE, ...]}`."""
    if data is None:
        return Filters()
    r = _Reader(path, prefix, data)
    r.reject_unknown({"keep", "block"})
    lists: dict[str, tuple[FilterRule, ...]] = {}
    for kind in ("keep", "block"):
        items = r.data.get(kind) or []
        if not isinstance(items, list):
            raise ConfigError(path, f"{prefix}.{kind}", "must be a list of rules")
        rules = []
        for i, item in enumerate(items):
            try:
                rules.append(filter_rule(item))
            except ValueError as exc:
                raise ConfigError(path, f"{prefix}.{kind}[{i}]", str(exc)) from None
        lists[kind] = tuple(rules)
    return Filters(keep=lists["keep"], block=lists["block"])


_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _read_sites(path: Path, data: Any) -> tuple[SiteConfig, ...]:
    """`sites: {HOST: {rules: {...}}}`: extraction rules for every page of a site."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ConfigError(path, "sites", "must be a mapping of host names to settings")
    sites: list[SiteConfig] = []
    for host, settings in data.items():
        prefix = f"sites.{host}"
        name = str(host).strip().lower()
        if not _HOST.match(name):
            raise ConfigError(path, prefix, "must be a host name such as example.org (no "
                              "scheme, port or path)")
        r = _Reader(path, prefix, settings)
        r.reject_unknown({"rules"})
        rules = read_rules(path, f"{prefix}.rules", r.data.get("rules"),
                           f"site {name.removeprefix('www.')}")
        if rules is None:
            raise ConfigError(path, f"{prefix}.rules", "missing")
        sites.append(SiteConfig(name.removeprefix("www."), rules))
    return tuple(sites)


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
                        "metrics", "engine", "archive", "filters", "sites"})
    base = path.resolve().parent
    database = top.get("database", _text, None)
    if database is None:
        raise ConfigError(path, "database", "missing")
    feeds, refused = _read_feeds(path, raw.get("feeds"))
    opml = top.get("opml", _text, None)
    opml_path = (base / opml).resolve() if opml is not None else None
    if opml_path is not None:
        more, refused_more = _feeds_from_opml(path, opml_path, {f.url for f in feeds})
        feeds += more
        refused += refused_more
    if not feeds:
        if refused:  # nothing would run: the first broken line is the run's error
            raise ConfigError(path, refused[0].key, refused[0].problem)
        raise ConfigError(path, "feeds", "no feeds configured")
    # A URL that a line which reads lists too (in the feeds or the OPML file) names that
    # line's feed, which runs: the broken line is only reported.
    listed = {feed.url for feed in feeds}
    refused = [r if r.url not in listed else RefusedFeed(r.key, r.problem, None)
               for r in refused]
    database_path = (base / database).resolve() if database != ":memory:" else Path(database)
    return Config(
        path=path.resolve(),
        database=database_path,
        feeds=tuple(feeds),
        fetch=_read_fetch(path, raw.get("fetch")),
        schedule=_read_schedule(path, raw.get("schedule")),
        extract=_read_extract(path, raw.get("extract")),
        dedupe=_read_dedupe(path, raw.get("dedupe")),
        metrics=_read_metrics(path, raw.get("metrics")),
        engine=_read_engine(path, raw.get("engine")),
        archive=_read_archive(path, raw.get("archive"), base, database_path),
        filters=read_filters(path, "filters", raw.get("filters")),
        sites=_read_sites(path, raw.get("sites")),
        refused=tuple(refused),
        opml=opml_path,
    )


# What a running daemon keeps until it restarts: it opened the database and the archive and
# built its fetcher, worker pool, engine and metrics endpoint with these, and its store
# holds the near-duplicate settings. Everything else (the feeds and their settings, filters,
# sites' rules, the schedule, the extraction's limits) applies from the next poll.
RESTART_TO_APPLY = ("database", "fetch", "dedupe", "metrics", "engine", "archive",
                    "extract.workers", "extract.max_tasks_per_worker")


def reloaded(running: Config, new: Config) -> tuple[Config, tuple[str, ...]]:
    """`new` as a running daemon can take it: the RESTART_TO_APPLY settings as `running`
    has them. Also returns which of those `new` would change (they wait for a restart)."""
    kept, waiting = new, []
    for key in RESTART_TO_APPLY:
        section, _, name = key.partition(".")
        old, wanted = getattr(running, section), getattr(kept, section)
        if name:
            if getattr(old, name) != getattr(wanted, name):
                waiting.append(key)
                kept = replace(kept, **{section: replace(wanted, **{name: getattr(old, name)})})
        elif old != wanted:
            waiting.append(key)
            kept = replace(kept, **{section: old})
    return kept, tuple(waiting)


class ConfigWatch:
    """Whether a config's files (the YAML file and its OPML file) changed on disk since the
    last look: their size, modification time or inode (an editor that writes a new file
    and renames it changes the inode). A file that is gone counts as a change."""

    def __init__(self, config: Config) -> None:
        self._files: tuple[Path, ...] = ()
        self._seen: tuple[tuple[int, int, int] | None, ...] = ()
        self.follow(config)

    def follow(self, config: Config) -> None:
        """Watch `config`'s files from now on. A file watched already keeps the look taken
        before `config` was read from it, so a write while it was read is seen next time;
        a new one (another OPML file) is looked at now."""
        seen = dict(zip(self._files, self._seen, strict=True))
        self._files = config.files
        self._seen = tuple(seen[path] if path in seen else self._look((path,))[0]
                           for path in self._files)

    def changed(self) -> bool:
        """True once per change of the files."""
        now = self._look(self._files)
        if now == self._seen:
            return False
        self._seen = now
        return True

    @staticmethod
    def _look(files: tuple[Path, ...]) -> tuple[tuple[int, int, int] | None, ...]:
        looks: list[tuple[int, int, int] | None] = []
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                looks.append(None)
            else:
                looks.append((stat.st_size, stat.st_mtime_ns, stat.st_ino))
        return tuple(looks)


def _feeds_from_opml(path: Path, opml_path: Path, known: set[str]
                     ) -> tuple[list[FeedConfig], list[RefusedFeed]]:
    try:
        outlines = read_opml(opml_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(path, "opml", f"cannot read {opml_path}: {exc}") from None
    return _read_lines(path, [(f"opml ({o.url})", {"url": o.url, "name": o.title,
                                                   **o.settings})
                              for o in outlines if o.url not in known])
