"""Labels: a reader's judgement of an article, with a note."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from .base import StoreBase, iso


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
            "SELECT a.id, a.title, a.text, l.label FROM labels l JOIN articles a "
            "ON a.id = l.article_id WHERE l.id = (SELECT max(id) FROM labels m "
            "WHERE m.article_id = l.article_id) ORDER BY a.id")
        for i, title, text, label in cur:
            yield {"id": i, "title": title, "text": text, "label": label}
