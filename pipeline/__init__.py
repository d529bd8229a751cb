"""newswire: feeds in, clean deduplicated article texts out, in SQLite."""

__version__ = "0.1.0"
