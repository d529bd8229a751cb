"""`make demo`: watch newswire work without internet.

Serves a tiny news site (three hand-written articles and an RSS feed) from 127.0.0.1, points
a config at it in `demo-data/`, runs `newswire once`, then shows `status` and what was stored.
Run it twice to see the second pass answered with 304 Not Modified.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.cli import main as newswire
from pipeline.store import Store

DEMO_PORT = 8765
STORIES = {
    "harbour-reopens": (
        "Harbour reopens after storm repairs",
        ["The city's main harbour reopened to shipping on Tuesday after six weeks of repairs "
         "to breakwaters damaged in the autumn storm, the port authority said.",
         "Ferries to the outlying islands resume their full timetable from Wednesday, while "
         "cargo traffic will be phased back in over the following fortnight.",
         "Local fishermen, who had been forced to land their catch at smaller ports along the "
         "coast, welcomed the decision but said compensation payments were still outstanding."]),
    "library-digitises-archive": (
        "National library finishes digitising its newspaper archive",
        ["The national library has finished digitising two centuries of newspapers, making "
         "more than four million pages searchable online free of charge.",
         "The project, which began a decade ago, used optical character recognition to turn "
         "scanned pages into text that researchers can search and download.",
         "Librarians said the collection was already being used by historians, genealogists "
         "and schoolchildren, and that usage had tripled since the summer."]),
    "rail-strike-called-off": (
        "Rail strike called off after late-night agreement",
        ["A national rail strike planned for Friday has been called off after unions and "
         "operators reached an agreement on pay in talks that ran late into the night.",
         "The deal includes a pay rise over two years and a commitment not to close ticket "
         "offices before a review of staffing is completed next spring.",
         "Passenger groups said they were relieved but warned that trust in the network would "
         "take time to rebuild after a year of disruption."]),
}


def _page(title: str, paragraphs: list[str], published: datetime) -> bytes:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{escape(title)} | Demo Courier</title>
<meta name="author" content="Demo Desk">
<meta property="article:published_time" content="{published.isoformat()}">
<meta property="og:site_name" content="Demo Courier"></head><body>
<header><a href="/">Demo Courier</a> <nav><a href="/world">World</a>
<a href="/sport">Sport</a></nav></header>
<main><article><h1>{escape(title)}</h1>{body}</article></main>
<aside><h3>Most read</h3><ul><li>Weather warning</li><li>Football results</li></ul></aside>
<footer>© Demo Courier. All rights reserved.</footer></body></html>""".encode()


def _feed(base: str, published: dict[str, datetime]) -> bytes:
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{base}/news/{slug}.html</link>"
        f"<guid>{base}/news/{slug}.html</guid><description>{escape(paras[0])}</description>"
        f"<pubDate>{format_datetime(published[slug], usegmt=True)}</pubDate></item>"
        for slug, (title, paras) in STORIES.items())
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Demo Courier</title><link>{base}/</link><description>Demo news"
            f"</description><ttl>5</ttl>{items}</channel></rss>").encode()


def serve(port: int = DEMO_PORT) -> tuple[ThreadingHTTPServer, str]:
    """Start the demo site on 127.0.0.1; returns the server and its base URL."""
    now = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)  # stable ETag
    published = {slug: now - timedelta(hours=i + 1) for i, slug in enumerate(STORIES)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            base = f"http://127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
            slug = self.path.removeprefix("/news/").removesuffix(".html")
            if self.path == "/feed.xml":
                body, kind = _feed(base, published), "application/rss+xml"
            elif slug in STORIES:
                title, paragraphs = STORIES[slug]
                body, kind = _page(title, paragraphs, published[slug]), "text/html"
            else:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            print(f"  demo site: {self.command} {self.path} -> {code}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    try:  # a fixed port, so a second `make demo` polls the same feed (and gets 304s)
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run(directory: Path = Path("demo-data"), port: int = DEMO_PORT) -> int:
    directory.mkdir(exist_ok=True)
    server, base = serve(port)
    config = directory / "demo.yaml"
    config.write_text(
        "# Written by `make demo`: a local news site on a port chosen at random.\n"
        "database: demo.db\n"
        "fetch:\n  allow_networks: ['127.0.0.1/32']\n  per_host_delay: 0s\n"
        f"feeds:\n  - url: {base}/feed.xml\n    name: Demo Courier\n")
    try:
        print(f"Demo news site at {base}; ingesting with `newswire once --all`:")
        newswire(["--config", str(config), "once", "--all"])
        print("\n`newswire status`:")
        newswire(["--config", str(config), "status"])
        with Store.open(directory / "demo.db") as store:
            rows = store.latest_articles()
        print("\nStored articles:")
        for row in rows:
            print(f"  {row['id']}  {row['title']}  [{row['text_source']}]\n"
                  f"      {row['text'][:90]!r}…")
        print(f"\nBrowse them with: newswire --config {config} serve")
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
