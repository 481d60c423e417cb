"""The extraction workers: processes forked from a forkserver that has imported and warmed
trafilatura, started ahead of their first job, each fed over a socket of its own by the event
loop: a job is one write, its result one read. A worker exits with the process that owns it,
is replaced alone when it dies (only its own jobs fail) and after WORKER_JOBS jobs. Jobs
(monitor.pipeline.jobs) are pure functions (parse a feed) or coroutines that a worker runs
many at a time on its own event loop (fetch a page, then extract and score it), which may
send one notice back before their result (the page is in: its request's place is free).

Not concurrent.futures' ProcessPoolExecutor: its manager and queue-feeder threads, their
wake-up pipe and the futures chained back to the loop cost this process about 0.8 ms of CPU
per job (scripts/bench_jobs.py), a fifth of all it spent per article of a cycle.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import pickle
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from .worker import CANCEL, DONE, HEAD, NOTICE, RETIRE, RUN, SIZE, START, serve

log = logging.getLogger("monitor.pipeline")
T = TypeVar("T")

# A worker is replaced after this many jobs, so that whatever a parser leaks or fragments is
# handed back. Rarely: fresh workers ran about a tenth slower over their first few hundred
# pages (replacing them every 500 jobs cost 10% of a cycle's throughput), and a worker's
# memory stayed flat over 3,000 pages.
WORKER_JOBS = 10_000
QUEUED = 2  # jobs given to a worker at once: one running, the next ready when it ends
JOIN_SECONDS = 10.0  # a closing worker's time to finish the job it is running


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["monitor.pipeline.worker", "monitor.pipeline.jobs",
                               "monitor.preload"])
    return ctx


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    sock: socket.socket
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    waiting: dict[int, _Job] = field(default_factory=dict)  # by number
    jobs: int = 0  # sent to it so far
    retiring: bool = False  # told to end after the jobs it has
    reading: asyncio.Task[None] | None = None
    stopped: bool = False


@dataclass(eq=False)
class _Job:
    done: asyncio.Future[Any]
    what: str
    notice: Callable[[], None] | None = None


class Workers:
    """The worker processes and their lifecycle: run() a job in one of them (or in a thread
    when there is one core or fewer workers are asked for)."""

    def __init__(self, workers: int) -> None:
        self.count = workers or os.cpu_count() or 1
        self._live: list[_Worker] = []
        self._starting: asyncio.Task[None] | None = None
        self._room = asyncio.Semaphore(QUEUED * self.count)
        self._closed = False
        self._numbers = itertools.count(1)  # each job's, for its outcome and notice

    @property
    def in_threads(self) -> bool:
        return self.count <= 1

    def pids(self) -> set[int]:
        return {w.process.pid for w in self._live if w.process.pid is not None}

    def resize(self, workers: int) -> bool:
        """A new number of workers: more are started on the next job, those beyond it finish
        the jobs they have first; False when the number is the same."""
        workers = workers or os.cpu_count() or 1
        if workers == self.count:
            return False
        self.count = workers
        self._room = asyncio.Semaphore(QUEUED * workers)
        for worker in self._serving()[workers if workers > 1 else 0:]:
            self._retire(worker)
        return True

    async def start(self) -> None:
        """Start the workers now and wait for them; otherwise they start on the first job.
        A service starts them once, so its polls never wait for workers."""
        if not self.in_threads:
            try:
                await self._start_missing()
            except BrokenProcessPool:
                pass  # logged; the first job tries again

    async def run(self, job: Callable[[], T], what: str) -> T:
        """Run a pure, CPU-bound job in a worker, or in a thread when there are none. Raises
        BrokenProcessPool when its worker died on it (a crash in a parser, the OOM killer);
        that worker is replaced."""
        if self.in_threads:
            return await asyncio.to_thread(job)
        async with self._room:
            result: T = await self._send(await self._worker(), RUN, job, what)
        return result

    async def start_job(self, job: Callable[[Callable[[], None]], Awaitable[T]], what: str,
                        notice: Callable[[], None] | None = None) -> T:
        """Run a coroutine in a worker beside its others: ``job(notify)`` is awaited there,
        and *notice* is called here when it calls notify(). The caller bounds how many run at
        once. Cancelling the caller cancels the coroutine. Workers only, not threads."""
        assert not self.in_threads
        result: T = await self._send(await self._worker(), START, job, what, notice)
        return result

    async def _send(self, worker: _Worker, kind: int, job: object, what: str,
                    notice: Callable[[], None] | None = None) -> Any:
        data = pickle.dumps(job, pickle.HIGHEST_PROTOCOL)
        number = next(self._numbers)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.waiting[number] = _Job(done, what, notice)
        worker.jobs += 1
        worker.writer.write(SIZE.pack(HEAD.size + len(data)) + HEAD.pack(number, kind)
                            + data)
        if worker.jobs >= WORKER_JOBS:
            self._retire(worker)
        try:
            return await done
        except asyncio.CancelledError:  # its caller gave up on it (a poll's deadline)
            if worker.waiting.pop(number, None) is not None and kind == START \
                    and not worker.stopped:
                worker.writer.write(SIZE.pack(HEAD.size) + HEAD.pack(number, CANCEL))
            raise

    def _serving(self) -> list[_Worker]:
        return [w for w in self._live if not w.retiring]

    async def _worker(self) -> _Worker:
        """The serving worker with the fewest jobs; missing ones are started meanwhile."""
        while True:
            serving = self._serving()
            if len(serving) < self.count:
                starting = self._start_missing()
                if not serving:
                    await starting
                    continue
            return min(serving, key=lambda w: len(w.waiting))

    def _start_missing(self) -> asyncio.Future[None]:
        """Start the workers missing, once however many callers ask; a caller cancelled
        while it waits does not cancel the start."""
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start(self.count - len(self._serving())))
        return asyncio.shield(self._starting)

    async def _start(self, missing: int) -> None:
        # in a thread: the forkserver's first start imports and warms trafilatura for a
        # second or two, and the loop has fetches to serve meanwhile
        spawning = _SPAWNER.submit(_spawn, missing, os.getpid())
        try:
            started = await asyncio.wrap_future(spawning)
        except asyncio.CancelledError:  # closed meanwhile: what starts is stopped
            spawning.add_done_callback(_discard)
            raise
        except (OSError, RuntimeError) as exc:
            log.error("worker processes could not be started", extra={"outcome": str(exc)})
            raise BrokenProcessPool(f"worker processes could not be started: {exc}") from None
        workers: list[_Worker] = []
        try:
            for process, sock in started:
                reader, writer = await asyncio.open_connection(sock=sock)
                workers.append(_Worker(process, sock, reader, writer))
        except BaseException:
            _stop(workers)
            _stop_processes(started[len(workers):])
            raise
        if self._closed:
            _stop(workers)
            return
        for worker in workers:
            self._live.append(worker)
            worker.reading = asyncio.ensure_future(self._read(worker))
        for worker in self._serving()[self.count:]:  # fewer were asked for meanwhile
            self._retire(worker)

    async def _read(self, worker: _Worker) -> None:
        """Hand each outcome to its job's caller, and each notice to its job's."""
        try:
            while True:
                size = SIZE.unpack(await worker.reader.readexactly(SIZE.size))[0]
                data = await worker.reader.readexactly(size)
                number, kind = HEAD.unpack_from(data)
                job = worker.waiting.get(number) if kind == NOTICE \
                    else worker.waiting.pop(number, None)
                if job is None:  # its caller gave up on it
                    continue
                if kind == NOTICE:
                    if job.notice is not None:
                        job.notice()
                    continue
                try:
                    value = pickle.loads(memoryview(data)[HEAD.size:])
                except Exception as exc:  # noqa: BLE001 - e.g. an exception class that
                    job.done.set_exception(RuntimeError(  # does not rebuild from its args
                        f"{job.what}: a worker's result could not be read: {exc!r}"[:500]))
                    continue
                if kind == DONE:
                    job.done.set_result(value)
                else:
                    job.done.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._gone(worker)  # the worker ended: retired, closed, or dead
        except asyncio.CancelledError:  # the loop is ending without close()
            self._gone(worker, quiet=True)
            raise

    def _gone(self, worker: _Worker, quiet: bool = False) -> None:
        if worker in self._live:
            self._live.remove(worker)
        _stop([worker], wait=False)
        if quiet or self._closed or (worker.retiring and not worker.waiting):
            return
        jobs, worker.waiting = list(worker.waiting.values()), {}
        log.error("worker process died; pool replaced", extra={
            "outcome": jobs[0].what if jobs else "waiting for a job"})
        for job in jobs:
            if not job.done.done():
                job.done.set_exception(BrokenProcessPool(f"{job.what}: the worker process died"))

    def _retire(self, worker: _Worker) -> None:
        """No more jobs for *worker*: it ends after those it has; another is started."""
        worker.retiring = True
        worker.writer.write(SIZE.pack(HEAD.size) + HEAD.pack(0, RETIRE))

    def close(self) -> None:
        """Stop the workers: each finishes the job it is running (JOIN_SECONDS at most);
        jobs not begun are cancelled."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        workers, self._live = self._live, []
        for worker in workers:
            for job in worker.waiting.values():
                job.done.cancel()
        _stop(workers)


_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="monitor-spawn")


def _discard(spawning: Future[list[tuple[BaseProcess, socket.socket]]]) -> None:
    if not spawning.cancelled() and spawning.exception() is None:
        _stop_processes(spawning.result())


def _spawn(count: int, owner: int) -> list[tuple[BaseProcess, socket.socket]]:
    ctx, started = _context(), []
    try:
        for _ in range(count):
            ours, theirs = socket.socketpair()
            process = ctx.Process(target=serve, args=(theirs, owner), daemon=True,
                                  name="monitor-worker")
            try:
                process.start()
            finally:
                theirs.close()
            started.append((process, ours))
    except BaseException:
        _stop_processes(started)
        raise
    return started


def _stop(workers: list[_Worker], wait: bool = True) -> None:
    """End the workers' sockets (a worker sees the end and exits once its job is done) and
    reap them: now, or in a thread when *wait* is false."""
    workers = [w for w in workers if not w.stopped]
    for worker in workers:
        worker.stopped = True
        try:
            worker.writer.transport.abort()
        except RuntimeError:  # its loop is closed already
            pass
        try:
            worker.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    processes = [(w.process, w.sock) for w in workers]
    if wait:
        _stop_processes(processes)
    else:
        threading.Thread(target=_stop_processes, args=(processes,), daemon=True).start()


def _stop_processes(started: list[tuple[BaseProcess, socket.socket]]) -> None:
    deadline = time.monotonic() + JOIN_SECONDS
    for process, sock in started:
        sock.close()
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.exitcode is None:
            process.kill()
            process.join()
        process.close()
