"""The WARC archive (ISO 28500, through warcio): every page fetched for an article and every
feed body that was parsed, each as a `request` and a `response` record, gzip per record, in
files under `archive.dir`, rotated by size and by UTC day, never rewritten.

    newswire-20261130-141502-12345-00001.warc.gz   (a `warcinfo` record first)

A response is archived as received: its status line and headers, and its body as it came
(still compressed when it came compressed); only framing the body no longer has is left out
(Transfer-Encoding; a Content-Encoding already undone). Durability: a record is written
and flushed to the operating system when the page is fetched, and the files written since
the last commit are fsynced by the writer before the transaction that points at them
commits (pipeline.store.writer): an article row never points at a record that is not on
disk. A record left without its row by a crash is harmless: the page is fetched again.

The field's tools read these files: `warcio index FILE`, `warcio extract FILE OFFSET`,
pywb, ArchiveWebPage, or any WARC library.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline import __version__
from pipeline.config import ArchiveConfig
from pipeline.messages import ArchiveLocation
from pipeline.times import iso

log = logging.getLogger("newswire")

# Headers describing framing the stored body no longer has.
_FRAMING = frozenset({"transfer-encoding", "content-length"})


@dataclass(frozen=True)
class Capture:
    """One exchange to archive, or read back from the archive."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    request_headers: dict[str, str]
    fetched_at: str  # ISO, UTC
    decoded: bool = False  # the body's Content-Encoding was already undone (feeds)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def content_encoding(self) -> str:
        return "" if self.decoded else self.headers.get("content-encoding", "")


class Archive:
    """Appends captures to the current WARC file. Not thread-safe: one thread writes."""

    def __init__(self, config: ArchiveConfig) -> None:
        self.directory = config.dir
        self.max_bytes = config.max_file_bytes
        self._handle: IO[bytes] | None = None
        self._writer: Any = None
        self._name = ""
        self._day = ""
        self._sequence = 0
        self._unsynced: dict[str, IO[bytes]] = {}  # file name -> handle, written since sync

    def write(self, capture: Capture) -> ArchiveLocation:
        """Append the request and response records of one exchange; flushed, not synced.
        A failed write (a full disk) leaves no half record behind: see _abandon."""
        handle, writer = self._current(capture.fetched_at)
        offset = handle.tell()
        try:
            return self._append(handle, writer, offset, capture)
        except OSError:
            self._abandon(offset)
            raise

    def _append(self, handle: IO[bytes], writer: Any, offset: int,
                capture: Capture) -> ArchiveLocation:
        request = writer.create_warc_record(
            capture.url, "request", payload=io.BytesIO(b""),
            http_headers=StatusAndHeaders(f"GET {_path(capture.url)} HTTP/1.1",
                                          list(capture.request_headers.items()),
                                          is_http_request=True),
            warc_headers_dict={"WARC-Date": _warc_date(capture.fetched_at)})
        headers = [(k, v) for k, v in capture.headers.items() if k.lower() not in _FRAMING
                   and not (capture.decoded and k.lower() == "content-encoding")]
        headers.append(("Content-Length", str(len(capture.body))))
        response = writer.create_warc_record(
            capture.url, "response", payload=io.BytesIO(capture.body),
            http_headers=StatusAndHeaders(f"{capture.status} {_reason(capture.status)}",
                                          headers, protocol="HTTP/1.1"),
            warc_headers_dict={"WARC-Date": _warc_date(capture.fetched_at),
                               "WARC-Concurrent-To": request.rec_headers.get_header(
                                   "WARC-Record-ID")})
        writer.write_record(request)
        writer.write_record(response)
        handle.flush()
        self._unsynced[self._name] = handle
        return ArchiveLocation(
            file=self._name, offset=offset, length=handle.tell() - offset,
            record_id=response.rec_headers.get_header("WARC-Record-ID"),
            digest=response.rec_headers.get_header("WARC-Payload-Digest") or "")

    def _abandon(self, offset: int) -> None:
        """After a failed write: close the current file, cut it back to its last whole
        exchange (a WARC reader must never meet half a record), and let the next write
        start a new file. Records written before stay, with their pointers."""
        handle, path = self._handle, self.directory / self._name
        self._handle = None
        if handle is None:
            return
        with contextlib.suppress(OSError):  # the whole exchanges before: durable, as sync()
            os.fsync(handle.fileno())
        self._unsynced.pop(self._name, None)
        with contextlib.suppress(OSError):
            handle.close()  # its flush fails again, or appends the half record...
        with contextlib.suppress(OSError):
            os.truncate(path, offset)  # ...which this removes

    def sync(self) -> None:
        """Make every record written since the last sync durable (fsync)."""
        for handle in self._unsynced.values():
            if not handle.closed:
                os.fsync(handle.fileno())
        self._unsynced.clear()

    def close(self) -> None:
        """Sync and close; a disk that fails now is a warning (the rows that point here
        were committed after their records were synced)."""
        try:
            self.sync()
            if self._handle is not None:
                self._handle.close()
        except OSError as exc:
            log.warning("archive: closing %s: %s", self._name, exc)
        self._handle = None

    def _current(self, when: str) -> tuple[IO[bytes], Any]:
        day = when[:10]
        if self._handle is None or self._handle.tell() >= self.max_bytes or day != self._day:
            if self._handle is not None:
                os.fsync(self._handle.fileno())
                self._handle.close()
            self._open(day)
        assert self._handle is not None
        return self._handle, self._writer

    def _open(self, day: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        while True:
            self._sequence += 1
            self._name = f"newswire-{stamp}-{os.getpid()}-{self._sequence:05d}.warc.gz"
            # 'xb': a new file every time; an existing file is never written again (one
            # an earlier archiver of this process opened in the same second is skipped).
            try:
                self._handle = open(self.directory / self._name, "xb")  # noqa: SIM115
            except FileExistsError:
                continue
            break
        self._writer = WARCWriter(self._handle, gzip=True)
        self._day = day
        try:
            write_warcinfo(self._handle, self._name, "pages fetched for articles and feed "
                           "bodies parsed by newswire")
            self._handle.flush()
        except OSError:  # a file without its warcinfo is no WARC file of ours
            self._abandon(0)
            with contextlib.suppress(OSError):
                (self.directory / self._name).unlink()
            raise


class Archiver:
    """The archive from the event loop: every write and sync in one thread of its own, in
    order (compressing a page is work the loop should not do)."""

    def __init__(self, config: ArchiveConfig) -> None:
        self.archive = Archive(config)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="newswire-archive")

    async def store(self, capture: Capture) -> ArchiveLocation:
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self.archive.write, capture)

    async def sync(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.archive.sync)

    def close(self) -> None:
        self._thread.submit(self.archive.close).result()
        self._thread.shutdown()


def read(directory: Path, location: ArchiveLocation) -> Capture:
    """The response (and the request headers) of one archived exchange."""
    with open(directory / location.file, "rb") as handle:
        handle.seek(location.offset)
        data = handle.read(location.length)
    request_headers: dict[str, str] = {}
    for record in ArchiveIterator(io.BytesIO(data)):
        if record.rec_type == "request" and record.http_headers is not None:
            request_headers = dict(record.http_headers.headers)
        elif record.rec_type == "response":
            headers = {k.lower(): v for k, v in record.http_headers.headers}
            body = record.raw_stream.read()
            if "chunked" in headers.pop("transfer-encoding", "").lower():
                # Another crawler's record (wget, warcprox) keeps the chunked framing, which
                # newswire's own never do: the body is read without it, as backfill reads it.
                body = ChunkedDataReader(io.BytesIO(body)).read()
            return Capture(
                url=record.rec_headers.get_header("WARC-Target-URI"),
                status=int(record.http_headers.get_statuscode()), headers=headers,
                body=body, request_headers=request_headers,
                fetched_at=record.rec_headers.get_header("WARC-Date"))
    raise ValueError(f"no response record at {location.file}:{location.offset}")


def raw(directory: Path, file: str, offset: int, length: int) -> bytes:
    """The archived bytes of one exchange (its gzip members), as they are on disk."""
    with open(directory / file, "rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    if len(data) != length:
        raise OSError(f"{file}: {length} bytes expected at {offset}, {len(data)} found")
    return data


def write_warcinfo(handle: IO[bytes], name: str, description: str) -> None:
    """A `warcinfo` record, first in a WARC file newswire writes."""
    writer = WARCWriter(handle, gzip=True)
    writer.write_record(writer.create_warcinfo_record(name, {
        "software": f"newswire/{__version__} (warcio)", "format": "WARC File Format 1.0",
        "description": description}))


def reader(handle: IO[bytes]) -> Any:
    """An iterator over the records of a WARC or WARC.gz stream, read as it goes (flat
    memory), checking payload digests (`record.digest_checker.passed`), with the offset and
    length of the record last read (`get_record_offset()`, `get_record_length()`)."""
    return ArchiveIterator(handle, check_digests=True)


def _warc_date(when: str) -> str:
    return when or iso(datetime.now(UTC))


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
