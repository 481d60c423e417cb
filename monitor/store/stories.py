"""Stories: each article put in the story of its earlier copies (near-duplicate keys in
lsh_bands), the stories' members, and the keys no new article can match any more."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..copies import (
    SAME_STORY,
    SAME_STORY_SHORT,
    band_keys,
    is_short,
    similarity,
    title_key,
)
from .base import StoreBase, dicts, iso


class StoriesMixin(StoreBase):
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
        return dicts(cur)

    def cluster_size(self, cluster_id: int) -> int:
        return int(self.db.conn.execute("SELECT count(*) FROM articles WHERE cluster_id = ?",
                                        [cluster_id]).fetchone()[0])
