"""Peak memory of one `newswire once` over every hostile input at once, against a baseline.

Usage: python bench/bench_hostile.py [--runs N]

One local site (127.0.0.1) serves every hostile feed and page of
../shared/docs/hostile-inputs.md at the same time: trickling, endless and bomb bodies,
redirect loops and chains, throttling and error statuses, blocked addresses and schemes,
entity bombs, XXE, parser traps, 50,000 items, huge fields, wrong charsets and content
types, and articles whose pages are 30 MB, deeply nested, PDF, binary, endless, gzip bombs,
slow to extract or walls. A baseline run polls an ordinary site of the same number of
articles. Each run is a real `python -m pipeline once` subprocess; its peak RSS is measured
two ways: the largest single process (getrusage RUSAGE_CHILDREN of a wrapper that waits for
it and its workers) and the sum over the process tree (sampled from /proc every 20 ms).
Both runs are repeated N times (default 3, each on a fresh database); the worst peak counts.
Host names resolve only to 127.0.0.0/8 literals: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import procs  # noqa: E402
from tests.conftest import REPO, fill_site, story, write_config  # noqa: E402
from tests.newssite import NewsSite  # noqa: E402
from tests.test_parse import BILLION_LAUGHS, PARSER_TRAPS, item, quadratic, rss  # noqa: E402

LIMIT_MB = 500

# Runs `once` with the loopback-only resolver and reports the largest descendant's peak RSS.
WRAPPER = """
import asyncio, json, resource, subprocess, sys
code = subprocess.call([sys.executable, "-c", *sys.argv[1:]])
print(json.dumps({"code": code,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""
ONCE = """
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from pipeline.config import load_config
from pipeline.run import run_once
from pipeline.store import Store
from tests.feedcorpus import loopback_resolver
def main():
    config = load_config(sys.argv[1])
    with Store.open(config.database) as store:
        store.acquire_lock()
        print(asyncio.run(run_once(config, store, resolver=loopback_resolver)).line())
if __name__ == "__main__":
    main()
"""


def hostile_site(site: NewsSite, canary: Path) -> list[str]:
    """Serve every hostile input on `site`; return the feed URLs to poll."""
    now = datetime.now(UTC)
    feeds: list[str] = []

    def fault(path: str, kind: str, **options: object) -> None:
        site.set_fault(path, kind, **options)
        feeds.append(site.url(path))

    def route(path: str, body: bytes | str, content_type: str = "application/rss+xml",
              **options: object) -> None:
        feeds.append(site.route(path, body, content_type, **options))  # type: ignore[arg-type]

    # Network and HTTP (rows 1-14)
    fault("/trickle.xml", "trickle", interval=0.5)
    fault("/endless.xml", "endless", content_type="application/rss+xml")
    fault("/endless-close.xml", "endless", chunked=False, content_type="application/rss+xml")
    fault("/bomb.xml", "gzip_bomb", size=256 << 20, content_type="application/rss+xml")
    fault("/bomb2.xml", "gzip_bomb", size=256 << 20, double=True,
          content_type="application/rss+xml")
    fault("/loop-a.xml", "redirect", location="/loop-b.xml")
    site.set_fault("/loop-b.xml", "redirect", location="/loop-a.xml")
    for hop in range(8):
        site.set_fault(f"/chain{hop}.xml", "redirect", location=f"/chain{hop + 1}.xml")
    feeds.append(site.url("/chain0.xml"))
    fault("/to-blocked.xml", "redirect", location="http://127.0.0.2:9/feed.xml")
    fault("/to-file.xml", "redirect", location="file:///etc/passwd")
    fault("/to-odd-ip.xml", "redirect", location="http://2130706434:9/feed.xml")
    feeds.append("http://127.0.0.2:9/feed.xml")
    fault("/throttled.xml", "status", code=429, headers={"Retry-After": "3600"})
    fault("/unavailable.xml", "status", code=503,
          headers={"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"})
    fault("/error.xml", "status", code=500)
    fault("/missing.xml", "status", code=404)
    fault("/gone.xml", "status", code=410)
    fault("/reset.xml", "close")
    route("/empty.xml", b"")
    route("/html.xml", "<!doctype html><html><body><p>Not a feed</p></body></html>",
          "text/html")
    route("/png.xml", b"\x89PNG\r\n\x1a\n" + os.urandom(100_000), "image/png")
    # Feed parsing (rows 15-25)
    route("/laughs.xml", rss(item(title="&lol9;", guid="g"), doctype=BILLION_LAUGHS))
    route("/quadratic.xml", quadratic(refs=20_000, size=100_000))
    canary.write_text("CANARY-SECRET")
    route("/xxe.xml", rss(item(title="&leak;", guid="g"),
                          doctype=f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "{canary.as_uri()}">]>'))
    route("/path-body.xml", str(canary))
    for i, trap in enumerate(PARSER_TRAPS):
        route(f"/trap{i}.xml", trap)
    items = "".join(item(title=f"Item {i}", guid=f"g{i}", link=site.url(f"/none/{i}"),
                         description="x" * 50)
                    for i in range(50_000))
    route("/fifty-thousand.xml", rss(items))
    route("/huge-fields.xml", rss(item(title="T" * 100_000, guid="h",
                                       description="D" * 5_000_000)))
    route("/utf16.xml", rss(item(title="Wide", guid="w"), decl='<?xml version="1.0" '
                            'encoding="utf-16"?>').decode().encode("utf-16"), "text/xml")
    route("/cp1252.xml", rss(item(title="Caf\u00e9 \u20ac5", guid="c")).decode()
          .encode("windows-1252"), "application/rss+xml; charset=utf-8")
    # Pages and extraction (rows 26-27): articles in the site's own feeds
    pages = {
        "huge-page": (b"<html><body>" + b"<p>word </p>" * 2_700_000, "text/html"),
        "deep-page": ("<html><body>" + "<div>" * 200_000 + "</div>" * 200_000, "text/html"),
        "pdf-page": (b"%PDF-1.7\n" + os.urandom(200_000), "application/pdf"),
        "binary-page": (os.urandom(500_000), "text/html"),
        "slow-page": ("<html><body><article>" + "".join(
            f"<p>Paragraph {i} of a long page, with words for the extractor.</p>"
            for i in range(120_000)) + "</article></body></html>", "text/html"),
        "wall-page": ("<html><body><p>Subscribe to continue reading.</p></body></html>",
                      "text/html"),
    }
    for slug, (body, content_type) in pages.items():
        site.add_article(slug, f"Story {slug}", story(slug), now - timedelta(minutes=5))
        site.route(f"/news/{slug}.html", body, content_type)
    for slug, kind, options in (("endless-page", "endless", {"content_type": "text/html"}),
                                ("bomb-page", "gzip_bomb", {"content_type": "text/html"}),
                                ("trickle-page", "trickle", {"content_type": "text/html"})):
        site.add_article(slug, f"Story {slug}", story(slug), now - timedelta(minutes=5))
        site.set_fault(f"/news/{slug}.html", kind, **options)
    feeds += [site.feed_url(name) for name in ("rss", "atom", "rdf", "json")]
    return feeds


def measure(config: Path) -> dict[str, float]:
    """Run `once` on config; its peak RSS (largest process, and the whole tree)."""
    wrapper = subprocess.Popen([sys.executable, "-c", WRAPPER, ONCE, str(config), str(REPO)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    tree_peak, done = 0.0, threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        while not done.is_set():
            tree_peak = max(tree_peak, tree_rss_mb(wrapper.pid)
                            - procs.rss_kb(wrapper.pid) / 1024)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    out, _ = wrapper.communicate(timeout=900)
    done.set()
    sampler.join()
    lines = out.strip().splitlines()
    result = json.loads(lines[-1])
    return {"largest_mb": result["maxrss_mb"], "tree_mb": tree_peak,
            "seconds": time.perf_counter() - started, "summary": lines[0] if lines else ""}


def tree_rss_mb(root: int) -> float:
    """Sum of VmRSS over root and all its descendants."""
    return sum(procs.rss_kb(pid) for pid in procs.descendants(root)) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "hostile": []}
    canary_leaked = False
    with NewsSite() as site, NewsSite() as plain:
        for n in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                feeds = hostile_site(site, work / "canary.txt")
                if n == 0:
                    fill_site(plain, len(site.articles))
                for name, urls in (("baseline", [plain.feed_url(f) for f in
                                                 ("rss", "atom", "rdf", "json")]),
                                   ("hostile", feeds)):
                    (work / name).mkdir()
                    runs[name].append(measure(write_config(work / name / "newswire.yaml",
                                                           urls)))
                database = (work / "hostile" / "newswire.db").read_bytes()
                canary_leaked |= b"CANARY-SECRET" in database
    print(f"hostile inputs: {len(feeds)} feeds and {len(site.articles)} article pages, "
          f"polled at once by one `once` (extract.workers=2); {args.runs} runs each")
    print(f"{'run':<10} {'largest process MB':>19} {'process tree MB':>16} "
          f"{'tree MB, median':>16} {'seconds, median':>16}")
    worst = {}
    for name, rows in runs.items():
        worst[name] = max(r["tree_mb"] for r in rows)
        print(f"{name:<10} {max(r['largest_mb'] for r in rows):>19.0f} {worst[name]:>16.0f} "
              f"{statistics.median(r['tree_mb'] for r in rows):>16.0f} "
              f"{statistics.median(r['seconds'] for r in rows):>16.1f}")
    print(f"hostile/baseline worst tree peak: {worst['hostile'] / worst['baseline']:.2f}x; "
          f"limit {LIMIT_MB} MB: {'ok' if worst['hostile'] < LIMIT_MB else 'EXCEEDED'}")
    print(f"hostile run: {runs['hostile'][-1]['summary']}")
    print(f"canary leaked into the database: {canary_leaked}")
    return 0 if worst["hostile"] < LIMIT_MB and not canary_leaked else 1


if __name__ == "__main__":
    sys.exit(main())
