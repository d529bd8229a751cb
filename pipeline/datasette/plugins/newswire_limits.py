"""Datasette plugin (loaded by `newswire serve` with --plugins-dir): pages that stay within
the time limit on a big corpus, and quiet failures when a query does not.

- **Row counts on the home and database pages.** Datasette 0.65 counts every table,
  hidden ones included (the search index's shadow tables hold the most pages), on every view
  of those pages, each within a few milliseconds. But its time limit is a progress handler,
  which SQLite never calls inside the single instruction that counts a table, so each count
  walks its whole table whatever the limit: seconds on a year of news. Here each count is
  interrupted (`sqlite3_interrupt`, which that instruction does check) when its limit is up;
  the page then says "Many rows", as Datasette does for a table it could not count in time.
- **Row counts on table pages.** A table page counts the table's rows with the same
  uninterruptible instruction (under the full time limit, which it ignores): a second or more
  for a fetch log of fourteen million polls. An unfiltered count is given COUNT_LIMIT_MS,
  interrupted the same way; past it the page shows its rows without a total. Filtered
  counts are ordinary queries under the ordinary limit.
- **A table searched for a common word.** `?_search=` filters with `rowid in (select rowid
  from the search index where it matches)`, and SQLite then reads every matching row to sort
  them (the table's newest-first order): seconds for a word most articles contain. The rows
  query of a table page gets `+rowid` there instead, so SQLite walks the order's index and
  keeps the rows whose rowid is in the (once computed) match list, stopping at the page's
  end: milliseconds for a common word, an index walk for a rare one. The page's count of
  the matches (a search and no other filter) is asked of the search index alone: the same
  number, since triggers keep the index row for row with its table, without looking up
  every match in the table (a page of text each: 56,000 matches at 190,000 articles of
  the 1M build took 3 s on a fresh connection and 0.1 s warm; from the index, 8 ms).
- **A query over the time limit is one line in the log.** Datasette answers it with a 400
  page ("SQL query took too long"), and its default error handler also prints every handled
  error, this one included, as a rich traceback with local variables: about 480 lines per
  timed-out request. The rich printing is switched off (an unexpected error still prints its
  plain traceback); a timed-out query logs one warning line with the path and the limit.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from datasette import hookimpl
from datasette.database import QueryInterrupted, Results

INTERRUPTED_TITLE = "SQL Interrupted"  # the title of Datasette's time-limit error
COUNT_LIMIT_MS = 200  # an unfiltered table count on a table page
# The count a table page makes of a whole table (datasette/views/table.py: count_sql).
_UNFILTERED_COUNT = re.compile(r"^select count\(\*\) from (\w+|\[[^\]]+\])\s*$")
# A table page's search filter (datasette/filters.py), in a query with an order.
_SEARCH_FILTER = re.compile(r"(?<![\w+.\]])rowid in \(select rowid from ")
# A table page's count of the rows its search matches, with no other filter
# (datasette/views/table.py: count_sql; datasette/filters.py: the search clause).
_SEARCH_COUNT = re.compile(
    r"^select count\(\*\) from (\w+) where rowid in \(select rowid from \[?(\w+)\]? "
    r"where \[?\2\]? match (escape_fts\(:search\)|:search)\)\s*$")


def quiet_default_handler() -> None:
    """Datasette's default error handler prints through rich when rich is importable."""
    try:
        # Datasette's plugin manager first: it registers the default handler, which must
        # not be imported half-way through this import (it would register empty).
        importlib.import_module("datasette.plugins")
        default = importlib.import_module("datasette.handle_exception")
    except ImportError:  # another Datasette layout: nothing to switch off
        return
    if hasattr(default, "rich"):
        setattr(default, "rich", None)  # noqa: B010 (a module attribute mypy cannot see)


quiet_default_handler()


@hookimpl
def startup(datasette: Any) -> None:
    for database in datasette.databases.values():
        if database.is_mutable and not database.is_memory:
            database.table_counts = _bounded_counts(database)
            database.execute = _bounded_execute(database, database.execute)


def _bounded_counts(database: Any) -> Any:
    async def table_counts(limit: int = 10) -> dict[str, int | None]:
        names = await database.table_names()

        def count_all(conn: sqlite3.Connection) -> dict[str, int | None]:
            return {name: count_within(conn, name, limit) for name in names}

        counts: dict[str, int | None] = await database.execute_fn(count_all)
        return counts

    return table_counts


def _bounded_execute(database: Any, execute: Any) -> Any:
    async def bounded(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        sql = search_count(search_in_order(sql))
        match = _UNFILTERED_COUNT.match(sql)
        if match is None or params:
            return await execute(sql, params, *args, **kwargs)
        table = match.group(1).strip("[]")

        def count(conn: sqlite3.Connection) -> int | None:
            return count_within(conn, table, COUNT_LIMIT_MS)

        rows = await database.execute_fn(count)
        if rows is None:
            raise QueryInterrupted(sqlite3.OperationalError("interrupted"), sql, params)
        return Results([(rows,)], False, [("count(*)",)])

    return bounded


def search_in_order(sql: str) -> str:
    """A page of a searched table in its order: `+rowid` keeps SQLite walking the order's
    index and probing the matches, instead of sorting every match first."""
    if " order by " not in sql:
        return sql
    return _SEARCH_FILTER.sub("+rowid in (select rowid from ", sql)


def search_count(sql: str) -> str:
    """A count of the rows a search matches, from the search index alone when it is the
    table's own (`TABLE_fts`, which the product's triggers keep row for row); any other
    query as it is."""
    match = _SEARCH_COUNT.match(sql)
    if match is None or match.group(2) != f"{match.group(1)}_fts":
        return sql
    index = match.group(2)
    return f"select count(*) from [{index}] where [{index}] match {match.group(3)}"


def count_within(conn: sqlite3.Connection, table: str, limit_ms: float) -> int | None:
    """`count(*)` of a table, or None when it takes longer than limit_ms."""
    timer = threading.Timer(limit_ms / 1000, conn.interrupt)
    timer.start()
    try:
        return int(conn.execute(f"select count(*) from [{table}]").fetchone()[0])
    except sqlite3.DatabaseError:  # interrupted (or a table that cannot be counted)
        return None
    finally:
        timer.cancel()
        timer.join()


@hookimpl
def handle_exception(datasette: Any, request: Any, exception: BaseException) -> None:
    if getattr(exception, "title", None) == INTERRUPTED_TITLE:
        limit = datasette.setting("sql_time_limit_ms")
        time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = request.full_path.replace("\\", "\\\\").replace('"', '\\"')
        sys.stderr.write(f"time={time} level=warning msg=\"query over the time limit\" "
                         f"limit_ms={limit} path=\"{path}\"\n")
        sys.stderr.flush()
    return None  # Datasette's own handler answers (the 400 page)
