"""Time `pipeline.extract.extract_article` per page, one core, for one source tree.

Usage: python bench/time_extraction.py ROOT SET [--limit N] [--feeds bare|full]

ROOT is a directory holding a `pipeline` package (this repository, or an older revision
unpacked by bench/bench_extraction.py to compare the cost of two versions in one run).
Prints one JSON object: {"ms": [milliseconds per page, in manifest order]}. Each page's
job is what a feed item gives: the title only (bare) or also the date and author (full).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("set")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--feeds", choices=("bare", "full"), default="bare")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(args.root).resolve()))  # that tree's pipeline ...
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # ... this tree's bench
    from bench import scoring
    from pipeline.extract import ExtractJob, extract_article

    pages = scoring.load_pages(args.set, args.limit)
    jobs = [ExtractJob(url=page.url, html=page.html, entry_title=page.title,
                       entry_content="", entry_published_at=(
                           f"{page.publish_date[:10]}T12:00:00Z"
                           if args.feeds == "full" and page.publish_date else None),
                       entry_authors=(page.author,) if args.feeds == "full" and page.author
                       else ())
            for page in pages]
    for job in jobs[:3]:  # warm-up: lazy imports, compiled patterns, the language model
        extract_article(job)
    timings = []
    for job in jobs:
        start = time.process_time()
        extract_article(job)
        timings.append((time.process_time() - start) * 1000)
    print(json.dumps({"ms": timings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
