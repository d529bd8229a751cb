"""Per-site line statistics for the repeated-line (boilerplate) filter (pipeline.boilerplate).

Each original article's raw line keys are counted per site; a line seen on
SITE_LINE_MIN_PAGES pages of a site is that site's boilerplate and is dropped from its later
pages. Lines seen once are forgotten after SITE_LINE_SINGLETON_DAYS.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlite_utils

SITE_LINE_MIN_PAGES = 3
SITE_LINE_SINGLETON_DAYS = 7


def count(db: sqlite_utils.Database, site: str, keys: Sequence[int], now: str) -> None:
    db.conn.executemany(
        "INSERT INTO site_lines (site, line_key, pages, last_seen) VALUES (?, ?, 1, ?) "
        "ON CONFLICT (site, line_key) DO UPDATE SET pages = pages + 1, "
        "last_seen = excluded.last_seen", [(site, key, now) for key in keys])


def repeated(db: sqlite_utils.Database, site: str) -> frozenset[int]:
    """Keys of the lines seen on at least SITE_LINE_MIN_PAGES pages of the site."""
    return frozenset(r[0] for r in db.execute(
        f"SELECT line_key FROM site_lines WHERE site = ? "
        f"AND pages >= {SITE_LINE_MIN_PAGES}", [site]))


def forget_singletons(db: sqlite_utils.Database, cutoff: str) -> None:
    """Forget lines a site showed only once, last seen before cutoff."""
    db.execute("DELETE FROM site_lines WHERE pages = 1 AND last_seen < ?", [cutoff])
