"""The storage layer: the only module that writes SQL. SQLite through sqlite-utils, in WAL mode
so readers (Datasette, sqlite3, `monitor status`) never block the writer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database

from ..digest.cluster import (
    SAME_STORY,
    SAME_STORY_SHORT,
    band_keys,
    is_short,
    similarity,
    title_key,
)
from ..errors import StorageError
from ..models import Article, Entry, FeedResult
from .schema import migrations

BUSY_TIMEOUT_MS = 15_000
SEARCH_LIMIT = 1000  # matches ranked and counted by a search: the newest ones


def iso(when: datetime | None) -> str | None:
    """UTC ISO-8601 to the second, so that string order is time order. Naive means UTC."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000,
                                   check_same_thread=False)
            self.db = Database(conn)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            migrations.apply(self.db)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from None

    @classmethod
    def readonly(cls, path: str | Path) -> Store:
        """A connection that cannot write (the web pages): no migrations, no WAL switch."""
        store = cls.__new__(cls)
        store.path = Path(path)
        if not store.path.exists():
            raise StorageError(f"{store.path}: no such database (run `monitor poll --once`)")
        try:
            uri = f"file:{quote(str(store.path.resolve()))}?mode=ro"  # '?', '#', '%' in names
            conn = sqlite3.connect(uri, uri=True,
                                   timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            store.db = Database(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"{store.path}: {exc}") from None
        return store

    def close(self) -> None:
        self.db.close()

    # -- feeds -------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[Any]) -> None:
        """Make the feeds table match the configured list (keeps each feed's history)."""
        rows = [{"url": f.url, "name": f.name, "tags": json.dumps(list(f.tags)),
                 "enabled": int(f.enabled)} for f in feeds]
        with self._write():
            if rows:
                self.db["feeds"].upsert_all(rows, pk="url")
            configured = [r["url"] for r in rows]
            marks = ",".join("?" * len(configured))
            self.db.execute(f"UPDATE feeds SET enabled = 0 WHERE url NOT IN ({marks})",
                            configured)

    def feed(self, url: str) -> dict[str, Any] | None:
        # plain SQL: this runs for every poll, and sqlite-utils introspects the table per call
        cur = self.db.conn.execute("SELECT * FROM feeds WHERE url = ?", [url])
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None

    def feeds(self) -> list[dict[str, Any]]:
        return list(self.db["feeds"].rows_where(order_by="name"))

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
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]

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

    # -- articles ----------------------------------------------------------------------------

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
                    out.append((article_id, self._cluster_one(
                        article_id, row["signature"], row["title"], row["feed_url"],
                        is_short(row["text"]), cluster_since)))
                elif row["url"] is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO sightings (feed_url, story_key, seen_at) "
                        "SELECT ?, url, ? FROM articles WHERE url = ? AND feed_url != ?",
                        [row["feed_url"], row["published"] or row["fetched_at"], row["url"],
                         row["feed_url"]])
        return out

    def add_sightings(self, entries: Iterable[Entry], seen_at: datetime) -> None:
        """Feeds that carried a story another feed stored (same URL); once per feed."""
        rows = [(e.feed_url, e.url, iso(e.published or seen_at)) for e in entries if e.url]
        with self._write():
            self.db.conn.executemany("INSERT OR IGNORE INTO sightings (feed_url, story_key, "
                                     "seen_at) VALUES (?, ?, ?)", rows)

    def cluster(self, articles: list[tuple[int, bytes | None, str | None, str, bool]],
                since: datetime) -> list[tuple[int, int]]:
        """Put each stored article (id, signature, title, feed URL, whether its text is
        short) in the story of an earlier copy fetched since *since*, else in a story of its
        own, and index its keys for the copies to come. In order, in one transaction: a copy
        finds one earlier in the list. Returns (id, cluster) pairs.

        A copy is an article that shares a band key with this one and whose signature is at
        least SAME_STORY alike (SAME_STORY_SHORT for a short text; the earliest story if
        several). Failing that, a short text
        (a summary, a teaser) joins an article of another feed with the same distinctive
        title; a long one, only such an article without a signature (the summary-only
        entry that came first)."""
        with self._write():
            return [(i, self._cluster_one(i, sig, title, feed, short, since))
                    for i, sig, title, feed, short in articles]

    def _cluster_one(self, article_id: int, sig: bytes | None, title: str | None,
                     feed_url: str, short: bool, since: datetime) -> int:
        conn = self.db.conn
        keys = band_keys(sig) if sig else []
        cluster = None
        if sig:
            candidates = conn.execute(
                f"SELECT DISTINCT a.cluster_id, a.signature FROM lsh_bands l JOIN articles a "
                f"ON a.id = l.article_id WHERE l.key IN ({','.join('?' * len(keys))}) "
                "AND a.fetched_at >= ? AND a.cluster_id IS NOT NULL AND a.id != ? "
                "AND a.signature IS NOT NULL", [*keys, iso(since), article_id]).fetchall()
            enough = SAME_STORY_SHORT if short else SAME_STORY
            cluster = min((c for c, other in candidates
                           if similarity(sig, other) >= enough), default=None)
        named = title_key(title)
        if cluster is None and named is not None:
            cluster = conn.execute(
                "SELECT min(a.cluster_id) FROM lsh_bands l JOIN articles a ON a.id = "
                "l.article_id WHERE l.key = ? AND a.fetched_at >= ? AND a.cluster_id IS NOT "
                "NULL AND a.id != ? AND a.feed_url != ? AND (? OR a.signature IS NULL)",
                [named, iso(since), article_id, feed_url, short or sig is None]).fetchone()[0]
        conn.executemany("INSERT OR IGNORE INTO lsh_bands (key, article_id) VALUES (?, ?)",
                         [(k, article_id) for k in keys + ([named] if named else [])])
        cluster = cluster or article_id
        conn.execute("UPDATE articles SET cluster_id = ? WHERE id = ?", [cluster, article_id])
        return int(cluster)

    def prune_bands(self, before: datetime, now: datetime) -> int | None:
        """Drop the band keys of articles fetched before *before*: no new article looks that
        far back. At most once a day (it reads the whole table); None when not due. Ids grow
        with fetched_at, so the cut is the first id fetched since *before*, found by bisecting
        ids (each step one row by its key) instead of reading the archive."""
        cut = iso(before) or ""
        with self._write():
            conn = self.db.conn
            done = conn.execute("SELECT done_at FROM chores WHERE name = 'prune_bands'"
                                ).fetchone()
            if done and done[0] > (iso(now - timedelta(days=1)) or ""):
                return None
            low = 0
            high = int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM articles"
                                    ).fetchone()[0])
            while low < high:  # the smallest id fetched at or after the cut
                mid = (low + high) // 2
                row = conn.execute("SELECT id, fetched_at FROM articles WHERE id >= ? "
                                   "ORDER BY id LIMIT 1", [mid]).fetchone()
                if row is None or (row[1] or "") >= cut:
                    high = mid
                else:
                    low = row[0] + 1
            gone = conn.execute("DELETE FROM lsh_bands WHERE article_id < ?", [low]).rowcount
            conn.execute("INSERT OR REPLACE INTO chores (name, done_at) VALUES "
                         "('prune_bands', ?)", [iso(now)])
        return int(gone)

    def recluster(self, article_id: int, old: tuple[bytes | None, str | None],
                  new: tuple[bytes | None, str | None, str], feed_url: str,
                  since: datetime) -> int:
        """An article's text changed (it arrived late): the keys of its old (signature,
        title) go, and it is clustered again with the new (signature, title, text). Returns
        its cluster."""
        old_keys = (band_keys(old[0]) if old[0] else []) + \
            [k for k in [title_key(old[1])] if k is not None]
        with self._write():
            self.db.conn.executemany("DELETE FROM lsh_bands WHERE key = ? AND article_id = ?",
                                     [(k, article_id) for k in old_keys])
            return self.cluster([(article_id, new[0], new[1], feed_url, is_short(new[2]))],
                                since)[0][1]

    def cluster_members(self, cluster_ids: list[int]) -> list[dict[str, Any]]:
        if not cluster_ids:
            return []
        marks = ",".join("?" * len(cluster_ids))
        # each article, and each other feed seen carrying it (sightings), as one source
        sql = f"""SELECT a.id, a.cluster_id, a.title, a.url, a.published, a.fetched_at,
                         a.flagged, a.feed_url, coalesce(f.name, a.feed_url) AS feed_name
                  FROM articles a LEFT JOIN feeds f ON f.url = a.feed_url
                  WHERE a.cluster_id IN ({marks})
                  UNION ALL
                  SELECT a.id, a.cluster_id, a.title, a.url, s.seen_at, s.seen_at, a.flagged,
                         s.feed_url, coalesce(f.name, s.feed_url)
                  FROM sightings s
                  JOIN articles a ON s.story_key = coalesce(a.url, a.guid)
                  LEFT JOIN feeds f ON f.url = s.feed_url
                  WHERE a.cluster_id IN ({marks}) AND s.feed_url != a.feed_url
                  ORDER BY 5, 1"""
        cur = self.db.execute(sql, cluster_ids + cluster_ids)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]

    def digest_record(self, day: str) -> dict[str, Any] | None:
        rows = list(self.db["digests"].rows_where("day = ?", [day]))
        return rows[0] if rows else None

    def record_digest(self, day: str, stories: int, articles: int, created_at: datetime,
                      sent_at: datetime | None = None, sent_to: str | None = None) -> None:
        row: dict[str, Any] = {"day": day, "stories": stories, "articles": articles,
                               "created_at": iso(created_at)}
        if sent_at is not None:
            row.update(sent_at=iso(sent_at), sent_to=sent_to)
        with self._write():
            self.db["digests"].upsert(row, pk="day")

    def article(self, key: str | int) -> dict[str, Any] | None:
        by_id = str(key).isascii() and str(key).isdigit()  # not '²', which int() refuses
        if by_id and int(key) >= 2**63:
            return None  # past SQLite's integers: no such article
        rows = list(self.db["articles"].rows_where("id = ?" if by_id else "url = ?",
                                                   [int(key) if by_id else str(key)]))
        return _decode(rows[0]) if rows else None

    def flagged_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The flagged articles of the stories first flagged in [start, end): an article whose
        story (cluster) had a copy flagged earlier belongs to that earlier digest. (`+flagged`
        here and below keeps SQLite on the flagged_at index, not on every flagged article
        of the archive.)"""
        sql = """SELECT a.id, a.url, a.feed_url, a.guid, a.title, a.author, a.published,
                        a.fetched_at, a.flagged_at, a.text, a.language, a.score, a.flagged,
                        a.matches, a.tags, a.cluster_id,
                        coalesce(f.name, a.feed_url) AS feed_name FROM articles a
                 LEFT JOIN feeds f ON f.url = a.feed_url
                 WHERE +a.flagged = 1 AND a.flagged_at >= ? AND a.flagged_at < ?
                   AND NOT EXISTS (SELECT 1 FROM articles b WHERE b.cluster_id = a.cluster_id
                                   AND b.flagged = 1 AND b.flagged_at < ?)
                 ORDER BY a.score DESC, a.id"""
        cur = self.db.execute(sql, [iso(start), iso(end), iso(start)])
        cols = [c[0] for c in cur.description]
        return [_decode(dict(zip(cols, row, strict=True))) for row in cur]

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
            cols = [c[0] for c in cur.description]
            for row in cur.fetchall():
                yield _decode(dict(zip(cols, row, strict=True)))

    def update_scores(self, rows: list[dict[str, Any]], now: datetime) -> None:
        """rows: {id, score, flagged, matches, tags}. An article flagged now that was not
        before is flagged_at *now*, so it enters the next daily digest."""
        with self._write():
            self.db.conn.executemany(
                "UPDATE articles SET score = ?, matches = ?, tags = ?, "
                "flagged_at = CASE WHEN ? = 0 THEN NULL WHEN flagged = 1 THEN flagged_at "
                "ELSE ? END, flagged = ? WHERE id = ?",
                [(r["score"], json.dumps(r["matches"], ensure_ascii=False),
                  json.dumps(r["tags"], ensure_ascii=False), int(r["flagged"]), iso(now),
                  int(r["flagged"]), r["id"]) for r in rows])

    # -- page retries ------------------------------------------------------------------------

    def due_retries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Articles whose page is due for another try, the longest waiting first."""
        cur = self.db.conn.execute(
            "SELECT id, url, feed_url, guid, title, author, published, fetched_at, language, "
            "page_tries, extract_error, cluster_id, flagged, signature FROM articles "
            "WHERE retry_at IS NOT NULL AND retry_at <= ? ORDER BY retry_at LIMIT ?",
            [iso(now), limit])
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]

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
                "score = ?, matches = ?, tags = ?, "
                "flagged_at = CASE WHEN ? = 0 THEN NULL WHEN flagged = 1 THEN flagged_at "
                "ELSE ? END, flagged = ? WHERE id = ?",
                [article.text, article.title, article.author, iso(article.published),
                 article.language, article.signature, s.score,
                 json.dumps([m.as_dict() for m in s.matches], ensure_ascii=False),
                 json.dumps(s.tags, ensure_ascii=False), int(s.flagged), iso(now),
                 int(s.flagged), article_id])

    def cluster_size(self, cluster_id: int) -> int:
        return int(self.db.conn.execute("SELECT count(*) FROM articles WHERE cluster_id = ?",
                                        [cluster_id]).fetchone()[0])

    # -- search and labels ---------------------------------------------------------------------

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
        where, args = ["articles_fts MATCH ?"], [query]
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
        cols = [c[0] for c in cur.description]
        return len(newest), [dict(zip(cols, row, strict=True)) for row in cur]

    def add_label(self, article_id: int, label: str, note: str | None, now: datetime) -> None:
        with self._write():
            self.db["labels"].insert({"article_id": article_id, "label": label,
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

    # -- alerts ------------------------------------------------------------------------------

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
                        a.matches, a.tags, a.text, a.flagged_at,
                        coalesce(f.name, a.feed_url) AS feed_name
                 FROM articles a LEFT JOIN feeds f ON f.url = a.feed_url
                 WHERE +a.flagged = 1 AND a.flagged_at >= ? AND a.cluster_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM alerts x WHERE x.rule = ?
                                   AND x.story = a.cluster_id)
                 ORDER BY a.score DESC, a.id"""
        cur = self.db.conn.execute(sql, [since, rule])
        cols = [c[0] for c in cur.description]
        best: dict[int, dict[str, Any]] = {}
        for row in cur:
            r = dict(zip(cols, row, strict=True))
            best.setdefault(r["story"], _decode(r))
        return list(best.values())

    def add_alerts(self, rule: str, rows: list[dict[str, Any]], now: datetime) -> None:
        """Rows from alerts.consider, one per story the rule considered (a story it already has
        a row for is left as it is)."""
        with self._write():
            self.db["alerts"].insert_all([{**r, "rule": rule, "created_at": iso(now)}
                                          for r in rows], ignore=True)

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
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]

    def alert_messages_since(self, rule: str, since: datetime) -> int:
        """Messages (stories and summaries) the rule has sent or queued since *since*."""
        return int(self.db.conn.execute(
            "SELECT count(*) FROM alerts WHERE rule = ? AND message_at >= ?",
            [rule, iso(since)]).fetchone()[0])

    def release_alerts(self, rule: str, alone: list[int], summarised: list[int],
                       summary: dict[str, Any] | None, now: datetime) -> None:
        """Waiting stories become messages of their own, or lines of one summary message."""
        stamp = iso(now)
        with self._write():
            conn = self.db.conn
            conn.executemany("UPDATE alerts SET status = 'pending', message_at = ?, "
                             "next_try_at = ? WHERE id = ?", [(stamp, stamp, i) for i in alone])
            conn.executemany("UPDATE alerts SET status = 'summarised' WHERE id = ?",
                             [(i,) for i in summarised])
            if summary is not None:
                self.db["alerts"].insert({**summary, "rule": rule, "created_at": stamp,
                                          "message_at": stamp, "next_try_at": stamp})

    def claim_due_alerts(self, now: datetime, lease: timedelta) -> list[dict[str, Any]]:
        """The messages due for delivery, claimed: their next try moves *lease* ahead, so that
        another process (a `poll --once` beside the service) does not deliver them too; a
        process that dies while delivering leaves them to be tried again after the lease."""
        with self._write():
            cur = self.db.conn.execute(
                "SELECT * FROM alerts WHERE status = 'pending' AND next_try_at <= ? "
                "ORDER BY id", [iso(now)])
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, row, strict=True)) for row in cur]
            self.db.conn.executemany("UPDATE alerts SET next_try_at = ? WHERE id = ?",
                                     [(iso(now + lease), r["id"]) for r in rows])
        return rows

    def transaction(self) -> Any:
        """Several writes as one: `with store.transaction():` (takes the write lock now)."""
        return self._write()

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

    def drop_old_text(self, before: datetime) -> int:
        """Retention: the text and summary of unflagged, unlabelled articles stored before
        *before*; the rows stay (the full-text index keeps their titles)."""
        with self._write():
            cur = self.db.conn.execute(
                "UPDATE articles SET text = NULL, summary = NULL WHERE fetched_at < ? "
                "AND +flagged = 0 AND (text IS NOT NULL OR summary IS NOT NULL) AND NOT EXISTS "
                "(SELECT 1 FROM labels l WHERE l.article_id = articles.id)", [iso(before)])
        return cur.rowcount

    def compact(self) -> None:
        """Give the space of dropped text back to the file system (VACUUM rewrites the file:
        run it while nothing else writes)."""
        try:
            self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.conn.execute("VACUUM")
        except sqlite3.Error as exc:
            raise StorageError(f"compacting {self.path}: {exc}") from None

    def count_articles(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM articles").fetchone()[0])

    # -- plumbing ----------------------------------------------------------------------------

    def _write(self) -> Any:
        return _Transaction(self.db)


class _Transaction:
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so a busy
    database is waited for (busy_timeout) instead of failing when a read would turn into a
    write; SQLite failures (disk full, lock timeouts) become StorageError."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> None:
        conn = self.db.conn
        self.outer = not conn.in_transaction
        if self.outer:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise StorageError(f"database write failed: {err}") from None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if not self.outer:
            return False
        conn = self.db.conn
        try:
            if exc is None:
                conn.commit()
            else:
                conn.rollback()
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.rollback()
            raise StorageError(f"database write failed: {err}") from None
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"database write failed: {exc}") from None
        return False


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
        "signature": a.signature,
        "flagged_at": iso(fetched_at) if s and s.flagged else None,
        "retry_at": iso(a.retry_at), "page_tries": 1 if a.extract_error and a.entry.url else 0,
    }


def plain_query(query: str) -> str:
    """What people type as FTS5 words: each space-separated piece quoted (a phrase of its
    tokens: "U.S." is u s, "face-recognition" is face recognition), pieces with no letter or
    digit dropped ("&", "-"), and so are the operators AND, OR, NOT (meant, not read); a
    possessive is its word ("Hikvision's" finds Hikvision)."""
    pieces = [p.removesuffix("'s").removesuffix("’s") for p in query.split()
              if any(c.isalnum() for c in p) and p not in ("AND", "OR", "NOT", "NEAR")]
    return " ".join('"' + p.replace('"', '""') + '"' for p in pieces)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key, empty in (("matches", "[]"), ("tags", "{}")):
        if key in row:
            row[key] = json.loads(row[key] or empty)
    return row
