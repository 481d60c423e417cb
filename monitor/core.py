"""The facade: one Monitor, built by make_monitor() from validated configuration. The CLI and
the service call its methods and hold no logic of their own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .config import FeedConfig, Paths, Settings, load_feeds, load_settings
from .digest import Digest, build_digest, day_bounds, render
from .errors import ConfigError
from .fetch import Fetcher
from .models import CycleSummary, FeedResult, Score
from .pipeline import Pipeline, make_executor
from .scoring import Rules, load_rules, score
from .store import Store


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


class Monitor:
    def __init__(self, paths: Paths, config: Config, store: Store) -> None:
        self.paths, self.config, self.store = paths, config, store

    @property
    def settings(self) -> Settings:
        return self.config.settings

    def close(self) -> None:
        self.store.close()

    # -- polling -----------------------------------------------------------------------------

    def poll_once(self, on_result: Callable[[FeedResult], None] | None = None,
                  allow_private: bool | None = None) -> CycleSummary:
        return asyncio.run(self.poll_async(on_result, allow_private=allow_private))

    async def poll_async(self, on_result: Callable[[FeedResult], None] | None = None,
                         feeds: Iterable[FeedConfig] | None = None,
                         allow_private: bool | None = None) -> CycleSummary:
        feeds = [f for f in (feeds if feeds is not None else self.config.feeds) if f.enabled]
        self.store.sync_feeds(self.config.feeds)
        executor = make_executor(self.settings.extract_workers)
        try:
            async with Fetcher(self.settings, allow_private=allow_private) as fetcher:
                pipeline = Pipeline(self.settings, self.config.rules, self.store, fetcher,
                                    executor)
                return await pipeline.poll(feeds, on_result)
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)

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
        changes, updates = [], []
        for row in self.store.articles_since(start):
            s = self.score(row["title"] or "", row["text"] or "")
            if bool(row["flagged"]) != s.flagged:
                changes.append({"id": row["id"], "title": row["title"], "url": row["url"],
                                "was": bool(row["flagged"]), "now": s.flagged,
                                "score": s.score, "reason": s.reason})
            updates.append({"id": row["id"], "score": s.score, "flagged": s.flagged,
                            "matches": [m.as_dict() for m in s.matches], "tags": s.tags})
        if not dry_run:
            self.store.update_scores(updates)
        return changes

    # -- digest ------------------------------------------------------------------------------

    def digest(self, day: date | None = None) -> Digest:
        tz = self.settings.timezone
        day = day or datetime.now(ZoneInfo(tz)).date()
        start, end = day_bounds(day, tz)
        return build_digest(self.store.flagged_between(start, end), day, tz)

    def render_digest(self, day: date | None = None, fmt: str = "text") -> str:
        return render(self.digest(day), fmt)


def score_lines(rules: Rules, lines: Iterable[str]) -> Iterator[str]:
    """JSON lines {id, title, text} -> JSON lines {id, score, flagged, matches}, same order.
    A bad line gets an error object in its place, so output stays aligned with input."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            s = score(rules, str(row.get("title") or ""), str(row.get("text") or ""))
        except (ValueError, AttributeError) as exc:
            yield json.dumps({"line": n, "error": f"not a JSON object: {exc}"})
            continue
        yield json.dumps({"id": row.get("id"), "score": s.score, "flagged": s.flagged,
                          "matches": [m.as_dict() for m in s.matches], "tags": s.tags,
                          "reason": s.reason}, ensure_ascii=False)


def make_monitor(paths: Paths, *, need_feeds: bool = True) -> Monitor:
    """Validate configuration first; the database is opened only when it is valid."""
    config = load_config(paths, need_feeds=need_feeds)
    db_path = paths.db or config.settings.database
    if not str(db_path):
        raise ConfigError("no database path")
    return Monitor(paths, config, Store(db_path))
