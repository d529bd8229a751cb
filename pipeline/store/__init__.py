"""Storage: the only package that speaks SQL.

SQLite in WAL mode through sqlite-utils. The database is the single source of state: the
feed list and schedule, HTTP validators, failures, every entry of every feed, the articles,
their duplicate clusters and the evidence. One module per concern:

    database   the handle: opening (read-write and migrated, or read-only), lock, transactions
    schema     migrations
    feeds      feed rows: the config's list, the schedule, each poll's effect on its feed
    polls      recording polls (entries, articles, clusters, evidence, fetch log); planning reads
    index      the near-duplicate signatures, the LSH band and anchor indexes, and what a
               dedupe decision reads (candidates' texts, cluster sizes)
    merges     clusters that heal: merges with their history, resolving merged ids
    lines      per-site repeated lines (boilerplate)
    queries    read-only queries for the CLI, Datasette and metrics
    summaries  counters and daily totals kept at write time; the rolling fetch log
    writer     the single writer a run writes through (group commit)
    repair     checking and repairing a damaged file
"""

from pipeline.store.database import Store, is_damage
from pipeline.store.index import ReindexReport
from pipeline.store.repair import RepairReport, check, repair
from pipeline.store.writer import Writer

__all__ = ["ReindexReport", "RepairReport", "Store", "Writer", "check", "is_damage", "repair"]
