"""A synthetic wire-syndication set: many outlets carrying altered copies of the same stories.

Used by `bench/bench_clustering.py` (with texts from ../shared/corpus) and by the clustering
tests (with generated texts). Everything is seeded, so a seed gives the same set every time.

- `Outlet`: a `tests.newssite.NewsSite` whose article pages use one of several HTML templates
  (different markup, in-body promos, related links, comments, ads), with its own headline style.
- Copy transformations, as outlets really alter agency copy: `wrap` (site boilerplate inside
  the body), `trim` (the end cut off), `add_local` (a local paragraph), `edit` (a few words
  changed), `new_lead` (a new first paragraph when the story is updated), `retitle`.
- Hard negatives: `templated_story` (market, sports and weather reports from one template that
  differ only in their numbers) and `follow_up` (a different story reusing a background
  paragraph of an earlier one).
"""

from __future__ import annotations

import html
import math
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.newssite import Article as SiteArticle  # noqa: E402
from tests.newssite import NewsSite  # noqa: E402

Paragraphs = tuple[str, ...]


# --- copy transformations ---------------------------------------------------------------------

WRAP_TOP = (
    "Listen to this article. Audio is generated automatically and may contain errors.",
    "This story was supplied by a news agency and has not been edited by our staff.",
    "Advertisement. Scroll down to continue reading this story.",
    "Our journalism depends on readers like you: support independent local news today.",
)
WRAP_BOTTOM = (
    "Sign up for our free morning newsletter to get the day's most important stories in "
    "your inbox before breakfast.",
    "Copyright {year} {source}. All rights reserved. This material may not be published, "
    "broadcast, rewritten or redistributed without permission.",
    "Follow us on social media for the latest updates, and tell us what you think in the "
    "comments below.",
    "Have a news tip? Contact our newsroom by email or message us, and we will get back to "
    "you as soon as we can.",
    "Reporting by our correspondents; additional reporting by agencies. Editing by the "
    "{outlet} news desk.",
)
LOCAL_PARAGRAPHS = (
    "Closer to home, the {outlet} asked residents of the county what the news meant for "
    "them, and most said they would wait and see before changing their plans.",
    "A spokesperson for the local council told the {outlet} that it was monitoring the "
    "situation closely and would publish advice for residents on its website this week.",
    "Business owners on the high street said they had already noticed the effects, with one "
    "cafe owner describing the past month as the quietest she could remember.",
    "The county's member of parliament said in a statement that the issue would be raised "
    "at the next session, and urged constituents to share their experiences.",
)
# Small edits sub-editors make: synonyms, spelling, style.
SWAPS = {
    "said": "told reporters", "says": "said", "percent": "per cent", "per cent": "percent",
    "while": "whilst", "also": "additionally", "about": "around", "but": "however",
    "big": "large", "large": "major", "help": "assist", "show": "reveal", "start": "begin",
    "people": "residents", "many": "numerous", "new": "fresh", "official": "spokesperson",
    "company": "firm", "government": "administration", "after": "following",
}
FILLERS = ("also", "now", "reportedly", "still", "already", "however")
_WORDS = re.compile(r"\S+")


def wrap(paragraphs: Paragraphs, rng: random.Random, outlet: str, source: str,
         year: int = 2025) -> Paragraphs:
    """Site boilerplate inside the article body, above and/or below the story."""
    top = (rng.choice(WRAP_TOP),) if rng.random() < 0.6 else ()
    bottom = tuple(line.format(year=year, source=source, outlet=outlet)
                   for line in rng.sample(WRAP_BOTTOM, rng.randint(1, 2)))
    return top + tuple(paragraphs) + bottom


def trim(paragraphs: Paragraphs, rng: random.Random, low: float = 0.45,
         high: float = 0.85) -> Paragraphs:
    """The end cut off: keep the first 45-85% of the paragraphs (at least two)."""
    keep = max(2, math.ceil(len(paragraphs) * rng.uniform(low, high)))
    return tuple(paragraphs[:keep])


def add_local(paragraphs: Paragraphs, rng: random.Random, outlet: str) -> Paragraphs:
    """A local paragraph inserted after the lead or later."""
    at = rng.randint(1, max(1, len(paragraphs) - 1))
    local = rng.choice(LOCAL_PARAGRAPHS).format(outlet=outlet)
    return (*paragraphs[:at], local, *paragraphs[at:])


def edit(paragraphs: Paragraphs, rng: random.Random, edits: int | None = None) -> Paragraphs:
    """A few words changed: synonyms swapped, words dropped or inserted (3-12 edits)."""
    words = [list(_WORDS.findall(p)) for p in paragraphs]
    slots = [(i, j) for i, p in enumerate(words) for j in range(len(p))]
    count = min(len(slots), edits if edits is not None else rng.randint(3, 12))
    for i, j in sorted(rng.sample(slots, count), reverse=True):  # from the end: indexes hold
        word = words[i][j]
        bare = word.strip(".,;:!?\"'").lower()
        if bare in SWAPS:
            words[i][j] = word.lower().replace(bare, SWAPS[bare])
        elif rng.random() < 0.5 and len(words[i]) > 8:
            del words[i][j]
        else:
            words[i].insert(j, rng.choice(FILLERS))
    return tuple(" ".join(p) for p in words if p)


def new_lead(paragraphs: Paragraphs, rng: random.Random, donor: Paragraphs) -> Paragraphs:
    """The story updated: its lead replaced by new sentences (taken from another text)."""
    sentences = [s for p in donor for s in re.split(r"(?<=[.!?])\s+", p) if len(s) > 40]
    lead = " ".join(rng.sample(sentences, min(2, len(sentences)))) if sentences else \
        "New details emerged on Tuesday as officials updated their earlier statement."
    return (f"UPDATED: {lead}", *paragraphs[1:])


def retitle(title: str, rng: random.Random, outlet: str) -> str:
    """Another headline for the same story."""
    words = title.split()
    choice = rng.randrange(5)
    if choice == 0:
        return f"{title} | {outlet}"
    if choice == 1 and len(words) > 6:
        return " ".join(words[: len(words) * 2 // 3]) + "..."
    if choice == 2:
        return f"What we know: {title}"
    if choice == 3:
        return title.upper() if len(title) < 60 else f"{title} (updated)"
    return f"{title} - latest"


# --- hard negatives -------------------------------------------------------------------------

CITIES = ("Lisbon", "Oslo", "Warsaw", "Dublin", "Vienna", "Prague", "Athens", "Helsinki",
          "Madrid", "Zurich", "Brussels", "Copenhagen")
TEAMS = ("Rovers", "United", "Athletic", "City", "Wanderers", "Albion", "Rangers", "Town",
         "Harriers", "Olympic")
COMPANIES = ("Northwind Energy", "Baltic Shipping", "Helios Telecom", "Arcadia Foods",
             "Meridian Bank", "Vega Motors", "Orion Pharma", "Atlas Mining")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


# The standing text of automated reports: the same in every instance.
STANDARD_TEXT = {
    "market": (
        "The benchmark index tracks the largest companies listed on the exchange, weighted by "
        "the value of their freely traded shares, and is reviewed every quarter by an "
        "independent committee that decides which companies join or leave it.",
        "This report was generated automatically from exchange data and is provided for "
        "information only. It does not constitute investment advice, and past performance is "
        "not a reliable indicator of future results. Prices are delayed by fifteen minutes.",
    ),
    "sports": (
        "Match reports are compiled from official league data supplied by the match "
        "delegate, and statistics may be revised after the governing body reviews the "
        "footage. Attendance figures are provided by the home club.",
        "The league table is updated after every round of fixtures. Teams level on points "
        "are separated by goal difference, then by goals scored, then by the results of the "
        "matches played between them during the season.",
    ),
    "weather": (
        "Forecasts are produced by the national weather service from observations gathered "
        "by its network of automatic stations, weather balloons and satellites, and are "
        "updated several times a day as new data arrive.",
        "Severe weather warnings are issued when conditions could cause disruption or "
        "danger. Residents are advised to follow the guidance of the local authorities and "
        "to check travel information before setting out on longer journeys.",
    ),
}


def templated_story(kind: str, rng: random.Random) -> tuple[str, Paragraphs]:
    """A report generated from a fixed template: instances differ in their numbers (and the
    few words that depend on them), and carry the same standing text. Some have one
    numeric paragraph, some all of them, so pairs range from clearly different to nearly
    identical but for the numbers: the main source of false merges in news dedupe."""
    title, numeric = _numeric_paragraphs(kind, rng)
    keep = sorted(rng.sample(range(len(numeric)), rng.randint(1, len(numeric))))
    return title, tuple(numeric[i] for i in keep) + STANDARD_TEXT[kind]


def _numeric_paragraphs(kind: str, rng: random.Random) -> tuple[str, Paragraphs]:
    n = rng.randint
    f = rng.uniform
    if kind == "market":
        city = rng.choice(CITIES)
        up = rng.random() < 0.5
        move, sign = ("rose", "higher") if up else ("fell", "lower")
        firm, other = rng.sample(COMPANIES, 2)
        return (f"{city} stocks close {sign}", (
            f"Shares in {city} closed {sign} on {rng.choice(DAYS)}, with the benchmark index "
            f"having {move} {f(5, 90):.1f} points, or {f(0.1, 2.5):.2f} percent, to end the "
            f"session at {n(5000, 9000):,}.{n(0, 9)} as investors weighed the latest economic "
            "data and comments from central bank officials about the outlook for interest "
            "rates over the coming months.",
            f"Trading volume was {n(80, 400)} million shares, compared with a 30-day average "
            f"of {n(80, 400)} million shares, according to figures published by the exchange "
            "after the close of trading. Market participants said activity had been "
            "subdued for much of the session before picking up in the final hour.",
            f"Among the biggest movers, {firm} shares {move} {f(1, 9):.1f} percent to "
            f"{f(10, 200):.2f} after the company published its quarterly results, while "
            f"{other} ended {f(0.5, 5):.1f} percent {sign} at {f(10, 200):.2f}. Analysts said "
            "the results had been broadly in line with expectations.",
            f"The currency traded at {f(1.0, 1.3):.4f} against the dollar, and the yield on "
            f"the ten-year government bond stood at {f(1, 5):.3f} percent. Oil prices were "
            f"at {f(60, 95):.2f} dollars a barrel in late trading in European markets.",
        ))
    if kind == "sports":
        home, away = rng.sample(TEAMS, 2)
        goals = (n(0, 5), n(0, 5))
        return (f"{home} {goals[0]}-{goals[1]} {away}", (
            f"{home} and {away} met on {rng.choice(DAYS)} evening in front of a crowd of "
            f"{n(8000, 60000):,} supporters, and the match finished {goals[0]}-{goals[1]} "
            "after ninety minutes of football that both managers described afterwards as "
            "an entertaining contest played in difficult conditions.",
            f"The first goal came in the {n(2, 44)}th minute and the home side had "
            f"{n(35, 65)} percent of possession before the break, with {n(2, 12)} shots, "
            f"{n(0, 8)} of them on target, against {n(1, 10)} for the visitors. The second "
            "half followed a similar pattern, with both goalkeepers kept busy throughout.",
            f"The result leaves {home} in {n(1, 20)}th place with {n(5, 60)} points from "
            f"{n(10, 30)} matches, while {away} are {n(1, 20)}th on {n(5, 60)} points. The "
            "two sides meet again in the cup later this season, when the tie will be "
            "played at the other ground.",
        ))
    city = rng.choice(CITIES)
    return (f"Weather for {city}", (
        f"Temperatures in {city} are expected to reach {n(-5, 35)} degrees on "
        f"{rng.choice(DAYS)}, with overnight lows of around {n(-10, 20)} degrees, according to "
        "the national weather service, which publishes its regional forecast every morning "
        "and updates it in the early evening when new observations arrive.",
        f"The chance of rain is {n(0, 100)} percent, with up to {n(0, 40)} millimetres "
        f"expected in places, and winds from the {rng.choice(('north', 'south', 'east', 'west'))}"
        f" at {n(5, 60)} kilometres an hour, gusting to {n(20, 100)} on higher ground and "
        "along exposed stretches of the coast.",
        f"Sunrise is at {n(5, 8)}:{n(10, 59)} and sunset at {n(16, 21)}:{n(10, 59)}. Air "
        f"quality is rated {n(1, 10)} on the ten-point index, and the pollen count is expected "
        "to be moderate. Forecasters advise checking the latest warnings before travelling.",
    ))


def follow_up(background: Paragraphs, donor: Paragraphs, rng: random.Random) -> Paragraphs:
    """A different story on the same subject: new reporting plus one background paragraph
    reused from the earlier story (agencies do this), the background under a third of it."""
    fresh = tuple(donor[: max(3, min(len(donor), 8))])
    fresh_words = sum(len(p.split()) for p in fresh)
    reusable = [p for p in background[1:] if len(p.split()) < fresh_words / 2]
    if not reusable:
        return fresh
    return (*fresh, rng.choice(reusable))


# --- outlets --------------------------------------------------------------------------------

FEED_FORMATS = ("rss", "atom", "rdf", "json")
OUTLET_NAMES = ("The Northern Courier", "Daily Meridian", "Harbour Town Post", "Valley Herald",
                "The Evening Ledger", "Metro Dispatch", "Coastal Times", "The Morning Star "
                "Online", "Capital Observer", "Riverside Gazette", "Union Tribune Today",
                "Lakeside Chronicle", "The Weekly Beacon", "Plains Examiner")
AGENCY_NAMES = ("Global Wire Service", "Continental Press Agency")
TEMPLATES = 6


@dataclass
class Outlet:
    """One news site: a NewsSite with its own article-page template and feed format."""

    name: str
    template: int
    feed_format: str
    agency: bool = False
    site: NewsSite = field(init=False)

    def __post_init__(self) -> None:
        self.site = _TemplatedSite(self.template, site_name=self.name)
        self.site.set_feed_items(self.feed_format, None)

    @property
    def feed_url(self) -> str:
        return self.site.feed_url(self.feed_format)


def make_outlets(count: int, agencies: int = len(AGENCY_NAMES)) -> list[Outlet]:
    """Agencies first (default template), then outlets cycling through the templates."""
    outlets = [Outlet(name, 0, "rss", agency=True) for name in AGENCY_NAMES[:agencies]]
    for i in range(count):
        name = OUTLET_NAMES[i % len(OUTLET_NAMES)] + (f" {i // len(OUTLET_NAMES) + 1}"
                                                      if i >= len(OUTLET_NAMES) else "")
        outlets.append(Outlet(name, i % TEMPLATES, FEED_FORMATS[i % len(FEED_FORMATS)]))
    return outlets


class _TemplatedSite(NewsSite):
    """NewsSite with one of TEMPLATES article-page layouts (0 is NewsSite's own)."""

    def __init__(self, template: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.template = template

    def _render_page(self, a: SiteArticle) -> str:
        if self.template == 0:
            return super()._render_page(a)
        e = html.escape
        others = [x for x in self.articles if x.slug != a.slug][:4]
        related = "".join(f'<li><a href="{e(x.url)}">{e(x.title)}</a></li>' for x in others)
        paras = [f"<p>{e(p, quote=False)}</p>" for p in a.paragraphs]
        when = a.published.isoformat()
        byline = e(a.author or f"{self.site_name} staff")
        head = (f'<meta property="og:site_name" content="{e(self.site_name)}">'
                f'<meta property="og:title" content="{e(a.title)}">'
                f'<meta property="article:published_time" content="{e(when)}">'
                f'<link rel="canonical" href="{e(a.url)}">')
        if self.template == 1:  # story-body divs, inline related box, tags, comments
            if len(paras) > 2:
                paras.insert(2, f'<div class="related-inline"><h3>Related</h3><ul>{related}'
                                '</ul></div>')
            body = (f'<div class="headline-wrap"><h1 class="headline">{e(a.title)}</h1>'
                    f'<span class="byline">{byline}</span> <span class="date">{e(when)}'
                    f'</span></div><div class="share">Share on Facebook | Share on X | '
                    f'Email</div><div class="story-body">{"".join(paras)}</div>'
                    '<ul class="tags"><li>News</li><li>World</li><li>Economy</li></ul>'
                    '<section class="comments"><h2>3 comments</h2><div class="comment">'
                    '<b>reader_42</b> Interesting, thanks for sharing this.</div>'
                    '<div class="comment"><b>jdoe</b> Not sure I agree with all of it.</div>'
                    '</section>')
        elif self.template == 2:  # schema.org articleBody, figure, promo, read-more teasers
            promo = ('<aside class="promo">Get our breaking news alerts: download the '
                     'app today.</aside>')
            if len(paras) > 3:
                paras.insert(3, promo)
            teasers = "".join(f'<div class="teaser"><a href="{e(x.url)}">{e(x.title)}</a>'
                              f'<p>{e(x.description)}</p></div>' for x in others[:3])
            body = (f'<article itemscope itemtype="https://schema.org/NewsArticle">'
                    f'<h1 itemprop="headline">{e(a.title)}</h1><p class="meta">By '
                    f'<span itemprop="author">{byline}</span></p><figure><img src="/i.jpg" '
                    'alt=""><figcaption>File photo. Photographer / Agency</figcaption>'
                    f'</figure><section itemprop="articleBody">{"".join(paras)}</section>'
                    f'</article><section class="read-more"><h2>Read more</h2>{teasers}'
                    '</section>')
        elif self.template == 3:  # old table layout
            rows = "".join(f"<tr><td>{p}</td></tr>" for p in paras)
            body = (f'<table class="layout"><tr><td class="nav"><a href="/">Home</a><br>'
                    f'<a href="/news">News</a><br><a href="/sport">Sport</a></td>'
                    f'<td class="content"><h2>{e(a.title)}</h2><i>{byline}, {e(when)}</i>'
                    f'<table class="text">{rows}</table></td></tr></table>')
        elif self.template == 4:  # content div with ads between paragraphs
            for i in range(len(paras) - 1, 0, -3):
                paras.insert(i, '<div class="ad">Advertisement</div>')
            body = (f'<div id="main"><div class="article-header"><h1>{e(a.title)}</h1>'
                    f'<div class="author">{byline}</div></div><div class="article-content">'
                    f'{"".join(paras)}</div><div class="author-bio"><b>{byline}</b> covers '
                    'business and politics for the site.</div></div>')
        else:  # main/article with a live-updates style key-points box and a newsletter box
            points = "".join(f"<li>{e(x.title)}</li>" for x in others[:2])
            body = (f'<main><article><header><h1>{e(a.title)}</h1><p class="standfirst">'
                    f'{e(a.description)}</p></header><div class="key-points"><h2>More '
                    f'headlines</h2><ul>{points}</ul></div><div class="body">{"".join(paras)}'
                    '</div><div class="newsletter-box">Sign up to our daily newsletter'
                    '</div></article></main>')
        nav = "".join(f'<a href="/{s}">{s.title()}</a> ' for s in ("news", "sport", "business"))
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
                f'{e(a.title)} - {e(self.site_name)}</title>{head}</head><body>'
                f'<header><div class="brand">{e(self.site_name)}</div><nav>{nav}</nav>'
                f'</header>{body}<footer><p>&copy; {e(self.site_name)}. Terms | Privacy | '
                'Cookies | Contact us</p></footer></body></html>')


# --- the set --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Copy:
    """One published article and what it really is."""

    story: str  # ground truth: copies of one story share this label
    outlet: int  # index into the outlets list
    slug: str
    title: str
    paragraphs: Paragraphs
    published: datetime
    transforms: tuple[str, ...]  # ('original',) for the first publication
    base: str | None = None  # a follow-up story: the label of the story it follows


def make_copy(title: str, paragraphs: Paragraphs, outlet: Outlet,
              rng: random.Random, donor: Paragraphs, source: str,
              transforms: Sequence[str]) -> tuple[str, Paragraphs]:
    """Apply the named transformations (in a sensible order) to an outlet's copy."""
    for name in ("new_lead", "trim", "edit", "add_local", "wrap"):
        if name not in transforms:
            continue
        if name == "new_lead":
            paragraphs = new_lead(paragraphs, rng, donor)
        elif name == "trim":
            paragraphs = trim(paragraphs, rng)
        elif name == "edit":
            paragraphs = edit(paragraphs, rng)
        elif name == "add_local":
            paragraphs = add_local(paragraphs, rng, outlet.name)
        else:
            paragraphs = wrap(paragraphs, rng, outlet.name, source)
    return retitle(title, rng, outlet.name), paragraphs


def pick_transforms(rng: random.Random) -> tuple[str, ...]:
    """One main alteration (or none: verbatim), sometimes a second; boilerplate half the
    time."""
    main = rng.choices(("verbatim", "trim", "edit", "add_local", "new_lead"),
                       weights=(2, 3, 2, 2, 1))[0]
    chosen = {main}
    if main != "verbatim" and rng.random() < 0.3:
        chosen.add(rng.choice(("trim", "edit", "add_local")))
    if rng.random() < 0.5:
        chosen.add("wrap")
    if len(chosen) > 1:
        chosen.discard("verbatim")
    return tuple(sorted(chosen))


@dataclass(frozen=True)
class Source:
    """A story text to syndicate (or to borrow sentences from)."""

    label: str
    title: str
    paragraphs: Paragraphs


TEMPLATE_KINDS = ("market", "sports", "weather")


def build_set(stories: Sequence[Source], donors: Sequence[Source], outlets: Sequence[Outlet],
              rng: random.Random, start: datetime, templated: int = 45,
              follow_ups: int = 20) -> list[Copy]:
    """Every published copy: each story first from an agency (70%) or an outlet, then carried
    by 0-7 other outlets with altered text; plus templated reports (copied verbatim, wrapped
    or trimmed) and follow-up stories. `donors` lend sentences for new leads and follow-ups
    and are never published themselves, so no hidden duplicates enter the set."""
    from datetime import timedelta

    agencies = [i for i, o in enumerate(outlets) if o.agency]
    papers = [i for i, o in enumerate(outlets) if not o.agency]
    plan: list[tuple[Source, bool]] = [(s, False) for s in stories]
    follows: dict[str, str] = {}
    for i in range(templated):
        kind = TEMPLATE_KINDS[i % len(TEMPLATE_KINDS)]
        title, paragraphs = templated_story(kind, rng)
        plan.append((Source(f"{kind}-{i}", title, paragraphs), True))
    for i in range(min(follow_ups, len(stories), len(donors))):
        base = stories[i]
        plan.append((Source(f"follow-up-{i}", f"{base.title}: what comes next",
                            follow_up(base.paragraphs, donors[i].paragraphs, rng)), False))
        follows[f"follow-up-{i}"] = base.label
    rng.shuffle(plan)

    copies: list[Copy] = []
    when = start
    for source, is_template in plan:
        when += timedelta(minutes=rng.randint(3, 12))
        origin = rng.choice(agencies) if agencies and rng.random() < 0.7 else rng.choice(papers)
        slug = re.sub(r"[^a-z0-9]+", "-", source.label.lower()).strip("-")
        copies.append(Copy(source.label, origin, f"{slug}-{origin}", source.title,
                           source.paragraphs, when, ("original",), follows.get(source.label)))
        carriers = rng.choices((0, 1, 2, 3, 4, 5, 7), weights=(3, 2, 2, 1, 1, 1, 1))[0]
        for outlet in rng.sample([p for p in papers if p != origin], carriers):
            if is_template:
                transforms = rng.choice((("verbatim",), ("wrap",), ("trim",)))
            else:
                transforms = pick_transforms(rng)
            donor = donors[rng.randrange(len(donors))].paragraphs if donors else ()
            title, paragraphs = make_copy(source.title, source.paragraphs,
                                          outlets[outlet], rng, donor,
                                          outlets[origin].name, transforms)
            copies.append(Copy(source.label, outlet, f"{slug}-{outlet}", title, paragraphs,
                               when + timedelta(minutes=rng.randint(5, 600)), transforms))
    return copies


def publish(copies: Sequence[Copy], outlets: Sequence[Outlet]) -> None:
    """Put every copy on its outlet's site (and so in its feed)."""
    for copy in copies:
        outlets[copy.outlet].site.add_article(copy.slug, copy.title, copy.paragraphs,
                                              copy.published, author="Staff reporter")
