"""The extraction workers: a process pool sized to the cores, started ahead of its first job,
watched by its workers (they exit with the process that owns them), replaced when one dies or
after many jobs. Jobs are pure functions: parse a feed, extract and score a page."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import TypeVar

from ..copies import signature
from ..models import Entry, Page
from ..scoring import Rules, score
from ..scoring.rules import RulesKey

log = logging.getLogger("monitor.pipeline")
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
    ctx.set_forkserver_preload(["monitor.pipeline.workers", "monitor.preload"])
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



class Workers:
    """The pool and its lifecycle: run() a job in it (or in a thread when there is one core
    or fewer workers are asked for)."""

    def __init__(self, workers: int) -> None:
        self.count = workers or os.cpu_count() or 1
        self.executor = make_executor(self.count)
        self._started: asyncio.Future[None] | None = None  # the pool's workers, started once
        self._retired: Executor | None = None  # the previous pool, finishing its queued jobs
        self._jobs = 0  # given to this pool

    def resize(self, workers: int) -> bool:
        """A new number of workers replaces the pool (the old one finishes its queued jobs
        first); False when the number is the same."""
        workers = workers or os.cpu_count() or 1
        if workers == self.count:
            return False
        self.count, retired = workers, self.executor
        self.executor = make_executor(workers)
        self._started, self._jobs = None, 0
        if retired is not None and self.executor is not None and self._retired is None:
            self._retired = retired  # shut down before the next pool starts
        elif retired is not None:
            retired.shutdown(wait=False)  # its running jobs still finish
        return True

    async def start(self) -> None:
        """Start the worker pool now and wait for it; otherwise it starts on the first job.
        A service starts it once, so its polls never wait for workers."""
        if self.executor is not None:
            try:
                await self._pool()
            except BrokenProcessPool:
                pass  # logged; the first job starts another pool

    async def run(self, job: Callable[[], T], what: str) -> T:
        """Run a pure, CPU-bound job in the worker pool, or in a thread when there is none.
        Raises BrokenProcessPool when a worker died on it (a crash in a parser, the OOM
        killer); the pool is then replaced, once per breakage."""
        if self.executor is None:
            return await asyncio.to_thread(job)
        if self._jobs >= WORKER_JOBS * self.count and self._started and self._started.done():
            # retire this pool: it finishes its queued jobs before the next one starts
            self._retired, self.executor = self.executor, make_executor(self.count)
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
            assert self.executor is not None  # run() and start() come here with a pool
            if self._started is None:
                retired, self._retired = self._retired, None
                self._started = asyncio.ensure_future(
                    asyncio.to_thread(start_workers, self.executor, self.count, retired))
            started, executor = self._started, self.executor
            try:
                await asyncio.shield(started)
            except BrokenProcessPool:
                self._replace(executor, "starting the workers")
                raise
            if started is self._started:
                return executor

    def _replace(self, executor: Executor | None, what: str) -> None:
        if self.executor is executor and executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
            self.executor = make_executor(self.count)
            self._started, self._jobs = None, 0
            log.error("worker process died; pool replaced", extra={"outcome": what})

    def close(self) -> None:
        if self._started is not None and not self._started.done():
            self._started.cancel()  # its thread may fail on the pool shut down below
        for pool in (self._retired, self.executor):
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        self._retired = self.executor = None
