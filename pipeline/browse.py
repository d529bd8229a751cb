"""Browsing the corpus in Datasette, over the live database, read-only.

The shipped Datasette files live in the package (`pipeline/datasette/`: metadata with table
and column descriptions, facets, sorting, FTS and canned queries; a row template that shows
an article as paragraphs; a small cell-rendering plugin), so `newswire serve` finds them from
any working directory and in any install.

Read-only, and live: the database is served as a normal (mutable) file, which Datasette opens
with `mode=ro` connections and re-reads as the daemon writes (WAL lets readers and the one
writer work at the same time). It is served with `-i`/immutable, which assumes the file
never changes, only when it cannot change (see `serve_command`). No writable canned query is
shipped, and Datasette 0.65 has no other way to write; arbitrary SQL from the browser runs on
the read-only connections.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipeline.store.queries import health_sql

ASSETS = Path(__file__).resolve().parent / "datasette"
METADATA = ASSETS / "metadata.yaml"
SHIPPED_NAME = "newswire"  # the database's name in metadata.yaml
# Chosen for a corpus of a million articles (BENCHMARKS.md, "A year of news"): every page a
# user reaches from the home page answers within Datasette's default time limit.
SETTINGS = {
    "default_page_size": "50",
    "truncate_cells_html": "300",  # long texts stay short in tables; article pages show all
    "suggest_facets": "off",  # suggestions scan big tables on every page view
    "sql_time_limit_ms": "1000",  # Datasette's default: a page slower than this is a bug
}


def database_name(database: Path) -> str:
    """The name Datasette gives a database file (its file name without the extension)."""
    return database.stem


HEALTH_PLACEHOLDER = "HEALTH_EXPRESSION"  # in canned queries: the store's health rule


def metadata_for(database: Path, dead_after: int) -> dict[str, Any]:
    """The shipped metadata with its database section filed under this database's name, and
    the feed-health rule (pipeline.store.queries.health_sql, `schedule.dead_after`) in the
    canned queries that show it."""
    metadata = yaml.safe_load(METADATA.read_text(encoding="utf-8"))
    databases = metadata.get("databases", {})
    section = databases[database_name(database)] = databases.pop(SHIPPED_NAME)
    for query in section.get("queries", {}).values():
        query["sql"] = query["sql"].replace(HEALTH_PLACEHOLDER, health_sql(dead_after))
    return metadata


def serve_command(database: Path, host: str, port: int, metadata_file: Path,
                  immutable: bool = False) -> list[str]:
    """The `datasette serve` command line (metadata_file: where metadata_for() was written).

    `immutable` only for a file that cannot change: one in a directory the user may only
    read, with no WAL file (no writer can exist, and a WAL reader would need to create
    its shared-memory file there)."""
    command = [sys.executable, "-m", "datasette", "serve",
               *(["-i", str(database)] if immutable else [str(database)]),
               "--host", host, "--port", str(port), "--metadata", str(metadata_file),
               "--template-dir", str(ASSETS / "templates"),
               "--plugins-dir", str(ASSETS / "plugins")]
    for name, value in SETTINGS.items():
        command += ["--setting", name, value]
    return command


def serve(database: Path, host: str, port: int, dead_after: int,
          immutable: bool = False) -> int:
    """Run Datasette until it stops; SIGTERM and Ctrl-C stop it cleanly. Its exit code."""
    with tempfile.TemporaryDirectory(prefix="newswire-serve-") as workdir:
        metadata_file = Path(workdir) / "metadata.json"
        metadata_file.write_text(json.dumps(metadata_for(database, dead_after)),
                                 encoding="utf-8")
        process = subprocess.Popen(serve_command(database, host, port, metadata_file,
                                                 immutable))
        previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        try:
            return process.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to Datasette as well
            process.wait()
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
