"""The errors newswire raises on purpose: one tree under `NewswireError`.

Each says what went wrong in words a user can act on; the CLI maps them to exit codes
(pipeline.cli). Errors from libraries are caught at the stage that calls them and turned
into one of these, or into a recorded failure of the feed concerned. `ExtractionTimeout`
(pipeline.alarm) is deliberately not here: it is a BaseException, so that libraries'
`except Exception` blocks cannot swallow it.

    NewswireError
    ├── ConfigError           a config file, key and problem (exit 2)
    ├── StoreError            the database cannot be used (exit 3)
    │   └── DatabaseDamaged   SQLite found the file damaged
    ├── LockedError           another process holds the writer lock (exit 75)
    ├── StoreWriteError       one write transaction failed and was rolled back
    ├── FeedParseError        a body is not a usable feed
    ├── PageNotText           a page's body is binary data, not text (the feed's content stands in)
    ├── FetchError            a request refused before or while it was made
    │   ├── BlockedAddressError   the address guard refused every address
    │   └── BodyTooLarge          a body beyond max_bytes
    ├── WorkerCrashed         a worker process died mid-job
    ├── EngineError           the distributed engine cannot do the work (no broker, no worker)
    ├── DiscoveryError        no feed found for a URL (`newswire add`)
    ├── ConfigEditError       the config file could not be updated
    └── MetricsError          the metrics endpoint cannot listen
"""

from __future__ import annotations

from pathlib import Path


class NewswireError(Exception):
    """Base class of every error newswire raises on purpose."""


class ConfigError(NewswireError):
    """A configuration problem, with the file and key it concerns."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.path}: {key}: {problem}")


class StoreError(NewswireError):
    """The database cannot be used (missing directory, corrupt file, newer schema)."""


class DatabaseDamaged(StoreError):
    """SQLite found the file damaged (a page of a table or index overwritten, not a
    database at all): nothing more can be written safely until it is repaired."""

    def __init__(self, path: Path | None, detail: str) -> None:
        where = str(path) if path else "the database"
        super().__init__(
            f"{where} is damaged ({detail}); nothing more was written. "
            f"`newswire repair` copies everything readable into a fresh file and rebuilds "
            f"the indexes and the search index; if a table itself is damaged, recover what "
            f"SQLite can read with `sqlite3 {where} .recover | sqlite3 recovered.db` and "
            f"point `database:` at recovered.db. Keep a copy of the damaged file.")


class LockedError(NewswireError):
    """Another newswire process holds the write lock on this database."""


class StoreWriteError(NewswireError):
    """A write transaction failed and was rolled back (disk full, database locked, ...)."""


class FeedParseError(NewswireError):
    """The body is not a usable feed; the message says why."""


class PageNotText(NewswireError):
    """A page whose body is binary data sent as text (an image, an archive, random bytes
    labelled text/html): it is not extracted, and its feed's content stands in."""


class FetchError(NewswireError):
    """A request refused before or while it was made."""


class BlockedAddressError(FetchError):
    """The host resolved only to addresses the guard refuses."""


class BodyTooLarge(FetchError):
    """A body larger than `fetch.max_bytes` (decoded, or as sent)."""


class WorkerCrashed(NewswireError):
    """A worker process died mid-job (killed, out of memory); its pool has been replaced."""


class EngineError(NewswireError):
    """The Celery engine cannot do the run's work: the broker cannot be reached, or no
    worker takes the tasks. Nothing is recorded against the feeds: they stay due."""


class DiscoveryError(NewswireError):
    """No feed could be found for a URL; the message says what was tried."""


class ConfigEditError(NewswireError):
    """The config file could not be updated; it is left unchanged."""


class MetricsError(NewswireError):
    """The metrics endpoint cannot listen where the config says."""
