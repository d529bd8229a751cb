"""Datasette plugin (loaded by `newswire serve` with --plugins-dir): cells of the canned
queries that read better as markup. Everything from the database is escaped first.

- `snippet`: the search query marks matches with the control characters STX/ETX (stored text
  never contains control characters), shown here as <mark>…</mark>;
- `article` / `cluster`: a 16-hex id becomes a link to that article's or cluster's page;
- `changes`: a diff of two texts (the SQL function `text_diff` registered here), shown
  preformatted with removed and added lines marked.

It also gives every connection the SQL function `html_text(value)`: the value as escaped
HTML text (NULL stays NULL). The dashboards' tables show their cells as HTML, so their
queries pass every text from the database through it.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
from typing import Any

from datasette import hookimpl
from markupsafe import Markup, escape

_ID = re.compile(r"^[0-9a-f]{16}$")
_LINKED = {"article": "articles", "cluster": "clusters"}


def html_text(value: Any) -> str | None:
    return None if value is None else str(escape(str(value)))


@hookimpl
def prepare_connection(conn: sqlite3.Connection) -> None:
    conn.create_function("html_text", 1, html_text, deterministic=True)
    conn.create_function("text_diff", 2, text_diff, deterministic=True)


def text_diff(old: str | None, new: str | None) -> str:
    """The lines (paragraphs) of `new` that differ from `old`: `- removed`, `+ added`."""
    if old is None:
        return ""
    lines = difflib.unified_diff((old or "").split("\n\n"), (new or "").split("\n\n"),
                                 lineterm="", n=0)
    return "\n".join(line for line in lines
                     if line[:1] in "+-" and not line.startswith(("+++", "---")))


@hookimpl
def render_cell(value: Any, column: str, table: str | None, database: str,
                datasette: Any) -> Markup | None:
    if table is not None or not isinstance(value, str):
        return None  # only the results of queries, never table or row pages
    if column == "snippet":
        marked = str(escape(value)).replace("\x02", "<mark>").replace("\x03", "</mark>")
        return Markup(marked)
    if column == "changes":
        marked = "".join(
            f'<div style="background:{"#fdd" if line.startswith("-") else "#dfd"}">'
            f"{escape(line)}</div>" for line in value.split("\n") if line)
        return Markup(f'<div style="white-space:pre-wrap">{marked}</div>')
    if column in _LINKED and _ID.match(value):
        url = datasette.urls.row(database, _LINKED[column], value)
        return Markup(f'<a href="{escape(url)}">{value}</a>')
    return None
