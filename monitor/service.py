"""`monitor run`: the long-running service.

APScheduler 3.x on an asyncio loop. Each feed has one date-triggered job, set from its
``next_poll_at`` in the database and set again after every poll (interval plus jitter, or
backoff), so a restart picks up where the last run stopped and a feed that missed several
polls during downtime catches up once. A watcher job re-reads the YAML files when they change;
an invalid change is logged and the service keeps its previous configuration. SIGTERM and
SIGINT stop it within seconds. A lock file next to the database keeps a second instance out.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from . import logs
from .config import RESTART_SETTINGS, FeedConfig
from .core import Monitor, load_config
from .errors import AlreadyRunning, ConfigError, MonitorError

log = logging.getLogger("monitor.service")
WATCH_EVERY = 2.0  # seconds between checks of the YAML files
STOP_GRACE = 5.0  # seconds in-flight polls get to finish after a stop signal
RETRY_EVERY = 30.0  # seconds between looks for pages whose retry is due
ALERT_EVERY = 10.0  # seconds between looks for stories to alert on and deliveries due


class Lock:
    """An exclusive, non-blocking flock on ``<database>.lock``; released when the process ends,
    however it ends."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(str(db_path) + ".lock")
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(f"another monitor (pid {holder}) is already running on "
                                 f"{self.path.with_suffix('')}; stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Service:
    def __init__(self, monitor: Monitor, web: tuple[str, int, str | None] | None = None
                 ) -> None:
        self.monitor = monitor
        self.web = web  # host, port, password: serve the reading room beside the polls
        self.lock = Lock(monitor.database)
        self.tasks: dict[str, asyncio.Task[Any]] = {}  # feed URL -> its poll in flight
        self.stamps = self._stamps()
        self.stopping = asyncio.Event()

    def run(self) -> None:
        self.lock.acquire()
        try:
            asyncio.run(self._main())
        finally:
            self.lock.release()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig)
        settings = self.monitor.settings
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone=settings.timezone)
        async with self.monitor.pipeline() as pipeline:
            self.pipeline = pipeline
            # workers start now, beside the first feed fetches, not on the first page
            starting = asyncio.create_task(pipeline.start())
            self.monitor.begin_alert_rules()
            self.scheduler.start()
            self._schedule_all(self.monitor.sync_feeds())
            self.scheduler.add_job(self._watch, "interval", seconds=WATCH_EVERY, id="watch",
                                   max_instances=1, coalesce=True)
            self.scheduler.add_job(self._retry_pages, "interval", seconds=RETRY_EVERY,
                                   id="retries", max_instances=1, coalesce=True)
            self.scheduler.add_job(self._alerts, "interval", seconds=ALERT_EVERY,
                                   id="alerts", max_instances=1, coalesce=True)
            self._schedule_digest()
            log.info("service started", extra={"outcome": f"{len(self._feeds())} feeds, "
                                                          f"database {self.monitor.database}"})
            server = self._serve() if self.web else None
            await self.stopping.wait()
            if server is not None:
                server.should_exit = True
            self.scheduler.shutdown(wait=False)
            await self._finish_in_flight()
            starting.cancel()
        log.info("service stopped")

    def _serve(self) -> Any:
        """uvicorn on this loop; its own signal handling off (the service's stops it)."""
        import uvicorn

        from .web import make_app

        assert self.web is not None
        host, port, password = self.web
        config = uvicorn.Config(make_app(self.monitor, password, host), host=host, port=port,
                                log_level="warning", server_header=False)
        server = uvicorn.Server(config)
        # uvicorn's serve() takes SIGTERM and SIGINT over while it runs (capture_signals);
        # here they are the service's, which stops the server itself (should_exit)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self.tasks["web"] = asyncio.create_task(server.serve())
        log.info("serving the reading room", extra={"outcome": f"http://{host}:{port}/"})
        return server

    def _stop(self, sig: int) -> None:
        log.info("stopping", extra={"outcome": signal.Signals(sig).name})
        self.stopping.set()

    async def _finish_in_flight(self) -> None:
        """Give polls a moment to end, then cancel them. A cancel lands between awaits, never
        inside a database transaction (those run synchronously), so nothing is half-written."""
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # -- feeds -------------------------------------------------------------------------------

    def _feeds(self) -> dict[str, FeedConfig]:
        return self.monitor.enabled_feeds()

    def _schedule_all(self, rows: dict[str, dict[str, Any]]) -> None:
        """Every enabled feed scheduled from its row (*rows*: the feeds table by URL)."""
        feeds = self._feeds()
        for job in self.scheduler.get_jobs():
            if job.id.startswith("feed:") and job.id[5:] not in feeds:
                job.remove()
                log.info("feed unscheduled", extra={"feed": job.id[5:]})
        now = self.monitor.clock()
        for url in feeds:
            row = rows.get(url, {})
            if row.get("gone_at"):
                continue  # 410 Gone: reported by `monitor status`, not polled
            if self.scheduler.get_job(f"feed:{url}") or url in self.tasks:
                continue
            stored = row.get("next_poll_at")
            when = max(datetime.fromisoformat(stored), now) if stored else now
            self._schedule(url, when)

    def _schedule(self, url: str, when: datetime) -> None:
        self.scheduler.add_job(self._start_poll, DateTrigger(run_date=when), args=[url],
                               id=f"feed:{url}", replace_existing=True, max_instances=1,
                               misfire_grace_time=None, coalesce=True)

    async def _start_poll(self, url: str) -> None:
        if url in self.tasks or self.stopping.is_set():
            return  # at most one poll of a feed in flight
        self.tasks[url] = asyncio.create_task(self._poll(url))

    async def _poll(self, url: str) -> None:
        try:
            feed = self._feeds().get(url)
            if feed is None:
                return  # removed from feeds.yaml while waiting
            try:
                result = await self.pipeline.poll_feed(feed)
            except Exception:  # a bug, not an expected failure: log once, keep serving
                log.exception("poll raised", extra={"feed": url})
                self._schedule(url, self.monitor.clock() + timedelta(
                    seconds=feed.interval or self.monitor.settings.default_interval))
                return
            if result.next_poll_at is not None and not self.stopping.is_set() \
                    and url in self._feeds():
                self._schedule(url, result.next_poll_at)
        finally:
            self.tasks.pop(url, None)

    async def _retry_pages(self) -> None:
        if self.stopping.is_set():
            return
        task = self.tasks["retries"] = asyncio.create_task(self.pipeline.retry_pages())
        try:
            tried, arrived = await task
        except Exception:  # a bug, not an expected failure: log once, keep serving
            log.exception("page retries raised")
            return
        finally:
            self.tasks.pop("retries", None)
        if tried:
            log.info("pages retried", extra={"outcome": f"{arrived} of {tried} arrived"})

    async def _alerts(self) -> None:
        """In a thread, on its own connection: a slow or failing target never holds polls."""
        if self.stopping.is_set():
            return
        try:
            sent, failed = await self.monitor.alert()
        except MonitorError as exc:
            log.error("alerts failed", extra={"outcome": str(exc)})
            return
        except Exception:  # a bug: logged, the service goes on
            log.exception("alerts raised")
            return
        if sent or failed:
            log.info("alerts", extra={"outcome": f"{sent} sent, {failed} not delivered"})

    # -- configuration -----------------------------------------------------------------------

    def _stamps(self) -> dict[Path, tuple[float, int] | None]:
        out: dict[Path, tuple[float, int] | None] = {}
        paths = self.monitor.paths
        for path in (paths.feeds, paths.keywords, paths.settings):
            try:
                st = path.stat()
                out[path] = (st.st_mtime, st.st_size)
            except OSError:
                out[path] = None
        return out

    async def _watch(self) -> None:
        """A changed file is reloaded whole or not at all, off the event loop: validated, then
        its feeds and alert rules written to the database on a connection of its own; only
        then is the running configuration swapped (in memory: nothing there can fail). An
        invalid file waits for its next edit; a database that refused is tried again."""
        stamps = await asyncio.to_thread(self._stamps)
        if stamps == self.stamps:
            return
        try:
            config = await asyncio.to_thread(load_config, self.monitor.paths)
        except ConfigError as exc:
            self.stamps = stamps
            log.error("configuration not reloaded, still running on the previous one",
                      extra={"outcome": str(exc)})
            return
        try:
            rows = await asyncio.to_thread(self.monitor.prepare, config)
        except MonitorError as exc:  # the database was locked too long, the disk full
            log.error("configuration not reloaded yet, still running on the previous one; "
                      "trying again", extra={"outcome": str(exc)})
            return
        self.stamps = stamps
        old = self.monitor.enabled_feeds()
        changed = self.monitor.reload(config)
        self.pipeline.reconfigure(config.settings, self.monitor.rules)
        if "log_format" in changed:
            logs.setup(logging.getLogger("monitor").level,
                       as_json=config.settings.log_format == "json")
        added = set(self._feeds()) - set(old)
        self._schedule_all(rows)
        if {"digest_time", "timezone"} & set(changed):
            self._schedule_digest()
        log.info("configuration reloaded", extra={
            "outcome": f"{len(self._feeds())} feeds ({len(added)} new), "
                       f"{len(config.rules.concepts)} concepts"
                       + (f"; settings changed: {', '.join(changed)}" if changed else "")})
        later = sorted(RESTART_SETTINGS & set(changed))
        if later:
            log.warning("settings that take effect at the next start", extra={
                "outcome": f"{', '.join(later)}: restart the service to apply"})

    # -- digest ------------------------------------------------------------------------------

    def _write_digest(self, day: date) -> list[Path]:
        with self.monitor.apart() as monitor:  # in a thread: a connection of its own
            return monitor.write_daily_digest(day)

    def _housekeeping(self) -> None:
        with self.monitor.apart() as monitor:  # in a thread: a connection of its own
            dropped = monitor.housekeeping()
        if dropped:
            log.info("retention", extra={"outcome": f"text of {dropped} old unflagged "
                                                    "articles dropped"})

    def _relearn(self) -> dict[str, Any] | None:
        with self.monitor.apart() as monitor:  # in a thread: a connection of its own
            return monitor.relearn()

    def _schedule_digest(self) -> None:
        s = self.monitor.settings
        hour, minute = (int(x) for x in s.digest_time.split(":"))
        self.scheduler.add_job(self._digest_job, CronTrigger(hour=hour, minute=minute,
                                                             timezone=s.timezone),
                               id="digest", replace_existing=True, max_instances=1,
                               coalesce=True, misfire_grace_time=3600)

    async def _digest_job(self) -> None:
        try:
            day = self.monitor.today() - timedelta(days=1)
            written = await asyncio.to_thread(self._write_digest, day)
            log.info("digest written", extra={"outcome": ", ".join(str(p) for p in written)})
        except MonitorError as exc:
            log.error("digest failed", extra={"outcome": str(exc)})
        except Exception:
            log.exception("digest job raised")
        try:  # once a day with the digest, whatever became of it (an email that failed)
            await asyncio.to_thread(self._housekeeping)
        except MonitorError as exc:
            log.error("housekeeping failed", extra={"outcome": str(exc)})
        except Exception:
            log.exception("housekeeping raised")
        try:  # and what the day's labels teach, if any came
            model = await asyncio.to_thread(self._relearn)
            if model is not None:
                self.monitor.refresh_learned()
                self.pipeline.reconfigure(self.monitor.settings, self.monitor.rules)
                log.info("learned from the labels", extra={"outcome": (
                    f"model {model['id']} from {sum(model['labels'].values())} labels")})
        except MonitorError as exc:
            log.error("learning failed", extra={"outcome": str(exc)})
        except Exception:
            log.exception("learning raised")

