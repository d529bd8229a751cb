"""Near-duplicate fingerprints: word 5-shingles, MinHash, LSH band keys, containment.

Pure functions, no SQL (the index lives in `pipeline.store`); `fingerprint` runs in the
extraction workers. Method and parameters follow ../shared/docs/dedupe.md:

- the extracted body (never the title) is NFKC-normalised, case-folded and split into `\\w+`
  words; its set of word 5-shingles is hashed into a 112-value MinHash (rensa's RMinHash);
- the 112 values are cut into 28 bands of 4 rows; one 64-bit key per band. Two texts become
  candidates when any band key matches (probability 0.84 at Jaccard 0.5, 0.98 at 0.6);
- the estimated *containment* |A∩B| / min(|A|,|B|) of a candidate pair, which stays high for
  trimmed copies where Jaccard collapses, orders the candidates and screens out the far ones
  (`pipeline.verify` then decides on the texts; `verdict` is the rule before issue 11, kept
  for the bench's "before" method: >= 0.8 a duplicate, 0.6-0.8 "related");
- a numeric guard (`numbers_overlap` of the `figures`) stops templated stories (market
  reports, results, weather) that differ only in their numbers from merging.

A second, cheaper index widens the candidates for rewritten copies (issue 11), whose
shingle Jaccard falls where banding no longer proposes them (edits break shingles, trims and
additions make the sizes unequal): *anchors*, a content-defined sample of the word 4-grams
of the body's first ANCHOR_SPAN words (those whose hash has its top ANCHOR_RATE_BITS bits
zero; the ANCHOR_KEYS smallest in the rare span that has more). A 4-gram is kept or not
whatever text it is in, so two copies sample the same 4-grams from what they share (copies
keep a story's beginning): sharing ANCHOR_MIN_SHARED of them makes a candidate, whatever
their sizes. `pipeline.verify` then decides on the texts.

Signatures persist in the database, so everything that shapes them (rensa's version and
algorithm, seed, permutations, shingle size, tokenisation) is named by `SCHEME`; a change of
any of them needs `newswire reindex --from-text`. Anchors are named by `ANCHOR_SCHEME`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from urllib.parse import urlsplit

import numpy as np
from rensa import RMinHash

from pipeline.config import DEFAULT_AGENCIES
from pipeline.messages import NEAR, RELATED, Article, DuplicateKind, Fingerprint

SHINGLE_WORDS = 5
NUM_PERM = 112
BANDS = 28
ROWS = NUM_PERM // BANDS  # 4
SEED = 20240611  # fixed forever: it is part of every stored signature
# Shorter bodies (teasers, captions) are too little evidence for text dedupe: no fingerprint
# here, and no exact-text match either (pipeline.dedupe).
MIN_WORDS = 25
SENTENCE_WORDS = 8  # shorter lines are headings or page furniture, not sentences
NUMERIC_MIN_TOKENS = 3
NUMERIC_MIN_OVERLAP = 0.6  # dedupe.md: 0.5 (as Jaccard); see numbers_overlap
SIGNATURE_BYTES = NUM_PERM * 4
ANCHOR_WORDS = 4  # edits break fewer 4-grams than 5-shingles, and 4-grams are still rare
ANCHOR_RATE_BITS = 4  # one 4-gram in 16 is an anchor ...
ANCHOR_SPAN = 400  # ... of the body's first 400 words: what trimmed copies keep (~24 anchors)
ANCHOR_KEYS = 32  # at most 32 per article (the smallest hashes): index rows stay ~0.5 KiB
ANCHOR_MIN_LONG_WORDS = 2  # 4-grams of short words ("is one of the") are stock phrases
ANCHOR_MIN_SHARED = 2  # anchors two articles share to become candidates
ANCHOR_BUCKET_LIMIT = 32  # an anchor on more indexed articles is boilerplate: ignored

SCHEME = (f"rensa-{version('rensa')}/rminhash-v{RMinHash.ALGORITHM_VERSION}/seed{SEED}/"
          f"perm{NUM_PERM}/w{SHINGLE_WORDS}/words-nfkc-casefold/body-without-headline-v1")

ANCHOR_SCHEME = (f"anchors-v1/crc32-splitmix/w{ANCHOR_WORDS}/top{ANCHOR_RATE_BITS}bits0/"
                 f"long{ANCHOR_MIN_LONG_WORDS}/k{ANCHOR_KEYS}/first{ANCHOR_SPAN}/"
                 "words-nfkc-casefold/body-without-headline-v1")

_WORD = re.compile(r"\w+")
# Numeric tokens are whitespace-separated tokens with a digit, punctuation inside kept
# ("4,512.3", "3-1", "$2.5bn", "12%").
_DIGIT = re.compile(r"\d")
_NOT_A_FIGURE = re.compile(r"^(1[89]\d\d|20\d\d|\d{4}-\d\d-\d\d(t[\d:.+z-]*)?)$")
_EDGE_PUNCT = "\"'()[]{}<>.,;:!?«»“”‘’—–-"
_LEFT_PUNCT = _EDGE_PUNCT.replace("-", "")

# 64-bit mixing constants (splitmix64 / murmur3 finalisers): band keys must be identical on
# every machine and in every release, so they are plain integer arithmetic, not hash().
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class Similarity:
    """How a stored text compares with a new one."""

    jaccard: float  # MinHash estimate of shingle Jaccard
    containment: float  # estimated |A∩B| / min(|A|, |B|)
    numbers_overlap: float | None  # None when the numeric guard does not apply


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def shingles(tokens: list[str], size: int = SHINGLE_WORDS) -> set[str]:
    """The set of word n-grams; a text shorter than n words is one shingle."""
    if len(tokens) <= size:
        return {" ".join(tokens)} if tokens else set()
    grams = zip(*(tokens[i:] for i in range(size)), strict=False)  # stops at the shortest
    return {" ".join(gram) for gram in grams}


def numeric_tokens(text: str) -> tuple[str, ...]:
    """Distinct tokens that contain a digit, surrounding punctuation stripped, sorted.

    Years and ISO timestamps are left out: they are what site boilerplate adds ("Copyright
    2025", a dated byline), and one of them would otherwise trip the numeric guard between
    two copies of one story."""
    return _numeric_tokens(normalise(text))


def _numeric_tokens(normalised: str) -> tuple[str, ...]:
    return _figures_among(normalised.split())


def _figures_among(tokens: list[str]) -> tuple[str, ...]:
    # A leading minus stays: -2 degrees is not 2 degrees.
    found = {token.lstrip(_LEFT_PUNCT).rstrip(_EDGE_PUNCT) for token in tokens
             if _DIGIT.search(token)}
    return tuple(sorted(token for token in found
                        if _DIGIT.search(token) and not _NOT_A_FIGURE.match(token)))


def figures(normalised: str, normalised_title: str = "") -> tuple[str, ...]:
    """The numeric tokens of a title and of a text's sentences (lines of SENTENCE_WORDS
    words or more), both `normalise`d: a templated report's headline carries its result,
    while short lines are page furniture, such as a list of other headlines ("Rovers 3-1
    City") whose figures would make two different reports look alike."""
    tokens = normalised_title.split()
    for line in normalised.split("\n"):
        if _DIGIT.search(line):  # most lines have no figure: not worth splitting
            words = line.split()
            if len(words) >= SENTENCE_WORDS:
                tokens += words
    return _figures_among(tokens)


def minhash(items: set[str]) -> bytes:
    sketch = RMinHash(num_perm=NUM_PERM, seed=SEED)
    sketch.update(list(items))  # a set of minima: the order of items does not matter
    return np.asarray(sketch.digest(), dtype="<u4").tobytes()


def body(text: str, title: str = "") -> str:
    """The text without a leading headline: extractors often keep the page's <h1>, and each
    outlet writes its own headline. The first paragraph goes when its words equal the
    title's or one starts with the other ("Title | Outlet"), and it is no longer than the
    title and a site name: a lead sentence that happens to start like the title stays."""
    first, _, rest = text.partition("\n\n")
    if not rest or not title or len(first) > 2 * len(title) + 100:
        return text  # cheap exits: most first paragraphs are not headlines
    head, name = words(first), words(title)
    if head and name and len(head) <= len(name) + 8 and (
            head[:len(name)] == name or name[:len(head)] == head):
        return rest
    return text


def fingerprint(text: str, title: str = "") -> Fingerprint | None:
    """The fingerprint of an article, or None when its body is too short to compare.

    Shingles come from the body alone (a leading headline left out: outlets rewrite
    headlines); numbers from the title and the text's sentences (`figures`), as the headline
    of a templated report ("Rovers 4-1 City") carries its key figures and a copy's headline
    keeps them."""
    normalised = normalise(text)  # once: it is a good part of the cost
    tokens = _WORD.findall(body(normalised, title))
    if len(tokens) < MIN_WORDS:
        return None
    grams = shingles(tokens)
    return Fingerprint(signature=minhash(grams), shingles=len(grams),
                       numbers=figures(normalised, normalise(title)),
                       anchors=anchor_keys(tokens[:ANCHOR_SPAN]))


def gram_keys(word_hashes: np.ndarray, words: int) -> np.ndarray:
    """One 64-bit key per run of `words` consecutive words, from the words' hashes (uint64):
    each word mixed in with the splitmix64 finaliser, in plain integer arithmetic."""
    count = len(word_hashes) - words + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        key = np.full(count, _GOLDEN, dtype=np.uint64)
        for row in range(words):
            key = (key ^ word_hashes[row:row + count]) * _MIX1
            key ^= key >> np.uint64(31)
            key *= _MIX2
            key ^= key >> np.uint64(29)
    return key


def anchor_keys(tokens: Sequence[str]) -> tuple[int, ...]:
    """The anchors of a body's words: the word 4-grams with at least two words of four
    letters or more whose 64-bit hash has its top ANCHOR_RATE_BITS bits zero, the
    ANCHOR_KEYS smallest, as signed 64-bit integers (SQLite's), ascending.

    Stable across processes and releases: words hash with CRC-32, 4-grams mix those with
    the splitmix64 finaliser in plain integer arithmetic."""
    if len(tokens) < ANCHOR_WORDS:
        return ()
    vocabulary: dict[str, int] = {}
    ids = np.fromiter((vocabulary.setdefault(w, len(vocabulary)) for w in tokens),
                      dtype=np.int64, count=len(tokens))
    word_hash = np.fromiter((zlib.crc32(w.encode()) for w in vocabulary), dtype=np.uint64,
                            count=len(vocabulary))[ids]
    is_long = np.fromiter((len(w) >= 4 for w in vocabulary), dtype=np.int8,
                          count=len(vocabulary))[ids]
    key = gram_keys(word_hash, ANCHOR_WORDS)
    sampled = (key >> np.uint64(64 - ANCHOR_RATE_BITS)) == 0
    sampled &= np.convolve(is_long, np.ones(ANCHOR_WORDS, dtype=np.int8),
                           "valid") >= ANCHOR_MIN_LONG_WORDS
    chosen = np.unique(key[sampled])[:ANCHOR_KEYS]  # sorted: the smallest hashes
    return tuple(int(k) for k in np.sort(chosen.view(np.int64)))


def anchor_candidates(buckets: Mapping[int, Sequence[int]]) -> list[int]:
    """Candidates from the anchor index: `buckets` maps each anchor of the new article to
    the indexed articles (any ids) holding it, at most ANCHOR_BUCKET_LIMIT + 1 of them per
    anchor (more means boilerplate or a stock phrase: that anchor is ignored). An article
    sharing ANCHOR_MIN_SHARED anchors is a candidate; ids in ascending order."""
    shared: dict[int, int] = {}
    for ids in buckets.values():
        if len(ids) > ANCHOR_BUCKET_LIMIT:
            continue
        for article in set(ids):
            shared[article] = shared.get(article, 0) + 1
    return sorted(a for a, n in shared.items() if n >= ANCHOR_MIN_SHARED)


def fingerprint_article(article: Article) -> Fingerprint | None:
    """The fingerprint of a stored or extracted article: its text with its title."""
    return fingerprint_text(article.text, article.title)


def fingerprint_text(text: str | None, title: str | None) -> Fingerprint | None:
    """The fingerprint of a stored text with its title; None without text."""
    return fingerprint(text, title or "") if text else None


def signature_array(signature: bytes) -> np.ndarray:
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"signature has {len(signature)} bytes, expected {SIGNATURE_BYTES}")
    return np.frombuffer(signature, dtype="<u4")


def signature_matrix(signatures: list[bytes]) -> np.ndarray:
    """Stored signatures as one (n, NUM_PERM) uint32 array."""
    return np.frombuffer(b"".join(signatures), dtype="<u4").reshape(len(signatures), NUM_PERM)


def band_keys_many(signatures: np.ndarray) -> np.ndarray:
    """(n, NUM_PERM) uint32 signatures → (n, BANDS) int64 band keys.

    Each key mixes the band's index with its ROWS values, so equal keys mean (up to 2^-64)
    the same values in the same band: one table can hold every band.
    """
    values = np.asarray(signatures, dtype=np.uint64).reshape(-1, BANDS, ROWS)
    with np.errstate(over="ignore"):
        key = np.broadcast_to(np.arange(1, BANDS + 1, dtype=np.uint64) * _GOLDEN,
                              values.shape[:2]).copy()
        for row in range(ROWS):
            key = (key ^ values[:, :, row]) * _MIX1
            key ^= key >> np.uint64(31)
            key *= _MIX2
            key ^= key >> np.uint64(29)
    return key.view(np.int64)  # SQLite integers are signed 64-bit


def band_keys(signature: bytes) -> list[int]:
    """The BANDS index keys of one signature."""
    return [int(k) for k in band_keys_many(signature_array(signature)[None, :])[0]]


def jaccard_many(signature: bytes, others: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of one signature against (n, NUM_PERM) others."""
    return (np.asarray(others) == signature_array(signature)).mean(axis=1)


def containment(jaccard: float, size_a: int, size_b: int) -> float:
    """|A∩B| / min(|A|,|B|) from the Jaccard estimate: |A∩B| = J/(1+J)·(|A|+|B|)."""
    if size_a <= 0 or size_b <= 0:
        return 0.0
    return min(1.0, jaccard / (1.0 + jaccard) * (size_a + size_b) / min(size_a, size_b))


def numbers_overlap(a: tuple[str, ...] | frozenset[str], b: tuple[str, ...] | frozenset[str]
                    ) -> float | None:
    """Containment of the smaller numeric-token set in the larger one, or None when the
    numeric guard does not apply: a text without numbers, or fewer than NUMERIC_MIN_TOKENS
    numbers in the two texts together. A near duplicate needs NUMERIC_MIN_OVERLAP.

    Departures from dedupe.md's rule (Jaccard < 0.5 rejects, when both texts have >= 3
    numbers), measured by bench/bench_clustering.py on extracted texts: containment, because
    a trimmed copy keeps only the first part of the numbers, which Jaccard reads as
    "different numbers"; "both have one, three together", because a short templated report
    (a weather line with a high and a low, a score and an attendance) has only two numbers;
    and 0.6 rather than 0.5, because with small sets one coincidence (a 2 in both) reaches
    0.5.
    """
    set_a, set_b = set(a), set(b)
    if not set_a or not set_b or len(set_a | set_b) < NUMERIC_MIN_TOKENS:
        return None
    return len(set_a & set_b) / min(len(set_a), len(set_b))


def compare(new: Fingerprint, jaccard: float, other_shingles: int,
            other_numbers: tuple[str, ...]) -> Similarity:
    return Similarity(jaccard=jaccard,
                      containment=containment(jaccard, new.shingles, other_shingles),
                      numbers_overlap=numbers_overlap(new.numbers, other_numbers))


# Why a pair that shares text is only related (duplicate_edges.note), here and in
# pipeline.verify.
BELOW_THRESHOLD = "below duplicate threshold"
NUMBERS_DIFFER = "numbers differ"


def verdict(similarity: Similarity, threshold: float, related_threshold: float
            ) -> tuple[DuplicateKind, str | None] | None:
    """('near', None), ('related', why) or None (unrelated) for one candidate, by its
    estimated containment alone: the rule before issue 11 (bench/bench_verify.py's "before"
    method); the store verifies on the texts (pipeline.verify)."""
    score = similarity.containment
    if score < related_threshold:
        return None
    if score < threshold:
        return RELATED, BELOW_THRESHOLD
    overlap = similarity.numbers_overlap
    if overlap is not None and overlap < NUMERIC_MIN_OVERLAP:
        return RELATED, NUMBERS_DIFFER
    return NEAR, None


# --- provenance: which copy is the agency's own ---------------------------------------------

@functools.lru_cache(maxsize=4096)  # site names repeat: one outlet, many articles
def _name_key(name: str) -> str:
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", name).casefold()))


@functools.lru_cache(maxsize=64)
def _agency_keys(agencies: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The agency list as (hosts, name keys), worked out once per list: a cluster's
    canonical is picked again after a merge by comparing every member with every entry, and
    normalising the entries each time was a tenth of the writer's time on a corpus of a
    million articles (bench/corpus_db.py)."""
    hosts = tuple(e.lower().strip(".") for e in agencies if "." in e)
    return hosts, frozenset(_name_key(e) for e in agencies if "." not in e)


def is_agency_copy(sitename: str | None, url: str | None,
                   agencies: tuple[str, ...] = DEFAULT_AGENCIES) -> bool:
    """Whether an article is a news agency's own copy of its story.

    An entry containing a dot is a host: the article's URL host equals it or is a subdomain
    of it. Any other entry is a site name, compared whole with the page's site name
    (og:site_name, as trafilatura reports it) after case-folding and dropping punctuation.
    A byline or "(Reuters)" dateline in the text does not count: every copy carries those.
    """
    hosts, names = _agency_keys(tuple(agencies))
    host = (urlsplit(url).hostname or "").lower().rstrip(".") if url else ""
    if host and any(host == domain or host.endswith("." + domain) for domain in hosts):
        return True
    name = _name_key(sitename) if sitename else ""
    return bool(name) and name in names
