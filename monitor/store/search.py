"""Full-text search over titles and texts (FTS5)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from ..errors import StorageError
from .base import StoreBase, dicts, iso

SEARCH_LIMIT = 1000  # matches ranked and counted by a search: the newest ones


class SearchMixin(StoreBase):
    def search(self, query: str, *, flagged: bool = False, start: datetime | None = None,
               end: datetime | None = None, feed: str | None = None, tag: str | None = None,
               order: str = "newest", limit: int = 20, offset: int = 0
               ) -> tuple[int, list[dict[str, Any]]]:
        """Full-text search over titles and texts: (how many match, one page of them), the
        newest first, or (order="best") the best matches among the newest SEARCH_LIMIT; the
        count stops at SEARCH_LIMIT + 1. Snippets mark the matched words with \x02 and \x03.
        A query FTS5 cannot parse ("Hikvision's", "U.S.", "face-recognition") is searched as
        its words, each quoted; one that still cannot be read raises StorageError."""
        try:
            return self._search(query, flagged, start, end, feed, tag, order, limit, offset)
        except StorageError:
            plain = plain_query(query)
            if not plain or plain == query:
                raise
            return self._search(plain, flagged, start, end, feed, tag, order, limit, offset)

    def _search(self, query: str, flagged: bool, start: datetime | None, end: datetime | None,
                feed: str | None, tag: str | None, order: str, limit: int, offset: int
                ) -> tuple[int, list[dict[str, Any]]]:
        where: list[str] = ["articles_fts MATCH ?"]
        args: list[Any] = [query]
        if flagged:
            where.append("a.flagged = 1")
        if start:
            where.append("a.fetched_at >= ?")
            args.append(iso(start))
        if end:
            where.append("a.fetched_at < ?")
            args.append(iso(end))
        if feed:
            where.append("a.feed_url = ?")
            args.append(feed)
        if tag and ":" in tag:
            kind, _, value = tag.partition(":")
            where.append("EXISTS (SELECT 1 FROM json_each(a.tags, '$.' || ?) WHERE value = ?)")
            args += [kind, value]
        elif tag:  # a bare name: any kind (vendor, technology, place, programme)
            where.append("EXISTS (SELECT 1 FROM json_each(a.tags) k, json_each(k.value) v "
                         "WHERE v.value = ?)")
            args.append(tag)
        body = (" FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid "
                "LEFT JOIN feeds f ON f.url = a.feed_url WHERE " + " AND ".join(where))
        try:
            # the newest matches, newest first (FTS5 walks its index backwards and stops):
            # counting and ranking every match of a common word in a million took 1.25 s
            newest = [r[0] for r in self.db.conn.execute(
                "SELECT articles_fts.rowid" + body + " ORDER BY articles_fts.rowid DESC "
                "LIMIT ?", [*args, SEARCH_LIMIT + 1])]
            if len(newest) > SEARCH_LIMIT:
                body += f" AND articles_fts.rowid >= {int(newest[SEARCH_LIMIT - 1])}"
            # bm25 counts every article that holds each word (its IDF): the best matches
            # cost time in proportion to how common the words are, the newest do not
            ranking = "rank" if order == "best" else "articles_fts.rowid DESC"
            cur = self.db.conn.execute(
                "SELECT a.id, a.title, a.url, a.feed_url, coalesce(f.name, a.feed_url) AS "
                "feed_name, a.published, a.fetched_at, a.score, a.flagged, a.cluster_id, "
                "snippet(articles_fts, 1, char(2), char(3), '…', 24) AS snippet"
                + body + f" ORDER BY {ranking} LIMIT ? OFFSET ?", [*args, limit, offset])
        except sqlite3.OperationalError as exc:
            raise StorageError(f"search: {exc}") from None
        return len(newest), dicts(cur)


def plain_query(query: str) -> str:
    """What people type as FTS5 words: each space-separated piece quoted (a phrase of its
    tokens: "U.S." is u s, "face-recognition" is face recognition), pieces with no letter or
    digit dropped ("&", "-"), and so are the operators AND, OR, NOT (meant, not read); a
    possessive is its word ("Hikvision's" finds Hikvision)."""
    pieces = [p.removesuffix("'s").removesuffix("’s") for p in query.split()
              if any(c.isalnum() for c in p) and p not in ("AND", "OR", "NOT", "NEAR")]
    return " ".join('"' + p.replace('"', '""') + '"' for p in pieces)
