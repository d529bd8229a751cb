"""The `newswire` command: a thin shell over the library.

Exit codes: 0 success (including runs where some feeds failed: failures are recorded),
2 bad configuration or usage, 3 unusable database, 75 another instance holds the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pipeline import __version__
from pipeline.config import Config, ConfigError, load_config
from pipeline.logs import FORMATS, setup_logging

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
    add.add_argument("url")
    add.add_argument("--name")

    serve = sub.add_parser("serve", help="browse the corpus in Datasette")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--host", default="127.0.0.1")
    return parser


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
    from pipeline.store import LockedError, StoreError

    try:
        return handler(config, args)
    except StoreError as exc:
        print(f"newswire: database error: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except LockedError as exc:
        print(f"newswire: {exc}; exiting", file=sys.stderr)
        return EXIT_LOCKED


def _open_store(config: Config, lock: bool = False):  # noqa: ANN202 - Store, lazily imported
    from pipeline.store import Store

    store = Store.open(config.database)
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
        progress = _progress_printer() if sys.stderr.isatty() and not args.quiet else None
        report = asyncio.run(run_once(config, store, include_all=args.all, progress=progress))
    if not args.quiet:
        print(report.line())
        for url, error in report.errors[:20]:
            print(f"  failed: {url}: {error}")
    return 0


def _progress_printer():  # noqa: ANN202
    from rich.console import Console

    console = Console(stderr=True)

    def show(feed, result) -> None:  # noqa: ANN001
        mark = "[red]✗[/red]" if result.error else "[green]✓[/green]"
        console.print(f"{mark} {feed.name or feed.url}: {result.status or '-'} "
                      f"{len(result.entries)} new" + (f" ({result.error})" if result.error
                                                      else ""))
    return show


def cmd_daemon(config: Config, args: argparse.Namespace) -> int:
    from pipeline.metrics import MetricsError
    from pipeline.schedule import run_daemon

    with _open_store(config, lock=True) as store:
        try:
            asyncio.run(run_daemon(config, store))
        except MetricsError as exc:
            print(f"newswire: config error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    return 0


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    with _open_store(config) as store:
        store.sync_feeds(config.feeds)
        rows = store.status_rows()
    now = datetime.now(UTC)
    table = Table(box=None, pad_edge=False)
    for column in ("id", "health", "feed", "last poll", "next poll", "schedule", "status",
                   "failures", "articles", "last error"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["id"]), _health(row), row["name"][:50],
                      row["last_polled_at"] or "never", _next_poll(row, now), _schedule(row),
                      str(row["last_status"] or "-"), str(row["consecutive_failures"]),
                      str(row["articles"]), (row["last_error"] or "")[:60])
    Console(width=220 if not sys.stdout.isatty() else None).print(table)
    return 0


def _health(row: dict) -> str:
    if not row["active"]:
        return "inactive"
    if row["gone"]:
        return "gone"
    if row["last_polled_at"] is None:
        return "new"
    failures = row["consecutive_failures"]
    if failures == 0:
        return "throttled" if _throttled(row) else "ok"
    return "failing" if failures < 5 else "dead"


def _throttled(row: dict) -> bool:
    """The server answered 429/503 with Retry-After: waiting as asked, not a failure."""
    return row["last_status"] in (429, 503) and not row["last_error"]


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}" if seconds >= 10 * size or unit == "m" \
                else f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _next_poll(row: dict, now: datetime) -> str:
    """When the feed is polled next, relative to now, then the time itself."""
    from pipeline.store import parse_iso

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
    if _throttled(row):
        return f"throttled ({row['last_status']} Retry-After)"
    if row["cron"]:
        return f"cron {row['cron']}"
    if row["interval_seconds"]:
        return f"every {_duration(row['interval_seconds'])} (fixed)"
    if row["current_interval"]:
        return f"every {_duration(row['current_interval'])} (adaptive)"
    return "-"


def cmd_add(config: Config, args: argparse.Namespace) -> int:
    from pipeline.config import check_feed_url

    try:
        url = check_feed_url(args.url)
    except ValueError as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    with _open_store(config) as store:
        feed_id = store.add_feed(url, args.name)
    print(f"added feed {feed_id}: {url}")
    return 0


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    import subprocess

    with _open_store(config):
        pass  # create and migrate the database so Datasette has tables to show
    metadata = Path(__file__).resolve().parent / "datasette" / "metadata.yaml"
    command = [sys.executable, "-m", "datasette", "serve", str(config.database),
               "--host", args.host, "--port", str(args.port), "--setting", "default_page_size",
               "50"]
    if metadata.exists():
        command += ["--metadata", str(metadata)]
    return subprocess.call(command)


COMMANDS = {
    "once": cmd_once,
    "daemon": cmd_daemon,
    "status": cmd_status,
    "add": cmd_add,
    "serve": cmd_serve,
}
