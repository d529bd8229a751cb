"""Near-duplicate verification, in process: the store's dedupe replayed over ingested sets,
for the ablation and the cost.

Usage: python bench/bench_verify.py DIR [DIR ...] [--modes waves cold] [--ablation]
                                    [--cost ROUNDS]

Each DIR is a `--keep` directory of bench/bench_clustering.py (its standard/ and hard/
subdirectories, or one of them: seed-N/{waves,cold}.db and seed-N/truth.tsv): the texts the
real CLI extracted, in the order the store received them (rowid order). The replay applies
the store's layers to them in that order, in process: the exact text hash, then MinHash-LSH
candidates (28 bands x 4 rows, oldest first, at most 1000), optionally widened by the anchor
index (`neardup.anchor_keys`), each candidate verified either as the store did before issue
11 (estimated containment >= 0.8 and the numeric guard) or by `pipeline.verify`; the
article joins the cluster of its best near match, or with healing (`pipeline.clusters.plan`)
the clusters it matches merge. The store now runs the method "after"; replaying it
reproduces the CLI's clusters (printed as "agreement"), so the other variants are what the
store would do with the same texts.

Scores: pairwise same-cluster precision and recall against the truth, hard negatives merged
(topical pairs, follow-ups, templated pairs), merges made and wrong merges, and the cost of
verification per article (preparing the new text and every candidate's stored text, as the
store would, nothing cached between articles). `--cost` also feeds one run's articles
through the real store (pipeline.store, in process, a fresh database) and times its
near-duplicate lookup, `Store.near_match`, per article: candidates from both indexes, the
candidates' texts read from SQLite, verification and the merge plan.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_clustering  # noqa: E402
from bench.bench_clustering import TARGET_RECALL, Quality, score  # noqa: E402
from bench.scoring import load_pages  # noqa: E402
from bench.syndication import publish  # noqa: E402
from pipeline import clusters, neardup, verify  # noqa: E402
from pipeline.config import FeedConfig  # noqa: E402
from pipeline.extract import ExtractJob, extract_job  # noqa: E402
from pipeline.messages import Article, NewEntry, PollResult  # noqa: E402
from pipeline.store import Store, index  # noqa: E402
from pipeline.times import utcnow  # noqa: E402

MAX_CANDIDATES = 1000  # pipeline.store's limit on band candidates
CORPUS_PAGES = 150  # real pages timed for the cost
MIN_WORDS_FOR_TEXT_DEDUPE = 25  # pipeline.store's: shorter texts are never exact copies


# --- the sets -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Stored:
    """An article as the store received it, with its truth."""

    id: str
    title: str
    text: str
    text_hash: str | None
    words: int
    cluster_id: str  # as the store assigned it
    story: str | None  # truth: copies of one story share it
    base: str | None  # truth: the story a follow-up follows


@dataclass
class Run:
    """One ingested database: its articles in arrival order and the topical pairs."""

    name: str
    articles: list[Stored]
    topical: list[tuple[str, str, float]]
    fingerprints: list[neardup.Fingerprint | None] = field(default_factory=list)
    fingerprint_figures: list[tuple[str, ...]] = field(default_factory=list)
    every_line_figures: list[tuple[str, ...]] = field(default_factory=list)
    texts_compared: int = 0  # candidate texts read and aligned (the replay's counter)

    def __post_init__(self) -> None:
        self.fingerprints = [neardup.fingerprint(a.text, a.title) for a in self.articles]
        self.fingerprint_figures = [fp.numbers if fp else () for fp in self.fingerprints]
        self.every_line_figures = [  # what fingerprints held before issue 11
            tuple(sorted({*neardup.numeric_tokens(a.text), *neardup.numeric_tokens(a.title)}))
            for a in self.articles]


def load_run(seed_dir: Path, mode: str) -> Run:
    truth: dict[str, tuple[str, str | None]] = {}
    topical = []
    base_of: dict[str, str] = {}
    with (seed_dir / "truth.tsv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["url"] == "topical":
                topical.append((row["story"], row["base"], float(row["transforms"])))
                continue
            truth[row["url"]] = (row["story"], row["base"] or None)
            if row["base"]:
                base_of[row["story"]] = row["base"]
    conn = sqlite3.connect(seed_dir / f"{mode}.db")
    articles = []
    for aid, url, title, text, digest, words, cluster in conn.execute(
            "SELECT id, url, title, text, text_hash, word_count, cluster_id FROM articles "
            "ORDER BY rowid"):
        story = truth.get(url, (None, None))[0]
        articles.append(Stored(aid, title or "", text or "", digest, words or 0, cluster,
                               story, base_of.get(story) if story else None))
    conn.close()
    return Run(f"{seed_dir.parent.name}/{seed_dir.name}/{mode}", articles, topical)


# --- the replay -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    """How candidates are found and verified."""

    name: str
    anchors: bool = False  # widen the band candidates with the anchor index
    verifier: str = "before"  # 'before' (the store today) or 'verify' (pipeline.verify)
    signals: verify.Signals = verify.ALL
    heal: bool = False  # merge the clusters a new article matches (pipeline.clusters)
    screen: bool = True  # settle pairs whose fingerprints' numbers differ without texts
    sentence_numbers: bool = True  # False: the figures of every line, as before issue 11


BEFORE_METHOD = Method("before: LSH, containment >= 0.8 + numeric guard")
AFTER_METHOD = Method("after: LSH + anchors, verify, healing", anchors=True,
                      verifier="verify", heal=True)


@dataclass
class Outcome:
    quality: Quality
    agreement: int  # articles whose cluster equals the stored one
    candidates: int  # candidate pairs verified
    texts: int  # candidate texts read and aligned (the others settled by their fingerprints)
    verify_s: float  # CPU time spent on candidates: estimates, screening, texts, verifying
    merges: int
    wrong_merges: int  # merges of clusters whose members are different stories
    misses: Counter = field(default_factory=Counter)


def replay(run: Run, method: Method) -> Outcome:
    """The store's dedupe over the run's articles, in order, with `method`."""
    articles, prints = run.articles, run.fingerprints
    cluster_of: dict[int, str] = {}  # article index -> cluster id, through merges
    merged_into: dict[str, str] = {}
    info: dict[str, clusters.Cluster] = {}
    members: dict[str, list[int]] = defaultdict(list)
    first_with_hash: dict[str, int] = {}
    bands: dict[int, list[int]] = defaultdict(list)
    anchors: dict[int, list[int]] = defaultdict(list)
    verified = merges = wrong = 0
    spent = 0.0
    run.texts_compared = 0

    def current(cluster_id: str) -> str:
        while cluster_id in merged_into:
            cluster_id = merged_into[cluster_id]
        return cluster_id

    for i, article in enumerate(articles):
        matches: list[clusters.Match] = []
        exact = (article.text_hash and article.words >= MIN_WORDS_FOR_TEXT_DEDUPE
                 and article.text_hash in first_with_hash)
        if exact:
            j = first_with_hash[article.text_hash]
            matches.append(clusters.Match(articles[j].id, current(cluster_of[j]), "exact", 1.0))
        fp = prints[i]
        if not exact and fp is not None:
            candidates = {j for key in neardup.band_keys(fp.signature) for j in bands.get(key, ())}
            if method.anchors:
                candidates.update(neardup.anchor_candidates(
                    {key: anchors[key][-neardup.ANCHOR_BUCKET_LIMIT - 1:]
                     for key in fp.anchors if key in anchors}))
            chosen = sorted(candidates)[-MAX_CANDIDATES:]  # oldest first, as the store
            started = time.process_time()  # CPU time: other jobs on the machine distort less
            found = _verify(run, method, i, chosen, lambda j: current(cluster_of[j]))
            spent += time.process_time() - started
            verified += len(chosen)
            matches += [clusters.Match(articles[j].id, current(cluster_of[j]), kind, s)
                        for j, kind, s in found]
        if method.heal:
            plan = clusters.plan(matches, info)
        else:  # the store today: join the best near match's cluster, never merge
            plan = clusters.plan(_best_only(matches), info)
        target = plan.cluster_id or article.id
        if target not in info:
            info[target] = clusters.Cluster(target, 0, f"{i:08d}")
        for merge in plan.merges:
            merges += 1
            source_stories = {articles[k].story for k in members[merge.source]}
            target_stories = {articles[k].story for k in members[target]}
            wrong += source_stories != target_stories or len(source_stories) > 1
            merged_into[merge.source] = target
            members[target] += members.pop(merge.source)
            info[target] = replace(info[target], size=info[target].size
                                   + info.pop(merge.source).size)
        cluster_of[i] = target
        members[target].append(i)
        info[target] = replace(info[target], size=info[target].size + 1)
        if article.text_hash and article.text_hash not in first_with_hash:
            first_with_hash[article.text_hash] = i
        if fp is not None and not exact:
            for key in neardup.band_keys(fp.signature):
                bands[key].append(i)
            for key in fp.anchors:
                anchors[key].append(i)

    final = {i: current(c) for i, c in cluster_of.items()}
    quality = score([(a.story, a.base, final[i]) for i, a in enumerate(articles) if a.story],
                    run.topical)
    agreement = sum(final[i] == a.cluster_id for i, a in enumerate(articles))
    quality = replace(quality, merges=merges, wrong_merges=wrong)
    return Outcome(quality, agreement, verified, run.texts_compared, spent, merges, wrong)


def _best_only(matches: Sequence[clusters.Match]) -> list[clusters.Match]:
    """The matches of the best joining one's cluster only: joining without merging."""
    plan = clusters.plan(matches, {m.cluster_id: clusters.Cluster(m.cluster_id, 0, "")
                                   for m in matches})
    if plan.duplicate_of is None:
        return []
    best = next(m for m in matches if m.article_id == plan.duplicate_of)
    return [m for m in matches if m.cluster_id == best.cluster_id]


def _verify(run: Run, method: Method, i: int, chosen: Sequence[int],
            cluster_of: Callable[[int], str]) -> list[tuple[int, str, float]]:
    """(candidate, kind, score) of the candidates that match: near or related."""
    prints = run.fingerprints
    new = prints[i]
    assert new is not None
    found = []
    if method.verifier == "before":  # with the figures fingerprints held before issue 11
        if not chosen:
            return []
        new = replace(new, numbers=run.every_line_figures[i])
        others = neardup.signature_matrix([prints[j].signature for j in chosen])
        for j, jaccard in zip(chosen, neardup.jaccard_many(new.signature, others), strict=True):
            other = prints[j]
            similarity = neardup.compare(new, float(jaccard), other.shingles,
                                         run.every_line_figures[j])
            verdict = neardup.verdict(similarity, verify.ESTIMATE_NEAR, verify.ESTIMATE_RELATED)
            if verdict is not None:
                found.append((j, verdict[0], similarity.containment))
        return found
    if not chosen:
        return []
    others = neardup.signature_matrix([prints[j].signature for j in chosen])
    figures = run.fingerprint_figures if method.sentence_numbers else run.every_line_figures
    candidates = [
        verify.Candidate(str(j), cluster_of(j),
                         neardup.containment(float(jaccard), new.shingles, prints[j].shingles),
                         figures[j] if method.screen else ())
        for j, jaccard in zip(chosen, neardup.jaccard_many(new.signature, others), strict=True)]

    def load(key: str) -> tuple[str, str]:
        run.texts_compared += 1
        return run.articles[int(key)].text, run.articles[int(key)].title

    with _figures_of_every_line(not method.sentence_numbers):
        return [(int(c.article_id), e.kind, e.score) for c, e in verify.check(
            run.articles[i].text, run.articles[i].title, figures[i] if method.screen else (),
            candidates, load, method.signals) if e.kind is not None]


@contextmanager
def _figures_of_every_line(active: bool) -> Iterator[None]:
    """neardup.figures as before issue 11 (every line's figures), for the ablation."""
    if not active:
        yield
        return
    saved = neardup.figures
    neardup.figures = lambda text, title="": neardup.numeric_tokens(f"{title}\n{text}")
    try:
        yield
    finally:
        neardup.figures = saved


# --- the real store, in process ---------------------------------------------------------------

@dataclass
class StoreReplay:
    near_match_ms: list[float]  # CPU ms of each Store.near_match call
    lookup_ms: list[float]  # ... of which the index lookup (index.candidates)
    agreement: int  # articles in a cluster with the same members as in the CLI's database
    articles: int


def arrivals(database: Path) -> list[tuple[str, NewEntry, str]]:
    """A run's articles in the order the store received them (rowid): each article's id,
    the feed entry that brings it again, and the cluster the CLI gave it."""
    conn = sqlite3.connect(database)
    rows = conn.execute("SELECT id, url, canonical_url, title, text, published_at, sitename, "
                        "text_source, cluster_id FROM articles ORDER BY rowid").fetchall()
    conn.close()
    found = []
    for aid, url, canonical, title, text, published, sitename, source, cluster in rows:
        article = Article(id=aid, url=url, canonical_url=canonical or url,
                          title=title or "", text=text or "", author=None,
                          published_at=published, language=None, sitename=sitename,
                          text_source=source or "page")
        found.append((aid, NewEntry(key=url, guid=url, link=url, title=title or "",
                                    published_at=published, article=article,
                                    url_aliases=(url,),
                                    fingerprint=neardup.fingerprint_article(article)),
                      cluster or ""))
    return found


def poll_of(feed_id: int, entry: NewEntry, started_at: str) -> PollResult:
    """One successful poll that brings one entry."""
    return PollResult(feed_id=feed_id, started_at=started_at, duration_ms=1, status=200,
                      bytes=1, error=None, next_poll_at="2099-01-01T00:00:00Z",
                      consecutive_failures=0, current_interval=900.0, entries=(entry,))


def store_replay(seed_dir: Path, mode: str, workdir: Path) -> StoreReplay:
    """The run's articles fed in arrival order through the real store into a fresh
    database, in process, timing its near-duplicate lookups (CPU), and comparing the
    clusters it ends with with the CLI's."""
    arrived = arrivals(seed_dir / f"{mode}.db")
    path = workdir / f"replay-{seed_dir.name}-{mode}.db"
    path.unlink(missing_ok=True)
    timings: list[float] = []
    lookups: list[float] = []
    candidates = index.candidates

    def timed_candidates(*args: object, **kwargs: object) -> object:
        started = time.process_time()
        try:
            return candidates(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            lookups.append(1000 * (time.process_time() - started))

    index.candidates = timed_candidates  # type: ignore[assignment]
    with Store.open(path) as store:
        store.sync_feeds([FeedConfig(url="http://replay.example/feed")])
        feed_id = store.feeds(include_all=True)[0].id
        near_match = store.near_match

        def timed(*args: object, **kwargs: object) -> object:
            started = time.process_time()
            try:
                return near_match(*args, **kwargs)  # type: ignore[arg-type]
            finally:
                timings.append(1000 * (time.process_time() - started))

        store.near_match = timed  # type: ignore[method-assign]
        for _, entry, _ in arrived:
            store.record_poll(poll_of(feed_id, entry, utcnow()))
        replayed = dict(store.db.execute("SELECT id, cluster_id FROM articles").fetchall())
    index.candidates = candidates
    path.unlink(missing_ok=True)

    def partition(cluster_of: dict[str, str]) -> dict[str, frozenset[str]]:
        members: dict[str, set[str]] = defaultdict(set)
        for article, cluster in cluster_of.items():
            members[cluster].add(article)
        return {a: frozenset(members[c]) for a, c in cluster_of.items()}

    cli = partition({aid: cluster for aid, _, cluster in arrived})
    ours = partition(replayed)
    return StoreReplay(timings, lookups, sum(cli[a] == ours.get(a) for a in cli), len(cli))


# --- cost -----------------------------------------------------------------------------------

def run_cost(seed_dir: Path, set_name: str, rounds: int) -> None:
    """CPU per article in alternating rounds: extraction (as a worker runs it) and the
    fingerprint (anchors included, and alone) on one seed's own pages and on the corpus's
    real pages (wcxb-dev, the pages behind "15-20 ms per page"), and verification (the
    after method's replay of the seed's waves database: estimates, screening, texts)."""
    args = bench_clustering.arguments().parse_args(["--set", set_name])
    made = bench_clustering.make_set(args, int(seed_dir.name.split("-")[1]),
                                     bench_clustering.prepare_sources(args))
    publish(made.copies, made.outlets)
    pages = []
    for copy in made.copies:
        site = made.outlets[copy.outlet].site
        article = next(a for a in site.articles if a.slug == copy.slug)
        pages.append(ExtractJob(url=article.url, html=site._render_page(article),
                                entry_title=article.title, entry_content="",
                                entry_published_at=None))
    for outlet in made.outlets:
        outlet.site.stop()
    corpus = [ExtractJob(url=p.url, html=p.html, entry_title=p.title, entry_content="",
                         entry_published_at=None) for p in load_pages("wcxb-dev", CORPUS_PAGES)]
    run = load_run(seed_dir, "waves")
    timings: dict[str, list[float]] = defaultdict(list)
    store_run: StoreReplay | None = None
    words: dict[str, float] = {}
    compared: dict[str, float] = {}  # words verification compares (the first SPAN_WORDS)
    for _ in range(rounds):
        for name, jobs in (("bench pages", pages), ("corpus pages", corpus)):
            started = time.process_time()
            texts = [extract_job(job) for job in jobs]
            timings[f"{name}: extraction"].append(1000 * (time.process_time() - started)
                                                  / len(jobs))
            started = time.process_time()
            for article in texts:
                neardup.fingerprint(article.text, article.title)
            timings[f"{name}: fingerprint"].append(1000 * (time.process_time() - started)
                                                   / len(jobs))
            tokens = [neardup.words(neardup.body(neardup.normalise(a.text),
                                                 neardup.normalise(a.title))) for a in texts]
            started = time.process_time()
            for found in tokens:
                neardup.anchor_keys(found[:neardup.ANCHOR_SPAN])
            timings[f"{name}: of which anchors"].append(1000 * (time.process_time() - started)
                                                        / len(jobs))
            words[name] = statistics.mean(len(t) for t in tokens)
            compared[name] = statistics.mean(min(len(t), verify.SPAN_WORDS) for t in tokens)
        timings["bench pages: verification (method replay)"].append(
            1000 * replay(run, AFTER_METHOD).verify_s / len(run.articles))
        with tempfile.TemporaryDirectory(prefix="nw-verify-") as tmp:
            store_run = store_replay(seed_dir, "waves", Path(tmp))
        # Per article, as the extraction and fingerprint figures (exact copies: no lookup).
        lookup = sum(store_run.lookup_ms) / len(run.articles)
        timings["bench pages: index lookup"].append(lookup)
        timings["bench pages: verification"].append(
            sum(store_run.near_match_ms) / len(run.articles) - lookup)
    ms = {name: statistics.median(values) for name, values in timings.items()}
    print(f"== cost, CPU ms per article, median of {rounds} rounds: {set_name} set "
          f"{seed_dir.name} ({len(pages)} pages, mean {words['bench pages']:.0f} words) and "
          f"{len(corpus)} wcxb-dev pages (mean {words['corpus pages']:.0f} words)")
    for name, value in ms.items():
        print(f"{name:42s} {value:7.3f} ms")
    assert store_run is not None
    print(f"bench pages: the store's near_match = index lookup (both indexes' candidates) + "
          f"verification (the candidates' texts read, verified, the plan); last round: p50 "
          f"{np.percentile(store_run.near_match_ms, 50):.3f} ms, p99 "
          f"{np.percentile(store_run.near_match_ms, 99):.3f} ms over "
          f"{len(store_run.near_match_ms)} calls; its clusters equal the CLI's for "
          f"{store_run.agreement}/{store_run.articles} articles")
    # Verification scales with the words it compares: at the corpus pages' length, per word.
    scaled = (ms["bench pages: verification"] * compared["corpus pages"]
              / compared["bench pages"])
    lookup = ms["bench pages: index lookup"]  # does not grow with the words
    for name, verification in (("bench pages", ms["bench pages: verification"]),
                               ("corpus pages", scaled)):
        added = ms[f"{name}: fingerprint"] + verification
        extraction = ms[f"{name}: extraction"]
        print(f"{name}: fingerprint + verification{' (scaled by words)' * (name != 'bench pages')}"
              f" = {added:.3f} ms = {100 * added / extraction:.1f}% of extraction"
              f" (target <= 10%); with the index lookup {100 * (added + lookup) / extraction:.1f}%"
              f"; before issue 11: fingerprint without anchors "
              f"{ms[f'{name}: fingerprint'] - ms[f'{name}: of which anchors']:.3f} ms")


# --- main -----------------------------------------------------------------------------------

def _set_of(top: Path) -> str:
    """The set a --keep directory holds, from its name."""
    return "hard" if "hard" in top.name else "standard"


def _set_dirs(dirs: Sequence[Path]) -> list[Path]:
    """The directories holding seed-N runs: each DIR, or its standard/ and hard/."""
    found = []
    for top in dirs:
        inner = [top / name for name in bench_clustering.SETS if (top / name).is_dir()]
        found += inner if inner and not any(top.glob("seed-*")) else [top]
    return found


def ablation_methods() -> list[Method]:
    """The method after, then each signal or layer taken away in turn."""
    off: Callable[..., verify.Signals] = lambda **kw: replace(verify.ALL, **kw)  # noqa: E731
    return [
        BEFORE_METHOD,
        Method("before + healing", heal=True),
        Method("before + anchors", anchors=True),
        Method("before + anchors + healing", anchors=True, heal=True),
        AFTER_METHOD,
        replace(AFTER_METHOD, name="  - healing", heal=False),
        replace(AFTER_METHOD, name="  - anchors", anchors=False),
        replace(AFTER_METHOD, name="  - coverage (MinHash estimate instead)",
                signals=off(coverage=False)),
        replace(AFTER_METHOD, name="  - order (shared 4-grams in any order)",
                signals=off(order=False)),
        replace(AFTER_METHOD, name="  - numeric guard", signals=off(numbers=False)),
        replace(AFTER_METHOD, name="  - aligned numbers", signals=off(aligned_numbers=False)),
        replace(AFTER_METHOD, name="  - both number checks",
                signals=off(numbers=False, aligned_numbers=False)),
        replace(AFTER_METHOD, name="  - figures of sentences only (every line's)",
                sentence_numbers=False),
        replace(AFTER_METHOD, name="  - screening by fingerprint numbers", screen=False),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path,
                        help="--keep directories of bench_clustering.py (their seed-N dirs)")
    parser.add_argument("--modes", nargs="+", default=["waves", "cold"])
    parser.add_argument("--ablation", action="store_true",
                        help="every variant of ablation_methods(), not only before and after")
    parser.add_argument("--cost", type=int, metavar="ROUNDS",
                        help="only the cost: CPU per article on the first seed of each DIR")
    args = parser.parse_args(argv)
    if not args.dirs:  # as `make bench` runs it: there is nothing ingested to replay
        print("bench_verify: skipped: give the --keep directories of bench_clustering.py, e.g."
              " `bench_clustering.py --set hard --skip-speed --keep /tmp/hard` then "
              "`bench_verify.py /tmp/hard`")
        return 0
    args.dirs = _set_dirs(args.dirs)
    if args.cost:
        for top in args.dirs:
            run_cost(sorted(top.glob("seed-*"))[0], _set_of(top), args.cost)
        return 0
    methods = ablation_methods() if args.ablation else [BEFORE_METHOD, AFTER_METHOD]
    table: dict[str, list[tuple[str, Outcome]]] = defaultdict(list)
    ok = True
    for top in args.dirs:
        set_name = _set_of(top)
        for seed_dir in sorted(top.glob("seed-*")):
            for mode in args.modes:
                run = load_run(seed_dir, mode)
                for method in methods:
                    outcome = replay(run, method)
                    table[method.name].append((f"{set_name}/{run.name}", outcome))
                    q = outcome.quality
                    print(f"{set_name:8s} {seed_dir.name} {mode:5s} {method.name:42s} "
                          f"{q.line()};"
                          f" verify {1000 * outcome.verify_s / len(run.articles):.3f} ms/article,"
                          f" {outcome.candidates / len(run.articles):.1f} candidates/article,"
                          f" {outcome.texts / len(run.articles):.1f} texts compared;"
                          f" agreement {outcome.agreement}/{len(run.articles)}", flush=True)
                    if method is AFTER_METHOD:
                        ok &= q.meets(TARGET_RECALL[set_name])
    print("== summary: min precision / min recall per set; negatives merged (sum); merges "
          "(wrong)")
    for name, rows in table.items():
        parts = []
        for set_name in ("standard", "hard"):
            mine = [o for label, o in rows if label.startswith(set_name)]
            if not mine:
                continue
            q = [o.quality for o in mine]
            parts.append(
                f"{set_name} P {min(x.precision for x in q):.4f} R {min(x.recall for x in q):.4f}"
                f" (median {statistics.median(x.recall for x in q):.4f}), topical "
                f"{sum(x.topical[0] for x in q)}, follow-ups {sum(x.follow_ups[0] for x in q)}, "
                f"templated {sum(x.templated[0] for x in q)}/{sum(x.templated[1] for x in q)}, "
                f"merges {sum(o.merges for o in mine)} ({sum(o.wrong_merges for o in mine)})")
        print(f"{name:42s} " + " | ".join(parts))
    print(f"targets for the method after: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
