"""The facade: one Monitor, built by make_monitor() from validated configuration. The CLI and
the service call its methods and hold no logic of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from . import alerting, learning
from .check import FeedCheck, check_feed, feed_health
from .config import FeedConfig, Paths, Settings, load_feeds, load_settings
from .digest import Digest, build_digest, day_bounds, render
from .digest.publish import email_digest, write_digest
from .errors import ConfigError
from .fetch import Fetcher
from .interrupt import interruptible
from .models import CycleSummary, FeedListing, FeedResult, Score
from .pipeline import CLUSTER_DAYS, Pipeline, open_pipeline
from .scoring import Rules, load_rules, score
from .scoring.examples import read_examples
from .scoring.suggest import Quality
from .store import SEARCH_LIMIT as SEARCH_LIMIT
from .store import Store

T = TypeVar("T")


@dataclass
class Config:
    settings: Settings
    feeds: list[FeedConfig]
    rules: Rules


def load_config(paths: Paths, *, need_feeds: bool = True) -> Config:
    """Validate all three files; raises ConfigError (file:line: key: message)."""
    settings = load_settings(paths.settings)
    rules = load_rules(paths.keywords)
    feeds = load_feeds(paths.feeds) if need_feeds or paths.feeds.exists() else []
    return Config(settings, list(feeds), rules)


Clock = Callable[[], datetime]

def utc_now() -> datetime:
    return datetime.now(UTC)


class Monitor:
    """*clock* answers "what time is it" for everything that depends on the day (the digest,
    rescoring, health windows, page retries); tests pass their own."""

    def __init__(self, paths: Paths, config: Config, store: Store,
                 clock: Clock = utc_now) -> None:
        self.paths, self._config, self._store, self.clock = paths, config, store, clock
        self.refresh_learned()

    def today(self) -> date:
        """Today in the configured time zone."""
        return self.clock().astimezone(ZoneInfo(self.settings.timezone)).date()

    @property
    def settings(self) -> Settings:
        return self._config.settings

    @property
    def database(self) -> Path:
        return self._store.path

    @property
    def feeds(self) -> list[FeedConfig]:
        """The configured feeds (feeds.yaml), enabled or not."""
        return list(self._config.feeds)

    @property
    def rules(self) -> Rules:
        return self._config.rules

    def enabled_feeds(self) -> dict[str, FeedConfig]:
        return {f.url: f for f in self._config.feeds if f.enabled}

    def use_feeds(self, feeds: list[FeedConfig]) -> None:
        """These feeds instead of the configured ones (the demo's, a script's)."""
        self._config = replace(self._config, feeds=feeds)

    def article_count(self) -> int:
        return self._store.count_articles()

    def pages_waiting(self) -> int:
        """Articles whose page is waiting for another try."""
        return self._store.pages_waiting()

    def reload(self, config: Config) -> list[str]:
        """Take a new, validated configuration; returns the names of the settings that
        changed. The database stays open on the file it was opened on (RESTART_SETTINGS)."""
        old, self._config = self._config.settings, config
        self.refresh_learned()
        return [name for name in Settings.model_fields
                if getattr(old, name) != getattr(config.settings, name)]

    def prepare(self, config: Config) -> dict[str, dict[str, Any]]:
        """A new configuration's feeds and alert rules written to the database, on a
        connection of its own (callable from another thread), before it is taken: the feeds
        table's rows by URL. Raises StorageError, and nothing is taken."""
        with self.apart() as other:
            other._config = config
            with other._store.transaction():
                rows = other.sync_feeds()
                other.begin_alert_rules()
            return rows

    def sync_feeds(self) -> dict[str, dict[str, Any]]:
        """The feeds table made to match the configuration; every row, by URL."""
        self._sync()
        return {r["url"]: r for r in self._store.feeds()}

    def _sync(self) -> None:
        self._store.sync_feeds(FeedListing(f.url, f.name, tuple(f.tags), f.enabled)
                               for f in self._config.feeds)

    def revive_feed(self, url: str) -> bool:
        return self._store.revive_feed(url)

    @contextmanager
    def apart(self) -> Iterator[Monitor]:
        """This monitor on a connection of its own, for work in another thread (the service's
        daily digest): a connection is never shared between threads."""
        other = Monitor(self.paths, self._config, Store(self._store.path), self.clock)
        try:
            yield other
        finally:
            other.close()

    def close(self) -> None:
        self._store.close()

    # -- polling -----------------------------------------------------------------------------

    def poll_once(self, on_result: Callable[[FeedResult], None] | None = None,
                  allow_private: bool | None = None) -> CycleSummary:
        """One cycle, then the alerts that are due. SIGTERM or SIGINT cancels it: writes in
        flight finish, the workers are shut down, and Interrupted is raised."""
        async def cycle() -> CycleSummary:
            summary = await self.poll_async(on_result, allow_private=allow_private)
            summary.alerts_sent, summary.alerts_failed = await self.alert()
            await asyncio.to_thread(self._apart, Monitor.housekeeping)
            return summary
        return asyncio.run(interruptible(cycle()))

    async def poll_async(self, on_result: Callable[[FeedResult], None] | None = None,
                         feeds: Iterable[FeedConfig] | None = None,
                         allow_private: bool | None = None,
                         pipeline: Pipeline | None = None) -> CycleSummary:
        """Poll every enabled feed once, with *pipeline* (kept across polls) or a new one."""
        self._sync()
        self.begin_alert_rules()
        gone = {r["url"] for r in self._store.feeds() if r.get("gone_at")}
        feeds = [f for f in (feeds if feeds is not None else self._config.feeds)
                 if f.enabled and f.url not in gone]
        if pipeline is not None:
            return await self._cycle(pipeline, feeds, on_result)
        async with self.pipeline(allow_private=allow_private) as pipeline:
            return await self._cycle(pipeline, feeds, on_result)

    @staticmethod
    async def _cycle(pipeline: Pipeline, feeds: list[FeedConfig],
                     on_result: Callable[[FeedResult], None] | None) -> CycleSummary:
        """The feeds, then the pages whose retry is due."""
        bugs = pipeline.bugs
        summary = await pipeline.poll(feeds, on_result)
        summary.retried, summary.recovered = await pipeline.retry_pages()
        summary.bugs = pipeline.bugs - bugs
        return summary

    async def alert(self) -> tuple[int, int]:
        """send_alerts() in a thread on its own connection: polling never waits for it."""
        if not self.settings.alerts:
            return 0, 0

        def run() -> tuple[int, int]:
            with self.apart() as monitor:
                return monitor.send_alerts()
        return await asyncio.to_thread(run)

    @asynccontextmanager
    async def pipeline(self, allow_private: bool | None = None) -> AsyncIterator[Pipeline]:
        """A fetcher and an extraction pool to keep across polls, as the service does."""
        async with open_pipeline(self.settings, self._config.rules, self._store.path,
                                 self.clock, allow_private) as pipeline:
            yield pipeline

    def feed_status(self) -> list[dict[str, Any]]:
        """Every feed's health, for `monitor status` and the feeds page."""
        return [feed_health(r) for r in self._store.feed_health(
            self.clock() - timedelta(days=7))]

    def check_feed(self, url: str, first_page: bool = True) -> FeedCheck:
        """One feed through the pipeline's steps, nothing stored; parsing and extraction in a
        thread (one page does not pay for starting the worker processes)."""
        async def run() -> FeedCheck:
            settings = self.settings.model_copy(update={"extract_workers": 1})
            async with Fetcher(settings) as fetcher:
                pipeline = Pipeline(settings, self._config.rules, self._store.path, fetcher,
                                    self.clock)
                try:
                    return await check_feed(pipeline, url, first_page, self.clock())
                finally:
                    pipeline.close()
        return asyncio.run(run())

    # -- reading room (monitor serve) ----------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Monitor]:
        """This monitor on a read-only connection of its own: what a web page uses."""
        other = Monitor(self.paths, self._config, Store.readonly(self._store.path), self.clock)
        try:
            yield other
        finally:
            other.close()

    def _apart(self, method: Callable[[Monitor], T]) -> T:
        with self.apart() as monitor:
            return method(monitor)

    def story(self, key: int) -> dict[str, Any] | None:
        """An article with its explanation, and every copy of its story."""
        article = self.explain(str(key))
        if article is None:
            return None
        cluster = article.get("cluster_id") or article["id"]
        copies = self._store.cluster_members([cluster])
        return {"article": article, "copies": copies or [article], "cluster": cluster}

    def search(self, query: str, *, first: date | None = None, last: date | None = None,
               **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        """Full-text search; *first* and *last* are days in the configured time zone."""
        tz = self.settings.timezone
        start = day_bounds(first, tz)[0] if first else None
        end = day_bounds(last, tz)[1] if last else None
        return self._store.search(query, start=start, end=end, **filters)

    def labels(self, article_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        return self._store.labels(article_ids)

    def label(self, article_id: int, label: str, note: str | None = None) -> bool:
        """A reader's judgement of an article; False when there is no such article."""
        if self._store.article(str(article_id)) is None:
            return False
        self._store.add_label(article_id, label, note, self.clock())
        return True

    def star(self, article_id: int, on: bool = True) -> bool:
        """Save a story to the reader's list (or take it off); False when there is none."""
        if self._store.article(str(article_id)) is None:
            return False
        self._store.star(article_id, on, self.clock())
        return True

    def starred(self, article_ids: list[int] | None = None) -> list[dict[str, Any]]:
        return self._store.starred(article_ids)

    def export_labels(self) -> Iterator[str]:
        return learning.export_lines(self._store)

    def suggest_edits(self, limit: int = 8) -> tuple[Quality, list[learning.Suggestion]]:
        """Edits to the keywords that the labels argue for, with their effect on the labels
        and on the stored articles (learning.suggest)."""
        return learning.suggest(self._store, self._config.rules, limit)

    def learn(self) -> dict[str, Any]:
        """Train on every label and keep the model (learning.learn); it acts from now on when
        there are enough labels."""
        model = learning.learn(self._store, self._config.rules, self.clock())
        self.refresh_learned()
        return model

    def relearn(self) -> dict[str, Any] | None:
        """Learn again if labels came since the latest model (the service, once a day)."""
        model = learning.relearn(self._store, self._config.rules, self.clock())
        self.refresh_learned()
        return model

    def refresh_learned(self) -> None:
        """The rules with what was learned attached, when it may act (learning.attach)."""
        rules = learning.attach(self._store, self._config.rules, self.settings.learning)
        if rules is not self._config.rules:
            self._config = replace(self._config, rules=rules)

    def import_labels(self, lines: Iterable[str], source: str) -> tuple[int, int, list[str]]:
        """Labelled examples from JSON lines: (added, updated, one message per bad line)."""
        examples, errors = read_examples(lines, source)
        added, updated = self._store.add_examples(examples, source, self.clock())
        return added, updated, errors

    # -- alerts ------------------------------------------------------------------------------

    def begin_alert_rules(self) -> None:
        """Note when each alert rule began (see alerting.begin_rules)."""
        alerting.begin_rules(self._store, self.settings.alerts, self.clock())

    def send_alerts(self) -> tuple[int, int]:
        """Plan and deliver the alerts due (alerting.send_alerts). Blocking: callers on an
        event loop run it in a thread, on a connection of its own (apart())."""
        return alerting.send_alerts(self._store, self.settings.alerts, self.clock())

    def test_alerts(self) -> list[tuple[str, str, str | None]]:
        return alerting.test_alerts(self.settings.alerts)

    # -- scoring -----------------------------------------------------------------------------

    def score(self, title: str, text: str) -> Score:
        return score(self._config.rules, title, text)

    def explain(self, key: str) -> dict[str, Any] | None:
        """The stored article and a fresh explanation under the current rules."""
        row = self._store.article(key)
        if row is None:
            return None
        row["explanation"] = self.score(row["title"] or "", row["text"] or "")
        return row

    def rescore(self, since: date | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
        """Apply the current keywords (and what was learned) to stored articles; returns the
        stories whose flag changes (learning.rescore)."""
        start = day_bounds(since, self.settings.timezone)[0] if since else None
        return learning.rescore(self._store, self._config.rules, start, self.clock(), dry_run)

    # -- digest ------------------------------------------------------------------------------

    def digest(self, day: date | None = None, since: date | None = None) -> Digest:
        """The digest of *day* (default today), or of every day from *since* to today."""
        tz = self.settings.timezone
        today = self.today()
        first, last = (since, today) if since else (day or today, day or today)
        start, end = day_bounds(first, tz, last)
        rows = self._store.flagged_between(start, end)
        clusters = sorted({r["cluster_id"] for r in rows if r.get("cluster_id")})
        label = first.isoformat() if first == last else f"{first} to {last}"
        return build_digest(rows, self._store.cluster_members(clusters), self._store.feeds(),
                            label, tz, self.clock(), pages_waiting=self._store.pages_waiting())

    def render_digest(self, day: date | None = None, fmt: str = "text",
                      since: date | None = None) -> str:
        return render(self.digest(day, since), fmt)

    def apply_retention(self) -> int:
        """Drop the old text the `retention_days` setting lets go; returns how many articles."""
        days = self.settings.retention_days
        if not days:
            return 0
        return self._store.drop_old_text(self.clock() - timedelta(days=days))

    def housekeeping(self) -> int:
        """Retention (when set), and the near-duplicate keys no new article can match any
        more (at most once a day). Returns how many articles' text retention dropped."""
        dropped = self.apply_retention()
        now = self.clock()
        self._store.prune_bands(now - timedelta(days=CLUSTER_DAYS + 1), now)
        return dropped

    def compact(self) -> tuple[int, int]:
        """Retention now, then VACUUM: (articles whose text went, bytes given back)."""
        before = self._store.path.stat().st_size
        dropped = self.apply_retention()
        self._store.compact()
        return dropped, before - self._store.path.stat().st_size

    def write_daily_digest(self, day: date) -> list[Path]:
        """Write the day's digest into digest_dir in every file format; email it once if
        email is configured."""
        digest = self.digest(day)
        written, emailed = write_digest(self._store, digest, Path(self.settings.digest_dir),
                                        self.clock())
        if self.settings.email.host and not emailed:
            self.send_digest(day, digest)
        return written

    def send_digest(self, day: date, digest: Digest | None = None) -> str:
        """Email the day's digest now (HTML with a text alternative); returns the recipients."""
        return email_digest(self._store, digest or self.digest(day), self.settings.email,
                            self.clock())


def make_monitor(paths: Paths, *, need_feeds: bool = True, clock: Clock = utc_now) -> Monitor:
    """Validate configuration first; the database is opened only when it is valid."""
    config = load_config(paths, need_feeds=need_feeds)
    db_path = paths.db or config.settings.database
    if not str(db_path):
        raise ConfigError("no database path")
    return Monitor(paths, config, Store(db_path), clock)
