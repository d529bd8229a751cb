"""Corpus export and import: the seed text format, JSONL, and Parquet for analysts.

Seed text format (see ../shared/DESIGN.md): one UTF-8 file per article named
`NNN_<16 hex id>.txt` — a zero-padded sequence number of at least three digits and the
article id — holding the title on the first line, a blank line, then the body with paragraphs
separated by blank lines.

Export rules:
- file names are built only from the sequence number and the article id (checked to be 16
  lowercase hex), never from feed data, and every target is checked to lie in the directory;
- numbering continues after the highest number already in the directory, and nothing is ever
  overwritten (each file is written to a temporary name and hard-linked into place, which fails
  if the name exists, so a killed export leaves no half-written file under a real name);
- an article whose id already has a file in the directory is skipped, so exporting again to
  the same directory adds only what is new;
- by default one file per cluster: the cluster's canonical article.

Parquet (`export_parquet`): every article (copies included) with every column, its feed, its
cluster's id, canonical article and size, a `canonical` flag and `seen_in` (a list of
structs), in one `newswire-<UTC time>.parquet` written a row group at a time (bounded
memory), beside a manifest `newswire-<UTC time>.manifest.json` (counts, the file's SHA-256,
columns, schema version, export time, newswire and pyarrow versions) so that a snapshot can
be cited and checked. Times stay ISO 8601 UTC strings, as stored.

Import reads seed-format files in sequence order through the store's normal article path, so
dedupe applies; the id in the file name is kept as the article id. Each directory is recorded
as an inactive source feed whose entries are the imported files: importing the same directory
again adds nothing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import __version__, archive
from pipeline.messages import FROM_IMPORT, JOINING_KINDS, Article, NewEntry, PollResult
from pipeline.neardup import fingerprint_article
from pipeline.store import Store, Writer
from pipeline.text import normalise_paragraphs, one_line
from pipeline.times import file_stamp, iso

SEED_NAME = re.compile(r"^(\d{3,})_([0-9a-f]{16})\.txt$")
ARTICLE_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_IMPORT_BYTES = 20_000_000
IMPORT_BATCH = 200  # files per transaction: short writes, bounded memory

Progress = Callable[[int], None]


@dataclass
class ExportReport:
    written: int = 0  # articles written
    already_present: int = 0  # ids that already had a file in the directory
    empty: int = 0  # articles without body text (nothing to write in the seed format)
    first: Path | None = None  # the first and last files written (the same for JSONL)
    last: Path | None = None

    def wrote(self, path: Path) -> None:
        self.first = self.first or path
        self.last = path


@dataclass
class ImportReport:
    files: int = 0  # seed-format files found
    new_articles: int = 0
    exact_duplicates: int = 0  # included in new_articles: stored, marked as copies
    near_duplicates: int = 0
    already_stored: int = 0  # imported before, or the id is already in the corpus
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, problem)


# --- the seed format --------------------------------------------------------------------------

def format_seed(title: str, text: str) -> str:
    """An article in the seed format: title line, blank line, paragraphs, final newline."""
    return f"{one_line(title)}\n\n{normalise_paragraphs(text)}\n"


def parse_seed(content: str) -> tuple[str, str]:
    """(title, body) of a seed-format file; ValueError when it has no title or no body."""
    content = content.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    first, _, rest = content.partition("\n")
    title, body = one_line(first), normalise_paragraphs(rest)
    if not title:
        raise ValueError("the first line (the title) is empty")
    if not body:
        raise ValueError("no body text after the title")
    return title, body


def seed_files(directory: Path) -> tuple[list[tuple[int, str, str]], list[str]]:
    """Seed-format files in the directory as (sequence, id, name) in sequence order, and the
    names of other `.txt` files (not in the format)."""
    found, other = [], []
    with os.scandir(directory) as entries:
        for entry in entries:
            match = SEED_NAME.match(entry.name)
            if match:
                found.append((int(match.group(1)), match.group(2), entry.name))
            elif entry.name.endswith(".txt") and not entry.name.startswith("."):
                other.append(entry.name)
    found.sort()
    return found, sorted(other)


# --- export -----------------------------------------------------------------------------------

def _contained(directory: Path, name: str) -> Path:
    """directory/name, refusing any name that would land outside the directory."""
    target = directory / name
    if os.path.basename(name) != name or target.resolve().parent != directory:
        raise ValueError(f"refusing to write outside {directory}: {name!r}")
    return target


def _create(directory: Path, name: str, data: bytes) -> bool:
    """Create directory/name holding data, atomically; False (and nothing written) if the
    name exists. Never overwrites."""
    target = _contained(directory, name)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".newswire-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(temporary, target)
        except FileExistsError:
            return False
        except OSError as exc:  # a filesystem without hard links: exclusive create instead
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            try:
                with open(target, "xb") as handle:
                    handle.write(data)
            except FileExistsError:
                return False
        return True
    finally:
        os.unlink(temporary)


def _prepare(directory: str | os.PathLike[str]) -> Path:
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def export_text(store: Store, directory: str | os.PathLike[str], since: str | None = None,
                include_duplicates: bool = False,
                progress: Progress | None = None) -> ExportReport:
    """Write articles as seed-format files into directory (created if needed)."""
    target = _prepare(directory)
    existing, _ = seed_files(target)
    present = {article_id for _, article_id, _ in existing}
    sequence = max((number for number, _, _ in existing), default=-1) + 1
    report = ExportReport()
    for row in store.export_articles(since, include_duplicates):
        if progress:
            progress(1)
        article_id = row["id"]
        if not ARTICLE_ID.match(article_id or ""):
            raise ValueError(f"article id {article_id!r} is not 16 hex characters")
        if article_id in present:
            report.already_present += 1
            continue
        if not (row["text"] or "").strip():
            report.empty += 1
            continue
        data = format_seed(row["title"] or "", row["text"]).encode("utf-8")
        while not _create(target, f"{sequence:03d}_{article_id}.txt", data):
            sequence += 1  # taken meanwhile (another export into the same directory)
        report.wrote(target / f"{sequence:03d}_{article_id}.txt")
        report.written += 1
        present.add(article_id)
        sequence += 1
    return report


def export_jsonl(store: Store, directory: str | os.PathLike[str], since: str | None = None,
                 include_duplicates: bool = False,
                 progress: Progress | None = None) -> ExportReport:
    """Write one JSON object per article (every column, its feed, its cluster and every entry
    that carried it) into a new `newswire-<UTC time>.jsonl` file in directory."""
    target = _prepare(directory)
    report = ExportReport()
    fd, temporary = tempfile.mkstemp(dir=target, prefix=".newswire-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in store.export_articles(since, include_duplicates):
                if progress:
                    progress(1)
                record: dict[str, Any] = dict(row)
                record["seen_in"] = json.loads(record["seen_in"] or "[]")
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                report.written += 1
        _publish(target, temporary, ".jsonl", report)
    finally:
        os.unlink(temporary)
    return report


# --- Parquet --------------------------------------------------------------------------------

PARQUET_ROW_GROUP = 2000  # articles per row group: what the export holds in memory at once
PARQUET_FORMAT = "newswire-parquet/1"  # the manifest's name for this layout
_ARROW_TYPES = {"TEXT": "string", "INTEGER": "int64", "REAL": "float64", "FLOAT": "float64"}
_SEEN_IN = ("feed_url", "guid", "link", "seen_at")


def _parquet_schema(columns: list[tuple[str, str]]) -> Any:
    """The articles' columns with their SQLite types as Arrow types, then the feed and
    cluster columns of the export, the canonical flag and seen_in."""
    import pyarrow as pa

    fields = [pa.field(name, _ARROW_TYPES.get(kind.upper(), "string"))
              for name, kind in columns]
    fields += [pa.field("feed_url", pa.string()), pa.field("feed_name", pa.string()),
               pa.field("cluster_canonical_id", pa.string()),
               pa.field("cluster_size", pa.int64()), pa.field("canonical", pa.bool_()),
               pa.field("seen_in", pa.list_(pa.struct(
                   [pa.field(name, pa.string()) for name in _SEEN_IN])))]
    return pa.schema(fields)


def export_parquet(store: Store, directory: str | os.PathLike[str], since: str | None = None,
                   progress: Progress | None = None) -> ExportReport:
    """Write every article (copies included: `canonical` tells them apart) into a new
    `newswire-<UTC time>.parquet` in directory, and its manifest beside it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = _prepare(directory)
    schema = _parquet_schema(store.article_columns())
    report = ExportReport()
    counts = {"articles": 0, "canonical": 0, "exact_copies": 0, "near_copies": 0}
    clusters: set[str] = set()
    fd, temporary = tempfile.mkstemp(dir=target, prefix=".newswire-", suffix=".tmp")
    os.close(fd)
    try:
        writer = pq.ParquetWriter(temporary, schema, compression="zstd")
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            batch.clear()

        with writer:
            for row in store.export_articles(since, include_duplicates=True):
                if progress:
                    progress(1)
                record: dict[str, Any] = dict(row)
                record["canonical"] = record["cluster_canonical_id"] in (None, record["id"])
                record["seen_in"] = json.loads(record["seen_in"] or "[]")
                batch.append(record)
                counts["articles"] += 1
                counts["canonical"] += record["canonical"]
                kind = record["duplicate_kind"]
                if kind in JOINING_KINDS:
                    counts[f"{kind}_copies"] += 1
                if record["cluster_id"]:
                    clusters.add(record["cluster_id"])
                if len(batch) >= PARQUET_ROW_GROUP:
                    flush()
            if batch or not counts["articles"]:
                flush()  # an empty export is still a readable file with the schema
        digest = hashlib.sha256()
        with open(temporary, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        now = datetime.now(UTC)
        stamp = file_stamp(now)
        for attempt in range(1000):
            base = f"newswire-{stamp}" + (f"-{attempt}" if attempt else "")
            try:
                os.link(temporary, _contained(target, base + ".parquet"))
            except FileExistsError:
                continue
            break
        manifest = {
            "format": PARQUET_FORMAT, "file": base + ".parquet",
            "sha256": digest.hexdigest(), "bytes": os.path.getsize(temporary),
            "rows": counts["articles"], **counts, "clusters": len(clusters),
            "since": since, "exported_at": iso(now),
            "schema_version": store.schema_version, "newswire_version": __version__,
            "pyarrow_version": pa.__version__, "row_group_size": PARQUET_ROW_GROUP,
            "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
        }
        _create(target, base + ".manifest.json",
                (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
        report.written = counts["articles"]
        report.wrote(target / (base + ".parquet"))
    finally:
        os.unlink(temporary)
    return report


def export_warc(store: Store, directory: str | os.PathLike[str], archive_dir: Path,
                since: str | None = None, include_duplicates: bool = False,
                progress: Progress | None = None) -> ExportReport:
    """Write the archived records of the exported articles (the request and response of
    each page, as archived) into one new `newswire-<UTC time>.warc.gz` after a `warcinfo`
    record: a corpus others can process with their own tools. Articles without an archived
    page (imports, feed-only entries, the archive turned off) count as `empty`."""
    target = _prepare(directory)
    report = ExportReport()
    fd, temporary = tempfile.mkstemp(dir=target, prefix=".newswire-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            archive.write_warcinfo(handle, "newswire-export.warc.gz",
                                   "articles exported by newswire: their pages as archived")
            for row in store.export_articles(since, include_duplicates):
                if progress:
                    progress(1)
                if not row["warc_file"]:
                    report.empty += 1
                    continue
                try:
                    handle.write(archive.raw(archive_dir, row["warc_file"],
                                             row["warc_offset"], row["warc_length"]))
                except OSError:
                    report.empty += 1
                    continue
                report.written += 1
        _publish(target, temporary, ".warc.gz", report)
    finally:
        os.unlink(temporary)
    return report


def _publish(target: Path, temporary: str, suffix: str, report: ExportReport) -> None:
    """Give the finished file its name, `newswire-<UTC time>[-N]<suffix>`, never replacing
    one that exists."""
    stamp = file_stamp(datetime.now(UTC))
    for attempt in range(1000):
        name = f"newswire-{stamp}" + (f"-{attempt}" if attempt else "") + suffix
        try:
            os.link(temporary, _contained(target, name))
        except FileExistsError:
            continue
        report.wrote(target / name)
        return


# --- import -----------------------------------------------------------------------------------

def _read_entry(path: Path, article_id: str) -> NewEntry:
    """The file as an entry carrying its article; ValueError with the reason if unusable."""
    if path.is_symlink() or not path.is_file():
        raise ValueError("not a regular file")
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise ValueError(f"larger than {MAX_IMPORT_BYTES} bytes")
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None
    title, text = parse_seed(content)
    article = Article(id=article_id, url="", canonical_url="", title=title, text=text,
                      author=None, published_at=None, language=None, sitename=None,
                      text_source=FROM_IMPORT)
    return NewEntry(key=path.name, guid=path.name, link=None, title=title, published_at=None,
                    article=article, fingerprint=fingerprint_article(article))


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def import_text(store: Store, directory: str | os.PathLike[str],
                      progress: Progress | None = None) -> ImportReport:
    """Import the seed-format files of directory, in sequence order, with dedupe, through
    the store's writer (the caller holds the writer lock)."""
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    path = path.resolve()
    files, other = seed_files(path)
    report = ImportReport(files=len(files))
    report.errors.extend((name, "file name is not NNN_<16 hex id>.txt") for name in other)
    feed_id = store.source_feed(path.as_uri(), f"import: {path.name}")
    known = store.known_entry_keys(feed_id, [name for _, _, name in files])
    async with Writer(store) as writer:
        for batch in _batches([f for f in files if f[2] not in known], IMPORT_BATCH):
            started, clock = datetime.now(UTC), time.monotonic()
            entries, size = [], 0
            for _, article_id, name in batch:
                try:
                    entries.append(_read_entry(path / name, article_id))
                    size += (path / name).stat().st_size
                except (OSError, ValueError) as exc:
                    report.errors.append((name, str(exc)))
                if progress:
                    progress(1)
            summary = await writer.write(PollResult(
                feed_id=feed_id, started_at=iso(started),
                duration_ms=int((time.monotonic() - clock) * 1000), status=None, bytes=size,
                error=None, next_poll_at=None, consecutive_failures=0, current_interval=None,
                feed_title=f"import: {path.name}", entries=tuple(entries)))
            report.new_articles += summary.new_articles
            report.exact_duplicates += summary.exact_duplicates
            report.near_duplicates += summary.near_duplicates
            report.already_stored += summary.new_entries - summary.new_articles
    report.already_stored += len(known)
    if progress and known:
        progress(len(known))
    return report
