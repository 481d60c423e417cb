"""The feeds table: the configured list, each feed's poll state and health."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..models import FeedListing, FeedResult
from .base import StoreBase, dicts, iso, marks


class FeedsMixin(StoreBase):
    def sync_feeds(self, feeds: Iterable[FeedListing]) -> None:
        """Make the feeds table match the configured list (keeps each feed's history)."""
        rows = [{"url": f.url, "name": f.name, "tags": json.dumps(list(f.tags)),
                 "enabled": int(f.enabled)} for f in feeds]
        with self._write():
            if rows:
                self.db.table("feeds").upsert_all(rows, pk="url")
            configured = [r["url"] for r in rows]
            self.db.execute(f"UPDATE feeds SET enabled = 0 WHERE url NOT IN "
                            f"({marks(configured)})", configured)

    def feed(self, url: str) -> dict[str, Any] | None:
        # plain SQL: this runs for every poll, and sqlite-utils introspects the table per call
        cur = self.db.conn.execute("SELECT * FROM feeds WHERE url = ?", [url])
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None

    def feeds(self) -> list[dict[str, Any]]:
        return list(self.db.table("feeds").rows_where(order_by="name"))

    def revive_feed(self, url: str) -> bool:
        """Clear a feed's 'gone' mark so it is polled again; False if there is no such feed."""
        with self._write():
            cur = self.db.execute("UPDATE feeds SET gone_at = NULL, next_poll_at = NULL, "
                                  "consecutive_failures = 0 WHERE url = ?", [url])
        return cur.rowcount > 0

    def feed_health(self, since: datetime) -> list[dict[str, Any]]:
        """Each feed with its articles since *since* and its share of 304 answers."""
        # the pages waiting from their small partial index: SQLite would otherwise count them
        # by reading every article of each feed
        sql = """SELECT f.*, (SELECT count(*) FROM articles a WHERE a.feed_url = f.url
                               AND a.fetched_at >= ?) AS recent_articles,
                        coalesce(w.n, 0) AS pages_waiting
                 FROM feeds f LEFT JOIN (SELECT feed_url, count(*) AS n FROM articles
                                         INDEXED BY articles_waiting
                                         WHERE retry_at IS NOT NULL GROUP BY feed_url) w
                   ON w.feed_url = f.url
                 ORDER BY f.enabled DESC, f.name"""
        cur = self.db.execute(sql, [iso(since)])
        return dicts(cur)

    def record_poll(self, result: FeedResult, now: datetime, *, etag: str | None = None,
                    last_modified: str | None = None, content_hash: str | None = None,
                    title: str | None = None, moved_to: str | None = None) -> None:
        """One UPDATE per poll (counters counted by SQLite, no read first)."""
        sets: dict[str, Any] = {
            "last_polled_at": iso(now), "last_status": result.status,
            "last_http_status": result.http_status, "next_poll_at": iso(result.next_poll_at),
            "retry_after": result.retry_after,
        }
        counters = ["polls = coalesce(polls, 0) + 1"]
        if result.status == "gone":
            sets.update(gone_at=iso(now), last_error=result.error)
        elif result.status == "failed":
            sets["last_error"] = result.error
            counters.append("consecutive_failures = coalesce(consecutive_failures, 0) + 1")
        else:
            sets.update(last_success_at=iso(now), consecutive_failures=0,
                        last_error=result.warning)
            if result.status == "unchanged":
                counters.append("not_modified = coalesce(not_modified, 0) + 1")
            if etag is not None or last_modified is not None:
                sets.update(etag=etag, last_modified=last_modified)
            if content_hash is not None:
                sets["content_hash"] = content_hash
            if title:
                sets["title"] = title
        if moved_to:
            sets["moved_to"] = moved_to
        assignments = ", ".join([f"{k} = ?" for k in sets] + counters)
        with self._write():
            cur = self.db.conn.execute(f"UPDATE feeds SET {assignments} WHERE url = ?",
                                       [*sets.values(), result.url])
            if cur.rowcount == 0:  # a feed polled without sync_feeds (feeds check)
                self.db.conn.execute("INSERT INTO feeds (url, name, polls) VALUES (?, ?, 0)",
                                     [result.url, result.url])
                self.db.conn.execute(f"UPDATE feeds SET {assignments} WHERE url = ?",
                                     [*sets.values(), result.url])
