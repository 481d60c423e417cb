"""`monitor feeds check URL` and `monitor status`. A check looks at one feed closely, nothing
stored, through the pipeline's own steps: fetch (finding a web page's feed), parse, fetch and
extract the first page, title and score it. Health is each feed's state as status shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import ExtractError, FetchError, ParseError
from .feeds import discover_feeds
from .pipeline import Pipeline
from .pipeline.cycle import FEED_ACCEPT


@dataclass
class FeedCheck:
    ok: bool = False
    title: str | None = None
    lines: list[str] = field(default_factory=list)
    url: str | None = None  # the feed's URL: the one asked about, or the feed its page names


async def check_feed(pipeline: Pipeline, url: str, first_page: bool, now: datetime
                     ) -> FeedCheck:
    report = FeedCheck()
    settings = pipeline.settings
    try:
        response = await pipeline.fetcher.get(url, trusted=True, accept=FEED_ACCEPT,
                                              max_bytes=settings.max_feed_bytes)
        parsed = await pipeline.parse(url, response, now)
    except FetchError as exc:
        report.lines.append(f"not usable: {exc}")
        return report
    except ParseError as exc:  # a web page, perhaps, that names its feed
        links = discover_feeds(response.content, response.url)
        for link in links[:3]:
            try:
                response = await pipeline.fetcher.get(link, trusted=True, accept=FEED_ACCEPT,
                                                      max_bytes=settings.max_feed_bytes)
                parsed = await pipeline.parse(link, response, now)
            except (FetchError, ParseError):
                continue
            report.lines.append(f"{url} is a web page; its feed: {link}")
            url = link
            break
        else:
            report.lines.append(f"not usable: {exc}" + ("" if links else
                                "; no feed link found on the page"))
            return report
    report.ok, report.title, report.url = True, parsed.title, url
    report.lines.append(f"a feed: {parsed.title or '(untitled)'}, {len(parsed.entries)} "
                        f"entries (HTTP {response.status}, {response.content_type or '?'})")
    if response.moved_to:
        report.lines.append(f"moved permanently to {response.moved_to}: use that URL")
    if parsed.warning:
        report.lines.append(f"warning: {parsed.warning}")
    first = next((e for e in parsed.entries if e.url), None)
    if not first_page or first is None:
        return report
    report.lines.append(f"first entry: {first.title}\n  {first.url}")
    try:
        page = await pipeline.page(first)
    except (FetchError, ExtractError) as exc:
        report.lines.append(f"  page not extracted: {exc.reason}; the summary would be used")
        return report
    article = pipeline.article(first, page, None)
    s = article.score
    assert s is not None
    report.lines.append(f"  extracts to {len(article.text)} characters "
                        f"({article.language or 'language unknown'}); score {s.score:.1f}, "
                        f"{'flagged' if s.flagged else 'not flagged'}")
    report.lines.append("  " + article.text[:300].replace("\n", " ") + "…")
    return report


def feed_health(r: dict[str, Any]) -> dict[str, Any]:
    """A feeds-table row with its recent articles as `monitor status` shows it: one state
    (gone, disabled, ok, unchanged, failed, not polled yet) and its 304 share."""
    state = "gone" if r.get("gone_at") else "disabled" if not r["enabled"] else \
        r["last_status"] or "not polled yet"
    return {
        "url": r["url"], "name": r["name"], "state": state,
        "last_success_at": r["last_success_at"], "last_error": r["last_error"],
        "consecutive_failures": r["consecutive_failures"] or 0,
        "next_poll_at": r["next_poll_at"], "articles_7d": r["recent_articles"],
        "polls": r["polls"] or 0, "moved_to": r["moved_to"],
        "not_modified_share": (r["not_modified"] or 0) / r["polls"] if r["polls"] else 0.0,
        "pages_waiting": r["pages_waiting"],
    }
