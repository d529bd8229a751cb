"""Deduplication: the keys, and every decision about what duplicates what.

Layers, cheapest first (see ../shared/docs/dedupe.md): entry keys live in `parse`, and here
what tells the items of a feed apart when their GUIDs do not (`separate_items`,
`unseen_key`); here too are the canonical URL (one article per canonical URL across all
feeds), the article id derived from it, and the hash of the normalised body (the same text
under another URL). Near-duplicate fingerprints and their comparison live in
`pipeline.neardup`.

The decisions are pure functions over what the store read for them (pipeline.store.polls):
whether a canonical claim merges two pages, whether a new article is an original, an exact
copy or a near copy (exact first) with the evidence edges to record and the clusters its
evidence merges, and which member of a cluster is its canonical one. Near copies are
verified on the texts (pipeline.verify); merges are planned by pipeline.clusters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Protocol
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pipeline import clusters, neardup, verify
from pipeline.clusters import Cluster, Merge
from pipeline.messages import EXACT, JOINING_KINDS, NEAR, Article, DuplicateKind, Entry, Fingerprint
from pipeline.text import normalise_for_hash

MAX_EDGES = 20  # evidence edges kept per new article (the best matches)

# Query parameters that identify a campaign or a click, never the document.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "msclkid", "yclid", "twclid", "igshid", "mc_cid",
    "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "wickedid",
    "s_cid", "cmpid", "ocid", "ns_mchannel", "ns_source", "ns_campaign", "ns_linkname",
    "ns_fee", "sr_share", "at_medium", "at_campaign", "at_custom1", "at_custom2",
    "at_custom3", "at_custom4", "xtor", "ito", "ref_src", "spm",
    "guccounter", "guce_referrer", "guce_referrer_sig", "smid",
})
TRACKING_PREFIXES = ("utm_", "__twitter_impression", "at_", "pk_", "piwik_", "mtm_", "hsa_")
DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE_PATH = "/:@!$&'()*+,;=-._~%"


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


@lru_cache(maxsize=8192)  # called several times per entry along the pipeline
def canonical_url(url: str) -> str:
    """A normal form of url: lower-case scheme and host, no default port, no fragment,
    no tracking parameters, remaining parameters sorted, consistent percent-encoding, no
    trailing slash on paths other than the root. `www.` is kept: it can be another site."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if port and DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    if ":" in (parts.hostname or "") and not host.startswith("["):  # IPv6 literal
        host = f"[{parts.hostname}]" + (f":{port}" if port and
                                        DEFAULT_PORTS.get(scheme) != port else "")
    path = quote(unquote(parts.path), safe=_SAFE_PATH) or "/"
    path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _is_tracking(k)]
    query.sort()
    return urlunsplit((scheme, host, path, urlencode(query, doseq=True), ""))


def article_id(url: str) -> str:
    """16 lower-case hex characters derived from the canonical URL: stable across runs."""
    return _short_hash(canonical_url(url))


def entry_article_id(feed_url: str, entry_key: str) -> str:
    """The id of an article whose entry has no link: from its feed and entry key (hashed
    beside the canonical feed URL, not inside it: canonical_url drops a fragment, and every
    link-less entry of a feed shared one id)."""
    return _short_hash(f"{canonical_url(feed_url)}\nentry={entry_key}")


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def text_hash(text: str) -> str:
    """Fingerprint of the normalised body (NFKC, case-folded, whitespace collapsed)."""
    return hashlib.sha256(normalise_for_hash(text).encode("utf-8")).hexdigest()


def same_site(a: str, b: str) -> bool:
    """Whether two URLs share a registrable-ish host (exact host, ignoring a `www.` prefix)."""
    def host(u: str) -> str:
        h = (urlsplit(u).hostname or "").lower()
        return h[4:] if h.startswith("www.") else h
    return bool(host(a)) and host(a) == host(b)


def registered_domain(url: str) -> str:
    """The domain its owner registered (the public suffix list's eTLD+1, from the copy the
    `tld` package ships: rss.cnn.com and edition.cnn.com are cnn.com, foo.blogspot.com is
    itself); a host the list does not know (an address, `localhost`, `.test`) as it is."""
    from tld import get_fld

    try:
        host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    except ValueError:  # not a URL
        return ""
    return str(get_fld(host, fix_protocol=True, fail_silently=True) or host) if host else ""


def speaks_for(feed_url: str, site_url: str | None, article_url: str) -> bool:
    """Whether a feed is the article's own site's: the feed, or the site it says it is of
    (its `<link>`), under the article's registered domain (rss.cnn.com's feed for
    edition.cnn.com's articles). Such a feed names and dates the article rather than
    another site's (an aggregator's, a planet's)."""
    domain = registered_domain(article_url)
    return bool(domain) and domain in (registered_domain(feed_url),
                                       registered_domain(site_url or ""))


# --- feed items that share a GUID ----------------------------------------------------------

def _item_digest(entry: Entry) -> str:
    return hashlib.sha256(f"{entry.title}\x00{entry.content}".encode()).hexdigest()[:16]


def _guid_key(entry: Entry) -> str | None:
    return "guid:" + entry.guid if entry.guid else None


def same_item(a: Entry, b: Entry) -> bool:
    """Whether two items of one document are the same item: not when their links differ,
    nor when both their titles and their contents differ."""
    if a.link and b.link and canonical_url(a.link) != canonical_url(b.link):
        return False
    return a.title == b.title or a.content == b.content


def separate_key(entry: Entry, with_digest: bool = False) -> str:
    """The key of an item whose GUID other items carry too: the GUID and its link (or a
    digest of its title and content when it has no link, or shares the link as well)."""
    key = _guid_key(entry) or entry.key
    if entry.link:
        key += "|link:" + canonical_url(entry.link)
    if with_digest or not entry.link:
        key += "|hash:" + _item_digest(entry)
    return key


def separate_items(entries: Sequence[Entry]) -> list[Entry]:
    """The items of one document, each under its own key, in feed order. Items that share
    a GUID and are different items (`same_item`) get separate keys; repeats of one item,
    byte-identical or not, keep one key (the caller keeps the first)."""
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        if entry.guid and entry.key == _guid_key(entry):
            groups.setdefault(entry.key, []).append(i)
    result = list(entries)
    for indices in groups.values():
        if len(indices) < 2:
            continue
        items: list[tuple[Entry, list[int]]] = []  # each item's first copy, and its copies
        for i in indices:
            for first, copies in items:
                if same_item(first, entries[i]):
                    copies.append(i)
                    break
            else:
                items.append((entries[i], [i]))
        if len(items) < 2:
            continue
        used: set[str] = set()
        for first, copies in items:
            key = separate_key(first)
            if key in used:  # another item under the same link
                key = separate_key(first, with_digest=True)
            used.add(key)
            for i in copies:
                result[i] = replace(entries[i], key=key)
    return result


def guid_reused(stored_link: str | None, stored_title: str | None, entry: Entry) -> bool:
    """Whether the item the feed carried under this GUID before is another item: another
    link and another title (a changed link alone is a corrected URL)."""
    if stored_link and entry.link and canonical_url(stored_link) == canonical_url(entry.link):
        return False
    return (stored_title or "") != entry.title


def guid_key(entry: Entry) -> str | None:
    """The plain key of an entry's GUID (`guid:...`); the keys of items that share it
    start with it and `|`."""
    return _guid_key(entry)


def unseen_key(entry: Entry, stored: Mapping[str, tuple[str | None, str | None]]
               ) -> str | None:
    """The key to record a feed item under, or None when the feed carried it before.

    `stored` maps the keys the feed has recorded to their (link, title): at least the
    entry's key and, for an item with a GUID, every key recorded under that GUID (plain or
    separate). An item is not new when the feed carried the same item under its GUID in any
    of those keys (`guid_reused` says it is another item); a GUID already recorded for other
    items gives a new item a key of its own."""
    gkey = _guid_key(entry)
    if gkey is None:
        return None if entry.key in stored else entry.key
    if entry.key in stored and (entry.key != gkey or not guid_reused(*stored[entry.key], entry)):
        return None
    under_guid = [value for key, value in stored.items()
                  if key == gkey or key.startswith(gkey + "|")]
    if any(not guid_reused(link, title, entry) for link, title in under_guid):
        return None  # the same item, recorded under another key of its GUID
    if entry.key not in stored:
        return entry.key
    key = separate_key(entry)
    if key in stored:
        key = separate_key(entry, with_digest=True)
    return None if key in stored else key


def canonical_claim_holds(page_url: str, stored_page_url: str | None, same_text: bool,
                          near_copy: bool) -> bool:
    """Whether a page may join the article already stored under the same id (its canonical
    URL). A site can point many distinct pages at one canonical (its home or a section
    page), so only the same page, the same text or a near copy of it (`is_near_copy`)
    joins; any other page keeps its own URL, and nothing is lost."""
    if page_url and stored_page_url and canonical_url(page_url) == canonical_url(
            stored_page_url):
        return True  # the same page again (its text may have changed since)
    return same_text or near_copy


def keyed_by_page(article: Article) -> Article:
    """The article under its own page URL, the refused canonical claim kept as evidence.
    An article with no page (a link-less entry, an imported file) is keyed by its claimed
    id and its text instead: the empty URL would give every such article one id."""
    page = canonical_url(article.url) if article.url else ""
    key = article_id(page) if page else _short_hash(f"{article.id}\ntext={text_hash(article.text)}")
    return replace(article, id=key, canonical_url=page,
                   claimed_canonical_url=article.canonical_url or None)


# --- what a new article is --------------------------------------------------------------------

@dataclass(frozen=True)
class ExactMatch:
    """The first stored article with the same normalised text."""

    article_id: str
    original_id: str  # the copy it names as duplicate_of (an exact copy's own original)
    cluster_id: str


@dataclass(frozen=True)
class Candidate:
    """A stored article the indexes (LSH bands, anchors) offer as a possible near copy."""

    article_id: str
    cluster_id: str  # its cluster now (the store keeps it current through merges)
    signature: bytes
    shingles: int
    numbers: tuple[str, ...]


@dataclass(frozen=True)
class Edge:
    """Evidence for one match: recorded in `duplicate_edges`."""

    article_id: str
    other_id: str
    kind: DuplicateKind
    containment: float  # the MinHash estimate of 5-shingle containment
    jaccard: float  # ... and of their Jaccard
    numbers_overlap: float | None = None
    note: str | None = None
    coverage: float | None = None  # the texts' aligned coverage, when they were compared


@dataclass(frozen=True)
class Decision:
    kind: DuplicateKind | None  # None: an original, starting its own cluster; else joining
    duplicate_of: str | None
    score: float | None  # 1.0 for exact; the verification's score (coverage) for near
    cluster_id: str  # the cluster it joins (its own id for an original)
    edges: tuple[Edge, ...] = ()
    merges: tuple[Merge, ...] = ()  # clusters its evidence joins into `cluster_id`


class Stored(Protocol):
    """What a decision reads of the stored corpus besides its candidates, and only when it
    needs it (the store's reader, pipeline.store.index.Reader)."""

    def text(self, article_id: str) -> tuple[str, str]:
        """A stored article's (text, title); empty strings when there is none."""
        ...

    def clusters(self, ids: Collection[str]) -> Mapping[str, Cluster]:
        """What the survivor choice of a merge needs of these clusters."""
        ...


@dataclass(frozen=True)
class Thresholds:
    """The verification's coverage thresholds (`dedupe.threshold`, `related_threshold`)."""

    near: float = verify.NEAR_COVERAGE
    related: float = verify.RELATED_COVERAGE


def is_text_dedupe_candidate(text: str) -> bool:
    """Whether a text is long enough for an exact-text match to mean anything."""
    return len(text.split()) >= neardup.MIN_WORDS


def decide(article_id: str, exact: ExactMatch | None, fingerprint: Fingerprint | None,
           candidates: Sequence[Candidate], stored: Stored, text: str = "", title: str = "",
           thresholds: Thresholds = Thresholds()) -> Decision:
    """What a new article is: an exact copy (first: same text), else a near copy of its best
    verified candidate, else an original in a cluster of its own; and which clusters its
    evidence joins (clusters that heal, pipeline.clusters).

    Candidates are verified on the texts (`pipeline.verify.check`: the figures, the aligned
    coverage of the shorter body), reading a candidate's stored text only when its
    fingerprint does not settle it. Every near or related candidate becomes an evidence edge
    (at most MAX_EDGES: the near ones first, then the best related). The article joins the
    cluster of its best near match; every other cluster it matches with the same evidence
    merges into one survivor (`clusters.plan`).

    `candidates` are in the order the indexes returned them, oldest first: ties go to the
    earliest indexed copy."""
    if exact is not None:
        edge = Edge(article_id, exact.original_id, EXACT, 1.0, 1.0)
        return Decision(EXACT, exact.original_id, 1.0, exact.cluster_id, (edge,))
    if fingerprint is None or not candidates:
        return Decision(None, None, None, article_id)
    found = examine(fingerprint, text, title, candidates, stored, thresholds)
    matches = [clusters.Match(c.article_id, c.cluster_id, e.kind, e.score)
               for c, e, _ in found if e.kind is not None]
    involved = {m.cluster_id for m in matches if m.kind in JOINING_KINDS}
    plan = clusters.plan(matches, stored.clusters(involved) if len(involved) > 1 else {})
    merged = {m.source for m in plan.merges}
    edges = []
    for candidate, evidence, jaccard in sorted(  # near matches first: a join's evidence
            (f for f in found if f[1].kind is not None),
            key=lambda f: (f[1].kind != NEAR, -f[1].score))[:MAX_EDGES]:
        assert evidence.kind is not None
        note = evidence.note
        if candidate.cluster_id in merged and evidence.kind == NEAR:
            note = "cluster merged"
        edges.append(Edge(article_id, candidate.article_id, evidence.kind,
                          round(evidence.containment, 4), round(jaccard, 4),
                          _round(evidence.numbers_overlap), note, _round(evidence.coverage)))
    if plan.cluster_id is None:
        return Decision(None, None, None, article_id, tuple(edges))
    return Decision(plan.kind, plan.duplicate_of, _round(plan.score), plan.cluster_id,
                    tuple(edges), plan.merges)


def examine(fingerprint: Fingerprint, text: str, title: str, candidates: Sequence[Candidate],
            stored: Stored, thresholds: Thresholds = Thresholds()
            ) -> list[tuple[Candidate, verify.Evidence, float]]:
    """The evidence on every candidate examined, in the candidates' order: (candidate,
    evidence, MinHash Jaccard estimate). The MinHash estimates order and screen them
    (`verify.check`); the texts decide."""
    others = neardup.signature_matrix([c.signature for c in candidates])
    jaccards = [float(j) for j in neardup.jaccard_many(fingerprint.signature, others)]
    position = {c.article_id: i for i, c in enumerate(candidates)}
    pending = [verify.Candidate(c.article_id, c.cluster_id,
                                neardup.containment(j, fingerprint.shingles, c.shingles),
                                c.numbers)
               for c, j in zip(candidates, jaccards, strict=True)]
    checked = verify.check(text, title, fingerprint.numbers, pending, stored.text,
                           near=thresholds.near, related=thresholds.related)
    return sorted(((candidates[position[c.article_id]], evidence,
                    jaccards[position[c.article_id]]) for c, evidence in checked),
                  key=lambda f: position[f[0].article_id])


def is_near_copy(fingerprint: Fingerprint | None, text: str, title: str,
                 stored_copy: Candidate | None, stored: Stored,
                 thresholds: Thresholds = Thresholds()) -> bool:
    """Whether a text is a near copy of one stored article, by the same verification as a
    new article's candidates (`decide`)."""
    if fingerprint is None or stored_copy is None:
        return False
    found = examine(fingerprint, text, title, [stored_copy], stored, thresholds)
    return any(evidence.kind == NEAR for _, evidence, _ in found)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class Member:
    """What ranks a cluster member for canonical: see `canonical_member`."""

    article_id: str
    sitename: str | None
    url: str | None
    published_or_fetched: str | None
    text_length: int


def canonical_member(members: Sequence[Member], agencies: tuple[str, ...]) -> str:
    """The cluster's canonical member: the agency's own copy, else the earliest published
    (first seen when undated), ties to the longest text, then the smallest id."""
    best = min(members, key=lambda m: (not neardup.is_agency_copy(m.sitename, m.url, agencies),
                                       m.published_or_fetched or "", -m.text_length,
                                       m.article_id))
    return best.article_id
