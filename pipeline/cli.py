"""The `newswire` command: a thin shell over the library.

Exit codes: 0 success (including runs where some feeds failed: failures are recorded),
1 the command could not do its job (no feed found, unwritable directory or config file),
2 bad configuration or usage, 3 unusable database, 75 another instance holds the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__
from pipeline.config import Config, FeedConfig, load_config
from pipeline.errors import (
    ConfigEditError,
    ConfigError,
    DatabaseDamaged,
    DiscoveryError,
    LockedError,
    MetricsError,
    StoreError,
)
from pipeline.logs import FORMATS, setup_logging
from pipeline.times import iso

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

    reindex = sub.add_parser("reindex", help="rebuild the near-duplicate index from the "
                             "stored signatures (within dedupe.band_window_days)")
    reindex.add_argument("--from-text", action="store_true",
                         help="first recompute every signature from the stored texts")

    opml_in = sub.add_parser("import-opml", help="add the feeds of an OPML file")
    opml_in.add_argument("file")
    opml_in.add_argument("--no-config", action="store_true",
                         help="add to the database only, not to the config file's feed list")
    opml_out = sub.add_parser("export-opml", help="write the feed list as OPML 2.0")
    opml_out.add_argument("file", nargs="?", default="-", help="output file (default: stdout)")

    export = sub.add_parser("export", help="write the corpus as seed-format text, JSONL or "
                            "Parquet (with a manifest)")
    export.add_argument("dir", help="output directory (created if needed; nothing in it is "
                        "overwritten)")
    export.add_argument("--format", choices=("text", "jsonl", "parquet"), default="text",
                        help="parquet: every article with its cluster labels (copies "
                        "included), and a manifest beside it")
    export.add_argument("--since", type=_since, metavar="DATE",
                        help="only articles stored at or after DATE (YYYY-MM-DD or ISO time, UTC)")
    export.add_argument("--include-duplicates", action="store_true",
                        help="every article, not only each cluster's canonical one")
    export.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    imp = sub.add_parser("import", help="read seed-format text files into the corpus")
    imp.add_argument("dir")
    imp.add_argument("-q", "--quiet", action="store_true", help="no summary line")

    sub.add_parser("repair", help="check the database; when damaged, copy everything "
                   "readable into a fresh file with rebuilt indexes (the old one is kept)")

    serve = sub.add_parser("serve", help="browse the corpus in Datasette (read-only)")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--host", default="127.0.0.1")
    return parser


def _since(value: str) -> str:
    """--since: a date or an ISO 8601 time (UTC unless it says otherwise), as stored times."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {value!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)") from None
    return iso(when if when.tzinfo else when.replace(tzinfo=UTC))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.INFO if (args.verbose or args.command == "daemon")
                  else logging.WARNING, args.log_format)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"newswire: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
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
        store.sync_feeds(config.feeds)
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
        rows = as_configured(store.status_rows(config.schedule.dead_after), config.feeds)
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
    from pipeline.times import parse_iso

    if row["gone"] or not row["active"]:
        return "never"
    when = parse_iso(row["next_poll_at"])
    if when is None:
        return "-"
    delta = (when - now).total_seconds()
    relative = f"in {_duration(delta)}" if delta > 0 else "due now"
    return f"{relative} ({row['next_poll_at']})"


def _schedule(row: dict) -> str:
    """Why the next poll is when it is: cron, fixed interval, backoff, Retry-After, adaptive."""
    if row["gone"]:
        return "stopped (410 Gone)"
    failures = row["consecutive_failures"]
    if failures:
        return f"backoff after {failures} failure{'s' if failures > 1 else ''}"
    if row["health"] == "throttled":
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
    except ValueError as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        found = asyncio.run(find_feed(config.fetch, url))
    except DiscoveryError as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        return EXIT_FAILED
    feed = FeedConfig(url=found.url, name=args.name or found.title)
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
    for text, reason in document.skipped:
        print(f"skipped: {text}: {reason}")
    feeds = [FeedConfig(url=o.url, name=o.title) for o in document.outlines]
    return _add(config, feeds, args.no_config)


def cmd_export_opml(config: Config, args: argparse.Namespace) -> int:
    from pipeline.feedlist import as_configured
    from pipeline.opml import Outline, write_opml

    with _open_store(config, readonly=True) as store:
        rows = [r for r in as_configured(store.feed_list(), config.feeds) if r["active"]]
    data = write_opml(Outline(url=r["url"], title=r["name"] or r["title"],
                              html_url=r["site_url"]) for r in rows)
    if args.file == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(args.file).write_bytes(data)
        print(f"wrote {len(rows)} feeds to {args.file}")
    return 0


def cmd_export(config: Config, args: argparse.Namespace) -> int:
    from pipeline.export import export_jsonl, export_parquet, export_text

    with _open_store(config, readonly=True) as store, \
            _progress("exporting", None, args.quiet) as bar:
        try:
            if args.format == "parquet":  # analysts filter on `canonical` themselves
                report = export_parquet(store, args.dir, since=args.since,
                                        progress=bar.advance if bar else None)
            else:
                write = export_text if args.format == "text" else export_jsonl
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
    print(f"reindexed {report.signatures} signatures ({window}) into {report.band_rows} band "
          f"rows" + (f"; {report.fingerprinted} signatures recomputed from text"
                     if args.from_text else "") + f" in {time.monotonic() - started:.1f}s")
    return 0


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    from pipeline.browse import serve

    with _open_store(config, readonly=True) as store:
        immutable = store.immutable  # exists, has this newswire's tables, can be read
    return serve(config.database, args.host, args.port, config.schedule.dead_after,
                 immutable=immutable)


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
}
