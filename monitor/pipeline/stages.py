"""The pipeline's stages for one entry or feed: fetch, parse and extract (in the workers),
score, and the store's reads and writes, each on a thread of its own off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ..config import Settings
from ..copies import signature
from ..errors import ExtractError, ParseError
from ..feeds import parse_feed
from ..fetch import Fetcher, Response
from ..models import Article, Entry, Page, ParsedFeed
from ..scoring import Rules, score
from ..scoring.rules import RulesKey, RulesMissing
from ..store import Store
from .jobs import PageFetch, article_title, extract_job, page_job
from .workers import Workers

log = logging.getLogger("monitor.pipeline")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
FEEDS_PER_REQUEST = 2  # feeds in progress at once, per request allowed in flight
PAGES_PER_WORKER = 16  # pages being fetched at once, per extraction worker
CLUSTER_DAYS = 30  # how far back a new article looks for an earlier copy of itself
T = TypeVar("T")


class Stages:
    """Owns its extraction pool and its database threads: call close() when done."""

    def __init__(self, settings: Settings, rules: Rules, database: Path, fetcher: Fetcher,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings, self.rules = settings, rules
        # The database off the event loop: a write waiting for the lock (another process
        # writing, a backup) must not freeze every fetch and timer. One thread writes, in
        # order, on its own connection; another reads (WAL: never blocked by a writer). Each
        # connection is opened in its thread and used only there.
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="monitor-write")
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="monitor-read")
        self._writer = self._writes.submit(Store, database).result()
        self._reader = self._reads.submit(Store, database).result()
        self.clock = clock or partial(datetime.now, UTC)
        self.fetcher = fetcher
        self._page_fetch: PageFetch | None = None  # how a worker fetches pages, made once
        self.workers = Workers(settings.extract_workers)
        # Backpressure: fetching outruns extraction, and every fetched page waits in memory
        # for a worker. A slot covers a page from its fetch to the end of its extraction, so
        # their number follows the workers, not the connections: 16 fetches per worker keep
        # one extracting 80 pages a second busy through 200 ms of latency; two more queue.
        self._slots(settings)
        self._bugs: set[tuple[str, str]] = set()  # kinds of internal error already logged
        self.bugs = 0  # internal errors so far

    def _slots(self, settings: Settings) -> None:
        workers = self.workers.count
        self._page_slots = asyncio.Semaphore(
            min(settings.concurrency, PAGES_PER_WORKER * workers) + 2 * workers)
        self._feed_slots = asyncio.Semaphore(FEEDS_PER_REQUEST * settings.concurrency)

    def reconfigure(self, settings: Settings, rules: Rules) -> None:
        """A reload: new rules and settings for what starts from now on. Work in flight
        finishes as it began; a new number of workers replaces the pool (the old one finishes
        its queued jobs first)."""
        old, self.settings, self.rules = self.settings, settings, rules
        self.fetcher.reconfigure(settings)
        self._page_fetch = None
        resized = self.workers.resize(settings.extract_workers)
        if resized or old.concurrency != settings.concurrency:
            self._slots(settings)

    async def _write(self, method: Callable[..., T], *args: Any) -> T:
        """A Store method on the writing connection, in the writing thread. Once begun it runs
        to its end even if the caller is cancelled: a write finishes or rolls back whole."""
        return await asyncio.get_running_loop().run_in_executor(
            self._writes, partial(method, self._writer, *args))

    async def _read(self, method: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._reads, partial(method, self._reader, *args))

    async def start(self) -> None:
        """Start the worker pool now and wait for it; otherwise it starts on the first job.
        A service starts it once, so its polls never wait for workers."""
        await self.workers.start()

    def _log_bug(self, feed_url: str, exc: Exception, page: str | None = None) -> None:
        """An unexpected exception: counted, and its traceback logged once per kind (type and
        message), then one line each time."""
        self.bugs += 1
        key = (type(exc).__name__, str(exc)[:80])
        what = f"{page}: " if page else ""
        if key in self._bugs:
            log.error("internal error again", extra={
                "feed": feed_url, "outcome": f"{what}{type(exc).__name__}: {str(exc)[:200]}"})
        else:
            self._bugs.add(key)
            log.error("internal error (a bug: please report it)", exc_info=exc,
                      extra={"feed": feed_url, "outcome": what.rstrip(": ")})

    def _cluster_since(self) -> datetime:
        return self.clock() - timedelta(days=CLUSTER_DAYS)

    async def parse(self, url: str, response: Response, now: datetime) -> ParsedFeed:
        """A fetched feed's entries, parsed in a worker (a large feed never holds the loop)."""
        try:
            return await self.workers.run(partial(
                parse_feed, response.content, url, content_type=response.content_type,
                fetched=now, max_entries=self.settings.max_entries_per_feed), url)
        except BrokenProcessPool:
            raise ParseError(url, "the worker process died parsing this feed") from None

    async def page(self, entry: Entry) -> Page:
        """An entry's page fetched, extracted and scored, as a new entry's page is."""
        assert entry.url
        return await self._extract(entry.url, entry)

    def article(self, entry: Entry, page: Page | None, language: str | None) -> Article:
        """An entry with its page's text (or its summary), title and metadata, scored."""
        return self._article_from(entry, page, language)

    async def _extract(self, url: str, entry: Entry | None = None) -> Page:
        """Fetch and extract one page. It waits for its host's turn first and only then for a
        page slot, so the slots (and behind them the workers) are spent on hosts that have
        room: one site's hundred pages wait in that site's queue, not in everyone's.

        With worker processes, a worker fetches the page too, under the turn and the place
        in the limits that this process lends it: this process, which only coordinates,
        then never touches the page's bytes (their HTTP was most of its CPU per article)."""
        if self.workers.in_threads:
            return await self._extract_here(url, entry)
        rules = self.rules  # the ones this page started with, even if a reload comes
        try:  # a worker is sent the rules once, not with every page
            return await self._in_worker(url, entry, rules.key)
        except RulesMissing:
            return await self._in_worker(url, entry, rules)

    async def _in_worker(self, url: str, entry: Entry | None,
                         rules: Rules | RulesKey) -> Page:
        slots, turn = self._page_slots, self.fetcher.turn(url)
        await turn.acquire()
        try:
            await slots.acquire()
        except BaseException:
            turn.release()
            raise
        if self._page_fetch is None:
            self._page_fetch = PageFetch.of(self.settings, PAGE_ACCEPT, self.fetcher.allow_private)
        job = partial(page_job, url, self._page_fetch, self.settings.extract_fast, rules, entry)
        try:  # the slot is held until the text is out, the turn until the page is in
            return await self.fetcher.lend(url, turn, partial(self.workers.start_job, job, url))
        except BrokenProcessPool:
            raise ExtractError(url, "the worker process died on this page") from None
        finally:
            slots.release()

    async def _extract_here(self, url: str, entry: Entry | None) -> Page:
        """Fetched here, extracted in a thread (no worker processes)."""
        slots = self._page_slots  # the one released below, even if a reload replaces it
        async with self.fetcher.turn(url):
            await slots.acquire()
            try:
                response = await self.fetcher.get(
                    url, max_bytes=self.settings.max_page_bytes, accept=PAGE_ACCEPT,
                    turn_held=True)
            except BaseException:
                slots.release()
                raise
        rules = self.rules  # the ones this page started with, even if a reload comes
        job = partial(extract_job, response.content, response.url, response.content_type,
                      response.charset, self.settings.extract_fast)
        try:  # the slot is held until the text is out: fetched pages wait in memory
            return await self.workers.run(partial(job, rules, entry), url)
        finally:
            slots.release()

    def _article_from(self, entry: Entry, page: Page | None, language: str | None) -> Article:
        text = page.text if page else entry.summary
        title = article_title(entry, page)
        return Article(entry=entry, text=text, title=title,
                       author=entry.author or (page.author if page else None),
                       published=entry.published or (page.published if page else None),
                       language=(page.language if page else None) or language,
                       extract_error=None,
                       score=page.score if page and page.score else score(self.rules, title,
                                                                          text),
                       signature=page.signature if page else signature(text))

    def close(self) -> None:
        self.workers.close()
        self._writes.submit(self._writer.close).result()  # the writes begun are finished
        self._reads.submit(self._reader.close)
        self._writes.shutdown(wait=True)
        self._reads.shutdown(wait=True, cancel_futures=True)
