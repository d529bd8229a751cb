"""Shared fixtures: a local news site, config files pointing at it, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.newssite import NewsSite

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NEWSWIRE_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "corpus"

PARAGRAPHS = [
    "The central bank raised its main interest rate by a quarter of a percentage point on "
    "Thursday, the third increase this year, citing persistent inflation in services.",
    "Officials said the decision was unanimous and that further moves would depend on how "
    "quickly wage growth slowed over the coming months across the wider economy.",
    "Economists had widely expected the increase, although several had argued that the "
    "bank should pause to assess the effect of earlier rises on household borrowing.",
    "The currency strengthened slightly after the announcement, while government bond "
    "yields edged higher in afternoon trading in the capital's financial district.",
]


def story(topic: str, n: int = 4) -> list[str]:
    """Paragraphs for an article that differ per topic (so texts never collide)."""
    return [f"{topic.capitalize()} report, part {i + 1}. {PARAGRAPHS[i % len(PARAGRAPHS)]}"
            for i in range(n)]


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


def write_config(path: Path, feeds: list[str], **sections: dict) -> Path:
    """A config file with the test conventions: only 127.0.0.1 allowed, no spacing."""
    import yaml

    fetch = {"allow_networks": ["127.0.0.1/32"], "per_host_delay": "0s", "timeout": "5s"}
    fetch.update(sections.pop("fetch", {}))
    data = {"database": "newswire.db", "fetch": fetch,
            "extract": {"workers": 2, **sections.pop("extract", {})},
            "feeds": [{"url": url} for url in feeds], **sections}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


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
