"""Alerts: each rule's considered stories, the messages due and their deliveries."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from ..models import AlertMessage
from .base import StoreBase, decode, dicts, iso


class AlertsMixin(StoreBase):
    def begin_alert_rule(self, rule: str, now: datetime) -> None:
        """Note when the rule began (the first time it is seen): it alerts on what is flagged
        from then on."""
        with self._write():
            self.db.conn.execute("INSERT OR IGNORE INTO alert_rules (rule, since) VALUES (?, ?)",
                                 [rule, iso(now)])

    def alert_rule(self, rule: str) -> tuple[str, str | None] | None:
        """(when the rule began, the newest flagged_at it has considered), or None."""
        row = self.db.conn.execute("SELECT since, considered_to FROM alert_rules WHERE rule = ?",
                                   [rule]).fetchone()
        return (str(row[0]), row[1]) if row else None

    def alert_candidates(self, rule: str, since: str) -> list[dict[str, Any]]:
        """Stories flagged since *since* that the rule has not considered: the best-scoring
        flagged copy of each."""
        sql = """SELECT a.id, a.cluster_id AS story, a.title, a.url, a.feed_url, a.score,
                        a.matches, a.tags, a.learned, a.text, a.flagged_at,
                        coalesce(f.name, a.feed_url) AS feed_name
                 FROM articles a LEFT JOIN feeds f ON f.url = a.feed_url
                 WHERE +a.flagged = 1 AND a.flagged_at >= ? AND a.cluster_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM alerts x WHERE x.rule = ?
                                   AND x.story = a.cluster_id)
                 ORDER BY a.score DESC, a.id"""
        cur = self.db.conn.execute(sql, [since, rule])
        best: dict[int, dict[str, Any]] = {}
        for r in dicts(cur):
            best.setdefault(r["story"], decode(r))
        return list(best.values())

    def add_alerts(self, rule: str, messages: list[AlertMessage], now: datetime) -> None:
        """From alerts.consider, one per story the rule considered (a story it already has a
        row for is left as it is)."""
        with self._write():
            self.db.table("alerts").insert_all([{**asdict(m), "rule": rule, "created_at": iso(now)}
                                          for m in messages], ignore=True)

    def considered(self, rule: str, upto: str) -> None:
        with self._write():
            self.db.conn.execute("UPDATE alert_rules SET considered_to = max(coalesce("
                                 "considered_to, ''), ?) WHERE rule = ?", [upto, rule])

    def waiting_alerts(self, rule: str) -> list[dict[str, Any]]:
        """The rule's stories waiting for room in the hour, strongest first."""
        cur = self.db.conn.execute(
            "SELECT x.id, x.score, a.title, a.url FROM alerts x JOIN articles a "
            "ON a.id = x.article_id WHERE x.rule = ? AND x.status = 'waiting' "
            "ORDER BY x.score DESC, x.id", [rule])
        return dicts(cur)

    def alert_messages_since(self, rule: str, since: datetime) -> int:
        """Messages (stories and summaries) the rule has sent or queued since *since*."""
        return int(self.db.conn.execute(
            "SELECT count(*) FROM alerts WHERE rule = ? AND message_at >= ?",
            [rule, iso(since)]).fetchone()[0])

    def release_alerts(self, rule: str, alone: list[int], summarised: list[int],
                       summary: AlertMessage | None, now: datetime) -> None:
        """Waiting stories become messages of their own, or lines of one summary message."""
        stamp = iso(now)
        with self._write():
            conn = self.db.conn
            conn.executemany("UPDATE alerts SET status = 'pending', message_at = ?, "
                             "next_try_at = ? WHERE id = ?", [(stamp, stamp, i) for i in alone])
            conn.executemany("UPDATE alerts SET status = 'summarised' WHERE id = ?",
                             [(i,) for i in summarised])
            if summary is not None:
                self.db.table("alerts").insert({
                    **asdict(summary), "rule": rule, "created_at": stamp, "message_at": stamp,
                    "next_try_at": stamp})

    def claim_due_alerts(self, now: datetime, lease: timedelta) -> list[dict[str, Any]]:
        """The messages due for delivery, claimed: their next try moves *lease* ahead, so that
        another process (a `poll --once` beside the service) does not deliver them too; a
        process that dies while delivering leaves them to be tried again after the lease."""
        with self._write():
            cur = self.db.conn.execute(
                "SELECT * FROM alerts WHERE status = 'pending' AND next_try_at <= ? "
                "ORDER BY id", [iso(now)])
            rows = dicts(cur)
            self.db.conn.executemany("UPDATE alerts SET next_try_at = ? WHERE id = ?",
                                     [(iso(now + lease), r["id"]) for r in rows])
        return rows

    def alert_tried(self, alert_id: int, delivered: list[int], error: str | None,
                    now: datetime, next_try: datetime | None, done: bool) -> None:
        """After a delivery attempt: sent (every target took it), waiting for its next try,
        or failed for good."""
        status = "sent" if done and not error else "pending" if next_try else "failed"
        with self._write():
            self.db.conn.execute(
                "UPDATE alerts SET status = ?, attempts = attempts + 1, delivered = ?, "
                "last_error = ?, next_try_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? "
                "ELSE sent_at END WHERE id = ?",
                [status, json.dumps(delivered), error, iso(next_try), status, iso(now),
                 alert_id])
