"""Worst-case pages for the author signals that search the whole page
(pipeline.metadata.author_link and written_by): seconds per call on pages built to make
them do the most work. They run in the extraction workers on every page whose earlier
signals name nobody, so their time must stay linear in the page's size.

    python bench/bench_author_signals.py [--scale N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lxml.html

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import metadata  # noqa: E402


def pages(scale: int) -> dict[str, str]:
    """Bodies by name, each with `scale` repetitions of what costs the signals the most."""
    return {
        f"{scale:,} paragraphs with 'by', ':' and links": "<h1>H</h1>" + "".join(
            f'<p>At 10:{i % 60:02d} nearby lobby <a href="/x{i}">maybe</a> by the way {i}</p>'
            f"<div><span>x: {i}</span></div>" for i in range(scale)),
        f"{scale:,} fact-box lines, 'Author:' beside 'Publisher:'": "<h1>H</h1><div>" + "".join(
            "<p>Author: Ana Lopez</p><p>Publisher: Penguin</p>" for _ in range(scale // 2))
        + "</div>",
        f"{scale:,} author links in comments": "<h1>H</h1><ol class='comment-list'>" + "".join(
            '<li><a href="/author/ana-lopez">Ana Lopez</a></li>' for _ in range(scale))
        + "</ol>",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=5000)
    args = parser.parse_args()
    for scale in (args.scale, 4 * args.scale):
        for name, body in pages(scale).items():
            tree = lxml.html.document_fromstring(f"<html><body>{body}</body></html>")
            for signal in (metadata.written_by, metadata.author_link):
                start = time.perf_counter()
                signal(tree)
                print(f"{name}: {signal.__name__} {time.perf_counter() - start:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
