"""One poll cycle: due feeds -> fetch -> parse -> new entries -> pages -> extract -> score ->
store. The only stage that drives I/O; parsing, extraction and scoring are pure functions.

Fetching is concurrent (asyncio + httpx, bounded globally and per host); parsing feeds and
extracting pages run in worker processes sized to the cores, so this process only moves bytes
and the event loop is never held up by a large feed; each feed's articles are written in one
transaction.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from ..config import FeedConfig, Settings
from ..errors import ExtractError, FetchError, MonitorError, ParseError, StorageError
from ..fetch import Fetcher
from ..models import Article, CycleSummary, Entry, FeedResult, Page
from ..retry import retry_at
from ..schedule import next_poll_at
from ..scoring import Rules
from ..store import Store
from .retries import Retries

log = logging.getLogger("monitor.pipeline")
FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
_FROZEN = False  # gc.freeze() done in this process


class Pipeline(Retries):
    """The feed cycle over the stages and the page retries."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # entries being fetched right now, by (feed, guid) and by URL -> the feed storing it
        self._claimed: dict[tuple[str, ...], str] = {}

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
        validators: dict[str, object] = {
            "etag": response.etag, "last_modified": response.last_modified,
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


def _claim_keys(e: Entry) -> list[tuple[str, ...]]:
    return [("guid", e.feed_url, e.guid)] + ([("url", e.url)] if e.url else [])


@asynccontextmanager
async def open_pipeline(settings: Settings, rules: Rules, database: Path,
                        clock: Callable[[], datetime], allow_private: bool | None = None
                        ) -> AsyncIterator[Pipeline]:
    """A fetcher and an extraction pool to keep across polls, as the service does."""
    # What is alive now (modules, configuration, rules) lives as long as the process:
    # frozen, the collector no longer walks it. A full collection over it took about a
    # tenth of an unchanged re-poll of 400 feeds.
    global _FROZEN
    if not _FROZEN:  # once: what later polls leave behind is theirs to collect
        gc.collect()
        gc.freeze()
        _FROZEN = True
    async with Fetcher(settings, allow_private=allow_private) as fetcher:
        pipeline = Pipeline(settings, rules, database, fetcher, clock)
        try:
            yield pipeline
        finally:
            pipeline.close()
