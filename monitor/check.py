"""`monitor feeds check URL`: one feed looked at closely, nothing stored."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Settings
from .errors import ExtractError, FetchError, ParseError
from .feeds import parse_feed
from .fetch import Fetcher
from .pipeline import FEED_ACCEPT, PAGE_ACCEPT, extract_job
from .scoring import Rules, score


@dataclass
class FeedCheck:
    ok: bool = False
    title: str | None = None
    lines: list[str] = field(default_factory=list)


async def check_feed(settings: Settings, rules: Rules, url: str, first_page: bool) -> FeedCheck:
    report = FeedCheck()
    async with Fetcher(settings) as fetcher:
        try:
            response = await fetcher.get(url, trusted=True, max_bytes=settings.max_feed_bytes,
                                         accept=FEED_ACCEPT)
            parsed = parse_feed(response.content, url, content_type=response.content_type)
        except (FetchError, ParseError) as exc:
            report.lines.append(f"not usable: {exc}")
            return report
        report.ok, report.title = True, parsed.title
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
            page_response = await fetcher.get(first.url, max_bytes=settings.max_page_bytes,
                                              accept=PAGE_ACCEPT)
            page = extract_job(page_response.content, page_response.url,
                               page_response.content_type, page_response.charset,
                               settings.extract_fast)
        except (FetchError, ExtractError) as exc:
            report.lines.append(f"  page not extracted: {exc.reason}; the summary would be used")
            return report
        s = score(rules, first.title, page.text)
        report.lines.append(f"  extracts to {len(page.text)} characters "
                            f"({page.language or 'language unknown'}); score {s.score:.1f}, "
                            f"{'flagged' if s.flagged else 'not flagged'}")
        report.lines.append("  " + page.text[:300].replace("\n", " ") + "…")
    return report
