"""Worst-case pages for pipeline.blocks: its rules' CPU time beside trafilatura's on the same page.

Usage: python bench/bench_blocks.py

Each page is built to make one rule work hardest, cut to the extractor's size limit
(pipeline.extract.MAX_HTML_CHARS): link blocks nested as deep as the HTML parser goes around
a long text (every block's length is the whole text below it), and tens of thousands of
cards, one-link paragraphs and headers. Prints, per page, the blocks found, the rules' CPU
time and trafilatura's (recall mode, as the pipeline calls it) on the same page.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.blocks import link_blocks  # noqa: E402
from pipeline.extract import page_visible_words, trim_html  # noqa: E402

PAGES = {
    "250 nested link blocks around 300,000 words":
        "<html><body>" + "<div><a href='/x'>link</a><span>s</span>" * 250
        + "<p>" + "word " * 300_000 + "</p>" + "</div>" * 250 + "</body></html>",
    "45,000 cards": "<html><body>" + "<div><a href='/x'>link</a><span>s</span></div>" * 45_000
        + "</body></html>",
    "45,000 one-link paragraphs":
        "<html><body>" + "<p><a href='/x'>a link to a story</a></p>" * 45_000 + "</body></html>",
    "55,000 headers in <main>":
        "<html><body><main>" + "<header><a href='/x'>h</a></header>" * 55_000
        + "</main></body></html>",
}


def main() -> int:
    import trafilatura

    print("| page | size | blocks | rules | trafilatura |\n|---|---|---|---|---|")
    for name, raw in PAGES.items():
        html = trim_html(raw)
        tree = trafilatura.load_html(html)
        start = time.process_time()
        found = len(link_blocks(tree, page_visible_words(tree)))
        rules = time.process_time() - start
        start = time.process_time()
        trafilatura.bare_extraction(trafilatura.load_html(html), favor_recall=True,
                                    include_comments=False, include_tables=True,
                                    with_metadata=False)
        whole = time.process_time() - start
        print(f"| {name} | {len(html) / 1e6:.1f} MB | {found} | {rules:.2f} s | {whole:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
