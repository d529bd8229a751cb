"""A harder syndication set: copies rewritten several ways at once, and harder negatives.

`bench/syndication.py` alters a copy one or two ways. Here (issue 11) every copy gets words
edited throughout and, each with its own probability, most of the rest at once, as outlets
really dress agency copy (`hard_copy`):

- words edited throughout the body at a per-copy rate of 2-6% (synonyms, house style,
  spelling, dropped and inserted words, rephrased stock phrases), not a handful of words;
- a rewritten lead: the first paragraph paraphrased (heavily edited, sentences reordered) or
  replaced by new sentences;
- the end trimmed, one or two local paragraphs added;
- an agency dateline ("PARIS (GWS) —", in the house style of the outlet) and a tagline
  ("(Reporting by ...)", "— GWS"), kept, dropped or added per outlet;
- outlet boilerplate inside the body: "READ MORE: <another headline>", advertisement
  markers, newsletter and app promotions between paragraphs.

Hard negatives, each syndicated like any story:
- follow-ups: new reporting on the same subject (the most similar unpublished text) that
  reuses a run of an earlier story's background paragraphs (20-40% of that story, at most
  40% of the follow-up), lightly edited, low in the text, under the same dateline city;
- templated market, sports and weather reports that share long standing text (disclaimers,
  methodology) and differ in their numbers;
- distinct stories on the same topic (the bench adds the most similar corpus pairs).

Everything is seeded: a seed gives the same set every time.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from bench.syndication import (
    LOCAL_PARAGRAPHS,
    SWAPS,
    TEMPLATE_KINDS,
    Copy,
    Outlet,
    Paragraphs,
    Source,
    retitle,
    templated_story,
    trim,
)

# --- words edited throughout -----------------------------------------------------------------

# House style and sub-editing: one word for another, both directions where it makes sense.
HARD_SWAPS = {
    **SWAPS,
    "announced": "said", "stated": "said", "according": "citing", "approximately": "about",
    "however": "but", "therefore": "so", "additionally": "also", "because": "as",
    "before": "ahead of", "during": "in", "including": "such as", "around": "about",
    "several": "a number of", "important": "key", "increase": "rise", "decrease": "fall",
    "rose": "climbed", "fell": "dropped", "buy": "purchase", "use": "utilise",
    "organization": "organisation", "organizations": "organisations", "center": "centre",
    "color": "colour", "program": "programme", "analyze": "analyse", "behavior": "behaviour",
    "favorite": "favourite", "labor": "labour", "defense": "defence", "travelling": "traveling",
    "customers": "clients", "users": "customers", "businesses": "companies", "make": "create",
    "important.": "crucial.", "quickly": "rapidly", "very": "highly", "often": "frequently",
    "get": "obtain", "need": "require", "needs": "requires", "shows": "reveals",
    "however,": "but", "can": "could", "will": "would", "more": "further", "first": "initial",
}
# Stock phrases a sub-editor rewrites (matched case-insensitively on word boundaries).
PHRASES = (
    ("in order to", "to"), ("as well as", "and"), ("a number of", "several"),
    ("on Monday", "Monday"), ("on Tuesday", "Tuesday"), ("on Wednesday", "Wednesday"),
    ("on Thursday", "Thursday"), ("on Friday", "Friday"), ("at the moment", "now"),
    ("due to", "because of"), ("in addition", "also"), ("for example", "for instance"),
    ("it is", "it's"), ("do not", "don't"), ("does not", "doesn't"), ("will not", "won't"),
    ("more than", "over"), ("less than", "under"), ("said that", "said"),
)
HARD_FILLERS = ("also", "now", "reportedly", "still", "already", "however", "further",
                "meanwhile", "even", "currently", "notably", "indeed")
_TOKEN = re.compile(r"\S+")
_STRIP = ".,;:!?\"'()"


def edit_throughout(paragraphs: Paragraphs, rng: random.Random, rate: float) -> Paragraphs:
    """About `rate` of the words edited, spread over the whole body: stock phrases rephrased,
    synonyms swapped, words dropped or inserted. Figures are left alone (outlets keep them)."""
    out = []
    for paragraph in paragraphs:
        for old, new in PHRASES:
            if rng.random() < rate * 4:  # phrases are rare: give each a better chance
                paragraph = re.sub(rf"\b{re.escape(old)}\b", new, paragraph, flags=re.I)
        words = _TOKEN.findall(paragraph)
        edited: list[str] = []
        for word in words:
            if rng.random() >= rate or any(ch.isdigit() for ch in word):
                edited.append(word)
                continue
            bare = word.strip(_STRIP).lower()
            roll = rng.random()
            if bare in HARD_SWAPS and roll < 0.6:
                edited.append(word.lower().replace(bare, HARD_SWAPS[bare]))
            elif roll < 0.45 and len(words) > 8:
                continue  # dropped
            elif roll < 0.75:
                edited.extend((rng.choice(HARD_FILLERS), word))
            else:  # a word of the sub-editor's own: changed beyond recognition
                edited.append(rng.choice(("key", "major", "latest", "fresh", "further",
                                          "broad", "wider", "recent", "current", "main")))
        if edited:
            out.append(" ".join(edited))
    return tuple(out)


def rewrite_lead(paragraphs: Paragraphs, rng: random.Random, donor: Paragraphs) -> Paragraphs:
    """A new first paragraph: half the time the old one paraphrased (sentences reordered,
    a third of the words edited), else new sentences (taken from an unpublished text)."""
    if rng.random() < 0.5:
        sentences = _sentences(paragraphs[0])
        if len(sentences) > 1:
            rng.shuffle(sentences)
        lead = edit_throughout((" ".join(sentences),), rng, 0.35)
        new = lead[0] if lead else paragraphs[0]
    else:
        pool = [s for p in donor for s in _sentences(p) if len(s) > 40]
        new = " ".join(rng.sample(pool, min(2, len(pool)))) if pool else \
            "New details emerged on Tuesday as officials updated their earlier statement."
    prefix = rng.choice(("", "", "UPDATED: ", "BREAKING: "))
    return (prefix + new, *paragraphs[1:])


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


# --- datelines, taglines, boilerplate inside the body ---------------------------------------

DATELINE_CITIES = ("PARIS", "LONDON", "BERLIN", "WASHINGTON", "BRUSSELS", "TOKYO", "NAIROBI",
                   "SYDNEY", "MADRID", "ROME", "GENEVA", "OTTAWA", "NEW DELHI", "CAIRO")
AGENCY_TAGS = {"Global Wire Service": "GWS", "Continental Press Agency": "CPA"}
DATELINE_STYLES = ("{city} ({tag}) — ", "{city} ({tag}) - ", "{City}, {tag} - ",
                   "{city}, {date} ({tag}) - ", "{City} ({tag}): ")
TAGLINES = ("(Reporting by {reporter}; Editing by {editor})", "— {tag}", "With {tag}",
            "Additional reporting by {agency}.", "© {year} {agency}",
            "This article was originally published by {agency}.")
REPORTERS = ("Anna Keller", "Tom Okafor", "Lena Duarte", "Marc Vidal", "Sara Lindqvist",
             "Omar Haddad", "Julia Novak", "Peter Mwangi")
# Lines outlets put between paragraphs; {headline} is another story of the outlet.
INSIDE = ("READ MORE: {headline}", "ALSO READ: {headline}", "Advertisement",
          "Story continues below advertisement",
          "Sign up for our free daily newsletter and never miss the stories that matter.",
          "Click here to follow our channel on your favourite messaging app.",
          "RELATED: {headline}",
          "Download our app for breaking news alerts, live updates and the latest video from "
          "our correspondents around the world.")


def dateline(city: str, agency: str, when: datetime, rng: random.Random) -> str:
    """An agency dateline in one of the house styles outlets use."""
    style = rng.choice(DATELINE_STYLES)
    return style.format(city=city, City=city.title(), tag=AGENCY_TAGS.get(agency, agency),
                        date=f"{when:%B} {when.day}")


def tagline(agency: str, rng: random.Random, year: int = 2025) -> str:
    return rng.choice(TAGLINES).format(reporter=rng.choice(REPORTERS),
                                       editor=rng.choice(REPORTERS),
                                       tag=AGENCY_TAGS.get(agency, agency), agency=agency,
                                       year=year)


def boilerplate_inside(paragraphs: Paragraphs, rng: random.Random,
                       headlines: Sequence[str]) -> Paragraphs:
    """One to three boilerplate lines between paragraphs (never before the first)."""
    out = list(paragraphs)
    for _ in range(rng.randint(1, 3)):
        line = rng.choice(INSIDE).format(headline=rng.choice(headlines) if headlines
                                         else "Markets close higher")
        out.insert(rng.randint(1, len(out)), line)
    return tuple(out)


def add_locals(paragraphs: Paragraphs, rng: random.Random, outlet: str) -> Paragraphs:
    """One or two local paragraphs after the lead or later."""
    out = list(paragraphs)
    for text in rng.sample(LOCAL_PARAGRAPHS, rng.choice((1, 1, 2))):
        out.insert(rng.randint(1, max(1, len(out) - 1)), text.format(outlet=outlet))
    return tuple(out)


# --- one copy -------------------------------------------------------------------------------

def hard_copy(paragraphs: Paragraphs, rng: random.Random, outlet: Outlet, donor: Paragraphs,
              agency: str, line: str | None, headlines: Sequence[str], rate: float,
              templated: bool = False) -> tuple[Paragraphs, tuple[str, ...]]:
    """An outlet's copy with most transformations applied together; the names of those
    applied. `line` is the original's dateline (None: it had none). Templated reports keep
    their lead (a generated report has nothing to rewrite it from)."""
    done = []
    if line and paragraphs[0].startswith(line):
        paragraphs = (paragraphs[0][len(line):], *paragraphs[1:])
    if not templated and rng.random() < 0.5:
        paragraphs = rewrite_lead(paragraphs, rng, donor)
        done.append("rewrite_lead")
    if rng.random() < 0.6 and len(paragraphs) > 3:
        # At least three paragraphs stay: a lead and two more make a copy, less is a brief.
        kept = trim(paragraphs, rng, 0.45, 0.85)
        paragraphs = kept if len(kept) >= 3 else paragraphs[:3]
        done.append("trim")
    paragraphs = edit_throughout(paragraphs, rng, rate)
    done.append("edit_throughout")
    if not templated and rng.random() < 0.4:
        paragraphs = add_locals(paragraphs, rng, outlet.name)
        done.append("add_local")
    # The dateline: kept in the outlet's style, dropped, or added when the original had none.
    if (line and rng.random() < 0.75) or (not line and rng.random() < 0.3):
        when = datetime(2025, 3, 4)
        city = line.split(" ")[0].rstrip(",") if line else rng.choice(DATELINE_CITIES)
        paragraphs = (dateline(city.upper(), agency, when, rng) + paragraphs[0],
                      *paragraphs[1:])
        done.append("dateline")
    if rng.random() < 0.5:
        paragraphs = (*paragraphs, tagline(agency, rng))
        done.append("tagline")
    if rng.random() < 0.6:
        paragraphs = boilerplate_inside(paragraphs, rng, headlines)
        done.append("boilerplate")
    return paragraphs, tuple(done)


# --- hard negatives -------------------------------------------------------------------------

# Standing text of automated reports beyond bench.syndication's: methodology and disclaimers
# long enough that two reports share most of their shingles.
MORE_STANDING_TEXT = {
    "market": (
        "Index values are calculated every fifteen seconds during the trading session from "
        "the last traded prices of the constituent shares. Corporate actions such as stock "
        "splits, special dividends and rights issues are reflected in the index divisor so "
        "that they do not change its level.",
        "Readers should seek independent financial advice before making any investment "
        "decision. Neither the publisher nor its data suppliers accept liability for errors "
        "or omissions in the figures, or for any losses arising from their use.",
    ),
    "sports": (
        "Disciplinary points are recorded by the league for every caution and dismissal, "
        "and clubs that exceed the seasonal limit face a fine and a suspension for the "
        "players concerned. Appeals must be lodged within seven days of the match.",
        "Kick-off times are subject to change for television coverage, and supporters are "
        "advised to check the club's website before travelling. Tickets for the remaining "
        "home fixtures are available from the box office and online.",
    ),
    "weather": (
        "Temperatures are measured in the shade at a height of two metres above the ground, "
        "and rainfall totals are collected over the twenty-four hours up to nine in the "
        "morning. Forecast confidence falls beyond the third day of the outlook period.",
        "The service reminds drivers that road surfaces can remain slippery for some time "
        "after rain has stopped, and that fog patches can form quickly in valleys overnight. "
        "Allow extra time for journeys and reduce speed in poor visibility.",
    ),
}


def hard_templated_story(kind: str, rng: random.Random) -> tuple[str, Paragraphs]:
    """A templated report (bench.syndication) with its longer standing text."""
    title, paragraphs = templated_story(kind, rng)
    return title, (*paragraphs, *MORE_STANDING_TEXT[kind])


def hard_follow_up(background: Paragraphs, fresh: Paragraphs, rng: random.Random,
                   share: float) -> Paragraphs:
    """New reporting (`fresh`: an unpublished text on the same topic) reusing a run of
    background paragraphs of an earlier story (never its lead), lightly edited: about `share`
    of the earlier story, and never more than 40% of the follow-up. The background goes low
    (inverted pyramid): at the end or in the second half."""
    new = list(fresh[: max(3, min(len(fresh), 8))])
    new_words = sum(len(p.split()) for p in new)
    budget = min(share * sum(len(p.split()) for p in background), 0.4 / 0.6 * new_words)
    start = rng.randint(1, max(1, len(background) - 1))
    reused: list[str] = []
    for paragraph in background[start:]:
        if sum(len(p.split()) for p in reused) + len(paragraph.split()) > budget:
            break
        reused.append(paragraph)
    if not reused:  # the run's first paragraph alone is over budget: take a shorter one
        fits = [p for p in background[1:] if len(p.split()) <= budget]
        reused = [rng.choice(fits)] if fits else []
    at = len(new) if rng.random() < 0.5 else rng.randint((len(new) + 1) // 2, len(new))
    return (*new[:at], *edit_throughout(tuple(reused), rng, 0.03), *new[at:])


# --- the set --------------------------------------------------------------------------------

def build_hard_set(stories: Sequence[Source], donors: Sequence[Source],
                   outlets: Sequence[Outlet], rng: random.Random, start: datetime,
                   same_topic_donor: dict[str, int], templated: int = 45,
                   follow_ups: int = 30) -> list[Copy]:
    """Every published copy: each story (some with an agency dateline) first from an agency
    (70%) or an outlet, then carried by 0-7 other outlets with rewritten copies; plus
    templated reports and follow-ups, syndicated the same way. `same_topic_donor` names, per
    story label, the unpublished donor most similar to it: a follow-up's new reporting."""
    agencies = [i for i, o in enumerate(outlets) if o.agency]
    papers = [i for i, o in enumerate(outlets) if not o.agency]
    plan: list[tuple[Source, bool]] = [(s, False) for s in stories]
    follows: dict[str, str] = {}
    for i in range(templated):
        kind = TEMPLATE_KINDS[i % len(TEMPLATE_KINDS)]
        title, paragraphs = hard_templated_story(kind, rng)
        plan.append((Source(f"{kind}-{i}", title, paragraphs), True))
    used: set[int] = set()
    for base in stories:
        if len(follows) >= follow_ups:
            break
        donor = same_topic_donor.get(base.label)
        if donor is None or donor in used:
            continue
        used.add(donor)
        label = f"follow-up-{len(follows)}"
        text = hard_follow_up(base.paragraphs, donors[donor].paragraphs, rng,
                              rng.uniform(0.2, 0.4))
        plan.append((Source(label, f"{base.title}: what comes next", text), False))
        follows[label] = base.label
    rng.shuffle(plan)
    headlines = [s.title for s, _ in plan]
    # A follow-up comes from the same desk: the same dateline city as its base.
    city_of = {s.label: rng.choice(DATELINE_CITIES) for s, _ in plan}
    for label, base in follows.items():
        city_of[label] = city_of[base]
    free_donors = [d for i, d in enumerate(donors) if i not in used]

    copies: list[Copy] = []
    when = start
    for source, is_template in plan:
        when += timedelta(minutes=rng.randint(3, 12))
        from_agency = bool(agencies) and rng.random() < 0.7
        origin = rng.choice(agencies) if from_agency else rng.choice(papers)
        agency = outlets[origin].name if from_agency else outlets[rng.choice(agencies)].name
        paragraphs = source.paragraphs
        line = None
        if not is_template and from_agency and rng.random() < 0.7:
            line = dateline(city_of[source.label], agency, when, rng)
            paragraphs = (line + paragraphs[0], *paragraphs[1:])
        slug = re.sub(r"[^a-z0-9]+", "-", source.label.lower()).strip("-")
        copies.append(Copy(source.label, origin, f"{slug}-{origin}", source.title, paragraphs,
                           when, ("original",), follows.get(source.label)))
        carriers = rng.choices((0, 1, 2, 3, 4, 5, 7), weights=(3, 2, 2, 1, 1, 1, 1))[0]
        for outlet in rng.sample([p for p in papers if p != origin], carriers):
            donor = free_donors[rng.randrange(len(free_donors))].paragraphs if free_donors \
                else ()
            rate = rng.uniform(0.01, 0.04) if is_template else rng.uniform(0.02, 0.06)
            text, transforms = hard_copy(paragraphs, rng, outlets[outlet], donor, agency, line,
                                         headlines, rate, templated=is_template)
            copies.append(Copy(source.label, outlet, f"{slug}-{outlet}",
                               retitle(source.title, rng, outlets[outlet].name), text,
                               when + timedelta(minutes=rng.randint(5, 600)), transforms))
    return copies

