"""Instant alerts: a flagged story pushed to notification targets (through Apprise) once per
story and rule, bursts capped per hour with the rest in one summary, failed deliveries tried
again with backoff. Deciding and writing the messages is pure (consider, release);
`deliver` does the I/O."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from .config import AlertRule, expand_env
from .digest.build import excerpt, safe_url, without_headline
from .models import AlertMessage
from .scoring.explain import learned_why

log = logging.getLogger("monitor.alerts")
BACKOFF = (60, 300, 900, 3600, 3600, 3600, 3600)  # seconds before each new try; then given up
SUMMARY_LINES = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def rule_name(rule: AlertRule, index: int) -> str:
    return rule.name or f"rule {index + 1}"


def wanted(rule: AlertRule, story: dict[str, Any]) -> bool:
    """Does *story* (a flagged article row, tags decoded) pass the rule's filters?"""
    if (story["score"] or 0) < rule.min_score:
        return False
    if rule.tags:
        have = {v.casefold() for values in story["tags"].values() for v in values}
        have |= {f"{kind}:{v}".casefold() for kind, values in story["tags"].items()
                 for v in values}
        if not have & {t.casefold() for t in rule.tags}:
            return False
    return not rule.feeds or story["feed_url"] in rule.feeds or story["feed_name"] in rule.feeds


def plain(text: str | None, limit: int = 300) -> str:
    """Feed content as inert plain text: no control or direction-changing characters."""
    return " ".join(_CONTROL.sub(" ", text or "").split())[:limit]


def story_message(story: dict[str, Any]) -> tuple[str, str]:
    """Title and body: the score, matched terms, tags, a two-sentence excerpt, the link."""
    terms: list[str] = []
    for m in story["matches"]:
        if m["contribution"] > 0 and m["term"] not in terms:
            terms.append(m["term"])
    lines = [f"score {story['score']:.1f} · matched: {plain(', '.join(terms[:8]))}"]
    if story.get("learned"):
        lines.append(plain(learned_why(story["learned"])))
    tags = "; ".join(f"{kind}: {', '.join(values)}" for kind, values in
                     sorted(story["tags"].items()) if values)
    if tags:
        lines.append(f"tags: {plain(tags)}")
    text = excerpt(without_headline(story["text"] or "", story["title"] or ""),
                   story["matches"], sentences=2, limit=400)
    if text:
        lines += ["", plain(text, 400)]
    link = safe_url(story["url"])
    lines += ["", f"{plain(story['feed_name'], 100)}: {link}" if link
              else plain(story["feed_name"], 100)]
    return f"[monitor] {plain(story['title'], 200)}", "\n".join(lines)


def summary_message(rule: str, stories: list[dict[str, Any]], cap: int) -> tuple[str, str]:
    lines = [f"More flagged stories than the {cap} alerts an hour of {rule}:", ""]
    for s in stories[:SUMMARY_LINES]:
        link = safe_url(s["url"])
        lines.append(f"- {plain(s['title'], 160)} (score {s['score']:.1f})"
                     + (f" {link}" if link else ""))
    if len(stories) > SUMMARY_LINES:
        lines.append(f"… and {len(stories) - SUMMARY_LINES} more; see the digest")
    return f"[monitor] {len(stories)} more flagged stories", "\n".join(lines)


def consider(rule: AlertRule, candidates: list[dict[str, Any]]) -> list[AlertMessage]:
    """One alert row per story the rule has not considered yet (the best-scoring flagged copy
    of each): 'waiting' for a message when it passes the rule's filters, 'filtered' when
    not. Every story considered keeps its row, so that it is never read again."""
    rows = []
    for story in candidates:
        ok = wanted(rule, story)
        title, body = story_message(story) if ok else (plain(story["title"], 200), None)
        rows.append(AlertMessage(kind="story", story=story["story"], article_id=story["id"],
                                 title=title, body=body, score=story["score"],
                                 status="waiting" if ok else "filtered"))
    return rows


def release(rule: AlertRule, name: str, waiting: list[dict[str, Any]], sent_last_hour: int
            ) -> tuple[list[int], list[int], AlertMessage | None]:
    """Which waiting stories go out now, strongest first, within max_per_hour messages in any
    hour, summaries included: (ids sent as messages of their own, ids summarised, the
    summary row or None). With more waiting than the hour has room for, the strongest go
    alone and the rest together in the last message; with no room they wait for it."""
    room = rule.max_per_hour - sent_last_hour
    if room <= 0 or not waiting:
        return [], [], None
    if len(waiting) <= room:
        return [w["id"] for w in waiting], [], None
    alone, rest = waiting[:room - 1], waiting[room - 1:]
    title, body = summary_message(name, rest, rule.max_per_hour)
    return [w["id"] for w in alone], [w["id"] for w in rest], AlertMessage(
        kind="summary", title=title, body=body, status="pending")


def next_try(attempts: int, now: datetime) -> datetime | None:
    """After *attempts* failed tries; None once the backoff is spent."""
    return now + timedelta(seconds=BACKOFF[attempts - 1]) if attempts <= len(BACKOFF) else None


def deliver(urls: list[str], title: str, body: str, done: set[int]
            ) -> tuple[list[int], list[str]]:
    """Send to each target not in *done*; returns the targets that have it now and one line
    per failure, with the target's URL redacted (Apprise's privacy form)."""
    import apprise

    delivered, errors = sorted(done), []
    for i, url in enumerate(urls):
        if i in done:
            continue
        target = apprise.Apprise()
        try:
            added = target.add(expand_env(url))
        except ValueError as exc:  # an environment variable gone since the config was read
            errors.append(f"target {i + 1}: {exc}")
            continue
        if not added:
            errors.append(f"target {i + 1}: not a notification URL")
            continue
        shown = next(iter(target)).url(privacy=True)
        with _apprise_errors() as reasons:
            ok = target.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
        if ok:
            delivered.append(i)
        else:
            errors.append(f"{shown}: {'; '.join(reasons[-2:]) or 'refused'}")
    return sorted(delivered), errors


@contextmanager
def _apprise_errors() -> Iterator[list[str]]:
    """Apprise reports why a target failed only in its log: collect those lines."""
    reasons: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reasons.append(plain(record.getMessage(), 200))

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)
