"""Deduplication keys: canonical URLs, article ids and exact-text fingerprints.

Layers, cheapest first (see ../shared/docs/dedupe.md): entry keys live in `parse`; here are the
canonical URL (one article per canonical URL across all feeds), the article id derived from it,
and the hash of the normalised body (the same text under another URL). Near-duplicate
detection lives in `pipeline.neardup`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pipeline.text import normalise_for_hash

if TYPE_CHECKING:
    from pipeline.extract import Article
    from pipeline.neardup import Similarity

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
    return hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:16]


def text_id(title: str, text: str) -> str:
    """An id for an article that has no URL (imported text files): from its content."""
    digest = hashlib.sha256(f"{title}\n\n{text}".encode()).hexdigest()
    return digest[:16]


def text_hash(text: str) -> str:
    """Fingerprint of the normalised body (NFKC, case-folded, whitespace collapsed)."""
    return hashlib.sha256(normalise_for_hash(text).encode("utf-8")).hexdigest()


def same_site(a: str, b: str) -> bool:
    """Whether two URLs share a registrable-ish host (exact host, ignoring a `www.` prefix)."""
    def host(u: str) -> str:
        h = (urlsplit(u).hostname or "").lower()
        return h[4:] if h.startswith("www.") else h
    return bool(host(a)) and host(a) == host(b)


def canonical_claim_holds(page_url: str, stored_page_url: str | None, same_text: bool,
                          similarity: Similarity | None, threshold: float) -> bool:
    """Whether a page may join the article already stored under the same id (its canonical
    URL). A site can point many distinct pages at one canonical (its home or a section
    page), so only the same page, the same text or a near duplicate of it joins; any other
    page keeps its own URL, and nothing is lost."""
    if page_url and stored_page_url and canonical_url(page_url) == canonical_url(
            stored_page_url):
        return True  # the same page again (its text may have changed since)
    return same_text or (similarity is not None and similarity.containment >= threshold)


def keyed_by_page(article: Article) -> Article:
    """The article under its own page URL, the refused canonical claim kept as evidence."""
    page = canonical_url(article.url)
    return replace(article, id=article_id(page), canonical_url=page,
                   claimed_canonical_url=article.canonical_url)
