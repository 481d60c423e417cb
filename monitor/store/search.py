"""Full-text search over titles and texts (FTS5): English words with their inflections
(articles_fts, porter over unicode61), and Chinese, Japanese and Korean by any term inside a
sentence (articles_cjk: each CJK character a token, a term searched as a phrase of them).
Copies of one story come back as one result."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from ..errors import StorageError
from .base import StoreBase, dicts, iso, marks

SEARCH_LIMIT = 1000  # matches ranked and counted by a search: the newest ones
CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
# the same ranges for SQLite's GLOB, which compares characters by code point
CJK_GLOB = "*[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]*"
SNIPPET_CHARS = 160


def cjk_body(*texts: str | None) -> str:
    """What articles_cjk indexes of a title and text: each run of CJK characters, its
    characters apart (one token each), a run per line; empty when there is none."""
    return "\n".join(" ".join(run) for text in texts if text for run in CJK_RUN.findall(text))


class SearchMixin(StoreBase):
    def search(self, query: str, *, flagged: bool = False, start: datetime | None = None,
               end: datetime | None = None, feed: str | None = None, tag: str | None = None,
               order: str = "newest", limit: int = 20, offset: int = 0
               ) -> tuple[int, list[dict[str, Any]]]:
        """Full-text search over titles and texts: (how many stories match, one page of
        them), the newest first, or (order="best") the best among the newest SEARCH_LIMIT
        matching articles; the count stops at SEARCH_LIMIT + 1. A story is its newest (or
        best) matching copy, with `copies`, how many of its articles match. Snippets mark the
        matched words with \x02 and \x03. A query FTS5 cannot parse ("Hikvision's", "U.S.",
        "face-recognition") is searched as its words, each quoted; one that still cannot be
        read raises StorageError."""
        words, cjk = _split(query)
        try:
            return self._search(words, cjk, flagged, start, end, feed, tag, order, limit,
                                offset)
        except StorageError:
            plain = plain_query(words)
            if not plain or plain == words:
                raise
            return self._search(plain, cjk, flagged, start, end, feed, tag, order, limit,
                                offset)

    def articles_holding(self, phrase: str, newest: int
                         ) -> tuple[int, Iterator[dict[str, Any]]]:
        """How many articles may hold *phrase* in their title or text (a superset, by the
        full-text index: its stems, or its CJK characters in a row), and the *newest* of
        them with their title and text."""
        words, cjk = _split(phrase)
        if cjk:
            sql = ("SELECT rowid FROM articles_cjk WHERE articles_cjk MATCH ?",
                   " ".join('"' + " ".join(term) + '"' for term in cjk))
        else:
            sql = ("SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?",
                   '"' + words.replace('"', " ") + '"')
        ids = [int(r[0]) for r in self.db.conn.execute(sql[0], [sql[1]])]
        return len(ids), self._title_and_text(sorted(ids)[-newest:])

    def articles_scored(self, low: float, high: float, newest: int
                        ) -> tuple[int, Iterator[dict[str, Any]]]:
        """How many articles have a stored score (the rules') in [low, high), and the
        *newest* of them with their title and text."""
        ids = [int(r[0]) for r in self.db.conn.execute(
            "SELECT id FROM articles WHERE score >= ? AND score < ?", [low, high])]
        return len(ids), self._title_and_text(sorted(ids)[-newest:])

    def _title_and_text(self, ids: list[int]) -> Iterator[dict[str, Any]]:
        for i in range(0, len(ids), 500):  # 500 at a time: a common word's articles are many
            chunk = ids[i:i + 500]
            yield from dicts(self.db.conn.execute(
                f"SELECT id, title, text FROM articles WHERE id IN ({marks(chunk)})", chunk))

    def _search(self, words: str, cjk: list[str], flagged: bool, start: datetime | None,
                end: datetime | None, feed: str | None, tag: str | None, order: str,
                limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        if not words and not cjk:
            return 0, []
        where: list[str] = []
        args: list[Any] = []
        if words:  # ordered by the index's rowid: FTS5 walks it backwards and stops
            source, key = "articles_fts JOIN articles a ON a.id = articles_fts.rowid", \
                "articles_fts.rowid"
            where.append("articles_fts MATCH ?")
            args.append(words)
        else:
            source, key = "articles a", "a.id"
        if cjk:
            where.append("a.id IN (SELECT rowid FROM articles_cjk WHERE articles_cjk MATCH ?)")
            args.append(" ".join('"' + " ".join(term) + '"' for term in cjk))
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
        body = f" FROM {source} WHERE " + " AND ".join(where)
        conn = self.db.conn
        try:
            # the newest matches, newest first (FTS5 walks its index backwards and stops):
            # counting and ranking every match of a common word in a million took 1.25 s
            newest = conn.execute(f"SELECT {key}, coalesce(a.cluster_id, a.id)" + body
                                  + f" ORDER BY {key} DESC LIMIT ?",
                                  [*args, SEARCH_LIMIT + 1]).fetchall()
            stories = list(dict.fromkeys(story for _, story in newest[:SEARCH_LIMIT]))
            total = len(stories) if len(newest) <= SEARCH_LIMIT else SEARCH_LIMIT + 1
            if len(newest) > SEARCH_LIMIT:
                body += f" AND {key} >= {int(newest[SEARCH_LIMIT - 1][0])}"
            # bm25 counts every article that holds each word (its IDF): the best matches
            # cost time in proportion to how common the words are, the newest do not
            best = order == "best" and words
            pick = ("SELECT a.id, count(*) AS copies, min(rank) AS r" if best
                    else f"SELECT max({key}) AS id, count(*) AS copies")
            chosen = conn.execute(pick + body + " GROUP BY coalesce(a.cluster_id, a.id) "
                                  + ("ORDER BY r, a.id DESC" if best else "ORDER BY id DESC")
                                  + " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        except sqlite3.OperationalError as exc:
            raise StorageError(f"search: {exc}") from None
        return total, self._results([(int(r[0]), int(r[1])) for r in chosen], words, cjk)

    def _results(self, chosen: list[tuple[int, int]], words: str, cjk: list[str]
                 ) -> list[dict[str, Any]]:
        """The chosen articles in their order, with their copies and a snippet."""
        if not chosen:
            return []
        ids = [i for i, _ in chosen]
        snippet = ("snippet(articles_fts, 1, char(2), char(3), '…', 24)" if words else "NULL")
        source = ("articles_fts JOIN articles a ON a.id = articles_fts.rowid" if words
                  else "articles a")
        # by the index's own rowid: `a.id IN` made FTS5 read every match of the words first
        # (1.8 s for a common word in a million articles, against 3 ms)
        match = "articles_fts MATCH ? AND articles_fts.rowid" if words else "a.id"
        cur = self.db.conn.execute(
            "SELECT a.id, a.title, a.url, a.feed_url, coalesce(f.name, a.feed_url) AS "
            "feed_name, a.published, a.fetched_at, a.score, a.flagged, a.cluster_id, "
            f"{snippet} AS snippet, a.text FROM {source} "
            f"LEFT JOIN feeds f ON f.url = a.feed_url WHERE {match} IN ({marks(ids)})",
            [*([words] if words else []), *ids])
        rows = {r["id"]: r for r in dicts(cur)}
        copies = dict(chosen)
        out = []
        for i in ids:
            row = rows[i]
            text = row.pop("text")
            if cjk and (not row["snippet"] or "\x02" not in row["snippet"]):
                row["snippet"] = _cjk_snippet(text or row["title"] or "", cjk)
            row["copies"] = copies[i]
            out.append(row)
        return out


def _split(query: str) -> tuple[str, list[str]]:
    """The query's CJK terms apart from the rest ("Hikvision 人脸识别" -> "Hikvision",
    ["人脸识别"])."""
    return " ".join(CJK_RUN.sub(" ", query).split()), CJK_RUN.findall(query)


def _cjk_snippet(text: str, terms: Iterable[str]) -> str:
    """Text around the first of *terms* found, marked as FTS5's snippets are."""
    for term in terms:
        at = text.find(term)
        if at >= 0:
            begin = max(0, at - SNIPPET_CHARS // 2)
            end = at + len(term) + SNIPPET_CHARS // 2
            return ("…" if begin else "") + text[begin:at] + "\x02" + term + "\x03" + \
                text[at + len(term):end] + ("…" if end < len(text) else "")
    return text[:SNIPPET_CHARS]


def plain_query(query: str) -> str:
    """What people type as FTS5 words: each space-separated piece quoted (a phrase of its
    tokens: "U.S." is u s, "face-recognition" is face recognition), pieces with no letter or
    digit dropped ("&", "-"), and so are the operators AND, OR, NOT (meant, not read); a
    possessive is its word ("Hikvision's" finds Hikvision)."""
    pieces = [p.removesuffix("'s").removesuffix("’s") for p in query.split()
              if any(c.isalnum() for c in p) and p not in ("AND", "OR", "NOT", "NEAR")]
    return " ".join('"' + p.replace('"', '""') + '"' for p in pieces)
