"""The articles table: new articles and the feeds seen carrying them, their scores, their
pages' retries, retention, and the digests written from them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from ..copies import is_short
from ..models import Article, Entry, Score, ScoreUpdate
from .base import decode, dicts, iso, marks
from .search import cjk_body
from .stories import StoriesMixin


class ArticlesMixin(StoriesMixin):
    def known(self, feed_url: str, guids: list[str], urls: list[str]
              ) -> tuple[set[str], dict[str, str]]:
        """Which of these guids the feed has brought before (a guid is only unique within its
        feed: RSS ids such as "1", JSON Feed ids), and which URLs are stored, each with the
        feed that brought it (any feed: one canonical URL is one story)."""
        seen_guids: set[str] = set()
        seen_urls: dict[str, str] = {}
        for i in range(0, len(guids), 500):
            chunk = guids[i:i + 500]
            seen_guids.update(r[0] for r in self.db.conn.execute(
                f"SELECT guid FROM articles WHERE feed_url = ? AND guid IN "
                f"({','.join('?' * len(chunk))})", [feed_url, *chunk]))
        for i in range(0, len(urls), 500):
            chunk = urls[i:i + 500]
            seen_urls.update(self.db.conn.execute(
                f"SELECT url, feed_url FROM articles WHERE url IN ({','.join('?' * len(chunk))})",
                chunk).fetchall())
        return seen_guids, seen_urls

    def add_articles(self, articles: Sequence[Article], fetched_at: datetime,
                     cluster_since: datetime) -> list[tuple[int, int]]:
        """Store new articles, each put in its story in the same transaction: no interruption
        leaves an article outside a story (see cluster()). An article already stored (the
        same guid from the same feed, or the same URL) is skipped; if another feed stored
        its URL meanwhile, this feed is recorded as a sighting of it. Returns (id, story) of
        the articles added."""
        rows = [_article_row(a, fetched_at) for a in articles]
        if not rows:
            return []
        cols = list(rows[0])
        insert = (f"INSERT OR IGNORE INTO articles ({', '.join(cols)}) "
                  f"VALUES ({', '.join('?' * len(cols))})")
        out = []
        with self._write():
            conn = self.db.conn
            for row in rows:
                cur = conn.execute(insert, [row[c] for c in cols])
                if cur.rowcount == 1 and cur.lastrowid is not None:
                    article_id = cur.lastrowid
                    self._index_cjk(article_id, row["title"], row["text"], new=True)
                    out.append((article_id, self._cluster_one(
                        article_id, row["signature"], row["title"], row["feed_url"],
                        is_short(row["text"]), cluster_since)))
                elif row["url"] is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO sightings (feed_url, story_key, seen_at) "
                        "SELECT ?, url, ? FROM articles WHERE url = ? AND feed_url != ?",
                        [row["feed_url"], row["published"] or row["fetched_at"], row["url"],
                         row["feed_url"]])
            # Indexed here, not by a trigger per row: FTS5 writes its pending terms out as a
            # new segment at the end of every statement that writes to it, and one segment
            # per article cost a third of these writes (migration m022).
            for i in range(0, len(out), 500):
                ids = [article_id for article_id, _ in out[i:i + 500]]
                conn.execute("INSERT INTO articles_fts (rowid, title, text) SELECT id, title, "
                             f"text FROM articles WHERE id IN ({marks(ids)})", ids)
        return out

    def add_sightings(self, entries: Iterable[Entry], seen_at: datetime) -> None:
        """Feeds that carried a story another feed stored (same URL); once per feed."""
        rows = [(e.feed_url, e.url, iso(e.published or seen_at)) for e in entries if e.url]
        with self._write():
            self.db.conn.executemany("INSERT OR IGNORE INTO sightings (feed_url, story_key, "
                                     "seen_at) VALUES (?, ?, ?)", rows)

    def article(self, key: str | int) -> dict[str, Any] | None:
        by_id = str(key).isascii() and str(key).isdigit()  # not '²', which int() refuses
        if by_id and int(key) >= 2**63:
            return None  # past SQLite's integers: no such article
        rows = list(self.db.table("articles").rows_where("id = ?" if by_id else "url = ?",
                                                   [int(key) if by_id else str(key)]))
        return decode(rows[0]) if rows else None

    def flagged_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The flagged articles of the stories first flagged in [start, end): an article whose
        story (cluster) had a copy flagged earlier belongs to that earlier digest. (`+flagged`
        here and below keeps SQLite on the flagged_at index, not on every flagged article
        of the archive.)"""
        sql = """SELECT a.id, a.url, a.feed_url, a.guid, a.title, a.author, a.published,
                        a.fetched_at, a.flagged_at, a.text, a.language, a.score, a.flagged,
                        a.matches, a.tags, a.learned, a.cluster_id,
                        coalesce(f.name, a.feed_url) AS feed_name FROM articles a
                 LEFT JOIN feeds f ON f.url = a.feed_url
                 WHERE +a.flagged = 1 AND a.flagged_at >= ? AND a.flagged_at < ?
                   AND NOT EXISTS (SELECT 1 FROM articles b WHERE b.cluster_id = a.cluster_id
                                   AND b.flagged = 1 AND b.flagged_at < ?)
                 ORDER BY a.score DESC, a.id"""
        cur = self.db.execute(sql, [iso(start), iso(end), iso(start)])
        return [decode(r) for r in dicts(cur)]

    def articles_since(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        """Articles dated (else stored) since *since*, or all, in id order: their ids first
        (from an index), then their rows 500 at a time, so that a million never sit in
        memory and writes may come between two batches."""
        where, args = ("WHERE coalesce(published, fetched_at) >= ?", [iso(since)]) if since \
            else ("", [])
        ids = [r[0] for r in self.db.conn.execute(f"SELECT id FROM articles {where}", args)]
        ids.sort()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            cur = self.db.conn.execute(f"SELECT * FROM articles WHERE id IN "
                                       f"({','.join('?' * len(chunk))}) ORDER BY id", chunk)
            for row in dicts(cur):
                yield decode(row)

    def update_scores(self, updates: Iterable[ScoreUpdate], now: datetime) -> None:
        """Stored articles scored again. An article flagged now that was not before is
        flagged_at *now*, so it enters the next daily digest."""
        with self._write():
            self.db.conn.executemany(
                "UPDATE articles SET score = ?, matches = ?, tags = ?, learned = ?, "
                "flagged_at = CASE WHEN ? = 0 THEN NULL WHEN flagged = 1 THEN flagged_at "
                "ELSE ? END, flagged = ? WHERE id = ?",
                [(u.score.score, _json([m.as_dict() for m in u.score.matches]),
                  _json(u.score.tags), _learned(u.score), int(u.score.flagged), iso(now),
                  int(u.score.flagged), u.article_id) for u in updates])

    def due_retries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Articles whose page is due for another try, the longest waiting first."""
        cur = self.db.conn.execute(
            "SELECT id, url, feed_url, guid, title, author, published, fetched_at, language, "
            "page_tries, extract_error, cluster_id, flagged, signature FROM articles "
            "WHERE retry_at IS NOT NULL AND retry_at <= ? ORDER BY retry_at LIMIT ?",
            [iso(now), limit])
        return dicts(cur)

    def pages_waiting(self) -> int:
        return int(self.db.conn.execute(
            "SELECT count(*) FROM articles WHERE retry_at IS NOT NULL").fetchone()[0])

    def retry_failed(self, article_id: int, error: str, retry_at: datetime | None) -> None:
        """Another failed try: the next one at *retry_at*, or none (the error stays)."""
        with self._write():
            self.db.conn.execute(
                "UPDATE articles SET extract_error = ?, retry_at = ?, "
                "page_tries = coalesce(page_tries, 0) + 1 WHERE id = ?",
                [error, iso(retry_at), article_id])

    def page_arrived(self, article: Article, article_id: int, now: datetime) -> None:
        """The text of a page that failed before: stored, rescored, its error cleared."""
        s = article.score
        assert s is not None
        with self._write():
            self.db.conn.execute(
                "UPDATE articles SET text = ?, title = ?, author = ?, published = ?, "
                "language = ?, extract_error = NULL, retry_at = NULL, signature = ?, "
                "score = ?, matches = ?, tags = ?, learned = ?, "
                "flagged_at = CASE WHEN ? = 0 THEN NULL WHEN flagged = 1 THEN flagged_at "
                "ELSE ? END, flagged = ? WHERE id = ?",
                [article.text, article.title, article.author, iso(article.published),
                 article.language, article.signature, s.score,
                 _json([m.as_dict() for m in s.matches]), _json(s.tags), _learned(s),
                 int(s.flagged), iso(now), int(s.flagged), article_id])
            self._index_cjk(article_id, article.title, article.text)

    def drop_old_text(self, before: datetime) -> int:
        """Retention: the text and summary of unflagged, unlabelled articles stored before
        *before*; the rows stay (the full-text index keeps their titles)."""
        with self._write():
            dropped = self.db.conn.execute(
                "UPDATE articles SET text = NULL, summary = NULL WHERE fetched_at < ? "
                "AND +flagged = 0 AND (text IS NOT NULL OR summary IS NOT NULL) AND NOT EXISTS "
                "(SELECT 1 FROM labels l WHERE l.article_id = articles.id) "
                "RETURNING id, title", [iso(before)]).fetchall()
            for article_id, title in dropped:
                self._index_cjk(article_id, title, None)
        return len(dropped)

    def _index_cjk(self, article_id: int, title: str | None, text: str | None,
                   new: bool = False) -> None:
        """articles_cjk follows the article's title and text (only articles with CJK). A *new*
        id has no row there (deleting an article deletes it)."""
        body = cjk_body(title, text)
        conn = self.db.conn
        if not new:
            conn.execute("DELETE FROM articles_cjk WHERE rowid = ?", [article_id])
        if body:
            conn.execute("INSERT INTO articles_cjk (rowid, body) VALUES (?, ?)",
                         [article_id, body])

    def digest_record(self, day: str) -> dict[str, Any] | None:
        rows = list(self.db.table("digests").rows_where("day = ?", [day]))
        return rows[0] if rows else None

    def record_digest(self, day: str, stories: int, articles: int, created_at: datetime,
                      sent_at: datetime | None = None, sent_to: str | None = None) -> None:
        row: dict[str, Any] = {"day": day, "stories": stories, "articles": articles,
                               "created_at": iso(created_at)}
        if sent_at is not None:
            row.update(sent_at=iso(sent_at), sent_to=sent_to)
        with self._write():
            self.db.table("digests").upsert(row, pk="day")


def _article_row(a: Article, fetched_at: datetime) -> dict[str, Any]:
    s = a.score
    return {
        "url": a.entry.url, "feed_url": a.entry.feed_url, "guid": a.entry.guid,
        "title": a.title, "author": a.author, "published": iso(a.published),
        "fetched_at": iso(fetched_at), "text": a.text, "summary": a.entry.summary,
        "language": a.language, "extract_error": a.extract_error,
        "score": s.score if s else None, "flagged": int(s.flagged) if s else 0,
        "matches": json.dumps([m.as_dict() for m in s.matches] if s else [], ensure_ascii=False),
        "tags": json.dumps(s.tags if s else {}, ensure_ascii=False),
        "learned": _learned(s) if s else None,
        "signature": a.signature,
        "flagged_at": iso(fetched_at) if s and s.flagged else None,
        "retry_at": iso(a.retry_at), "page_tries": 1 if a.extract_error and a.entry.url else 0,
    }


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _learned(s: Score) -> str | None:
    """The learned part of a score, when a model decided: its log-odds, the labels it came
    from, what the rules alone said, and what pushed it most."""
    if s.learned is None:
        return None
    return _json({"logit": s.learned, "labels": s.labels, "rules_flagged": s.rules_flagged,
                  "terms": [list(t) for t in s.learned_terms[:8]]})

