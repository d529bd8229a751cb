"""URL canonicalisation, article ids and exact-text fingerprints."""

from __future__ import annotations

import pytest

from pipeline.dedupe import article_id, canonical_url, same_site, text_hash


@pytest.mark.parametrize(("a", "b"), [
    ("https://Example.COM/news/story?utm_source=rss&utm_medium=feed",
     "https://example.com/news/story"),
    ("https://example.com:443/news/story/", "https://example.com/news/story"),
    ("http://example.com:80/a#comments", "http://example.com/a"),
    ("https://example.com/a?b=2&a=1&fbclid=XYZ&gclid=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/caf%C3%A9", "https://example.com/café"),
    ("https://example.com//double//slash", "https://example.com/double/slash"),
    ("https://example.com", "https://example.com/"),
])
def test_disguises_of_one_url_are_one_key(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)
    assert article_id(a) == article_id(b)


@pytest.mark.parametrize(("a", "b"), [
    ("https://example.com/a?id=1", "https://example.com/a?id=2"),
    ("https://example.com/a", "https://www.example.com/a"),
    ("http://example.com:8080/a", "http://example.com/a"),
    ("https://example.com/A", "https://example.com/a"),
])
def test_different_documents_stay_different(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)


def test_article_id_shape() -> None:
    aid = article_id("https://example.com/a")
    assert len(aid) == 16 and aid == aid.lower() and int(aid, 16) >= 0


def test_text_hash_ignores_case_width_and_spacing() -> None:
    assert text_hash("Hello  World\n\nAgain") == text_hash("hello world again")
    assert text_hash("ＡＢＣ") == text_hash("abc")  # NFKC folds full-width letters
    assert text_hash("hello world") != text_hash("hello word")


def test_same_site() -> None:
    assert same_site("https://www.a.example/x", "http://a.example/y")
    assert not same_site("https://a.example/x", "https://b.example/x")
