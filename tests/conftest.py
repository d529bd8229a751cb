"""Shared fixtures: a local news site, config files pointing at it, and a CLI runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.newssite import NewsSite

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NEWSWIRE_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "corpus"

# Phrase pools for `story`: each topic draws its own phrases, so stories on the same subject
# share vocabulary but hardly any five-word run (distinct stories, not near-duplicates).
_SUBJECTS = ("The central bank", "The finance ministry", "The national statistics office",
             "The regional government", "The port authority", "The energy regulator",
             "The transport ministry", "The city council", "The competition watchdog",
             "The housing agency", "The farmers' union", "The largest retailer")
_ACTIONS = ("raised its main interest rate", "cut the annual budget", "unveiled a housing plan",
            "froze fuel subsidies", "lifted the minimum wage", "doubled import tariffs",
            "scrapped rail fare rises", "capped water charges", "delayed a pension reform",
            "approved a new harbour", "blocked a bank merger", "extended a tax break")
_WHEN = ("on Thursday", "late on Monday", "after a long meeting on Friday",
         "earlier this week", "in a surprise move", "for the second time this year",
         "after weeks of talks", "ahead of the holiday weekend", "following a court ruling")
_REASONS = ("citing persistent price pressure in services", "pointing to weaker exports",
            "after protests in the capital", "blaming higher borrowing costs",
            "as tourism numbers recovered", "despite objections from opposition parties",
            "to ease pressure on households", "warning of a difficult winter",
            "after an audit found gaps in spending")
_VOICES = ("Officials said", "Economists noted", "Critics argued", "Business groups warned",
           "Union leaders said", "Analysts in the capital said", "A spokeswoman said",
           "Several lawmakers said")
_CLAIMS = ("the decision would be reviewed next spring", "households would feel it within months",
           "small firms had been hit hardest", "the move had been widely expected",
           "the timing surprised most observers", "further steps depended on wage growth",
           "the plan lacked detail on funding", "exporters stood to gain most",
           "prices had risen faster than wages for two years")


def story(topic: str, n: int = 4) -> list[str]:
    """Paragraphs for an article on `topic`: every topic gives a different story (different
    text, by construction not even a near-duplicate of another topic's), the same topic the
    same story. Paragraph i starts "<Topic> report, part i."; every story has the words
    "unanimous", "raised" and "inflation" (tests search for them)."""
    import random

    rng = random.Random(topic)
    paragraphs = []
    for i in range(n):
        sentences = [f"{topic.capitalize()} report, part {i + 1}.",
                     f"{rng.choice(_SUBJECTS)} {rng.choice(_ACTIONS)} {rng.choice(_WHEN)}, "
                     f"{rng.choice(_REASONS)}.",
                     f"{rng.choice(_VOICES)} {rng.choice(_CLAIMS)}, and "
                     f"{rng.choice(_CLAIMS)}."]
        if i == 0:
            sentences.insert(1, f"The decision on {topic} was unanimous: prices were raised "
                                f"again as inflation persisted.")
        paragraphs.append(" ".join(sentences))
    return paragraphs


def fill_site(site: NewsSite, count: int = 5) -> None:
    now = datetime.now(UTC)
    for i in range(count):
        site.add_article(f"story-{i}", f"Story {i}: a headline about topic {i}",
                         story(f"topic {i}"), now - timedelta(hours=i + 1),
                         author=f"Reporter {i}")


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as news:
        fill_site(news)
        yield news


def write_config(path: Path, feeds: list[str] | list[str | dict], **sections: Any) -> Path:
    """A config file with the test conventions: only 127.0.0.1 allowed, no spacing. A feed
    is its URL, or its whole config entry as a mapping."""
    import yaml

    fetch = {"allow_networks": ["127.0.0.1/32"], "per_host_delay": "0s", "timeout": "5s"}
    fetch.update(sections.pop("fetch", {}))
    data = {"database": "newswire.db", "fetch": fetch,
            "extract": {"workers": 2, **sections.pop("extract", {})},
            "feeds": [f if isinstance(f, dict) else {"url": f} for f in feeds], **sections}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


async def resolve_to_loopback(host: str, port: int) -> list[str]:
    """A resolver giving every name 127.0.0.1: sites on names of their own (`slow.test`),
    so that per-host limits apply to each alone."""
    return ["127.0.0.1"]


@contextmanager
def slow_beside_quick(workdir: Path, slow_pages: int, trickle: bool = True
                      ) -> Iterator[tuple[Path, NewsSite, NewsSite]]:
    """A feed due every second (2 articles, host `quick.test`) beside a feed of
    `slow_pages` articles (host `slow.test`) whose pages, with `trickle`, send a byte every
    0.2 s until their 1 s deadline; the daemon's config for both (tick 0.5 s, one request
    at a time per host, 1 s to finish polls on a stop): (config path, slow, quick)."""
    with NewsSite() as slow, NewsSite() as quick:
        slow.base_url = slow.base_url.replace("127.0.0.1", "slow.test")
        quick.base_url = quick.base_url.replace("127.0.0.1", "quick.test")
        fill_site(slow, slow_pages)
        fill_site(quick, 2)
        if trickle:
            for article in slow.articles:
                slow.set_fault(f"/news/{article.slug}.html", "trickle", interval=0.2)
        config = write_config(
            workdir / "newswire.yaml",
            [slow.feed_url("rss"), {"url": quick.feed_url("rss"), "interval": "1s"}],
            fetch={"timeout": "1s", "per_host_concurrency": 1},
            schedule={"tick": "0.5s", "min_interval": "1s", "stop_grace": "1s"})
        yield config, slow, quick


def run_daemon_for(config: Any, store: Any, seconds: float, resolver: Any = None) -> None:
    """The daemon in this process for `seconds`, then stopped as SIGTERM stops it."""
    import asyncio

    from pipeline.daemon import run_daemon
    from pipeline.fetch import system_resolver

    async def go() -> None:
        stop = asyncio.Event()
        daemon = asyncio.ensure_future(run_daemon(config, store, resolver=resolver or
                                                  system_resolver, stop=stop))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(daemon, 120)

    asyncio.run(go())


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def wait_until_serving(server: subprocess.Popen[Any], root: str, timeout: float = 60) -> None:
    """Until the Datasette at `root` answers (`/-/versions.json`); fails with what the server
    printed when it exits or does not answer in time."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            opener.open(root + "/-/versions.json", timeout=2).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                output = server.stdout.read() if server.stdout else ""
                pytest.fail(f"the server did not start: {output!r}")
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(config: Path, cwd: Path) -> Iterator[str]:
    """`newswire serve` on a free port for the block's duration; yields its root URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config), "serve", "--port",
         str(port)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, root)
        yield root
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_cli(*args: str, config: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> CliResult:
    """Run `python -m pipeline` as a user would, in a subprocess."""
    command = [sys.executable, "-m", "pipeline"]
    if config is not None:
        command += ["--config", str(config)]
    proc = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **(env or {})})
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def needs_corpus(*parts: str) -> Path:
    """The path under ../shared/corpus, or skip the test cleanly when it is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/corpus is absent)")
    return path
