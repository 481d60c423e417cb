"""The facade: one Monitor, built by make_monitor() from validated configuration. The CLI and
the service call its methods and hold no logic of their own."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from . import alerts
from .atomic import write_text
from .check import FeedCheck, check_feed
from .config import AlertRule, FeedConfig, Paths, Settings, load_feeds, load_settings
from .digest import Digest, build_digest, day_bounds, render
from .digest.mail import build_message, send
from .errors import ConfigError, Interrupted
from .fetch import Fetcher
from .models import CycleSummary, FeedResult, Score
from .pipeline import CLUSTER_DAYS, Pipeline
from .scoring import Rules, load_rules, score
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
    return Config(settings, feeds, rules)


Clock = Callable[[], datetime]
_FROZEN = False  # gc.freeze() done in this process
ALERT_LEASE = timedelta(minutes=10)  # a claimed alert is another process's after this
# how far before the newest story a rule considered it looks again: a poll stores its articles
# dated when it began, up to its deadline later; a rescore dates them when it began
CONSIDER_MARGIN = timedelta(hours=1)


def iso_minus(stamp: str, delta: timedelta) -> str:
    return (datetime.fromisoformat(stamp) - delta).isoformat(timespec="seconds")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Monitor:
    """*clock* answers "what time is it" for everything that depends on the day (the digest,
    rescoring, health windows, page retries); tests pass their own."""

    def __init__(self, paths: Paths, config: Config, store: Store,
                 clock: Clock = utc_now) -> None:
        self.paths, self.config, self.store, self.clock = paths, config, store, clock

    def today(self) -> date:
        """Today in the configured time zone."""
        return self.clock().astimezone(ZoneInfo(self.settings.timezone)).date()

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def database(self) -> Path:
        return self.store.path

    def enabled_feeds(self) -> dict[str, FeedConfig]:
        return {f.url: f for f in self.config.feeds if f.enabled}

    def reload(self, config: Config) -> list[str]:
        """Take a new, validated configuration; returns the names of the settings that
        changed. The database stays open on the file it was opened on (RESTART_SETTINGS)."""
        old, self.config = self.config.settings, config
        return [name for name in Settings.model_fields
                if getattr(old, name) != getattr(config.settings, name)]

    def prepare(self, config: Config) -> dict[str, dict[str, Any]]:
        """A new configuration's feeds and alert rules written to the database, on a
        connection of its own (callable from another thread), before it is taken: the feeds
        table's rows by URL. Raises StorageError, and nothing is taken."""
        with self.apart() as other:
            other.config = config
            with other.store.transaction():
                rows = other.sync_feeds()
                other.begin_alert_rules()
            return rows

    def sync_feeds(self) -> dict[str, dict[str, Any]]:
        """The feeds table made to match the configuration; every row, by URL."""
        self.store.sync_feeds(self.config.feeds)
        return {r["url"]: r for r in self.store.feeds()}

    def revive_feed(self, url: str) -> bool:
        return self.store.revive_feed(url)

    @contextmanager
    def apart(self) -> Iterator[Monitor]:
        """This monitor on a connection of its own, for work in another thread (the service's
        daily digest): a connection is never shared between threads."""
        other = Monitor(self.paths, self.config, Store(self.store.path), self.clock)
        try:
            yield other
        finally:
            other.close()

    def close(self) -> None:
        self.store.close()

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
        return asyncio.run(_interruptible(cycle()))

    async def poll_async(self, on_result: Callable[[FeedResult], None] | None = None,
                         feeds: Iterable[FeedConfig] | None = None,
                         allow_private: bool | None = None,
                         pipeline: Pipeline | None = None) -> CycleSummary:
        """Poll every enabled feed once, with *pipeline* (kept across polls) or a new one."""
        self.store.sync_feeds(self.config.feeds)
        self.begin_alert_rules()
        gone = {r["url"] for r in self.store.feeds() if r.get("gone_at")}
        feeds = [f for f in (feeds if feeds is not None else self.config.feeds)
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
        # What is alive now (modules, configuration, rules) lives as long as the process:
        # frozen, the collector no longer walks it. A full collection over it took about a
        # tenth of an unchanged re-poll of 400 feeds.
        global _FROZEN
        if not _FROZEN:  # once: what later polls leave behind is theirs to collect
            gc.collect()
            gc.freeze()
            _FROZEN = True
        async with Fetcher(self.settings, allow_private=allow_private) as fetcher:
            pipeline = Pipeline(self.settings, self.config.rules, self.store, fetcher,
                                self.clock)
            try:
                yield pipeline
            finally:
                pipeline.close()

    def feed_status(self) -> list[dict[str, Any]]:
        """Every feed's health, for `monitor status`."""
        rows = self.store.feed_health(self.clock() - timedelta(days=7))
        out = []
        for r in rows:
            state = "gone" if r.get("gone_at") else "disabled" if not r["enabled"] else \
                r["last_status"] or "not polled yet"
            out.append({
                "url": r["url"], "name": r["name"], "state": state,
                "last_success_at": r["last_success_at"], "last_error": r["last_error"],
                "consecutive_failures": r["consecutive_failures"] or 0,
                "next_poll_at": r["next_poll_at"], "articles_7d": r["recent_articles"],
                "polls": r["polls"] or 0, "moved_to": r["moved_to"],
                "not_modified_share": (r["not_modified"] or 0) / r["polls"] if r["polls"] else 0.0,
                "pages_waiting": r["pages_waiting"],
            })
        return out

    def feed_title(self, url: str) -> str | None:
        """The feed's own title, or None when it cannot be fetched or parsed."""
        report = self.check_feed(url, first_page=False)
        return report.title

    def check_feed(self, url: str, first_page: bool = True) -> FeedCheck:
        """One feed through the pipeline's steps, nothing stored; parsing and extraction in a
        thread (one page does not pay for starting the worker processes)."""
        async def run() -> FeedCheck:
            settings = self.settings.model_copy(update={"extract_workers": 1})
            async with Fetcher(settings) as fetcher:
                pipeline = Pipeline(settings, self.config.rules, self.store, fetcher,
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
        other = Monitor(self.paths, self.config, Store.readonly(self.store.path), self.clock)
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
        copies = self.store.cluster_members([cluster])
        return {"article": article, "copies": copies or [article], "cluster": cluster}

    def search(self, query: str, *, first: date | None = None, last: date | None = None,
               **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        """Full-text search; *first* and *last* are days in the configured time zone."""
        tz = self.settings.timezone
        start = day_bounds(first, tz)[0] if first else None
        end = day_bounds(last, tz)[1] if last else None
        return self.store.search(query, start=start, end=end, **filters)

    def labels(self, article_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        return self.store.labels(article_ids)

    def label(self, article_id: int, label: str, note: str | None = None) -> bool:
        """A reader's judgement of an article; False when there is no such article."""
        if self.store.article(str(article_id)) is None:
            return False
        self.store.add_label(article_id, label, note, self.clock())
        return True

    def export_labels(self) -> Iterator[str]:
        """JSON lines {id, title, text, label (1 relevant, 0 not)} for eval_relevance.py."""
        for row in self.store.labelled_articles():
            yield json.dumps({**row, "label": 1 if row["label"] == "relevant" else 0},
                             ensure_ascii=False)

    # -- alerts ------------------------------------------------------------------------------

    def begin_alert_rules(self) -> None:
        """Note when each alert rule began, before polling: it alerts on what is flagged from
        then on (a rule added to an old archive does not alert on a year of stories)."""
        for i, rule in enumerate(self.settings.alerts):
            self.store.begin_alert_rule(alerts.rule_name(rule, i), self.clock())

    def send_alerts(self) -> tuple[int, int]:
        """Consider, for every rule, the stories flagged since it last looked; send those
        waiting as the hour allows; deliver the messages due (new ones, and failed ones whose
        next try has come). Blocking: callers on an event loop run it in a thread, on a
        connection of its own (apart()). Returns (sent, failed) deliveries."""
        now = self.clock()
        rules = {alerts.rule_name(r, i): r for i, r in enumerate(self.settings.alerts)}
        for name, rule in rules.items():
            self._plan_alerts(name, rule, now)
        sent = failed = 0
        for row in self.store.claim_due_alerts(now, ALERT_LEASE):
            rule = rules.get(row["rule"])
            if rule is None:
                self.store.alert_tried(row["id"], [], "rule no longer configured", now,
                                       None, False)
                continue
            done = set(json.loads(row["delivered"] or "[]"))
            delivered, errors = alerts.deliver(rule.urls, row["title"], row["body"], done)
            error = "; ".join(errors) or None
            retry = alerts.next_try(row["attempts"] + 1, now) if error else None
            self.store.alert_tried(row["id"], delivered, error, now, retry, not error)
            if error:
                failed += 1
                alerts.log.warning("alert not delivered", extra={"outcome": (
                    f"{row['rule']}: {row['title'][:80]}: {error}; "
                    + (f"next try at {retry:%H:%M:%S}" if retry else "given up"))})
            else:
                sent += 1
        return sent, failed

    def _plan_alerts(self, name: str, rule: AlertRule, now: datetime) -> None:
        """One rule's new stories recorded and its waiting ones released, in one transaction
        (two processes never plan the same story twice). Reads only: the write lock is taken
        when there is something new or something the hour has room for."""
        began = self.store.alert_rule(name)
        if began is None:  # a rule added since the last reload, or a new database
            self.store.begin_alert_rule(name, now)
            began = self.store.alert_rule(name)
            assert began is not None
        since, considered = began
        if considered:  # with a margin: a poll stores its articles dated when it began
            since = max(since, iso_minus(considered, CONSIDER_MARGIN))
        hour_ago = now - timedelta(hours=1)
        room = self.store.alert_messages_since(name, hour_ago) < rule.max_per_hour
        if not self.store.alert_candidates(name, since) and \
                not (room and self.store.waiting_alerts(name)):
            return
        with self.store.transaction():
            candidates = self.store.alert_candidates(name, since)
            if candidates:
                self.store.add_alerts(name, alerts.consider(rule, candidates), now)
                self.store.considered(name, max(c["flagged_at"] for c in candidates))
            alone, summarised, summary = alerts.release(
                rule, name, self.store.waiting_alerts(name),
                self.store.alert_messages_since(name, hour_ago))
            self.store.release_alerts(name, alone, summarised, summary, now)

    def test_alerts(self) -> list[tuple[str, str, str | None]]:
        """A sample through every rule's every target: (rule, target, error or None)."""
        sample = {"id": 0, "story": 0, "title": "monitor: a test alert", "score": 12.0,
                  "url": "https://example.org/monitor-test", "feed_url": "", "feed_name":
                  "monitor alerts test", "tags": {"technology": ["facial recognition"]},
                  "matches": [{"term": "facial recognition", "contribution": 6.0}],
                  "text": "This is a test of the alert rules in config/settings.yaml. "
                          "Nothing was flagged."}
        title, body = alerts.story_message(sample)
        out = []
        for i, rule in enumerate(self.settings.alerts):
            for n, url in enumerate(rule.urls):
                delivered, errors = alerts.deliver([url], title, body, set())
                out.append((alerts.rule_name(rule, i), f"target {n + 1} ({url.split('://')[0]})",
                            errors[0] if errors else None))
        return out

    # -- scoring -----------------------------------------------------------------------------

    def score(self, title: str, text: str) -> Score:
        return score(self.config.rules, title, text)

    def explain(self, key: str) -> dict[str, Any] | None:
        """The stored article and a fresh explanation under the current rules."""
        row = self.store.article(key)
        if row is None:
            return None
        row["explanation"] = self.score(row["title"] or "", row["text"] or "")
        return row

    def rescore(self, since: date | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
        """Apply the current keywords to stored articles; returns the stories whose flag changes."""
        start = day_bounds(since, self.settings.timezone)[0] if since else None
        changes, updates, now = [], [], self.clock()
        for row in self.store.articles_since(start):
            s = self.score(row["title"] or "", row["text"] or "")
            if bool(row["flagged"]) != s.flagged:
                changes.append({"id": row["id"], "title": row["title"], "url": row["url"],
                                "was": bool(row["flagged"]), "now": s.flagged,
                                "score": s.score, "reason": s.reason})
            if dry_run:
                continue
            updates.append({"id": row["id"], "score": s.score, "flagged": s.flagged,
                            "matches": [m.as_dict() for m in s.matches], "tags": s.tags})
            if len(updates) == 500:  # written as it goes: a year of scores is not kept
                self.store.update_scores(updates, now)
                updates = []
        if updates:
            self.store.update_scores(updates, now)
        return changes

    # -- digest ------------------------------------------------------------------------------

    def digest(self, day: date | None = None, since: date | None = None) -> Digest:
        """The digest of *day* (default today), or of every day from *since* to today."""
        tz = self.settings.timezone
        today = self.today()
        first, last = (since, today) if since else (day or today, day or today)
        start, end = day_bounds(first, tz, last)
        rows = self.store.flagged_between(start, end)
        clusters = sorted({r["cluster_id"] for r in rows if r.get("cluster_id")})
        label = first.isoformat() if first == last else f"{first} to {last}"
        return build_digest(rows, self.store.cluster_members(clusters), self.store.feeds(),
                            label, tz, self.clock(), pages_waiting=self.store.pages_waiting())

    def render_digest(self, day: date | None = None, fmt: str = "text",
                      since: date | None = None) -> str:
        return render(self.digest(day, since), fmt)

    def apply_retention(self) -> int:
        """Drop the old text the `retention_days` setting lets go; returns how many articles."""
        days = self.settings.retention_days
        if not days:
            return 0
        return self.store.drop_old_text(self.clock() - timedelta(days=days))

    def housekeeping(self) -> int:
        """Retention (when set), and the near-duplicate keys no new article can match any
        more (at most once a day). Returns how many articles' text retention dropped."""
        dropped = self.apply_retention()
        now = self.clock()
        self.store.prune_bands(now - timedelta(days=CLUSTER_DAYS + 1), now)
        return dropped

    def compact(self) -> tuple[int, int]:
        """Retention now, then VACUUM: (articles whose text went, bytes given back)."""
        before = self.store.path.stat().st_size
        dropped = self.apply_retention()
        self.store.compact()
        return dropped, before - self.store.path.stat().st_size

    def write_daily_digest(self, day: date) -> list[Path]:
        """Write the day's digest into digest_dir in every file format, each whole or not at
        all (a temporary file, then a rename); email it once if email is configured."""
        digest = self.digest(day)
        folder = Path(self.settings.digest_dir)
        written = []
        for fmt, suffix in (("md", "md"), ("html", "html"), ("json", "json"),
                            ("text", "txt"), ("atom", "atom")):
            path = folder / f"{digest.date}.{suffix}"
            write_text(path, render(digest, fmt))
            written.append(path)
        now = self.clock()
        record = self.store.digest_record(digest.date)
        self.store.record_digest(digest.date, len(digest.stories), digest.articles, now)
        if self.settings.email.host and not (record and record.get("sent_at")):
            self.send_digest(day, digest)
        return written

    def send_digest(self, day: date, digest: Digest | None = None) -> str:
        """Email the day's digest now (HTML with a text alternative); returns the recipients."""
        digest = digest or self.digest(day)
        email = self.settings.email
        subject = f"monitor digest {digest.date}: {len(digest.stories)} stories"
        send(email, build_message(email, subject, render(digest, "text"),
                                  render(digest, "html")))
        to = ", ".join(email.to)
        now = self.clock()
        self.store.record_digest(digest.date, len(digest.stories), digest.articles, now,
                                 sent_at=now, sent_to=to)
        return to


async def _interruptible(work: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    caught: list[int] = []

    def stop(signum: int) -> None:
        if not caught:
            caught.append(signum)
            main.cancel()

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in previous:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await work
    except asyncio.CancelledError:
        if caught:
            raise Interrupted(caught[0]) from None
        raise
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)  # sets the default: put back what was there
            signal.signal(signum, handler)


def score_lines(rules: Rules, lines: Iterable[str]) -> Iterator[str]:
    """JSON lines {id, title, text} -> JSON lines {id, score, flagged, matches}, same order.
    A bad line gets an error object in its place, so output stays aligned with input."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            yield json.dumps({"line": n, "error": f"not JSON: {exc}"})
            continue
        if not isinstance(row, dict):
            yield json.dumps({"line": n, "error": f"not a JSON object: {type(row).__name__}"})
            continue
        s = score(rules, str(row.get("title") or ""), str(row.get("text") or ""))
        yield json.dumps({"id": row.get("id"), "score": s.score, "flagged": s.flagged,
                          "matches": [m.as_dict() for m in s.matches], "tags": s.tags,
                          "reason": s.reason}, ensure_ascii=False)


def make_monitor(paths: Paths, *, need_feeds: bool = True, clock: Clock = utc_now) -> Monitor:
    """Validate configuration first; the database is opened only when it is valid."""
    config = load_config(paths, need_feeds=need_feeds)
    db_path = paths.db or config.settings.database
    if not str(db_path):
        raise ConfigError("no database path")
    return Monitor(paths, config, Store(db_path), clock)
