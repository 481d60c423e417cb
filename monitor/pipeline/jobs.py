"""The workers' jobs (monitor.pipeline.workers): pure functions of a fetched feed or page,
and a page's whole job, its fetch included, under the turns its owner lends."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from ..config import Settings
from ..copies import signature
from ..fetch import Fetcher
from ..models import Entry, Page
from ..scoring import Rules, score
from ..scoring.rules import RulesKey
from .worker import in_work_thread


def extract_job(content: bytes, url: str, content_type: str, charset: str | None,
                fast: bool, rules: Rules | RulesKey | None = None, entry: Entry | None = None
                ) -> Page:
    """A page's job in a worker: its text, the signature that clusters its copies, and with
    *rules* its score as the entry's article (scoring is CPU work too: not on the loop).
    Rules by name that this worker lacks raise RulesMissing before any work. Imported here,
    not at the top, so that the main process never loads trafilatura when extraction runs
    in workers."""
    from ..extract import extract_page

    if isinstance(rules, RulesKey):
        rules = rules.resolve()
    page = extract_page(content, url, content_type, charset, fast)
    page = replace(page, signature=signature(page.text))
    if rules is not None and entry is not None:
        page = replace(page, score=score(rules, article_title(entry, page), page.text))
    return page


def article_title(entry: Entry, page: Page | None) -> str:
    """The feed's title, unless it is missing or only the link; then the page's."""
    if entry.title and entry.title != entry.url:
        return entry.title
    return page.title if page and page.title else entry.title


@dataclass(frozen=True)
class PageFetch:
    """What a worker needs to fetch a page as its owner's Fetcher would."""
    accept: str
    max_bytes: int
    allow_private: bool
    user_agent: str
    connect_timeout: float
    read_timeout: float
    request_deadline: float
    max_redirects: int

    @classmethod
    def of(cls, settings: Settings, accept: str, allow_private: bool) -> PageFetch:
        return cls(accept, settings.max_page_bytes, allow_private, settings.user_agent,
                   settings.connect_timeout, settings.read_timeout, settings.request_deadline,
                   settings.max_redirects)


# A worker's fetchers, kept for their connections, the newest last; a reload's new settings
# make a new one, and the old ones are closed once their requests have ended.
_FETCHERS: dict[PageFetch, Fetcher] = {}
_REQUESTS: Counter[PageFetch] = Counter()  # in flight on each
_CLOSING: set[asyncio.Task[None]] = set()


async def page_job(url: str, how: PageFetch, fast: bool, rules: Rules | RulesKey | None,
                   entry: Entry | None, fetched: Callable[[], None]) -> Page:
    """A page fetched in a worker, then its extract_job(). The owner holds the host's turn
    and a place in its limits until fetched() is called; the address policy, the redirects,
    the caps and the deadline are the owner's Fetcher's own. Rules by name that this worker
    lacks raise RulesMissing before the request."""
    if isinstance(rules, RulesKey):
        rules = rules.resolve()
    fetcher = _FETCHERS.get(how)
    if fetcher is None:
        fetcher = _FETCHERS[how] = Fetcher(Settings(
            user_agent=how.user_agent, connect_timeout=how.connect_timeout,
            read_timeout=how.read_timeout, request_deadline=how.request_deadline,
            max_redirects=how.max_redirects), allow_private=how.allow_private)
    _REQUESTS[how] += 1
    try:
        response = await fetcher.request(url, max_bytes=how.max_bytes, accept=how.accept)
    finally:
        _REQUESTS[how] -= 1
        if len(_FETCHERS) > 1:
            _close_old()
    fetched()
    return await in_work_thread(partial(  # its loop stays free for the other fetches
        extract_job, response.content, response.url, response.content_type, response.charset,
        fast, rules, entry))


def _close_old() -> None:
    newest = next(reversed(_FETCHERS))
    for how in [h for h in _FETCHERS if h != newest and not _REQUESTS[h]]:
        del _REQUESTS[how]
        task = asyncio.ensure_future(_FETCHERS.pop(how).__aexit__(None, None, None))
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)
