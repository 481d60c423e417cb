"""Labels and stars: a reader's judgement of an article, with a note, and the stories saved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..models import Example
from .base import StoreBase, dicts, iso, marks


class LabelsMixin(StoreBase):
    def add_label(self, article_id: int, label: str, note: str | None, now: datetime) -> None:
        with self._write():
            self.db.table("labels").insert({"article_id": article_id, "label": label,
                                      "note": note or None, "created_at": iso(now)})

    def labels(self, article_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """The latest label of each article (of these, or of all)."""
        sql = ("SELECT l.article_id, l.label, l.note, l.created_at FROM labels l WHERE l.id = "
               "(SELECT max(id) FROM labels m WHERE m.article_id = l.article_id)")
        args: list[Any] = []
        if article_ids is not None:
            if not article_ids:
                return {}
            sql += f" AND l.article_id IN ({','.join('?' * len(article_ids))})"
            args = list(article_ids)
        return {r[0]: {"label": r[1], "note": r[2], "at": r[3]}
                for r in self.db.conn.execute(sql, args)}

    def labelled_articles(self) -> Iterator[dict[str, Any]]:
        """Every labelled article with its latest label: for `monitor labels export`."""
        cur = self.db.conn.execute(
            "SELECT a.id, a.title, a.text, l.label, a.url FROM labels l JOIN articles a "
            "ON a.id = l.article_id WHERE l.id = (SELECT max(id) FROM labels m "
            "WHERE m.article_id = l.article_id) ORDER BY a.id")
        for i, title, text, label, url in cur:
            yield {"id": i, "title": title, "text": text, "label": label, "url": url}

    def star(self, article_id: int, on: bool, now: datetime) -> None:
        """Save an article to the reader's list, or take it off."""
        with self._write():
            if on:
                self.db.conn.execute("INSERT OR IGNORE INTO stars (article_id, created_at) "
                                     "VALUES (?, ?)", [article_id, iso(now)])
            else:
                self.db.conn.execute("DELETE FROM stars WHERE article_id = ?", [article_id])

    def starred(self, article_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """The saved articles (of these, or all), the latest saved first, each with its
        feed, flag and latest label and note."""
        sql = ("SELECT a.id, a.title, a.url, a.published, a.fetched_at, a.flagged, a.score, "
               "coalesce(f.name, a.feed_url) AS feed_name, s.created_at AS saved_at, "
               "(SELECT l.label FROM labels l WHERE l.article_id = a.id ORDER BY l.id DESC "
               "LIMIT 1) AS label, (SELECT l.note FROM labels l WHERE l.article_id = a.id "
               "ORDER BY l.id DESC LIMIT 1) AS note FROM stars s JOIN articles a "
               "ON a.id = s.article_id LEFT JOIN feeds f ON f.url = a.feed_url")
        args: list[Any] = []
        if article_ids is not None:
            if not article_ids:
                return []
            sql += f" WHERE s.article_id IN ({marks(article_ids)})"
            args = list(article_ids)
        return dicts(self.db.conn.execute(sql + " ORDER BY s.created_at DESC, a.id DESC", args))

    def add_examples(self, examples: list[Example], source: str, now: datetime
                     ) -> tuple[int, int]:
        """Store imported examples by their key: (added, updated)."""
        with self._write():
            conn = self.db.conn
            known = {r[0] for r in conn.execute(
                f"SELECT key FROM examples WHERE key IN ({marks(examples)})",
                [e.key for e in examples])} if examples else set()
            conn.executemany(
                "INSERT OR REPLACE INTO examples (key, title, text, url, label, source, "
                "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(e.key, e.title, e.text, e.url, "relevant" if e.relevant else "not_relevant",
                  source, iso(now)) for e in examples])
        return len({e.key for e in examples} - known), len(known)

    def examples(self) -> Iterator[dict[str, Any]]:
        """The imported examples, in key order: {key, title, text, url, label}."""
        cur = self.db.conn.execute("SELECT key, title, text, url, label FROM examples "
                                   "ORDER BY key")
        cols = [c[0] for c in cur.description]
        for row in cur:
            yield dict(zip(cols, row, strict=True))

    def save_model(self, data: dict[str, Any], labels: int, keywords: str,
                   now: datetime) -> int:
        """Keep a learned model (JSON data); returns its id."""
        with self._write():
            cur = self.db.conn.execute(
                "INSERT INTO models (created_at, labels, keywords, data) VALUES (?, ?, ?, ?)",
                [iso(now), labels, keywords, json.dumps(data, ensure_ascii=False)])
        return int(cur.lastrowid or 0)

    def newest_label_at(self) -> str | None:
        """When the newest label was given or example imported."""
        row = self.db.conn.execute("SELECT max(at) FROM (SELECT max(created_at) AS at FROM "
                                   "labels UNION ALL SELECT max(imported_at) FROM examples)"
                                   ).fetchone()
        return str(row[0]) if row and row[0] else None

    def latest_model_id(self) -> int | None:
        row = self.db.conn.execute("SELECT max(id) FROM models").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def latest_model(self) -> dict[str, Any] | None:
        row = self.db.conn.execute("SELECT id, created_at, labels, keywords, data FROM models "
                                   "ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {"id": row[0], "created_at": row[1], "labels": row[2], "keywords": row[3],
                **json.loads(row[4])}
