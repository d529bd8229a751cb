"""The WARC archive's cost, re-extraction's speed, and a large backfill's memory.

Usage: python bench/bench_archive.py [--quick] [--pages N] [--repeat N] [--warc-mb N]
                                     [--backfill-only]

1. Overhead: the corpus pages (both extraction sets) served from 127.0.0.1 as in
   bench/bench_throughput.py, ingested by a cold `newswire once` with the archive on and off,
   alternately (medians of --repeat runs each). Targets: at most 5% fewer pages/s with the
   archive on, and the archive no larger than 1.2x the pages gzip'd one by one.
2. Re-extraction: `newswire reextract` over the same database (every page archived), per page
   against the first ingestion's per-page time in the same run. Target: at least as fast.
3. Backfill: a WARC.gz of --warc-mb megabytes (default 1024) built from the corpus pages (a
   CC-NEWS-like layout, each copy under its own URL), ingested by `newswire backfill --warc`;
   pages/s and the peak RSS of the CLI and its workers. Target: peak under 600 MB.
Exits 0 with "skipped" without ../shared/corpus, 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import corpus_site  # noqa: E402

ITEMS_PER_FEED = 50


def configure(directory: Path, feeds: list[str], archive: bool) -> Path:
    config = corpus_site.write_config(directory, feeds)
    data = yaml.safe_load(config.read_text())
    data["archive"] = {"enabled": archive}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def archive_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in (directory / "archive").glob("*.warc.gz"))


def build_warc(path: Path, pages: list[corpus_site.Page], megabytes: int) -> int:
    """A CC-NEWS-like WARC.gz of about `megabytes`: request, response and metadata records
    per page, copies of the corpus pages under distinct URLs. Returns the HTML responses."""
    count = 0
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "bench"}))
        while handle.tell() < megabytes * 1_000_000:
            page = pages[count % len(pages)]
            url = page.url + ("&" if "?" in page.url else "?") + f"nwcopy={count}"
            body = page.html.encode("utf-8")
            writer.write_record(writer.create_warc_record(
                url, "request", payload=io.BytesIO(b""),
                http_headers=StatusAndHeaders("GET / HTTP/1.1", [("Host", "x")],
                                              is_http_request=True)))
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body),
                http_headers=StatusAndHeaders("200 OK", [
                    ("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")))
            writer.write_record(writer.create_warc_record(
                url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 100\n"),
                warc_content_type="application/warc-fields"))
            count += 1
    return count


def overhead(walls: dict[bool, list[float]], sizes: list[int], again: list[float],
             gzipped: int, total: int) -> bool:
    """Part 1 and 2's table and verdicts."""
    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    loss = 1 - off / on
    ratio = statistics.median(sizes) / gzipped
    first, redo = on / total, statistics.median(again) / total
    print("| | archive off | archive on |\n|---|---|---|")
    print(f"| wall s (median) | {off:.1f} | {on:.1f} |")
    print(f"| pages/s | {total / off:.1f} | {total / on:.1f} |")
    print(f"\npages/s lost to the archive: **{loss:.1%}** (target <= 5%); archive "
          f"{statistics.median(sizes) / 1e6:.1f} MB against {gzipped / 1e6:.1f} MB of "
          f"pages gzip'd one by one: **{ratio:.2f}x** (target <= 1.2x)")
    print(f"reextract: {redo * 1000:.1f} ms per page against {first * 1000:.1f} ms per page "
          f"for the first ingestion: **{first / redo:.2f}x** as fast (target >= 1)")
    ok = loss <= 0.05 and ratio <= 1.2 and redo <= first
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 pages, 100 MB WARC")
    parser.add_argument("--pages", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--warc-mb", type=int, default=None)
    parser.add_argument("--backfill-only", action="store_true",
                        help="only part 3, the backfill of a large WARC")
    args = corpus_site.parse_args(parser, argv)
    if args is None:
        return 0
    total = args.pages or (300 if args.quick else 1500)
    repeat = args.repeat or (1 if args.quick else 3)
    megabytes = args.warc_mb or (100 if args.quick else 1024)
    pages = corpus_site.load_sets()
    site = corpus_site.build_site(pages, total, max(1, total // ITEMS_PER_FEED), sites=16)
    gzipped = sum(len(gzip.compress(s.page.html.encode("utf-8"))) for s in site.pages)
    print(f"== archive: {corpus_site.machine()}; {total} pages, medians of {repeat} runs")
    ok = True
    with tempfile.TemporaryDirectory(prefix="nw-archive-") as tmp, corpus_site.Server(site):
        work = Path(tmp)
        walls: dict[bool, list[float]] = {True: [], False: []}
        sizes: list[int] = []
        again: list[float] = []
        for attempt in range(0 if args.backfill_only else repeat):
            for archive in (False, True):
                config = configure(work / f"{archive}-{attempt}", site.feed_urls(), archive)
                run = corpus_site.run_once(config)
                if run.returncode != 0:
                    raise SystemExit(run.stderr[-2000:])
                walls[archive].append(run.wall_s)
                if archive:
                    sizes.append(archive_bytes(config.parent))
                    redo = corpus_site.run_cli(config, "reextract")
                    if redo.returncode != 0:
                        raise SystemExit(redo.stderr[-2000:])
                    again.append(redo.wall_s)
        ok = args.backfill_only or overhead(walls, sizes, again, gzipped, total)

        warc = work / "bench.warc.gz"
        records = build_warc(warc, pages, megabytes)
        config = configure(work / "backfill", ["http://feeds.example/rss"], True)
        run = corpus_site.run_cli(config, "backfill", "--warc", str(warc))
        if run.returncode != 0:
            raise SystemExit(run.stderr[-2000:])
        print(f"\nbackfill of a {warc.stat().st_size / 1e6:.0f} MB WARC ({records} HTML "
              f"responses): {run.wall_s:.1f} s, **{records / run.wall_s:.1f} pages/s**; peak "
              f"RSS **{run.peak_tree_rss_mb:.0f} MB** for the CLI and its workers (largest "
              f"process {run.peak_process_rss_mb:.0f} MB; target < 600 MB)")
        ok = ok and run.peak_tree_rss_mb < 600
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
