"""Stored rows -> a Digest: ranked stories with why each matched. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..scoring.text import normalize

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")


@dataclass(frozen=True)
class Story:
    id: int
    title: str
    url: str | None
    feed: str
    published: str | None
    score: float
    matches: list[dict[str, Any]]
    tags: dict[str, list[str]]
    excerpt: str


@dataclass(frozen=True)
class Digest:
    date: str
    timezone: str
    stories: list[Story] = field(default_factory=list)


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The start and end of *day* in time zone *tz*, as aware datetimes."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), zone)


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


def _without_headline(text: str, title: str) -> str:
    """Extracted text often starts with the headline; the excerpt should not repeat it."""
    first, _, rest = text.partition("\n")
    return rest if title and normalize(first).strip() == normalize(title).strip() else text


def build_digest(rows: list[dict[str, Any]], day: date, tz: str) -> Digest:
    stories = [Story(
        id=r["id"], title=r["title"], url=r["url"], feed=r.get("feed_name") or r["feed_url"],
        published=r["published"] or r["fetched_at"], score=r["score"] or 0.0,
        matches=r["matches"], tags=r["tags"],
        excerpt=excerpt(_without_headline(r["text"] or "", r["title"] or ""), r["matches"]),
    ) for r in rows]
    stories.sort(key=lambda s: (-s.score, s.id))
    return Digest(date=day.isoformat(), timezone=tz, stories=stories)
