"""A newswire database of realistic shape and any size, written by the product's own code.

Usage:
    python bench/corpus_db.py OUT.db --articles 100000 [--feeds N] [--days 365]
                              [--fetch-log-days 30] [--poll-minutes 15] [--seed 1]
    python bench/corpus_db.py OUT.db --append-hours 24     # one more day of news

or from Python (bench/bench_scale.py, the dashboards of issue 15):

    from bench.corpus_db import Shape, build
    report = build(Path("big.db"), Shape(articles=1_000_000))

What it writes, in time order, through `pipeline.store.polls.record` (the writer's own
function: dedupe decisions, clusters, duplicate evidence, signatures and LSH band rows, entries,
site lines, the fetch log and every feed's state), with the product's schedule
(`pipeline.schedule.next_poll`), fingerprints (`pipeline.neardup.fingerprint_article`),
URL canonicalisation and article ids (`pipeline.dedupe`) and line keys
(`pipeline.boilerplate.line_keys`); the near-duplicate index is pruned to its window and
site lines forgotten on the daemon's six-hourly maintenance rhythm, in simulated time:

- **Feeds and outlets**: `--feeds` feeds (default: 500 at 10k articles, 2,000 at 100k, 5,000
  at 1M) on about feeds/1.75 sites (1 to 4 section feeds each), a few of them news agencies
  (named as in `dedupe.agencies`, so their copies become canonical). Feed activity is
  log-normal: a few busy feeds, a long tail of quiet ones.
- **Texts**: real sentences (the truth texts of ../shared/corpus/extraction, split and
  deduplicated) recombined into paragraphs of 1-4 sentences; body length log-normal, median
  520 words; headlines from the story's own words. 2% are templated market, sports and
  weather reports that differ only in their numbers (bench/syndication.py).
- **Stories and copies**: 62% of stories are carried by one outlet; the rest by 2 to 60
  (Zipf tail), half of them first published by an agency; copies arrive 0-48 h later
  (log-normal, median 2 h) as outlets alter wire copy: verbatim (25%), site boilerplate
  wrapped around it (30%), end trimmed (12%), a few words edited (15%), a local paragraph
  (10%), a new lead (8%) (bench/syndication.py's transformations). The product's own
  dedupe then makes the clusters, exact and near copies and related edges.
- **Entries**: every article reaches the corpus through an entry of its feed; a quarter of
  the articles of multi-feed sites also appear in a second section feed (same URL: one more
  entry for the stored article), so entries = about 1.2 x articles.
- **Fetch log**: the last `--fetch-log-days` days (default 30) are polled poll by poll:
  every feed every `--poll-minutes` (15, the default interval, fixed as `interval: 15m` in
  the written config), 304 when nothing is new on the 85% of feeds that send validators,
  1% dead feeds (connection refused, backed off by the product's schedule), 3% flaky feeds
  (a 500 or a timeout on 10% of polls), a few throttled by 429 + Retry-After. Before that
  window articles arrive as entry batches (no poll rows: the rolling fetch log has deleted
  them, their daily totals remain): the corpus has 30 days of fetch log, like the issue's.
- Ends at the moment of the build (rounded to the minute); a config file listing every feed
  (`OUT.yaml` beside the database) lets `newswire --config OUT.yaml status|serve|once` run
  on it.

**Bulk, and why it writes the same shapes.** A million articles poll by poll through the
writer takes hours; the build differs from the daemon only where the result cannot differ:
- Articles and entries always go through `polls.record`, in time order, so every signature,
  band row, exact or near decision, cluster, canonical choice, edge, counter and daily total
  is the product's own. Texts and fingerprints are made ahead in `--workers` processes (the
  extraction stage's output, as `pipeline.run` hands it to the writer).
- Transactions group up to COMMIT_EVERY polls or batches (the writer groups up to 64), the
  daemon's maintenance (pruning the near-duplicate index, forgetting site lines, rolling the
  fetch log) joining the open one (`BuildStore`), with no fsync and a large page cache: the
  same rows, committed less often. At a million articles a transaction of a few hundred
  articles dirtied a page of every index per insert (random ids, bands, anchors, URLs) and
  its commit and checkpoint wrote them all: a tenth of the writer's time, growing with size.
- Polls that brought no entry (most of the fetch log) are inserted with one executemany of
  the row `polls.fetch_row` makes (the counters' triggers fire per row all the same), and a
  feed's state is written from the polls that decide it (its last 200, last success and last
  poll, through `feeds.after_poll`): the state every intermediate poll would have left.
- Before the fetch-log window articles arrive as entry batches (no poll rows: the rolling
  fetch log would have deleted them), and the daily totals of those days' polls are written
  at the end (`older_daily_totals`): each feed's mean day of the window for the poll
  counts, the entries and articles that day really brought for the rest.
`--append-hours` (ingest measurement) writes every poll through `polls.record`.

`--append-hours H` adds the next H hours of news after the corpus's end (new stories, same
feeds, same rules, polled poll by poll): the same corpus appended the same hours gets the
same news, so this measures ingest into a big database, one code against another. Needs
../shared/corpus (exits 0 with a message when it is absent).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import heapq
import json
import math
import multiprocessing
import random
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import syndication  # noqa: E402
from pipeline import boilerplate, neardup, schedule  # noqa: E402
from pipeline.config import FeedConfig, ScheduleConfig  # noqa: E402
from pipeline.dedupe import article_id, canonical_url  # noqa: E402
from pipeline.messages import (  # noqa: E402
    Article,
    EntryBatch,
    FeedState,
    NewEntry,
    PollResult,
)
from pipeline.store import Store, polls  # noqa: E402
from pipeline.store import feeds as feed_state  # noqa: E402
from pipeline.store import lines as site_lines  # noqa: E402
from pipeline.times import iso  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "extraction"
FEEDS_AT = {10_000: 500, 100_000: 2_000, 1_000_000: 5_000}  # the corpora
AGENCIES = (("Reuters", "reuters.com"), ("AFP", "afp.com"), ("Associated Press", "apnews.com"),
            ("dpa", "dpa-international.com"), ("PA Media", "pamediagroup.com"),
            ("EFE", "efe.com"))
SECTIONS = ("top", "world", "business", "politics", "science", "sport", "culture", "local")
LANGUAGES = (("en", 0.86), ("de", 0.04), ("fr", 0.04), ("es", 0.03), ("it", 0.03))
COPY_KINDS = (("exact", 0.25), ("wrap", 0.30), ("trim", 0.12), ("edit", 0.15),
              ("add_local", 0.10), ("new_lead", 0.08))
MAINTENANCE_EVERY = Store.MAINTENANCE_EVERY  # the daemon's maintenance rhythm
BAND_WINDOW_DAYS = 30
COMMIT_EVERY = 50_000  # polls / batches per transaction when building (the writer groups
# up to 64; polls without entries are written in bulk at each flush, up to as many)
WRITE_GROUP = 5000  # ... when appending: the ingest it measures commits more often
CACHE_KIB = 4 * 1024 * 1024  # the builder's SQLite page cache (the product keeps SQLite's
# default): every index a write reads at random (article ids, anchors, bands, URLs) stays in
# memory even at 1M articles; the text pages, written once, are left to the OS page cache so
# that a 1M build (11 GB) does not take most of a shared machine's memory
PROGRESS_EVERY = 60.0  # seconds between progress lines
_DIGITS = re.compile(r"[0-9]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_FIRST_NAMES = ("Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines",
                "Jonas", "Kemal", "Laura", "Marta", "Nils", "Olga", "Pavel", "Rosa", "Sam")
_LAST_NAMES = ("Adler", "Brennan", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat",
               "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor")
_PLACES = ("Northfield", "Eastbrook", "Westport", "Southgate", "Ashford", "Bridgeton",
           "Clearwater", "Dunmore", "Elmwood", "Fairhaven", "Glenrock", "Highmoor", "Ironbridge",
           "Kingsley", "Lakeview", "Millbrook", "Newhaven", "Oakridge", "Pinecrest", "Redcliff")
_PAPERS = ("Courier", "Herald", "Gazette", "Post", "Times", "Chronicle", "Observer", "Tribune",
           "Dispatch", "Ledger", "Examiner", "Star", "Journal", "Record", "Sentinel", "Echo")


@dataclass(frozen=True)
class Shape:
    """What to build. `feeds` 0: the issue's proportions (500 / 2,000 / 5,000 feeds at
    10k / 100k / 1M articles, interpolated in between)."""

    articles: int
    feeds: int = 0
    days: float = 365.0
    fetch_log_days: float = 30.0
    poll_minutes: float = 15.0
    seed: int = 1

    def feed_count(self) -> int:
        if self.feeds:
            return self.feeds
        sizes = sorted(FEEDS_AT)
        if self.articles <= sizes[0]:
            return max(20, round(FEEDS_AT[sizes[0]] * (self.articles / sizes[0]) ** 0.6))
        for low, high in zip(sizes, sizes[1:], strict=False):
            if self.articles <= high:
                share = math.log(self.articles / low) / math.log(high / low)
                return round(FEEDS_AT[low] * (FEEDS_AT[high] / FEEDS_AT[low]) ** share)
        return round(FEEDS_AT[sizes[-1]] * (self.articles / sizes[-1]) ** 0.4)


@dataclass
class Report:
    articles: int = 0
    entries: int = 0
    polls: int = 0
    batches: int = 0
    seconds: float = 0.0
    write_seconds: float = 0.0  # inside the write transactions: the writer's own work
    write_cpu: float = 0.0  # ... its CPU seconds (less sensitive to a busy machine)
    articles_written_in_polls: int = 0  # ... of which through timed polls
    fingerprint_seconds: float = 0.0  # the writer waiting for texts and fingerprints
    sim_start: str = ""
    sim_end: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        rate = self.articles / self.write_seconds if self.write_seconds else 0.0
        per_cpu = self.articles / self.write_cpu if self.write_cpu else 0.0
        return (f"{self.articles:,} new articles, {self.entries:,} entries, {self.polls:,} "
                f"polls, {self.batches:,} entry batches in {self.seconds:.0f} s "
                f"(writer {self.write_seconds:.0f} s, {self.write_cpu:.0f} s CPU: "
                f"{rate:,.0f} articles/s, {per_cpu:,.0f} per CPU second, with their polls; "
                f"waiting for texts {self.fingerprint_seconds:.0f} s); "
                f"{self.sim_start} .. {self.sim_end}")


_DAY_PREFIX: dict[int, str] = {}


def stamp(at: float) -> str:
    """`iso(datetime.fromtimestamp(at, UTC))`, the same text, without a datetime and
    strftime per call: the build stamps tens of millions of polls, and strftime alone
    was a tenth of the poll phase."""
    whole = int(at // 1)
    day, second = divmod(whole, 86400)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = iso(datetime.fromtimestamp(day * 86400, UTC))[:11]
    return f"{prefix}{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


# --- sentences, outlets, feeds -----------------------------------------------------------------

def load_sentences() -> list[str]:
    """Distinct sentences of the corpus truth texts (30-320 characters)."""
    seen: dict[str, None] = {}
    for path in sorted(CORPUS.glob("*/truth/*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            for sentence in _SENTENCE.split(" ".join(line.split())):
                if 30 <= len(sentence) <= 320 and sentence[-1] in ".!?\"'" and \
                        len(_DIGITS.findall(sentence)) < len(sentence) / 8:
                    seen.setdefault(sentence, None)
    return list(seen)


@dataclass(frozen=True)
class Site:
    name: str
    host: str
    agency: bool
    feeds: tuple[int, ...]  # indexes into the feed list
    sitename_share: float  # pages that carry og:site_name


@dataclass(frozen=True)
class Feed:
    index: int
    site: int
    url: str
    name: str
    title: str
    weight: float
    validators: bool  # sends ETag / Last-Modified: unchanged polls are 304
    failure: str  # '' | 'dead' | 'flaky' | 'throttled'


def make_outlets(count: int, rng: random.Random) -> tuple[list[Site], list[Feed]]:
    sites: list[Site] = []
    feeds: list[Feed] = []
    agencies = max(3, min(len(AGENCIES), count // 400))
    index = 0
    while len(feeds) < count:
        number = len(sites)
        if number < agencies:
            name, host = AGENCIES[number]
            sections = 4
            is_agency = True
        else:
            name = f"The {rng.choice(_PLACES)} {rng.choice(_PAPERS)}"
            host = f"{re.sub(r'[^a-z]', '', name.lower())}{number}.example.com"
            name = f"{name} {number}" if rng.random() < 0.5 else name
            sections = rng.choices((1, 2, 3, 4), (0.5, 0.3, 0.15, 0.05))[0]
            is_agency = False
        sections = min(sections, count - len(feeds))
        feed_ids = []
        for section in rng.sample(SECTIONS, sections):
            failure = rng.choices(("", "dead", "flaky", "throttled"),
                                  (0.958, 0.01, 0.03, 0.002))[0]
            weight = rng.lognormvariate(0, 1.2) * (6 if is_agency else 1)
            feeds.append(Feed(index, number, f"https://{host}/feeds/{section}.xml",
                              f"{name} - {section}", f"{name}: {section.title()} news",
                              weight, rng.random() < 0.85, failure))
            feed_ids.append(index)
            index += 1
        sites.append(Site(name, host, is_agency, tuple(feed_ids), rng.uniform(0.6, 1.0)))
    return sites, feeds


# --- stories and their copies ------------------------------------------------------------------

@dataclass(frozen=True)
class Copy:
    story: int
    member: int  # 0: the original
    site: int
    origin_site: int  # the outlet that published the story first
    feed: int
    at: float  # seconds since the epoch
    kind: str  # 'original' or a transformation
    second_feed: int  # -1, or another feed of the site that carries it too
    second_at: float


def plan_copies(shape: Shape, sites: list[Site], feeds: list[Feed], start: float, end: float,
                rng: random.Random, story_base: int) -> list[Copy]:
    """Every article of the corpus: which story, outlet, feed, time and transformation."""
    cumulative = list(np.cumsum([f.weight for f in feeds]))
    total = cumulative[-1]
    agency_sites = [i for i, s in enumerate(sites) if s.agency]
    kinds = [k for k, _ in COPY_KINDS]
    kind_weights = [p for _, p in COPY_KINDS]
    zipf = np.random.default_rng(rng.randrange(2**32))
    copies: list[Copy] = []
    story = story_base

    def weighted_feed() -> int:
        return min(len(feeds) - 1, bisect.bisect_left(cumulative, rng.random() * total))

    while len(copies) < shape.articles:
        size = 1 if rng.random() < 0.62 else int(min(60, 1 + zipf.zipf(1.9)))
        at = rng.uniform(start, end)
        if size > 1 and rng.random() < 0.5 and agency_sites:
            origin_site = rng.choice(agency_sites)
            origin_feed = rng.choice(sites[origin_site].feeds)
        else:
            origin_feed = weighted_feed()
            origin_site = feeds[origin_feed].site
        used = {origin_site}
        members = [(origin_site, origin_feed, at, "original")]
        for _ in range(size - 1):
            feed = weighted_feed()
            if feeds[feed].site in used:
                continue
            used.add(feeds[feed].site)
            delay = min(48 * 3600.0, rng.lognormvariate(math.log(7200), 1.0))
            members.append((feeds[feed].site, feed, at + delay,
                            rng.choices(kinds, kind_weights)[0]))
        for member, (site, feed, when, kind) in enumerate(members):
            if when >= end:
                continue
            second, second_at = -1, 0.0
            others = [f for f in sites[site].feeds if f != feed]
            if others and rng.random() < 0.25:
                second = rng.choice(others)
                second_at = min(end - 1, when + rng.uniform(60, 7200))
            copies.append(Copy(story, member, site, origin_site, feed, when, kind, second,
                               second_at))
        story += 1
    copies.sort(key=lambda c: c.at)
    return copies[:shape.articles]


class Texts:
    """Story texts made from the sentence pool, the same for a story every time."""

    def __init__(self, sentences: list[str], seed: int) -> None:
        self.sentences = sentences
        self.seed = seed

    def original(self, story: int) -> tuple[str, tuple[str, ...]]:
        rng = random.Random(self.seed * 1_000_003 + story)
        if rng.random() < 0.02:
            return syndication.templated_story(rng.choice(("market", "sports", "weather")), rng)
        words = int(min(3000, max(60, rng.lognormvariate(math.log(520), 0.5))))
        paragraphs: list[str] = []
        count = 0
        while count < words:
            paragraph = " ".join(rng.choice(self.sentences)
                                 for _ in range(rng.choices((1, 2, 3, 4), (3, 4, 2, 1))[0]))
            paragraphs.append(paragraph)
            count += len(paragraph.split())
        lead = paragraphs[0].split()
        start = rng.randrange(max(1, len(lead) - 8))
        title = " ".join(lead[start:start + rng.randint(5, 12)]).strip(".,;:!?\"'")
        return title[:1].upper() + title[1:], tuple(paragraphs)

    def copy(self, story: int, member: int, kind: str, outlet: str, source: str
             ) -> tuple[str, tuple[str, ...]]:
        title, paragraphs = self.original(story)
        if kind in ("original", "exact"):
            return title, paragraphs
        rng = random.Random((self.seed * 1_000_003 + story) * 101 + member)
        if kind == "wrap":
            paragraphs = syndication.wrap(paragraphs, rng, outlet, source)
        elif kind == "trim":
            paragraphs = syndication.trim(paragraphs, rng)
        elif kind == "edit":
            paragraphs = syndication.edit(paragraphs, rng)
        elif kind == "add_local":
            paragraphs = syndication.add_local(paragraphs, rng, outlet)
        elif kind == "new_lead":
            donor = self.original(story + 7_777_777)[1]
            paragraphs = syndication.new_lead(paragraphs, rng, donor)
        return syndication.retitle(title, rng, outlet), paragraphs


# --- articles (made in worker processes) ---------------------------------------------------------

def make_entry(copy: Copy, sites: list[Site], texts: Texts) -> NewEntry:
    """A copy's first entry, with its article and fingerprint (the extraction stage's output:
    what `pipeline.run` hands the writer)."""
    site = sites[copy.site]
    title, paragraphs = texts.copy(copy.story, copy.member, copy.kind, site.name,
                                   sites[copy.origin_site].name)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "story"
    day = datetime.fromtimestamp(copy.at, UTC)
    url = (f"https://{site.host}/{SECTIONS[copy.story % len(SECTIONS)]}/"
           f"{day:%Y/%m/%d}/{slug}-{copy.story}")
    rng = random.Random(copy.story * 31 + copy.member)
    from_page = rng.random() < 0.92
    text = "\n\n".join(paragraphs if from_page else paragraphs[:1])
    language = rng.choices([lang for lang, _ in LANGUAGES],
                           [share for _, share in LANGUAGES])[0]
    author = (f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
              if rng.random() < 0.6 else None)
    feed_date = iso(day) if rng.random() < 0.95 else None  # rng's draws in their old order
    # The page's date beside the feed's, as the pipeline stores both (the feed's wins, else
    # the page's): most pages agree to the minute, some are hours off or a day earlier, some
    # have none. Its own generator keeps the texts and clusters of earlier builds; where the
    # feed gives no date (5%), the page's now dates the copy, canonicals and lags with it.
    dates = random.Random(copy.story * 53 + copy.member + 7)
    page_day = day + timedelta(hours=dates.choice((0, 0, 0, 0, 0, 0, -2, 3, -30)))
    page_date = iso(page_day) if dates.random() < 0.85 else None
    article = Article(
        id=article_id(url), url=url, canonical_url=canonical_url(url), title=title,
        text=text,
        author=author, published_at=feed_date or page_date, feed_published_at=feed_date,
        page_published_at=page_date,
        language=language if rng.random() < 0.97 else None,
        sitename=site.name if rng.random() < site.sitename_share else None,
        text_source="page" if from_page else "feed",
        quality=None if from_page else "short",
        description=paragraphs[0][:rng.randint(120, 240)] if rng.random() < 0.7 else None,
        line_keys=boilerplate.line_keys(paragraphs) if from_page else ())
    return NewEntry(key=url, guid=url, link=url, title=title, published_at=feed_date,
                    article=article, url_aliases=(canonical_url(url),),
                    fingerprint=neardup.fingerprint_article(article))


_MAKER: tuple[list[Site], Texts] | None = None  # a worker's (inherited through fork)


def _make_many(copies: list[Copy]) -> list[tuple[int, NewEntry]]:
    assert _MAKER is not None
    sites, texts = _MAKER
    return [(c.story * 64 + c.member, make_entry(c, sites, texts)) for c in copies]


class Articles:
    """Every copy's entry with its article, made ahead in time order (by `workers`
    processes, at most LOOKAHEAD chunks ahead) and handed out by key."""

    CHUNK = 128
    LOOKAHEAD = 16

    def __init__(self, copies: list[Copy], sites: list[Site], texts: Texts,
                 workers: int) -> None:
        global _MAKER
        _MAKER = (sites, texts)
        self.ready: dict[int, NewEntry] = {}
        self.chunks = (copies[i:i + self.CHUNK] for i in range(0, len(copies), self.CHUNK))
        self.pending: collections.deque[Any] = collections.deque()
        self.pool = multiprocessing.get_context("fork").Pool(workers) if workers else None
        self.seconds = 0.0  # waiting for articles

    def _fill(self) -> None:
        while len(self.pending) < (self.LOOKAHEAD if self.pool else 1):
            chunk = next(self.chunks, None)
            if chunk is None:
                return
            self.pending.append(self.pool.apply_async(_make_many, (chunk,)) if self.pool
                                else _make_many(chunk))

    def _until(self, key: int) -> None:
        started = time.perf_counter()
        while key not in self.ready:
            self._fill()
            if not self.pending:
                raise KeyError(key)
            done = self.pending.popleft()
            self.ready.update(done.get() if self.pool else done)
        self.seconds += time.perf_counter() - started

    def get(self, key: int) -> NewEntry:
        self._until(key)
        return self.ready.pop(key)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


# --- writing ------------------------------------------------------------------------------------

@dataclass
class FeedSim:
    """A feed's schedule state between polls (what the feeds table holds)."""

    state: FeedState
    pending: list[tuple[float, Copy, bool]] = field(default_factory=list)  # (at, copy, second)
    failures_run: int = 0


class BuildStore(Store):
    """The product's store, whose own short write transactions (the maintenance's pruning,
    in chunks) join the builder's long one when it is open: the same statements, one commit
    instead of one per chunk and per six simulated hours."""

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        if self.db.conn.in_transaction:
            yield self.db
            return
        with super().write() as db:
            yield db


class Builder:
    def __init__(self, store: Store, shape: Shape, sites: list[Site], feeds: list[Feed],
                 feed_ids: list[int], articles: Articles, report: Report) -> None:
        self.store = store
        self.shape = shape
        self.sites = sites
        self.feeds = feeds
        self.feed_ids = feed_ids
        self.articles = articles
        self.report = report
        self.bulk = True  # polls with no entries in bulk (write_plain); False: all by record
        self.rng = random.Random(shape.seed * 7919)
        self.again: dict[int, NewEntry] = {}  # copies a second feed will carry too
        self.progress = False
        self.last_progress = time.perf_counter()
        self.queue: list[tuple[str, PollResult | EntryBatch]] = []
        self.last_maintenance = 0.0
        self.schedule = ScheduleConfig(interval=shape.poll_minutes * 60)
        self.commit_every = COMMIT_EVERY  # also the most items queued before a flush
        self.uncommitted = 0  # polls and batches written since the last commit

    # articles and entries

    def new_entry(self, copy: Copy) -> NewEntry:
        """The entry of an arrival: with its article the first time; the second (a second
        section feed carrying the same URL) names the stored article."""
        key = copy.story * 64 + copy.member
        if key in self.again:
            return self.again.pop(key)
        entry = self.articles.get(key)
        assert entry.article is not None
        if copy.second_feed >= 0:
            self.again[key] = NewEntry(
                key=entry.key, guid=entry.guid, link=entry.link, title=entry.title,
                published_at=entry.published_at, existing_article_id=entry.article.id,
                url_aliases=entry.url_aliases)
        return entry

    def entries_due(self, sim: FeedSim, until: float) -> tuple[NewEntry, ...]:
        due = [(at, c, second) for at, c, second in sim.pending if at <= until]
        if not due:
            return ()
        sim.pending = [p for p in sim.pending if p[0] > until]
        entries = []
        for _at, copy, _second in due:
            entries.append(self.new_entry(copy))
        return tuple(entries)

    # the write queue

    def put(self, at: float, item: PollResult | EntryBatch) -> None:
        self.queue.append((stamp(at), item))
        if isinstance(item, PollResult):
            self.report.polls += 1
        else:
            self.report.batches += 1
        if len(self.queue) >= self.commit_every:
            self.flush()
        if at - self.last_maintenance >= MAINTENANCE_EVERY:
            self.flush()
            self.maintain(at)

    def flush(self) -> None:
        if not self.queue:
            return
        started, started_cpu = time.perf_counter(), time.process_time()
        plain: list[tuple[str, PollResult]] = []  # polls with no entries, in time order
        if not self.store.db.conn.in_transaction:
            self.store.db.execute("BEGIN IMMEDIATE")
        for now, item in self.queue:
            if self.bulk and isinstance(item, PollResult) and not item.entries:
                plain.append((now, item))
                continue
            self.write_plain(plain)
            summary = polls.record(self.store, item, now)
            self.report.articles += summary.new_articles
            self.report.entries += summary.new_entries
            if isinstance(item, PollResult):
                self.report.articles_written_in_polls += summary.new_articles
        self.write_plain(plain)
        self.uncommitted += len(self.queue)
        if self.uncommitted >= self.commit_every:
            self.commit()
        self.report.write_seconds += time.perf_counter() - started
        self.report.write_cpu += time.process_time() - started_cpu
        self.queue.clear()
        if self.progress and time.perf_counter() - self.last_progress >= PROGRESS_EVERY:
            self.last_progress = time.perf_counter()
            print(f"  {now}: {self.report.articles:,} articles, {self.report.polls:,} polls "
                  f"(writer {self.report.write_seconds:.0f} s)", flush=True)

    def commit(self) -> None:
        """End the open transaction (a build fails whole: nothing to roll back to)."""
        if self.store.db.conn.in_transaction:
            self.store.db.execute("COMMIT")
        self.uncommitted = 0

    def write_plain(self, plain: list[tuple[str, PollResult]]) -> None:
        """Polls that brought no entries, in bulk: their fetch-log rows in one executemany
        (the counters' triggers fire per row as for `polls.record`), and each feed's state
        from the polls that decide it, as `feeds.after_poll` leaves it after all of them:
        its last 200 (validators, title), its last success, its last poll."""
        if not plain:
            return
        rows = [polls.fetch_row(item, 0) for _now, item in plain]
        columns = list(rows[0])
        self.store.db.conn.executemany(
            f"INSERT INTO fetches ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [[row[c] for c in columns] for row in rows])
        deciding: dict[tuple[int, str], int] = {}
        for position, (_now, item) in enumerate(plain):
            deciding[(item.feed_id, "last")] = position
            if schedule.polled_ok(item.status, item.error):
                deciding[(item.feed_id, "ok")] = position
                if item.status == 200:
                    deciding[(item.feed_id, "200")] = position
        for position in sorted(set(deciding.values())):
            now, item = plain[position]
            feed_state.after_poll(self.store.db, item, now)
        plain.clear()

    def maintain(self, at: float) -> None:
        """The daemon's maintenance, in simulated time."""
        now = datetime.fromtimestamp(at, UTC)
        self.last_maintenance = at
        self.store.prune_bands(BAND_WINDOW_DAYS, now=now)
        with self.store.write():
            site_lines.forget_singletons(
                self.store.db, iso(now - timedelta(days=site_lines.SITE_LINE_SINGLETON_DAYS)))
        prune = getattr(self.store, "prune_fetch_log", None)  # newswire's own, where it has it
        if prune is not None:
            prune(int(self.shape.fetch_log_days), now=now)

    # the two phases

    def batches(self, copies: list[Copy], until: float) -> None:
        """Before the fetch-log window: each arrival is an entry batch of its feed (the
        poll rows of those days are gone)."""
        arrivals = sorted(
            [(c.at, c, False) for c in copies if c.at < until] +
            [(c.second_at, c, True) for c in copies if c.second_feed >= 0 and
             c.second_at < until], key=lambda a: a[0])
        for at, copy, second in arrivals:
            feed = copy.second_feed if second else copy.feed
            entry = self.new_entry(copy)
            self.put(at, EntryBatch(feed_id=self.feed_ids[feed], entries=(entry,)))

    def polls(self, copies: list[Copy], sims: list[FeedSim], start: float, end: float) -> None:
        """The fetch-log window: every poll of every feed, as the daemon makes them."""
        arrivals = sorted(
            [(c.at, c, False) for c in copies if start <= c.at < end] +
            [(c.second_at, c, True) for c in copies if c.second_feed >= 0 and
             start <= c.second_at < end], key=lambda a: a[0])
        times = [a[0] for a in arrivals]
        heap = [(start + self.rng.uniform(0, self.shape.poll_minutes * 60), i)
                for i in range(len(sims))]
        heapq.heapify(heap)
        taken = 0
        while heap:
            at, index = heapq.heappop(heap)
            if at >= end:
                continue
            upto = bisect.bisect_right(times, at)
            for arrival_at, copy, second in arrivals[taken:upto]:
                feed = copy.second_feed if second else copy.feed
                sims[feed].pending.append((arrival_at, copy, second))
            taken = max(taken, upto)
            next_at = self.poll(index, sims[index], at)
            if next_at is not None:
                heapq.heappush(heap, (next_at, index))

    def poll(self, index: int, sim: FeedSim, at: float) -> float | None:
        """One poll of a feed at `at`, queued for writing; returns when it polls next."""
        feed = self.feeds[index]
        now = datetime.fromtimestamp(at, UTC)
        rng = self.rng
        failed = feed.failure == "dead" or (feed.failure == "flaky" and rng.random() < 0.1) \
            or rng.random() < 0.003
        throttled = feed.failure == "throttled" and rng.random() < 0.2
        entries: tuple[NewEntry, ...] = ()
        retry_after = None
        if failed:
            status, error, size = rng.choice(((None, "ConnectError: [Errno 111] Connection "
                                               "refused", 0),
                                              (500, "HTTP 500", 512),
                                              (None, "timeout after 20s", 0)))
            if feed.failure == "dead":
                status, error, size = None, "ConnectError: [Errno 111] Connection refused", 0
        elif throttled:
            status, error, size, retry_after = 429, None, 0, 3600.0
        else:
            entries = self.entries_due(sim, at)
            if entries or not feed.validators:
                status, size = 200, int(rng.lognormvariate(math.log(40_000), 0.6))
            else:
                status, size = 304, 0
            error = None
        outcome = schedule.PollOutcome(status=status, failed=error is not None,
                                       retry_after=retry_after, new_entries=len(entries),
                                       total_entries=30 if status == 200 else 0)
        nxt = schedule.next_poll(sim.state, outcome, self.schedule, now=now, rng=rng)
        duration = int(rng.lognormvariate(math.log(250), 0.7)) + 700 * sum(
            1 for e in entries if e.article is not None)
        # The next poll to the second, as the stored next_poll_at says.
        next_at = float(int(nxt.at.timestamp())) if nxt.at else None
        result = PollResult(
            feed_id=self.feed_ids[index], started_at=stamp(at), duration_ms=duration,
            status=status, bytes=size, error=error,
            next_poll_at=stamp(next_at) if next_at is not None else None,
            consecutive_failures=nxt.consecutive_failures, current_interval=nxt.interval,
            etag=f'"{index:x}-{int(at) // 3600:x}"' if feed.validators and status == 200
            else sim.state.etag,
            last_modified=None, feed_title=feed.title if status == 200 else None,
            conditional=feed.validators and sim.state.etag is not None, entries=entries)
        sim.state = FeedState(
            id=sim.state.id, url=feed.url, name=feed.name,
            etag=result.etag if status == 200 else sim.state.etag, last_modified=None,
            next_poll_at=result.next_poll_at, last_polled_at=result.started_at,
            consecutive_failures=nxt.consecutive_failures,
            interval_seconds=sim.state.interval_seconds, cron=None,
            current_interval=nxt.interval, last_unconditional_at=None, gone=False)
        finished = at + duration / 1000
        self.put(finished, result)
        return next_at


# --- the whole build ------------------------------------------------------------------------------

def build(path: Path, shape: Shape, progress: bool = True, workers: int = 2,
          end: float | None = None, bulk: bool = True) -> Report:
    """Write a database of `shape.articles` articles at path (which must not exist), its
    config beside it (path.with_suffix('.yaml')) and what was built (.corpus.json), ending
    at `end` (seconds since the epoch; default: now, to the minute). `workers` processes
    make the texts and fingerprints (0: this process); `bulk` False writes every poll
    through `polls.record` (how the tests check that the bulk path writes the same)."""
    if path.exists():
        raise FileExistsError(f"{path} exists")
    end = float(int(time.time()) // 60 * 60) if end is None else end
    start = end - shape.days * 86400
    return _run(path, shape, start, end, story_base=0, progress=progress, workers=workers,
                bulk=bulk)


def append(path: Path, hours: float, progress: bool = True, workers: int = 2,
           news_scale: float = 1.0) -> Report:
    """Add the next `hours` of news after the end of a database `build` made (its shape,
    new stories, every poll), and move its recorded end. The same database appended the
    same hours gets the same news: how ingest into a big database is compared.
    `news_scale` times the corpus's rate of news (a busier hour: more articles per poll)."""
    shape = Shape(**json.loads(_meta(path)["shape"]))
    start = float(_meta(path)["end"])
    end = start + hours * 3600
    scaled = Shape(**{**asdict(shape), "articles": max(1, round(
        news_scale * shape.articles * (end - start) / (shape.days * 86400)))})
    return _run(path, scaled, start, end, story_base=10_000_000 + int(start) % 1_000_000,
                progress=progress, base_shape=shape, workers=workers)


def _meta(path: Path) -> dict[str, str]:
    """What `build` wrote in OUT.corpus.json: the shape and the simulated end."""
    return dict(json.loads(path.with_suffix(".corpus.json").read_text(encoding="utf-8")))


def _run(path: Path, shape: Shape, start: float, end: float, story_base: int, progress: bool,
         base_shape: Shape | None = None, workers: int = 2, bulk: bool = True) -> Report:
    if not CORPUS.is_dir():
        raise FileNotFoundError(f"{CORPUS} is absent: the builder needs its sentences")
    started = time.perf_counter()
    outlet_shape = base_shape or shape
    rng = random.Random(outlet_shape.seed)
    sites, feeds = make_outlets(outlet_shape.feed_count(), rng)
    texts = Texts(load_sentences(), shape.seed)
    copies = plan_copies(shape, sites, feeds, start, end,
                         random.Random(shape.seed * 17 + story_base), story_base)
    articles = Articles(copies, sites, texts, workers)
    report = Report(sim_start=iso(datetime.fromtimestamp(start, UTC)),
                    sim_end=iso(datetime.fromtimestamp(end, UTC)))
    config_path = path.with_suffix(".yaml")
    configured = [FeedConfig(url=f.url, name=f.name, interval=shape.poll_minutes * 60)
                  for f in feeds]
    if base_shape is None:
        write_config(config_path, path, feeds, shape)
    with BuildStore.open(path) as store:
        # A build, not a live corpus: no fsync (the product's own setting is NORMAL).
        store.db.execute("PRAGMA synchronous = OFF")
        store.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        store.sync_feeds(configured, now=iso(datetime.fromtimestamp(start, UTC)))
        ids = dict(store.db.execute("SELECT url, id FROM feeds").fetchall())
        feed_ids = [int(ids[f.url]) for f in feeds]
        builder = Builder(store, shape, sites, feeds, feed_ids, articles, report)
        builder.last_maintenance = start
        builder.progress = progress
        builder.bulk = bulk and base_shape is None  # appending measures ingest: every poll
        if base_shape is not None:
            builder.commit_every = WRITE_GROUP
        window = max(start, end - shape.fetch_log_days * 86400)
        if progress:
            print(f"{len(feeds)} feeds on {len(sites)} sites; {len(copies):,} articles planned "
                  f"from {report.sim_start}; polling from "
                  f"{iso(datetime.fromtimestamp(window, UTC))}", flush=True)
        builder.batches(copies, window)
        builder.flush()
        if progress:
            print(f"  before the fetch-log window: {report.articles:,} articles "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        sims = [FeedSim(feeds_state(store, fid)) for fid in feed_ids]
        builder.polls(copies, sims, window, end)
        builder.flush()
        builder.maintain(end)
        builder.commit()
        if base_shape is None:
            report.extra["older_daily_totals"] = older_daily_totals(
                store, report.sim_start, iso(datetime.fromtimestamp(window, UTC)),
                report.sim_end)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    articles.close()
    report.fingerprint_seconds = articles.seconds
    path.with_suffix(".corpus.json").write_text(json.dumps(
        {"shape": json.dumps(asdict(base_shape or shape)), "end": str(end),
         "report": asdict(report), "appended": base_shape is not None}, indent=1),
        encoding="utf-8")
    report.seconds = time.perf_counter() - started
    if progress:
        print(report.line(), flush=True)
    return report


def older_daily_totals(store: Store, start: str, window: str, end: str) -> int:
    """The daily totals of the polls before the fetch-log window, whose raw rows the
    product's rolling fetch log would have deleted by now: each feed's mean day of polls,
    failures, 304s, bytes and poll time in the window's whole days, and the entries and
    articles that day really brought. Returns the days written."""
    with store.write():
        store.db.execute(
            """WITH RECURSIVE days(day) AS (
                   SELECT date(:start) UNION ALL SELECT date(day, '+1 day') FROM days
                   WHERE day < date(:window, '-1 day')),
               rates AS (
                   SELECT feed_id, avg(polls) AS polls, avg(failed_polls) AS failed,
                          avg(not_modified) AS nm, avg(bytes) AS bytes,
                          avg(duration_ms) AS duration FROM feed_days
                   WHERE day > date(:window) AND day < date(:end) GROUP BY feed_id),
               stored AS (
                   SELECT feed_id, substr(fetched_at, 1, 10) AS day, count(*) AS articles
                   FROM articles WHERE fetched_at < date(:window) GROUP BY 1, 2)
               INSERT INTO feed_days (feed_id, day, polls, failed_polls, not_modified, bytes,
                                      duration_ms, new_entries, new_articles)
               SELECT r.feed_id, d.day, round(r.polls), round(r.failed), round(r.nm),
                      round(r.bytes), round(r.duration), coalesce(fd.entries, 0),
                      coalesce(s.articles, 0)
               FROM rates r CROSS JOIN days d
               LEFT JOIN feed_days fd ON fd.feed_id = r.feed_id AND fd.day = d.day
               LEFT JOIN stored s ON s.feed_id = r.feed_id AND s.day = d.day
               WHERE true
               ON CONFLICT (feed_id, day) DO UPDATE SET
                   polls = excluded.polls, failed_polls = excluded.failed_polls,
                   not_modified = excluded.not_modified, bytes = excluded.bytes,
                   duration_ms = excluded.duration_ms, new_entries = excluded.new_entries,
                   new_articles = excluded.new_articles""",
            {"start": start, "window": window, "end": end})
        return int(store.db.execute("SELECT changes()").fetchone()[0])


def feeds_state(store: Store, feed_id: int) -> FeedState:
    state = store.feed(feed_id)
    return state


def write_config(config_path: Path, database: Path, feeds: list[Feed], shape: Shape) -> None:
    config = {
        "database": database.name,
        "schedule": {"interval": f"{shape.poll_minutes:g}m"},
        "feeds": [{"url": f.url, "name": f.name, "interval": f"{shape.poll_minutes:g}m"}
                  for f in feeds],
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def iter_sizes(text: str) -> Iterator[int]:
    for part in text.split(","):
        part = part.strip().lower()
        scale = 1_000_000 if part.endswith("m") else 1_000 if part.endswith("k") else 1
        yield int(float(part.rstrip("mk")) * scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--articles", default="10k", help="e.g. 10k, 100k, 1m")
    parser.add_argument("--feeds", type=int, default=0)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--fetch-log-days", type=float, default=30.0)
    parser.add_argument("--poll-minutes", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--append-hours", type=float, default=0.0,
                        help="add this many hours of news to an existing database")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes making texts and fingerprints (0: none)")
    args = parser.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"skipped: {CORPUS} is absent (the builder recombines its sentences)")
        return 0
    if args.append_hours:
        append(args.database, args.append_hours, workers=args.workers)
        return 0
    (articles,) = iter_sizes(args.articles)
    build(args.database, Shape(articles=articles, feeds=args.feeds, days=args.days,
                               fetch_log_days=args.fetch_log_days,
                               poll_minutes=args.poll_minutes, seed=args.seed),
          workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
