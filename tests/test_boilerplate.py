"""Line-level clean-up: repeated headlines, call-to-action lines, a site's repeated lines."""

from __future__ import annotations

import pytest

from pipeline.boilerplate import (
    MAX_KEYED_WORDS,
    REPEATED_MIN_WORDS,
    REPEATED_RUN,
    clean_lines,
    drop_repeated_runs,
    is_call_to_action,
    is_credit,
    is_headline,
    is_metadata,
    is_promotion,
    line_key,
    line_keys,
    site_of,
)

BODY = [
    "Rescue teams searched through the night for survivors after the earthquake struck.",
    "Officials said the death toll was likely to rise as crews reached remote villages.",
    "Aid agencies appealed for blankets, tents and clean water for the displaced.",
]


def test_site_of_ignores_www_and_keeps_explicit_ports() -> None:
    assert site_of("https://www.Example.com/a/b?x=1") == "example.com"
    assert site_of("http://news.example:8080/story") == "news.example:8080"
    assert site_of("http://127.0.0.1:5000/x") == "127.0.0.1:5000"
    assert site_of("https://example.com:443/x") == site_of("https://example.com/y")
    assert site_of("not a url") == ""


def test_line_key_ignores_case_and_punctuation_only() -> None:
    assert line_key("Sign up for our newsletter!") == line_key("sign up for  our newsletter")
    assert line_key("Sign up for our newsletter") != line_key("Sign up for their newsletter")
    assert isinstance(line_key("x"), int) and -2**63 <= line_key("x") < 2**63


def test_line_keys_are_distinct_ordered_and_skip_empty_or_long_lines() -> None:
    long_line = " ".join(["word"] * (MAX_KEYED_WORDS + 1))
    keys = line_keys([BODY[0], "", "  ", BODY[1], BODY[0].upper(), long_line])
    assert keys == (line_key(BODY[0]), line_key(BODY[1]))


def test_headline_matches_the_title_with_or_without_a_site_suffix() -> None:
    titles = ["Quake kills dozens in coastal region - The Example Gazette"]
    assert is_headline("Quake kills dozens in coastal region", titles)
    assert is_headline("Quake kills dozens in coastal region - The Example Gazette", titles)
    assert not is_headline(BODY[0], titles)
    assert not is_headline("Quake kills", titles)  # too short to tell
    assert is_headline("Breaking", ["Breaking"])  # but an exact repeat always is
    assert not is_headline("anything", [])


def test_call_to_action_lines() -> None:
    for line in ("Related: The 15 weirdest galaxies", "Read more: Markets fall again",
                 "Sign up for our morning newsletter", "You may also like...", "Comments",
                 "Advertisement", "More:", "Watch: the full interview"):
        assert is_call_to_action(line), line
    for line in ("More than 100 protesters were killed, Amnesty said.",
                 "More than 100 protesters killed in Iran unrest",
                 "Watch the skies tonight for the meteor shower", BODY[0]):
        assert not is_call_to_action(line), line


def test_clean_lines_drops_a_leading_headline_and_calls_to_action() -> None:
    title = "Quake kills dozens in coastal region"
    lines = [title, BODY[0], "Related: Earlier quakes in the region", BODY[1],
             title, BODY[2], "Sign up for our newsletter"]
    assert clean_lines(lines, [title]) == [BODY[0], BODY[1], title, BODY[2]]


def test_clean_lines_drops_the_sites_repeated_lines() -> None:
    footer = "The Example Gazette is an independent newspaper founded in 1901."
    lines = [*BODY, footer]
    assert clean_lines(lines, site_lines={line_key(footer)}) == BODY


def test_clean_lines_never_lets_the_site_filter_take_most_of_the_text() -> None:
    repeated = {line_key(line) for line in BODY[:2]}
    assert clean_lines(BODY, site_lines=repeated) == BODY


def test_promotion_lines_dropped() -> None:
    lines = ["The council voted on Tuesday to raise the harbour fees.",
             "Follow Newsbeat on Instagram, Facebook, Twitter and YouTube.",
             "Get the latest updates right in your inbox. Subscribe to our newsletters.",
             "Subscribe to continue is not how this story ends: the vote was unanimous.",
             "Have a tip? Ana Lopez may be reached at ana@news.example."]
    assert clean_lines(lines) == [lines[0]]
    assert is_promotion(lines[1]) and not is_promotion(lines[0])
    # Promotion phrases inside a sentence are ordinary text.
    assert not is_promotion("Readers who follow the council on Twitter saw it first.")


def test_closing_wire_credits_dropped_only_at_the_end() -> None:
    body = [f"Paragraph {i} of the story about the harbour fees." for i in range(6)]
    credits = ["(Reporting by Ana Lopez; Editing by Ben Wu)",
               "Associated Press writer Ben Wu contributed to this report."]
    assert clean_lines(body + credits) == body
    early = ["Reporting by Ana Lopez, the paper found the fees doubled.", *body]
    assert clean_lines(early) == early  # an opening line is text, not a credit
    assert is_credit(credits[0]) and not is_credit(body[0])


@pytest.mark.parametrize("line", [
    "October 12, 2017",
    "November 19, 2019 /  12:21 AM / Updated 14 hours ago",
    "By Ana Lopez | Updated May 2, 2025, 9:06am",
    "Posted on December 18, 2025 by Ana Lopez 59 Comments",
    "Last Updated: December 15th 2025",
    "6 min read",
    "By Ana Lopez",
])
def test_datelines_and_bylines_are_metadata(line: str) -> None:
    assert is_metadata(line, ["Ana Lopez"])


@pytest.mark.parametrize("line", [
    "On March 3, 2025, the council voted to raise the harbour fees.",
    "Date: 16-19 March 2026, Harbour Hall",  # an event's details are text
    "By Ben Wu and Li Na | Updated May 2, 2025",  # names the page does not credit: text
    "Ana Lopez said the fees doubled.",
    "The harbour fees doubled.",
])
def test_dated_sentences_are_not_metadata(line: str) -> None:
    assert not is_metadata(line, ["Ana Lopez"])


def test_clean_lines_drops_a_dateline_only_near_the_top() -> None:
    body = [f"Paragraph {i} of the story about the harbour fees." for i in range(6)]
    lines = ["By Ana Lopez", "March 3, 2025 · 4 min read", *body, "March 3, 2025"]
    assert clean_lines(lines, authors=["Ana Lopez"]) == [*body, "March 3, 2025"]


@pytest.mark.parametrize("line", [
    "The best of Harbour Times, delivered to your inbox every morning",
    "Thanks for subscribing! Look out for your first newsletter soon.",
    "Awesome, you're subscribed!",
    "Sign up for our newsletter for the best of the city.",
    "There was an error processing your subscription.",
    "This copy is for your personal, non-commercial use only.",
])
def test_newsletter_boxes_are_promotion(line: str) -> None:
    assert is_promotion(line)
    assert clean_lines(["The council voted on Tuesday.", line]) == ["The council voted on Tuesday."]


@pytest.mark.parametrize("line", [
    "Subscription costs: $9.99 per month, or $99 a year.",
    "The app's free version limits lessons; full access needs a paid subscription.",
    "Readers of the weekly newsletter reported the leak first, the council said on Tuesday, "
    "in a long statement that went on to explain at length why the fees had to rise, by how "
    "much for each of the harbour's users, and what the money would be spent on next year.",
])
def test_subscriptions_as_a_subject_are_text(line: str) -> None:
    assert not is_promotion(line)


ARTICLE = [f"Paragraph {n} of the story, with a few words of its own."
           for n in range(1, REPEATED_RUN + 3)]


def test_an_article_given_twice_is_kept_once() -> None:
    # A mobile or print copy after the text: the whole run of repeats goes.
    assert clean_lines([*ARTICLE, "The mayor said more would follow next week.", *ARTICLE]) == [
        *ARTICLE, "The mayor said more would follow next week."]
    # A block of REPEATED_RUN repeated paragraphs among new ones goes; the new ones stay.
    assert clean_lines([*ARTICLE, *ARTICLE[:REPEATED_RUN],
                        "A closing paragraph of its own here."]) == [
        *ARTICLE, "A closing paragraph of its own here."]
    # Spacing and case do not hide a copy.
    assert drop_repeated_runs([*ARTICLE, *(f"  {line.upper()} " for line in ARTICLE)]) \
        == ARTICLE


def test_a_repeated_quote_or_short_lines_stay() -> None:
    quote = ARTICLE[2]
    text = [*ARTICLE, quote, "More of the story follows here.", *ARTICLE[:REPEATED_RUN - 1]]
    assert clean_lines(text) == text  # one pull quote, then a run one short
    shares = ["Share this", "Read more"] * REPEATED_RUN
    assert all(len(line.split()) < REPEATED_MIN_WORDS for line in shares)
    assert drop_repeated_runs([*ARTICLE, *shares]) == [*ARTICLE, *shares]
    assert clean_lines([*ARTICLE, *ARTICLE], rules=()) == [*ARTICLE, *ARTICLE]
