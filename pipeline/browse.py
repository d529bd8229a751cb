"""Browsing the corpus in Datasette, over the live database, read-only.

The shipped Datasette files live in the package (`pipeline/datasette/`: metadata with table
and column descriptions, facets, sorting, FTS and canned queries; the dashboards, charts drawn
by the datasette-dashboards plugin; a row template that shows an article as paragraphs; small
plugins for cells and limits), so `newswire serve` finds them from any working directory and
in any install. The home page links the front page first: the `corpus` dashboard.

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
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from pipeline.store.queries import health_sql
from pipeline.store.summaries import OUTLET_JOINED

ASSETS = Path(__file__).resolve().parent / "datasette"
METADATA = ASSETS / "metadata.yaml"
DASHBOARDS = ASSETS / "dashboards.yaml"
FRONT_PAGE = "/-/dashboards/corpus"
SHIPPED_NAME = "newswire"  # the database's name in metadata.yaml
# Chosen for a corpus of a million articles (BENCHMARKS.md, "A year of news"): every page a
# user reaches from the home page answers within Datasette's default time limit.
SETTINGS = {
    "default_page_size": "50",
    "truncate_cells_html": "300",  # long texts stay short in tables; article pages show all
    "suggest_facets": "off",  # suggestions scan big tables on every page view
    "sql_time_limit_ms": "1000",  # Datasette's default: a page slower than this is a bug
    # A facet asked for by feed or site groups a million articles' index in 0.1-0.3 s; the
    # default 200 ms gave up on them. The fetch log's facets (14 million polls) still do.
    "facet_time_limit_ms": "500",
}


def database_name(database: Path) -> str:
    """The name Datasette gives a database file (its file name without the extension)."""
    return database.stem


HEALTH_PLACEHOLDER = "HEALTH_EXPRESSION"  # in canned queries: the store's health rule
OUTLET_PLACEHOLDER = "OUTLET_EXPRESSION"  # in dashboards: the store's outlet of an article
DATABASE_PLACEHOLDER = "DATABASE"  # in dashboards: the served database's name
# In a cluster's canned query and a story's charts, and their descriptions: the copies listed
# at most, the first in time (each read in order from the index on the cluster's copies, so
# that a story of any size answers in time; at 1M, one cluster held 78,000).
COPIES_PLACEHOLDER, COPIES_SHOWN = "COPIES_SHOWN", 1000


def described(text: str) -> str:
    """A description with its placeholders put in as prose ("1,000")."""
    return text.replace(COPIES_PLACEHOLDER, f"{COPIES_SHOWN:,}")


def metadata_for(database: Path, dead_after: int) -> dict[str, Any]:
    """The shipped metadata with its database section filed under this database's name, the
    feed-health rule (pipeline.store.queries.health_sql, `schedule.dead_after`) in the
    canned queries that show it, and the dashboards (dashboards_for)."""
    metadata = yaml.safe_load(METADATA.read_text(encoding="utf-8"))
    databases = metadata.get("databases", {})
    section = databases[database_name(database)] = databases.pop(SHIPPED_NAME)
    for query in section.get("queries", {}).values():
        query["sql"] = (query["sql"].replace(HEALTH_PLACEHOLDER, health_sql(dead_after))
                        .replace(COPIES_PLACEHOLDER, str(COPIES_SHOWN)))
        if "description" in query:
            query["description"] = described(query["description"])
    metadata.setdefault("plugins", {})["datasette-dashboards"] = \
        dashboards_for(database, dead_after)
    return metadata


def dashboards_for(database: Path, dead_after: int) -> dict[str, Any]:
    """The shipped dashboards (dashboards.yaml) over this database: its shared queries, the
    store's health and outlet rules and the database's name put in where they stand."""
    config = yaml.safe_load(DASHBOARDS.read_text(encoding="utf-8"))
    shared = config.pop("shared")
    name = database_name(database)

    def filled(text: str) -> str:
        for key, sql in shared.items():
            text = text.replace(key, f"({sql})")
        return (text.replace(OUTLET_PLACEHOLDER, OUTLET_JOINED)
                .replace(HEALTH_PLACEHOLDER, health_sql(dead_after))
                .replace(COPIES_PLACEHOLDER, str(COPIES_SHOWN))
                .replace(f"/{DATABASE_PLACEHOLDER}", "/" + urllib.parse.quote(name)))

    for dashboard in config.values():
        if isinstance(dashboard.get("description"), str):
            dashboard["description"] = described(dashboard["description"])
        for chart in dashboard.get("charts", {}).values():
            if chart.get("db") == DATABASE_PLACEHOLDER:
                chart["db"] = name
            for key in ("query", "display"):
                if isinstance(chart.get(key), str):
                    chart[key] = filled(chart[key])
    return dict(config)


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
