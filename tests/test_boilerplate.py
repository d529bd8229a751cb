"""Line-level clean-up: repeated headlines, call-to-action lines, a site's repeated lines."""

from __future__ import annotations

from pipeline.boilerplate import (
    MAX_KEYED_WORDS,
    clean_lines,
    is_call_to_action,
    is_credit,
    is_headline,
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
