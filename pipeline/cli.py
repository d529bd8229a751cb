"""The `newswire` command: a thin shell over the library.

Exit codes: 0 success (including runs where some feeds failed: failures are recorded),
1 the command could not do its job (no feed found, unwritable directory or config file),
2 bad configuration or usage, 3 unusable database, 75 another instance holds the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import __version__
from pipeline.config import Config, FeedConfig, load_config, read_feed
from pipeline.errors import (
    ConfigEditError,
    ConfigError,
    DatabaseDamaged,
    DiscoveryError,
    EngineError,
    LockedError,
    MetricsError,
    StoreError,
)
from pipeline.logs import FORMATS, setup_logging
from pipeline.text import word_count
from pipeline.times import utc_from_iso

if TYPE_CHECKING:  # imported where used: most commands need few of them
    from rich.progress import Progress, TaskID

    from pipeline.messages import FeedState, PollResult
    from pipeline.store import Store

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3
EXIT_LOCKED = 75


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newswire", description="Feeds in, clean deduplicated article texts out.")
    parser.add_argument("--config", help="config file (default: $NEWSWIRE_CONFIG, "
                        "else config/newswire.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every poll")
    parser.add_argument("--log-format", choices=FORMATS, default="logfmt",
                        help="log lines as logfmt key=value pairs (default) or JSON")
    parser.add_argument("--version", action="version", version=f"newswire {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    once = sub.add_parser("once", help="poll the due feeds once and exit")
    once.add_argument("--all", action="store_true", help="poll every feed, due or not")
    once.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    sub.add_parser("daemon", help="run forever on the schedule")
    sub.add_parser("status", help="one line per feed: health, polls, failures, articles")

    add = sub.add_parser("add", help="add a feed (a web page is searched for its feed)")
    add.add_argument("url", help="a feed URL, or a web page that links to its feed")
    add.add_argument("--name", help="the feed's name (default: the feed's own title)")
    add.add_argument("--no-config", action="store_true",
                     help="add to the database only, not to the config file's feed list")
    _feed_settings_options(add)

    reindex = sub.add_parser("reindex", help="rebuild the near-duplicate index (bands and "
                             "anchors) for dedupe.band_window_days from the stored "
                             "signatures, computing those the window lacks from the texts")
    reindex.add_argument("--from-text", action="store_true",
                         help="first recompute every signature in the window, its figures "
                              "and anchors from the stored texts")

    opml_in = sub.add_parser("import-opml", help="add the feeds of an OPML file")
    opml_in.add_argument("file")
    opml_in.add_argument("--no-config", action="store_true",
                         help="add to the database only, not to the config file's feed list")
    _feed_settings_options(opml_in, " (for every feed of the file)")
    opml_out = sub.add_parser("export-opml", help="write the feed list as OPML 2.0")
    opml_out.add_argument("file", nargs="?", default="-", help="output file (default: stdout)")

    export = sub.add_parser("export", help="write the corpus as seed-format text, JSONL or "
                            "Parquet (with a manifest)")
    export.add_argument("dir", help="output directory (created if needed; nothing in it is "
                        "overwritten)")
    export.add_argument("--format", choices=("text", "jsonl", "warc", "parquet"),
                        default="text",
                        help="seed-format text files, one JSONL file, one WARC file of the "
                        "archived pages, or one Parquet file of every article with its "
                        "cluster labels (copies included) and a manifest beside it")
    export.add_argument("--since", type=_since, metavar="DATE",
                        help="only articles stored at or after DATE (YYYY-MM-DD or ISO time, UTC)")
    export.add_argument("--include-duplicates", action="store_true",
                        help="every article, not only each cluster's canonical one")
    export.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    imp = sub.add_parser("import", help="read seed-format text files into the corpus")
    imp.add_argument("dir")
    imp.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    again = sub.add_parser("reextract", help="extract the archived pages again: a changed "
                           "text becomes a new version of its article")
    again.add_argument("--since", type=_since, metavar="DATE",
                       help="only articles stored at or after DATE")
    again.add_argument("--site", metavar="HOST", help="only pages of HOST and its subdomains")
    again.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    backfill = sub.add_parser("backfill", help="ingest from WARC files (CC-NEWS layout) or a "
                              "news sitemap through the same stages")
    source = backfill.add_mutually_exclusive_group(required=True)
    source.add_argument("--warc", nargs="+", metavar="PATH_OR_URL",
                        help="WARC or WARC.gz files: local paths or http(s) URLs")
    source.add_argument("--sitemap", metavar="URL",
                        help="a sitemap, news sitemap or sitemap index")
    backfill.add_argument("--site", metavar="HOST", help="only pages of HOST and subdomains")
    backfill.add_argument("--since", type=_since, metavar="DATE",
                          help="only pages fetched (WARC) or published (sitemap) from DATE")
    backfill.add_argument("--until", type=_since, metavar="DATE",
                          help="only pages fetched or published before DATE")
    backfill.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    worker = sub.add_parser("worker", help="a Celery worker for the fetch, parse, extract "
                            "and fingerprint stages (engine: celery); never opens the database")
    worker.add_argument("--concurrency", type=int, default=None,
                        help="worker processes (default: extract.workers, 0 = one per CPU)")
    worker.add_argument("--queues", default=None,
                        help="comma-separated queues to take tasks from (default: both)")

    sub.add_parser("repair", help="check the database; when damaged, copy everything "
                   "readable into a fresh file with rebuilt indexes (the old one is kept)")

    trial = sub.add_parser("try", help="fetch one page, apply a feed's rules and print what "
                           "would be stored (nothing is written)")
    trial.add_argument("url", help="an article page")
    trial.add_argument("--feed", metavar="NAME", help="use this feed's settings, rules and "
                       "filters (its name or URL in the config); default: the page's site "
                       "rules and the global filters")

    serve = sub.add_parser("serve", help="browse the corpus in Datasette (read-only)")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--host", default="127.0.0.1")
    return parser


def _feed_settings_options(parser: argparse.ArgumentParser, applies: str = "") -> None:
    """The per-feed settings as options (the config keys of the same names)."""
    group = parser.add_argument_group("feed settings" + applies)
    group.add_argument("--user-agent", metavar="UA", help="the feed's own User-Agent")
    group.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                       help="an extra request header to the feed's host (repeatable), "
                       "e.g. 'Cookie: consent=yes'")
    group.add_argument("--auth-user", metavar="NAME", help="HTTP basic auth user name ...")
    group.add_argument("--password-env", metavar="VARIABLE", help="... and the environment "
                       "variable holding the password (never the password itself)")
    group.add_argument("--proxy", metavar="URL", help="fetch this feed through an http(s) "
                       "proxy (still under the address guard)")
    group.add_argument("--no-fetch-pages", action="store_true", help="keep the feed's own "
                       "content: never fetch its article pages")
    group.add_argument("--body", metavar="SELECTOR", help="extraction rule: CSS selector of "
                       "the article body")
    group.add_argument("--remove", action="append", default=[], metavar="SELECTOR",
                       help="extraction rule: CSS selector of elements to remove (repeatable)")
    group.add_argument("--keep", action="append", default=[], metavar="FIELD=REGEX",
                       help="keep only entries whose FIELD (title, url, text, author, "
                       "language) matches (repeatable)")
    group.add_argument("--block", action="append", default=[], metavar="FIELD=REGEX",
                       help="filter out entries whose FIELD matches (repeatable)")


_OPTION_OF_KEY = {"user_agent": "--user-agent", "headers": "--header",
                  "auth": "--auth-user/--password-env", "proxy": "--proxy",
                  "rules": "--body/--remove", "filters": "--keep/--block"}


def _settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The per-feed settings given as options, in the config's shape (ValueError when an
    option is malformed; the values are validated by pipeline.config.read_feed)."""
    settings: dict[str, Any] = {}
    if args.user_agent:
        settings["user_agent"] = args.user_agent
    if args.header:
        headers = {}
        for header in args.header:
            name, colon, value = header.partition(":")
            if not colon:
                raise ValueError(f"--header: use 'NAME: VALUE', got {header!r}")
            headers[name.strip()] = value.strip()
        settings["headers"] = headers
    if args.auth_user or args.password_env:
        if not (args.auth_user and args.password_env):
            raise ValueError("--auth-user and --password-env go together")
        settings["auth"] = {"username": args.auth_user, "password_env": args.password_env}
    if args.proxy:
        settings["proxy"] = args.proxy
    if args.no_fetch_pages:
        settings["fetch_pages"] = False
    rules = {**({"body": args.body} if args.body else {}),
             **({"remove": args.remove} if args.remove else {})}
    if rules:
        settings["rules"] = rules
    lists: dict[str, list[dict[str, str]]] = {}
    for kind in ("keep", "block"):
        for rule in getattr(args, kind):
            field, equals, pattern = rule.partition("=")
            if not equals:
                raise ValueError(f"--{kind}: use FIELD=REGEX, got {rule!r}")
            lists.setdefault(kind, []).append({"field": field.strip(), "pattern": pattern})
    if lists:
        settings["filters"] = lists
    return settings


_NO_CONFIG_SETTINGS = ("newswire: a feed's settings (user agent, headers, auth, proxy, "
                       "rules, filters, fetch_pages) live in the config file: drop --no-config")


def _feed(url: str, name: str | None, settings: dict[str, Any]) -> FeedConfig:
    """A feed with its settings, validated as the config file's entries are (ConfigError
    naming the option)."""
    try:
        return read_feed("command line", "", {"url": url, "name": name, **settings})
    except ConfigError as exc:
        option = _OPTION_OF_KEY.get(exc.key.split(".")[0].split("[")[0], exc.key)
        raise ConfigError("command line", option, exc.problem) from None


def _since(value: str) -> str:
    """--since: a date or an ISO 8601 time (UTC unless it says otherwise), as stored times."""
    when = utc_from_iso(value.strip())
    if when is None:
        raise argparse.ArgumentTypeError(
            f"not a date: {value!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)")
    return when


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.INFO if (args.verbose or args.command == "daemon")
                  else logging.WARNING, args.log_format)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"newswire: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for refused in config.refused:  # the other feeds run; status shows these too
        unpolled = (f"{refused.url} is not polled until the line is fixed" if refused.url
                    else "the line is skipped")
        logging.getLogger("newswire").warning(
            "config error: %s: %s: %s; %s", config.path, refused.key, refused.problem,
            unpolled)
    handler = COMMANDS[args.command]
    from pipeline.store import is_damage

    try:
        return handler(config, args)
    except StoreError as exc:
        print(f"newswire: database error: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except LockedError as exc:
        print(f"newswire: {exc}; exiting", file=sys.stderr)
        return EXIT_LOCKED
    except EngineError as exc:
        print(f"newswire: engine error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if not is_damage(exc):  # a read found the file damaged: as a write would have
            raise
        print(f"newswire: database error: {DatabaseDamaged(config.database, str(exc))}",
              file=sys.stderr)
        return EXIT_DATABASE


def _open_store(config: Config, lock: bool = False, readonly: bool = False) -> Store:
    """The database: locked for the writing commands, read-only for the reading ones (which
    then never wait for a writer and work on a file the user can only read)."""
    from pipeline.store import Store

    store = Store.open(config.database, config.dedupe, readonly=readonly)
    if lock:
        try:
            store.acquire_lock()
        except Exception:
            store.close()
            raise
    return store


def cmd_once(config: Config, args: argparse.Namespace) -> int:
    from pipeline.run import run_once

    with _open_store(config, lock=True) as store:
        store.sync_config(config)
        due = len(store.due_feeds(config.schedule, include_all=args.all))
        with _progress("polling feeds", due, quiet=args.quiet) as bar:
            report = asyncio.run(run_once(config, store, include_all=args.all,
                                          progress=_feed_progress(bar) if bar else None))
    if not args.quiet:
        print(report.line())
        for url, error in report.errors[:20]:
            print(f"  failed: {url}: {error}")
    return 0


class _Bar:
    """A rich progress bar on stderr that can also print lines above itself."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task

    def advance(self, steps: int = 1) -> None:
        self.progress.advance(self.task, steps)

    def note(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)


@contextmanager
def _progress(description: str, total: int | None, quiet: bool = False) -> Iterator[_Bar | None]:
    """A progress bar for a long interactive run; None when quiet or when stderr is not a
    terminal (cron, systemd, pipes), so those runs print nothing but their results."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))


def _feed_progress(bar: _Bar) -> Callable[[FeedState, PollResult], None]:
    def show(feed: FeedState, result: PollResult) -> None:
        mark = "✗" if result.error else "✓"
        bar.note(f"{mark} {feed.name or feed.url}: {result.status or '-'} "
                 f"{result.new_entry_count} new" + (f" ({result.error})" if result.error else ""))
        bar.advance()
    return show


def cmd_daemon(config: Config, args: argparse.Namespace) -> int:
    from pipeline.daemon import run_daemon

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload before the daemon listens: nothing
    with _open_store(config, lock=True) as store:
        try:
            asyncio.run(run_daemon(config, store))
        except MetricsError as exc:
            print(f"newswire: config error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    return 0


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    from pipeline.feedlist import as_configured

    with _open_store(config, readonly=True) as store:
        rows = as_configured(store.status_rows(config.schedule.dead_after), config.feeds,
                             config.refused_feeds)
    now = datetime.now(UTC)
    header = ("id", "health", "feed", "last poll", "next poll", "schedule", "status",
              "failures", "articles", "last error")
    table = [header] + [
        (str(row["id"] or "-"), row["health"], row["name"][:50],
         row["last_polled_at"] or "never", _next_poll(row, now), _schedule(row),
         str(row["last_status"] or "-"), str(row["consecutive_failures"]),
         str(row["articles"]), " ".join((row["last_error"] or "").split())[:60])
        for row in rows]
    sys.stdout.write(_columns(table))
    return 0


def _columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns two spaces apart: plain text, which takes milliseconds
    for thousands of feeds (a rich table took seconds)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   + "\n" for row in rows)


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}" if seconds >= 10 * size or unit == "m" \
                else f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _next_poll(row: dict, now: datetime) -> str:
    """When the feed is polled next, relative to now, then the time itself."""
    from pipeline.schedule import Health
    from pipeline.times import parse_iso

    if row["gone"] or not row["active"] or row["health"] == Health.MISCONFIGURED:
        return "never"
    when = parse_iso(row["next_poll_at"])
    if when is None:
        return "-"
    delta = (when - now).total_seconds()
    relative = f"in {_duration(delta)}" if delta > 0 else "due now"
    return f"{relative} ({row['next_poll_at']})"


def _schedule(row: dict) -> str:
    """Why the next poll is when it is: cron, fixed interval, backoff, Retry-After, adaptive."""
    from pipeline.schedule import Health

    if row["gone"]:
        return "stopped (410 Gone)"
    if row["health"] == Health.MISCONFIGURED:
        return "not polled: fix its config line"
    failures = row["consecutive_failures"]
    if failures:
        return f"backoff after {failures} failure{'s' if failures > 1 else ''}"
    if row["health"] == Health.THROTTLED:
        return f"throttled ({row['last_status']} Retry-After)"
    if row["cron"]:
        return f"cron {row['cron']}"
    if row["interval_seconds"]:
        return f"every {_duration(row['interval_seconds'])} (fixed)"
    if row["current_interval"]:
        return f"every {_duration(row['current_interval'])} (adaptive)"
    return "-"


def cmd_add(config: Config, args: argparse.Namespace) -> int:
    from pipeline.feedlist import find_feed
    from pipeline.values import check_feed_url

    try:
        url = check_feed_url(args.url)
        settings = _settings_from_args(args)
        wanted = _feed(url, args.name, settings)
    except (ValueError, ConfigError) as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.no_config and wanted.has_settings:
        print(_NO_CONFIG_SETTINGS, file=sys.stderr)
        return EXIT_CONFIG
    try:
        found = asyncio.run(find_feed(config.fetch, url, settings=wanted.settings()))
    except DiscoveryError as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        return EXIT_FAILED
    feed = _feed(found.url, args.name or found.title, settings)
    print(f"found {found.url} ({feed.name or 'untitled'}) via {found.via}")
    return _add(config, [feed], args.no_config)


def _add(config: Config, feeds: list[FeedConfig], no_config: bool) -> int:
    from pipeline.feedlist import add_feeds

    with _open_store(config) as store:
        try:
            report = add_feeds(config, store, feeds, write_config=not no_config)
        except ConfigEditError as exc:
            print(f"newswire: {exc}; nothing was added (--no-config adds to the database "
                  "only)", file=sys.stderr)
            return EXIT_FAILED
    where = "the database" if no_config else str(config.path)
    for feed in report.added:
        print(f"added to {where}: {feed.url}")
    for feed in report.already:
        print(f"already listed: {feed.url}")
    return 0


def cmd_import_opml(config: Config, args: argparse.Namespace) -> int:
    from pipeline.opml import parse_opml

    try:
        document = parse_opml(Path(args.file).read_bytes())
    except (OSError, ValueError) as exc:
        print(f"newswire: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        common = _settings_from_args(args)
        _feed("https://example.org/", None, common)  # the options are checked once, up front
    except (ValueError, ConfigError) as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.no_config and common:
        print(_NO_CONFIG_SETTINGS, file=sys.stderr)
        return EXIT_CONFIG
    for text, reason in document.skipped:
        print(f"skipped: {text}: {reason}")
    feeds = []
    for outline in document.outlines:
        try:  # the file's own settings for the feed, then the options' for every feed
            feeds.append(read_feed(args.file, f"outline {outline.url}", {
                "url": outline.url, "name": outline.title, **outline.settings, **common}))
        except ConfigError as exc:
            print(f"skipped: {outline.title or outline.url}: {exc.key}: {exc.problem}")
    return _add(config, feeds, args.no_config)


def cmd_export_opml(config: Config, args: argparse.Namespace) -> int:
    from pipeline.config import feed_item
    from pipeline.feedlist import as_configured
    from pipeline.opml import Outline, write_opml

    with _open_store(config, readonly=True) as store:
        rows = [r for r in as_configured(store.feed_list(), config.feeds,
                                          config.refused_feeds) if r["active"]]

    def settings(row: dict[str, Any]) -> dict[str, Any]:
        """What OPML can hold of the feed's settings: never its headers, auth or proxy."""
        feed = config.feed_config(row.get("config_url"))
        if feed is None:
            return {}
        item = feed_item(feed, secrets=False)
        return {k: v for k, v in item.items() if k in ("user_agent", "fetch_pages", "rules",
                                                        "filters")}

    data = write_opml(Outline(url=r["url"], title=r["name"] or r["title"],
                              html_url=r["site_url"], settings=settings(r)) for r in rows)
    if args.file == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(args.file).write_bytes(data)
        print(f"wrote {len(rows)} feeds to {args.file}")
    return 0


def cmd_try(config: Config, args: argparse.Namespace) -> int:
    from pipeline.feedlist import try_page
    from pipeline.values import check_feed_url

    try:
        url = check_feed_url(args.url)
    except ValueError as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    feed = None
    if args.feed:
        feed = config.feed_named(args.feed)
        if feed is None:
            names = ", ".join(f.name or f.url for f in config.feeds[:10])
            print(f"newswire: no feed named {args.feed!r} in {config.path} (feeds: {names})",
                  file=sys.stderr)
            return EXIT_CONFIG
    trial = asyncio.run(try_page(config, url, feed))
    lines = [("url", trial.final_url if trial.final_url != url else url)]
    if feed is not None:
        lines.append(("feed", feed.name or feed.url))
        if not feed.fetch_pages:
            lines.append(("note", "this feed has fetch_pages: false: its pages are not "
                                  "fetched when it is polled"))
    lines.append(("rules", trial.rules.origin if trial.rules else "none (general extraction)"))
    article = trial.article
    if article is None:
        lines.append(("error", trial.error or "no page"))
        _print_fields(lines)
        return EXIT_FAILED
    if article.rules_note:
        lines.append(("applied", article.rules_note))
    lines += [("title", article.title), ("date", article.published_at or "-"),
              ("author", article.author or "-"), ("language", article.language or "-"),
              ("site", article.sitename or "-"),
              ("text", f"{word_count(article.text)} words from the {article.text_source}"
                       + (f" ({article.quality})" if article.quality else "")),
              ("filters", f"filtered: {trial.filtered_by}" if trial.filtered_by else "kept")]
    if trial.error:
        lines.append(("error", trial.error))
    _print_fields(lines)
    print()
    print(article.text)
    return 0 if article.text else EXIT_FAILED


def _print_fields(lines: list[tuple[str, str]]) -> None:
    for label, value in lines:
        print(f"{label + ':':<10}{value}")


def cmd_export(config: Config, args: argparse.Namespace) -> int:
    from pipeline.export import export_jsonl, export_parquet, export_text, export_warc

    # Parquet holds every article (analysts filter on `canonical` themselves).
    write: Any = {"text": export_text, "jsonl": export_jsonl,
                  "warc": partial(export_warc, archive_dir=config.archive.dir),
                  "parquet": lambda store, directory, include_duplicates, **rest:
                      export_parquet(store, directory, **rest)}[args.format]
    with _open_store(config, readonly=True) as store, \
            _progress("exporting", None, args.quiet) as bar:
        try:
            report = write(store, args.dir, since=args.since,
                           include_duplicates=args.include_duplicates,
                           progress=bar.advance if bar else None)
        except (OSError, ValueError) as exc:
            print(f"newswire: cannot export to {args.dir}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.quiet:
        return 0
    if args.format == "parquet":
        print(f"exported {report.written} articles to {report.first} (manifest beside it)")
    else:
        print(f"exported {report.written} articles to {args.dir} "
              f"({report.already_present} already there, {report.empty} without text)")
    return 0


def cmd_import(config: Config, args: argparse.Namespace) -> int:
    from pipeline.export import import_text

    with _open_store(config, lock=True) as store, \
            _progress("importing", None, args.quiet) as bar:
        try:
            report = asyncio.run(import_text(store, args.dir,
                                             progress=bar.advance if bar else None))
        except (OSError, ValueError) as exc:
            print(f"newswire: cannot import {args.dir}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if not args.quiet:
        print(f"{report.files} files: {report.new_articles} new articles "
              f"({report.exact_duplicates} exact and {report.near_duplicates} near "
              f"duplicates), {report.already_stored} already stored, "
              f"{len(report.errors)} unreadable")
    for name, problem in report.errors:
        print(f"  {name}: {problem}", file=sys.stderr)
    return 0


def cmd_reindex(config: Config, args: argparse.Namespace) -> int:
    import time

    started = time.monotonic()
    with _open_store(config, lock=True) as store:
        report = store.reindex(config.dedupe.band_window_days, from_text=args.from_text)
    window = f"last {report.window_days} days" if report.window_days else "no window"
    computed = (f"; {report.fingerprinted} signatures computed from text"
                if args.from_text or report.fingerprinted else "")
    print(f"reindexed {report.signatures} signatures ({window}) into {report.band_rows} band "
          f"rows and {report.anchor_rows} anchor rows{computed} "
          f"in {time.monotonic() - started:.1f}s")
    return 0


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    from pipeline.browse import serve

    with _open_store(config, readonly=True) as store:
        immutable = store.immutable  # exists, has this newswire's tables, can be read
    return serve(config.database, args.host, args.port, config.schedule.dead_after,
                 immutable=immutable)


def cmd_reextract(config: Config, args: argparse.Namespace) -> int:
    from pipeline.reextract import reextract

    with _open_store(config, lock=True) as store, \
            _progress("extracting again", None, args.quiet) as bar:
        report = asyncio.run(reextract(config, store, args.since, args.site,
                                       progress=bar.advance if bar else None))
    if not args.quiet:
        print(report.line())
    return 0


def cmd_backfill(config: Config, args: argparse.Namespace) -> int:
    from pipeline.backfill import Filters, backfill_sitemap, backfill_warc

    filters = Filters(site=args.site, since=args.since, until=args.until)
    with _open_store(config, lock=True) as store, \
            _progress("backfilling", None, args.quiet) as bar:
        advance = bar.advance if bar else None
        report = asyncio.run(backfill_warc(config, store, args.warc, filters, advance)
                             if args.warc else
                             backfill_sitemap(config, store, args.sitemap, filters, advance))
    if not args.quiet:
        print(report.line())
    for where, problem in report.errors[:20]:
        print(f"  {where}: {problem}", file=sys.stderr)
    return 0


def cmd_worker(config: Config, args: argparse.Namespace) -> int:
    from pipeline.worker import run_worker

    if config.engine.kind != "celery":
        print(f"newswire: {config.path}: engine.kind is {config.engine.kind!r}: a worker "
              "serves `engine: {kind: celery}` configs", file=sys.stderr)
        return EXIT_CONFIG
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    return run_worker(config, args.concurrency, queues)


def cmd_repair(config: Config, args: argparse.Namespace) -> int:
    from pipeline.store import repair

    report = repair(config.database, config.dedupe)
    print(report.line())
    return 0 if report.ok else EXIT_DATABASE


COMMANDS = {
    "once": cmd_once,
    "daemon": cmd_daemon,
    "status": cmd_status,
    "add": cmd_add,
    "import-opml": cmd_import_opml,
    "export-opml": cmd_export_opml,
    "export": cmd_export,
    "import": cmd_import,
    "reindex": cmd_reindex,
    "serve": cmd_serve,
    "repair": cmd_repair,
    "worker": cmd_worker,
    "reextract": cmd_reextract,
    "backfill": cmd_backfill,
    "try": cmd_try,
}
