"""OPML 2.0 in and out: parsing feed readers' files safely, writing them, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.opml import Outline, parse_opml, read_opml, write_opml
from tests.conftest import run_cli, write_config
from tests.newssite import NewsSite

READER_EXPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="World">
      <outline type="rss" text="DW English" xmlUrl="https://rss.dw.com/rdf/rss-en-all"
               htmlUrl="https://www.dw.com/en"/>
      <outline type="rss" title="BBC &amp; World" text="ignored when title is set"
               XMLURL="https://feeds.bbci.co.uk/news/world/rss.xml" htmlUrl="javascript:x()"/>
    </outline>
    <outline type="rss" text="Top level" xmlurl="http://example.org/feed.xml"/>
    <outline type="rss" text="Scripted" xmlUrl="javascript:alert(1)"/>
    <outline type="rss" text="Relative" xmlUrl="/feed.xml"/>
    <outline type="rss" text="FTP" xmlUrl="ftp://example.org/feed.xml"/>
    <outline type="rss" text="Twice" xmlUrl="http://example.org/feed.xml"/>
    <outline text="A note without a feed"/>
  </body>
</opml>
"""


def test_parse_a_feed_readers_export() -> None:
    document = parse_opml(READER_EXPORT)
    assert document.title == "My subscriptions"
    assert document.outlines == (
        Outline("https://rss.dw.com/rdf/rss-en-all", "DW English", "https://www.dw.com/en",
                "World"),
        Outline("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC & World", None, "World"),
        Outline("http://example.org/feed.xml", "Top level"),
    )
    assert [text for text, _ in document.skipped] == ["Scripted", "Relative", "FTP", "Twice"]
    assert "not an http(s) URL" in dict(document.skipped)["Scripted"]
    assert read_opml(READER_EXPORT) == list(document.outlines)


def test_write_then_read_round_trip() -> None:
    outlines = [Outline("https://a.example/feed", "A <&> \"quoted\"", "https://a.example/"),
                Outline("https://b.example/rss", None, None, "Science"),
                Outline("https://c.example/atom", "C", None, "Science")]
    data = write_opml(outlines)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<opml version=\"2.0\">")
    document = parse_opml(data)
    assert document.title == "newswire feeds"
    assert document.outlines == (
        outlines[0], Outline("https://b.example/rss", "https://b.example/rss", None, "Science"),
        outlines[2])


@pytest.mark.parametrize(("data", "reason"), [
    (b"<html><body>hello</body></html>", "not <opml>"),
    (b"<opml version='2.0'><head/></opml>", "no <body>"),
    (b"<opml><body><outline", "not well-formed"),
    (b"", "not well-formed"),
])
def test_unusable_documents_are_clear_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_opml(data)


def test_entity_attacks_are_refused_and_nothing_is_read(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("SECRET-CANARY")
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bombs = [
        f'<!DOCTYPE opml [<!ENTITY xxe SYSTEM "{canary.as_uri()}">]>'
        '<opml version="2.0"><body><outline text="&xxe;" xmlUrl="http://a.example/f"/>'
        "</body></opml>",
        f'<!DOCTYPE opml [<!ENTITY l0 "ha">{laughs}]><opml><body>'
        '<outline text="&l9;" xmlUrl="http://a.example/f"/></body></opml>',
    ]
    for bomb in bombs:
        for encoding in ("utf-8", "utf-16"):
            with pytest.raises(ValueError, match="entity") as caught:
                parse_opml(bomb.replace("<!DOCTYPE", f'<?xml version="1.0" encoding='
                                        f'"{encoding}"?><!DOCTYPE').encode(encoding))
            assert "SECRET-CANARY" not in str(caught.value)


def test_external_dtd_is_never_fetched() -> None:
    with NewsSite(host="127.0.0.2") as elsewhere:
        data = (f'<!DOCTYPE opml SYSTEM "{elsewhere.url("/opml.dtd")}"><opml version="2.0">'
                '<body><outline text="A" xmlUrl="http://a.example/f"/></body></opml>').encode()
        assert [o.url for o in parse_opml(data).outlines] == ["http://a.example/f"]
        assert elsewhere.log == []


def test_config_reads_feeds_from_an_opml_file(tmp_path: Path) -> None:
    (tmp_path / "feeds.opml").write_bytes(READER_EXPORT)
    config = write_config(tmp_path / "newswire.yaml", ["http://example.org/feed.xml"],
                          opml="feeds.opml")
    feeds = load_config(config).feeds
    assert [(f.url, f.name) for f in feeds] == [
        ("http://example.org/feed.xml", None),  # listed in the config: the OPML copy is skipped
        ("https://rss.dw.com/rdf/rss-en-all", "DW English"),
        ("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC & World")]


CONFIG_WITH_COMMENTS = """\
# The feed list, reviewed in pull requests.
database: newswire.db

feeds:
  # Wire services
  - url: https://wire.example/rss   # the agency itself
    name: Wire

# Politeness first.
fetch:
  per_host_delay: 0s
"""


def test_import_opml_appends_to_the_config_and_export_opml_lists_every_feed(
        tmp_path: Path) -> None:
    config = tmp_path / "newswire.yaml"
    config.write_text(CONFIG_WITH_COMMENTS)
    (tmp_path / "reader.opml").write_bytes(READER_EXPORT)
    result = run_cli("import-opml", str(tmp_path / "reader.opml"), config=config)
    assert result.code == 0, result.stderr
    assert result.stdout.count("added to") == 3 and result.stdout.count("skipped:") == 4
    text = config.read_text()
    assert text.startswith(CONFIG_WITH_COMMENTS.split("\n# Politeness")[0])
    assert text.endswith("# Politeness first.\nfetch:\n  per_host_delay: 0s\n")
    assert "  - url: https://rss.dw.com/rdf/rss-en-all\n    name: DW English\n" in text
    assert [f.url for f in load_config(config).feeds] == [
        "https://wire.example/rss", "https://rss.dw.com/rdf/rss-en-all",
        "https://feeds.bbci.co.uk/news/world/rss.xml", "http://example.org/feed.xml"]

    again = run_cli("import-opml", str(tmp_path / "reader.opml"), config=config)
    assert again.stdout.count("already listed") == 3 and config.read_text() == text

    exported = run_cli("export-opml", config=config)
    assert exported.code == 0
    document = parse_opml(exported.stdout.encode())
    assert [(o.url, o.title) for o in document.outlines] == [
        ("https://wire.example/rss", "Wire"), ("https://rss.dw.com/rdf/rss-en-all", "DW English"),
        ("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC & World"),
        ("http://example.org/feed.xml", "Top level")]
    assert run_cli("export-opml", str(tmp_path / "out.opml"), config=config).code == 0
    assert parse_opml((tmp_path / "out.opml").read_bytes()).outlines == document.outlines


def test_import_opml_bad_file_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "newswire.yaml"
    config.write_text(CONFIG_WITH_COMMENTS)
    (tmp_path / "bad.opml").write_text("<opml><body>")
    result = run_cli("import-opml", str(tmp_path / "bad.opml"), config=config)
    assert result.code == 1 and "not well-formed" in result.stderr
    assert config.read_text() == CONFIG_WITH_COMMENTS


def test_a_title_xml_refuses_never_stops_the_export() -> None:
    """A feed's title stored with U+FFFF (a JSON Feed's) made `export-opml` fail for every
    feed with lxml's ValueError (the review's reproduction)."""
    document = write_opml([
        Outline("https://a.example/feed", "Hostile \uffff news\x00", category="Wire\ufffe"),
        Outline("https://b.example/feed", "Fine")])
    outlines = parse_opml(document).outlines
    assert [(o.url, o.title, o.category) for o in outlines] == [
        ("https://a.example/feed", "Hostile news", "Wire"),
        ("https://b.example/feed", "Fine", None)]
