"""Stored rows -> a Digest: stories (clusters of copies) ranked by score, each with why it
matched, plus the day's counts, top tags and feed health. Pure."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ..scoring.explain import learned_why
from ..scoring.text import normalize

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
STALE_AFTER = timedelta(days=3)


def safe_url(url: str | None) -> str | None:
    """Only http(s) links leave the digest; javascript:, data: and the rest are dropped."""
    if not url:
        return None
    try:
        return url if urlsplit(url).scheme in ("http", "https") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Source:
    feed: str
    title: str
    url: str | None
    published: str | None


@dataclass(frozen=True)
class Story:
    id: int  # the cluster: the id of its first article
    title: str
    url: str | None
    feed: str
    published: str | None
    score: float
    matches: list[dict[str, Any]]
    tags: dict[str, list[str]]
    excerpt: str
    sources: list[Source] = field(default_factory=list)
    flagged_at: str | None = None  # when its first copy was flagged (UTC ISO-8601)
    # what was learned from the labels, when it decided (logit, labels, rules_flagged, terms)
    learned: dict[str, Any] | None = None

    @property
    def terms(self) -> list[str]:
        """Matched terms that added to the score, strongest first, each once."""
        out: list[str] = []
        for m in self.matches:
            if m["contribution"] > 0 and m["term"] not in out:
                out.append(m["term"])
        return out

    @property
    def learned_why(self) -> str:
        """The learned part of why, when a model decided: "learned from 212 labels: +3.1
        (unveiled, cameras detect, morality police); the rules alone: not flagged"."""
        return learned_why(self.learned)


@dataclass(frozen=True)
class FeedHealth:
    failing: list[dict[str, Any]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Digest:
    date: str  # a day, or "FIRST to LAST"
    timezone: str
    stories: list[Story] = field(default_factory=list)
    articles: int = 0  # flagged articles behind the stories
    top_tags: list[tuple[str, int]] = field(default_factory=list)
    health: FeedHealth = field(default_factory=FeedHealth)
    generated: str = ""  # when it was built, UTC ISO-8601
    pages_waiting: int = 0  # pages that failed for a passing reason, to be fetched again


def day_bounds(day: date, tz: str, last: date | None = None) -> tuple[datetime, datetime]:
    """From the start of *day* to the end of *last* (default: the same day), in *tz*."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    return start, datetime.combine((last or day) + timedelta(days=1), time(0), zone)


def excerpt(text: str, matches: list[dict[str, Any]], sentences: int = 3,
            limit: int = 600) -> str:
    """The sentences holding the strongest matches, in their original order."""
    weights = {normalize(m["term"]).rstrip("*"): m["contribution"] for m in matches
               if m["contribution"] > 0}
    parts = [p.strip() for p in _SENTENCE.split(text or "") if len(p.strip()) > 30]
    ranked = []
    for i, part in enumerate(parts[:400]):
        norm = normalize(part)
        value = sum(w for term, w in weights.items() if term and term in norm)
        if value > 0:
            ranked.append((value, i))
    chosen = sorted(i for _, i in sorted(ranked, reverse=True)[:sentences])
    out = " … ".join(parts[i] for i in chosen) if chosen else (parts[0] if parts else "")
    return out if len(out) <= limit else out[: limit - 1].rsplit(" ", 1)[0] + "…"


def highlight(text: str, terms: list[str]) -> list[tuple[str, bool]]:
    """Split *text* into (piece, is_a_matched_term) so each format can mark terms its way."""
    alts = []
    for term in sorted({t for t in terms if t.strip()}, key=len, reverse=True):
        words = [re.escape(w) for w in re.split(r"[\s\-‐–—_/]+", term.rstrip("*")) if w]
        if words:
            ending = r"\w*" if term.endswith("*") else r"\w{0,3}"  # plurals, -ing
            alts.append(r"[\s\-‐–—_/]+".join(words) + ending)
    if not alts:
        return [(text, False)]
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.I)
    out, last = [], 0
    for m in pattern.finditer(text):
        if m.start() > last:
            out.append((text[last:m.start()], False))
        out.append((m.group(0), True))
        last = m.end()
    if last < len(text):
        out.append((text[last:], False))
    return out


def without_headline(text: str, title: str) -> str:
    """Extracted text often starts with the headline; the excerpt should not repeat it."""
    first, _, rest = text.partition("\n")
    return rest if title and normalize(first).strip() == normalize(title).strip() else text


def build_digest(rows: list[dict[str, Any]], members: list[dict[str, Any]],
                 feeds: list[dict[str, Any]], label: str, tz: str,
                 now: datetime, pages_waiting: int = 0) -> Digest:
    """*rows*: the flagged articles of the period; *members*: every article of their clusters;
    *feeds*: the feeds table, for the health footer."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r.get("cluster_id") or r["id"]].append(r)
    copies: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in members:
        copies[m["cluster_id"]].append(m)
    stories = []
    for cluster, group in groups.items():
        best = max(group, key=lambda r: (r["score"] or 0, -r["id"]))
        found = copies.get(cluster) or group
        sources = sorted((Source(feed=m.get("feed_name") or m["feed_url"], title=m["title"],
                                 url=safe_url(m["url"]), published=m["published"] or
                                 m["fetched_at"]) for m in found),
                         key=lambda s: (s.published or "", s.feed))
        tags: dict[str, list[str]] = defaultdict(list)
        for r in group:
            for kind, values in r["tags"].items():
                tags[kind] += [v for v in values if v not in tags[kind]]
        stories.append(Story(
            id=cluster, title=best["title"], url=safe_url(best["url"]),
            feed=sources[0].feed if sources else best.get("feed_name", ""),
            published=sources[0].published if sources else best["published"],
            score=best["score"] or 0.0, matches=best["matches"],
            tags={k: sorted(v) for k, v in sorted(tags.items())},
            excerpt=excerpt(without_headline(best["text"] or "", best["title"] or ""),
                            best["matches"]),
            sources=sources, learned=best.get("learned"),
            flagged_at=min((r["flagged_at"] for r in group if r.get("flagged_at")),
                           default=None)))
    stories.sort(key=lambda s: (-s.score, s.id))
    counted = Counter(v for s in stories for kind, vs in s.tags.items() if kind != "place"
                      for v in vs)
    counted.update(v for s in stories for v in s.tags.get("place", []))
    stale_before = (now - STALE_AFTER).isoformat(timespec="seconds")
    failing = [f for f in feeds if f.get("enabled") and
               ((f.get("consecutive_failures") or 0) > 0 or f.get("gone_at"))]
    stale = [f for f in feeds if f.get("enabled") and not f.get("gone_at") and f.get("polls")
             and (f.get("last_success_at") or "") < stale_before and f not in failing]
    return Digest(date=label, timezone=tz, stories=stories, articles=len(rows),
                  top_tags=counted.most_common(8), health=FeedHealth(failing, stale),
                  generated=now.astimezone(UTC).isoformat(timespec="seconds"),
                  pages_waiting=pages_waiting)
