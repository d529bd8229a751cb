"""Browsing the corpus in Datasette, over the live database, read-only.

The shipped Datasette files live in the package (`pipeline/datasette/`: metadata with table
and column descriptions, facets, sorting, FTS and canned queries; a row template that shows
an article as paragraphs; a small cell-rendering plugin), so `newswire serve` finds them from
any working directory and in any install.

Read-only, and live: the database is served as a normal (mutable) file, which Datasette opens
with `mode=ro` connections and re-reads as the daemon writes (WAL lets readers and the one
writer work at the same time). It is never served with `-i`/immutable, which would assume the
file never changes. No writable canned query is shipped, and Datasette 0.65 has no other way
to write; arbitrary SQL from the browser runs on the read-only connections.
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

ASSETS = Path(__file__).resolve().parent / "datasette"
METADATA = ASSETS / "metadata.yaml"
SHIPPED_NAME = "newswire"  # the database's name in metadata.yaml
SETTINGS = {
    "default_page_size": "50",
    "truncate_cells_html": "300",  # long texts stay short in tables; article pages show all
    "suggest_facets": "off",  # suggestions scan big tables on every page view
    "sql_time_limit_ms": "3000",
}


def database_name(database: Path) -> str:
    """The name Datasette gives a database file (its file name without the extension)."""
    return database.stem


def metadata_for(database: Path) -> dict[str, Any]:
    """The shipped metadata with its database section filed under this database's name."""
    metadata = yaml.safe_load(METADATA.read_text(encoding="utf-8"))
    databases = metadata.get("databases", {})
    databases[database_name(database)] = databases.pop(SHIPPED_NAME)
    return metadata


def serve_command(database: Path, host: str, port: int, metadata_file: Path) -> list[str]:
    """The `datasette serve` command line (metadata_file: where metadata_for() was written)."""
    command = [sys.executable, "-m", "datasette", "serve", str(database),
               "--host", host, "--port", str(port), "--metadata", str(metadata_file),
               "--template-dir", str(ASSETS / "templates"),
               "--plugins-dir", str(ASSETS / "plugins")]
    for name, value in SETTINGS.items():
        command += ["--setting", name, value]
    return command


def serve(database: Path, host: str, port: int) -> int:
    """Run Datasette until it stops; SIGTERM and Ctrl-C stop it cleanly. Its exit code."""
    with tempfile.TemporaryDirectory(prefix="newswire-serve-") as workdir:
        metadata_file = Path(workdir) / "metadata.json"
        metadata_file.write_text(json.dumps(metadata_for(database)), encoding="utf-8")
        process = subprocess.Popen(serve_command(database, host, port, metadata_file))
        previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        try:
            return process.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to Datasette as well
            process.wait()
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
