"""Plain data passed between the stages. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True)
class Entry:
    """One item of a feed, as the feed describes it."""

    feed_url: str
    guid: str
    url: str | None  # canonical http(s) link, tracking parameters removed
    title: str
    summary: str
    author: str | None
    published: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    entries: tuple[Entry, ...]
    warning: str | None = None  # feed was malformed but readable


@dataclass(frozen=True)
class Page:
    """An article page extracted to text."""

    text: str
    title: str | None = None
    author: str | None = None
    published: datetime | None = None
    language: str | None = None
    signature: bytes | None = None  # MinHash of the text, for near-duplicate clustering
    score: Score | None = None  # the entry's article scored, in the worker that extracted it


class Match(NamedTuple):  # a tuple: articles carry dozens, built in the scorer's hot loop
    """One term found in an article, and what it added to the score."""

    term: str
    concept: str
    field: str
    count: int  # type: ignore[assignment]  # shadows tuple.count, which nothing here calls
    contribution: float

    def as_dict(self) -> dict[str, object]:
        return {"term": self.term, "concept": self.concept, "field": self.field,
                "count": self.count, "contribution": round(self.contribution, 3)}


@dataclass(frozen=True)
class Score:
    score: float
    flagged: bool
    matches: tuple[Match, ...] = ()
    tags: dict[str, list[str]] = field(default_factory=dict)
    reason: str = ""  # why it is (not) flagged, in one line
    # what was learned from the reader's labels, when it acts: its log-odds (flagged when
    # > 0), what pushed it (term or rules' feature, its part), and what the rules alone said
    learned: float | None = None
    learned_terms: tuple[tuple[str, float], ...] = ()
    rules_flagged: bool | None = None
    labels: int = 0  # how many labels it was learned from


@dataclass(frozen=True)
class Article:
    """An entry with its page text (or the feed summary when the page failed) and its score."""

    entry: Entry
    text: str
    title: str
    author: str | None
    published: datetime | None
    language: str | None
    extract_error: str | None
    score: Score | None = None
    signature: bytes | None = None
    retry_at: datetime | None = None  # when to fetch the page again after a passing failure


@dataclass
class FeedResult:
    """What one poll of one feed did. A failure is a result, not a crash."""

    url: str
    status: str  # ok | unchanged | failed | gone
    http_status: int | None = None
    error: str | None = None
    new_articles: int = 0
    flagged: int = 0
    warning: str | None = None
    retry_after: float | None = None
    next_poll_at: datetime | None = None


# -- intents: what crosses into the store, typed ------------------------------------------------

@dataclass(frozen=True)
class FeedListing:
    """A configured feed as the feeds table keeps it."""

    url: str
    name: str
    tags: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class ScoreUpdate:
    """A stored article scored again (rescore)."""

    article_id: int
    score: Score


@dataclass(frozen=True)
class AlertMessage:
    """A row of the alerts table as a rule plans it: a story considered ('waiting' for room
    in the hour or 'filtered'), or a summary of several ('pending' delivery)."""

    kind: str  # story | summary
    title: str
    body: str | None
    status: str  # waiting | filtered | pending
    story: int | None = None
    article_id: int | None = None
    score: float | None = None


@dataclass(frozen=True)
class Example:
    """A labelled example imported from a file (`monitor labels import`): the same shape as
    `labels export` writes, kept beside the labels given in the reading room."""

    key: str  # its id in the file: importing the file again updates it
    title: str
    text: str
    relevant: bool
    url: str | None = None


@dataclass
class CycleSummary:
    results: list[FeedResult] = field(default_factory=list)
    seconds: float = 0.0
    retried: int = 0  # pages tried again this cycle
    recovered: int = 0  # of which the text arrived
    bugs: int = 0  # unexpected exceptions (logged with their traceback): a bug to report
    alerts_sent: int = 0
    alerts_failed: int = 0  # tried again later, with backoff

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def new_articles(self) -> int:
        return sum(r.new_articles for r in self.results)

    @property
    def flagged(self) -> int:
        return sum(r.flagged for r in self.results)

    def line(self) -> str:
        extra = []
        if self.retried:
            extra.append(f"{self.recovered} of {self.retried} pages retried arrived")
        if self.bugs:
            extra.append(f"{self.bugs} internal errors (see the log)")
        if self.alerts_sent or self.alerts_failed:
            extra.append(f"{self.alerts_sent} alerts sent" + (
                f", {self.alerts_failed} not delivered (tried again later)"
                if self.alerts_failed else ""))
        return (f"{len(self.results)} feeds: {self.count('ok')} ok, {self.count('failed')} "
                f"failed, {self.count('unchanged')} unchanged; {self.new_articles} new "
                f"articles, {self.flagged} flagged" + "".join(f"; {e}" for e in extra)
                + f" in {self.seconds:.1f}s")
