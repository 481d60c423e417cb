"""One poll cycle: due feeds -> fetch -> parse -> new entries -> pages -> extract -> score ->
store. The only stage that drives I/O; parsing, extraction and scoring are pure functions.

Fetching is concurrent (asyncio + httpx, bounded globally and per host); parsing feeds and
extracting pages run in worker processes sized to the cores, so this process only moves bytes
and the event loop is never held up by a large feed; each feed's articles are written in one
transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from .config import FeedConfig, Settings
from .digest.cluster import signature
from .errors import ExtractError, FetchError, MonitorError, ParseError, StorageError
from .feeds import parse_feed
from .fetch import Fetcher, Response
from .models import Article, CycleSummary, Entry, FeedResult, Page, ParsedFeed
from .retry import retry_at
from .schedule import next_poll_at
from .scoring import Rules, score
from .store import Store

log = logging.getLogger("monitor.pipeline")
FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
FEEDS_PER_REQUEST = 2  # feeds in progress at once, per request allowed in flight
PAGES_PER_WORKER = 16  # pages being fetched at once, per extraction worker
CLUSTER_DAYS = 30  # how far back a new article looks for an earlier copy of itself
T = TypeVar("T")


# The pool is replaced after this many jobs per worker, so that whatever a parser leaks or
# fragments is handed back. Rarely: fresh workers ran about a tenth slower over their first
# few hundred pages (replacing them every 500 jobs cost 10% of a cycle's throughput), and a
# worker's memory stayed flat over 3,000 pages. Not with the pool's own max_tasks_per_child:
# on Python 3.11 to 3.13 a worker that exits at that limit may never be replaced, and the
# pool then hangs with work queued (CPython gh-115634).
WORKER_JOBS = 10_000


def make_executor(workers: int) -> Executor | None:
    """A process pool for extraction; None means extract in a thread of this process."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        return None
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["monitor.pipeline", "monitor.preload"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                               initializer=watch_parent, initargs=(os.getpid(),))


def watch_parent(pid: int) -> None:
    """In each worker: exit as soon as the process that owns the pool is gone. A parent killed
    with -9 cannot shut its pool down, and a worker waiting for jobs would wait for ever (it
    holds the writing end of its own job queue, so it never sees the end of it)."""
    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux 5.3+: look every second
            while True:
                time.sleep(1.0)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    os._exit(0)
                except PermissionError:
                    pass
        select.select([fd], [], [])  # readable when the process has exited
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def start_workers(executor: Executor, workers: int, retired: Executor | None = None) -> None:
    """Start every worker now (and the forkserver, whose first start imports and warms
    trafilatura for a second or two): the pool otherwise starts them on submit, and a submit
    from the event loop would hold up every fetch meanwhile. A retired pool finishes its
    queued jobs first, so that no more than one pool's workers are ever alive."""
    if retired is not None:
        retired.shutdown(wait=True)
    list(executor.map(_ready, range(workers)))


def _ready(_: int) -> int:
    return os.getpid()


def extract_job(content: bytes, url: str, content_type: str, charset: str | None,
                fast: bool, rules: Rules | None = None, entry: Entry | None = None) -> Page:
    """A page's job in a worker: its text, the signature that clusters its copies, and with
    *rules* its score as the entry's article (scoring is CPU work too: not on the loop).
    Imported here, not at the top, so that the main process never loads trafilatura when
    extraction runs in workers."""
    from .extract import extract_page

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


class Pipeline:
    """Owns its extraction pool: call close() when done."""

    def __init__(self, settings: Settings, rules: Rules, store: Store, fetcher: Fetcher,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings, self.rules, self.store = settings, rules, store
        # The database off the event loop: a write waiting for the lock (another process
        # writing, a backup) must not freeze every fetch and timer. One thread writes, in
        # order, on its own connection; another reads (WAL: never blocked by a writer).
        self._writer, self._reader = Store(store.path), Store(store.path)
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="monitor-write")
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="monitor-read")
        self.clock = clock or partial(datetime.now, UTC)
        self.fetcher = fetcher
        self.executor = make_executor(settings.extract_workers)
        # Backpressure: fetching outruns extraction, and every fetched page waits in memory
        # for a worker. A slot covers a page from its fetch to the end of its extraction, so
        # their number follows the workers, not the connections: 16 fetches per worker keep
        # one extracting 80 pages a second busy through 200 ms of latency; two more queue.
        self._workers = settings.extract_workers or os.cpu_count() or 1
        self._slots(settings)
        # entries being fetched right now, by (feed, guid) and by URL -> the feed storing it
        self._claimed: dict[tuple[str, ...], str] = {}
        self._bugs: set[tuple[str, str]] = set()  # kinds of internal error already logged
        self.bugs = 0  # internal errors so far
        self._started: asyncio.Future[None] | None = None  # the pool's workers, started once
        self._retired: Executor | None = None  # the previous pool, finishing its queued jobs
        self._jobs = 0  # given to this pool

    def _slots(self, settings: Settings) -> None:
        self._page_slots = asyncio.Semaphore(
            min(settings.concurrency, PAGES_PER_WORKER * self._workers) + 2 * self._workers)
        self._feed_slots = asyncio.Semaphore(FEEDS_PER_REQUEST * settings.concurrency)

    def reconfigure(self, settings: Settings, rules: Rules) -> None:
        """A reload: new rules and settings for what starts from now on. Work in flight
        finishes as it began; a new number of workers replaces the pool (the old one finishes
        its queued jobs first)."""
        old, self.settings, self.rules = self.settings, settings, rules
        self.fetcher.reconfigure(settings)
        workers = settings.extract_workers or os.cpu_count() or 1
        resized = (old.concurrency, self._workers) != (settings.concurrency, workers)
        if workers != self._workers:
            self._workers, retired = workers, self.executor
            self.executor = make_executor(workers)
            self._started, self._jobs = None, 0
            if retired is not None and self.executor is not None and self._retired is None:
                self._retired = retired  # shut down before the next pool starts
            elif retired is not None:
                retired.shutdown(wait=False)  # its running jobs still finish
        if resized:
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
        if self.executor is not None:
            try:
                await self._pool()
            except BrokenProcessPool:
                pass  # logged; the first job starts another pool

    async def poll(self, feeds: Iterable[FeedConfig],
                   on_result: Callable[[FeedResult], None] | None = None) -> CycleSummary:
        started = asyncio.get_running_loop().time()
        summary = CycleSummary()
        bugs = self.bugs

        async def one(feed: FeedConfig) -> None:
            try:
                result = await self.poll_feed(feed)
            except Exception as exc:  # a bug past poll_feed's own handling; others go on
                self._log_bug(feed.url, exc)
                result = FeedResult(url=feed.url, status="failed",
                                    error=f"internal error: {type(exc).__name__}")
            summary.results.append(result)
            if on_result:
                on_result(result)

        await asyncio.gather(*(one(f) for f in feeds))
        summary.seconds = asyncio.get_running_loop().time() - started
        summary.bugs = self.bugs - bugs
        return summary

    async def poll_feed(self, feed: FeedConfig) -> FeedResult:
        """Poll one feed; every outcome is recorded on its row with its next poll time.
        Nothing raises: a failure is a result."""
        # A bounded number of feeds at once, each from its fetch to its last page: a cycle of
        # thousands of feeds would otherwise hold every new entry of every feed, each with
        # its own waiting task, long before the workers reach them.
        async with self._feed_slots:
            return await self._poll_feed(feed)

    async def _poll_feed(self, feed: FeedConfig) -> FeedResult:
        now = self.clock()
        row = await self._read(Store.feed, feed.url) or {}
        result = FeedResult(url=feed.url, status="failed")
        extra: dict[str, object] = {}
        try:
            async with asyncio.timeout(self.settings.poll_deadline):
                extra = await self._poll(feed, row, now, result)
        except TimeoutError:
            result.status, result.error = "failed", \
                f"poll took longer than {self.settings.poll_deadline:g}s"
        except FetchError as exc:
            result.status, result.error, result.http_status = "failed", exc.reason, exc.status
            result.retry_after = exc.retry_after
            if exc.status == 410:
                result.status = "gone"
        except ParseError as exc:
            result.status, result.error = "failed", exc.reason
        except MonitorError as exc:
            result.status, result.error = "failed", str(exc)
        except Exception as exc:  # a bug of ours: recorded like any failure, with backoff
            result.status, result.error = "failed", \
                f"internal error: {type(exc).__name__}: {str(exc)[:200]}"
            self._log_bug(feed.url, exc)
        if result.status in ("failed", "gone"):
            log.warning("feed %s", result.status, extra={"feed": feed.url,
                                                        "outcome": result.error})
        else:
            log.info("feed %s", result.status, extra={
                "feed": feed.url, "outcome": f"{result.new_articles} new, {result.flagged} flagged"
                + (f"; {result.warning}" if result.warning else "")})
        if extra.get("moved_to") and extra["moved_to"] != row.get("moved_to"):
            log.warning("feed moved permanently", extra={
                "feed": feed.url, "outcome": f"now polling {extra['moved_to']}; "
                "update feeds.yaml"})
        failures = (row.get("consecutive_failures") or 0) + 1 if result.status == "failed" else 0
        result.next_poll_at = next_poll_at(
            result, now, feed.interval or self.settings.default_interval, failures=failures,
            jitter=self.settings.jitter, max_backoff=self.settings.max_backoff,
            retry_after=result.retry_after)
        try:
            await self._write(partial(Store.record_poll, result=result, now=now,
                                      **extra))  # type: ignore[arg-type]
        except StorageError as exc:  # disk full, locked too long: the next poll tries again
            log.error("feed state not saved", extra={"feed": feed.url, "outcome": str(exc)})
            result.status, result.error = "failed", str(exc)
        return result

    async def _poll(self, feed: FeedConfig, row: dict[str, object], now: datetime,
                    result: FeedResult) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await self.fetcher.get(
            str(row.get("moved_to") or feed.url), trusted=True, accept=FEED_ACCEPT,
            max_bytes=self.settings.max_feed_bytes, etag=row.get("etag"),  # type: ignore[arg-type]
            last_modified=row.get("last_modified"))  # type: ignore[arg-type]
        result.http_status = response.status
        validators = {"etag": response.etag, "last_modified": response.last_modified,
                      "moved_to": response.moved_to}
        if response.not_modified:
            result.status = "unchanged"
            return {"moved_to": response.moved_to}
        digest = hashlib.sha256(response.content).hexdigest()
        if digest == row.get("content_hash"):
            result.status = "unchanged"  # same bytes without a 304: nothing to re-parse
            return validators
        parsed = await self.parse(feed.url, response, now)
        result.warning = parsed.warning
        entries = await self._new_entries(feed.url, parsed.entries)
        pending: set[asyncio.Task[Article]] = set()
        tasks: list[asyncio.Task[Article]] = []
        try:
            tasks += [asyncio.create_task(self._article(e, feed)) for e in entries]
            if tasks:  # leave a tenth of the poll's deadline for storing what is done
                budget = self.settings.poll_deadline * 0.9 - (loop.time() - started)
                _, pending = await asyncio.wait(tasks, timeout=max(budget, 0.1))
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            articles = [t.result() for t in tasks if t not in pending]
            added = await self._write(Store.add_articles, articles, now,
                                      self._cluster_since())
            result.new_articles = len(added)
        finally:  # stored now, or to be tried again on the next poll
            for task in tasks:
                task.cancel()  # those still fetching, when the poll itself was cancelled
            self._release(entries)
        result.flagged = sum(1 for a in articles if a.score and a.score.flagged)
        result.status = "ok"
        if pending:
            # what is done is kept; the rest is new again next time, so the feed's validators
            # and hash are not saved (a 304 would hide those entries)
            result.warning = (f"poll deadline: {len(pending)} of {len(tasks)} pages left for "
                              "the next poll")
            return {"title": parsed.title, "moved_to": response.moved_to}
        return {**validators, "content_hash": digest, "title": parsed.title}

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

    async def _new_entries(self, feed_url: str, entries: tuple[Entry, ...]) -> list[Entry]:
        """Entries not stored yet, claimed until stored (another feed carrying the same URL
        meanwhile waits for it); those another feed stored or is storing are recorded as
        sightings of their story. A guid is the feed's own: only a URL is shared."""
        guids = [e.guid for e in entries]
        urls = [e.url for e in entries if e.url]
        seen_guids, seen_urls = await self._read(Store.known, feed_url, guids, urls)
        fresh, seen = [], []
        for e in entries:
            keys = _claim_keys(e)
            if e.guid in seen_guids or any(k in self._claimed for k in keys):
                first = self._claimed.get(("url", e.url)) if e.url else None
                if first is not None and first != feed_url:  # another feed is storing it
                    seen.append(e)
                continue
            if e.url in seen_urls:
                if seen_urls[e.url] != feed_url:  # another feed carries it too
                    seen.append(e)
                continue
            for k in keys:
                self._claimed[k] = feed_url
            fresh.append(e)
        if seen:
            try:
                await self._write(Store.add_sightings, seen, self.clock())
            except BaseException:  # the claims go with the poll that failed
                self._release(fresh)
                raise
        return fresh

    def _release(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            for k in _claim_keys(e):
                self._claimed.pop(k, None)

    async def _article(self, entry: Entry, feed: FeedConfig) -> Article:
        page: Page | None = None
        error: str | None = None
        again: datetime | None = None
        if not entry.url:
            error = "entry has no link"
        elif self.settings.fetch_articles:
            try:
                page = await self._extract(entry.url, entry)
            except (FetchError, ExtractError) as exc:
                error = exc.reason
                again = retry_at(exc, self.clock(), 1, self.settings.page_retry_delays)
                log.info("page kept as summary", extra={"feed": feed.url, "outcome": (
                    f"{entry.url}: {error}" + ("; will retry" if again else ""))})
            except Exception as exc:  # a bug (ours or a library's): this page only
                error = f"internal error: {type(exc).__name__}"
                self._log_bug(feed.url, exc, entry.url)
        else:
            error = "article fetching is off"
        return replace(self._article_from(entry, page, feed.language), extract_error=error,
                       retry_at=again)

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

    async def retry_pages(self, limit: int = 1000) -> tuple[int, int]:
        """Fetch again the pages whose retry is due; returns (tried, arrived). An arrived page
        is stored, rescored and re-clustered, and its extract_error cleared."""
        rows = await self._read(Store.due_retries, self.clock(), limit)
        outcomes = await asyncio.gather(*(self._retry(row) for row in rows))
        return len(rows), sum(outcomes)

    async def _retry(self, row: dict[str, Any]) -> bool:
        published = datetime.fromisoformat(row["published"]) if row["published"] else None
        entry = Entry(feed_url=row["feed_url"], guid=row["guid"], url=row["url"],
                      title=row["title"] or "", summary="", author=row["author"],
                      published=published)
        try:
            page = await self._extract(row["url"], entry)
        except (FetchError, ExtractError) as exc:
            tries = (row["page_tries"] or 0) + 1
            again = retry_at(exc, self.clock(), tries, self.settings.page_retry_delays)
            log.info("page retry failed", extra={"feed": row["feed_url"], "outcome": (
                f"{row['url']}: {exc.reason}" + ("; will retry" if again else "; giving up"))})
            await self._write(Store.retry_failed, row["id"], exc.reason, again)
            return False
        except Exception as exc:  # a bug: given up on, not tried on every cycle
            self._log_bug(row["feed_url"], exc, row["url"])
            await self._write(Store.retry_failed, row["id"],
                              f"internal error: {type(exc).__name__}", None)
            return False
        article = self._article_from(entry, page, row["language"])
        await self._write(Store.page_arrived, article, row["id"], self.clock())
        await self._recluster(row, article)
        log.info("page retry arrived", extra={"feed": row["feed_url"], "outcome": (
            f"{row['url']}: score {article.score.score if article.score else 0:.1f}")})
        return True

    async def _recluster(self, row: dict[str, Any], article: Article) -> None:
        """The text arrived late: a story of its own until now, it may be a copy of another.
        An article that other copies already joined keeps its cluster."""
        article_id, cluster_id = row["id"], row["cluster_id"]
        if cluster_id not in (None, article_id) or \
                await self._read(Store.cluster_size, article_id) > 1:
            return
        await self._write(Store.recluster, article_id, (row["signature"], row["title"]),
                          (article.signature, article.title, article.text), row["feed_url"],
                          self._cluster_since())

    async def parse(self, url: str, response: Response, now: datetime) -> ParsedFeed:
        """A fetched feed's entries, parsed in a worker (a large feed never holds the loop)."""
        try:
            return await self._in_worker(partial(
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
        room: one site's hundred pages wait in that site's queue, not in everyone's."""
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
        try:  # the slot is held until the text is out: fetched pages wait in memory
            return await self._in_worker(partial(
                extract_job, response.content, response.url, response.content_type,
                response.charset, self.settings.extract_fast, self.rules, entry), url)
        except BrokenProcessPool:
            raise ExtractError(url, "the worker process died on this page") from None
        finally:
            slots.release()

    async def _in_worker(self, job: Callable[[], T], what: str) -> T:
        """Run a pure, CPU-bound job in the worker pool, or in a thread when there is none.
        Raises BrokenProcessPool when a worker died on it (a crash in a parser, the OOM
        killer); the pool is then replaced, once per breakage."""
        if self.executor is None:
            return await asyncio.to_thread(job)
        if self._jobs >= WORKER_JOBS * self._workers and self._started and self._started.done():
            # retire this pool: it finishes its queued jobs before the next one starts
            self._retired, self.executor = self.executor, make_executor(self._workers)
            self._started, self._jobs = None, 0
        self._jobs += 1
        executor = await self._pool()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, job)
        except BrokenProcessPool:
            self._replace(executor, what)
            raise

    async def _pool(self) -> Executor:
        """The current pool once its workers have started (it may be replaced meanwhile)."""
        while True:
            if self._started is None:
                retired, self._retired = self._retired, None
                self._started = asyncio.ensure_future(
                    asyncio.to_thread(start_workers, self.executor, self._workers, retired))
            started, executor = self._started, self.executor
            try:
                await asyncio.shield(started)
            except BrokenProcessPool:
                self._replace(executor, "starting the workers")
                raise
            if started is self._started:
                return executor  # type: ignore[return-value]

    def _replace(self, executor: Executor | None, what: str) -> None:
        if self.executor is executor and executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
            self.executor = make_executor(self._workers)
            self._started, self._jobs = None, 0
            log.error("worker process died; pool replaced", extra={"outcome": what})

    def close(self) -> None:
        if self._started is not None and not self._started.done():
            self._started.cancel()  # its thread may fail on the pool shut down below
        for pool in (self._retired, self.executor):
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        self._retired = self.executor = None
        self._writes.shutdown(wait=True)  # the writes begun are finished
        self._reads.shutdown(wait=True, cancel_futures=True)
        self._writer.close()
        self._reader.close()


def _claim_keys(e: Entry) -> list[tuple[str, ...]]:
    return [("guid", e.feed_url, e.guid)] + ([("url", e.url)] if e.url else [])



