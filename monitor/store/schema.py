"""Schema versions, applied in order by sqlite-utils' Migrations. Never edit a released one:
add a new function."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlite_utils import Database, Migrations

migrations = Migrations("monitor")


@migrations()
def m001_feeds_and_articles(db: Database) -> None:
    db.table("feeds").create({
        "url": str, "name": str, "title": str, "tags": str, "enabled": int,
        "etag": str, "last_modified": str, "content_hash": str,
        "last_polled_at": str, "last_success_at": str, "last_status": str,
        "last_http_status": int, "last_error": str, "consecutive_failures": int,
        "next_poll_at": str, "moved_to": str, "polls": int, "not_modified": int,
    }, pk="url", defaults={"consecutive_failures": 0, "polls": 0, "not_modified": 0,
                           "enabled": 1, "tags": "[]"})
    db.table("articles").create({
        "id": int, "url": str, "feed_url": str, "guid": str, "title": str, "author": str,
        "published": str, "fetched_at": str, "text": str, "summary": str, "language": str,
        "extract_error": str, "score": float, "flagged": int, "matches": str, "tags": str,
    }, pk="id", foreign_keys=[("feed_url", "feeds", "url")],
        defaults={"flagged": 0, "matches": "[]", "tags": "{}"})
    db.table("articles").create_index(["guid"], unique=True)
    db.table("articles").create_index(["url"], unique=True)
    db.table("articles").create_index(["flagged", "published"])
    db.table("articles").create_index(["feed_url"])
    db.table("articles").enable_fts(["title", "text"], create_triggers=True, tokenize="unicode61")


@migrations()
def m002_feed_health(db: Database) -> None:
    """A 410 marks a feed gone until the user re-enables it; Retry-After is remembered."""
    db.table("feeds").add_column("gone_at", str)
    db.table("feeds").add_column("retry_after", float)


@migrations()
def m003_clusters_and_digests(db: Database) -> None:
    """Near-duplicate clusters (named by their first article's id) and sent digests."""
    db.table("articles").add_column("signature", bytes)
    db.table("articles").add_column("cluster_id", int)
    db.table("articles").create_index(["cluster_id"])
    db.table("digests").create({"day": str, "created_at": str, "stories": int, "articles": int,
                          "sent_at": str, "sent_to": str}, pk="day")


@migrations()
def m004_sightings(db: Database) -> None:
    """Every other feed that carried a story already stored (same URL or guid), so the digest
    can list every source, not only the feed that brought it first."""
    db.table("sightings").create({"id": int, "feed_url": str, "story_key": str, "seen_at": str},
                           pk="id")
    db.table("sightings").create_index(["feed_url", "story_key"], unique=True)
    db.table("sightings").create_index(["story_key"])


@migrations()
def m005_fts_reindex_only_on_text(db: Database) -> None:
    """sqlite-utils' update trigger re-indexes an article's whole text on any update; setting
    its cluster or score must not cost a second full-text index of it."""
    db.execute("DROP TRIGGER IF EXISTS articles_au")
    db.execute("""CREATE TRIGGER articles_au AFTER UPDATE OF title, text ON articles BEGIN
      INSERT INTO articles_fts (articles_fts, rowid, title, text)
        VALUES ('delete', old.rowid, old.title, old.text);
      INSERT INTO articles_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
    END""")


@migrations()
def m006_signatures_from_word_hashes(db: Database) -> None:
    """Signatures are now mixed from per-word hashes (about half the CPU), and a new one never
    matches an old one: recompute those stored, so that a story stored before the upgrade
    still gathers its later copies."""
    last = 0
    while True:
        rows = db.execute("SELECT id, text FROM articles WHERE id > ? AND signature IS NOT NULL "
                          "ORDER BY id LIMIT 500", [last]).fetchall()
        if not rows:
            return
        db.conn.executemany("UPDATE articles SET signature = ? WHERE id = ?",
                            [(_m006_signature(text or ""), i) for i, text in rows])
        last = rows[-1][0]


def _m006_signature(text: str) -> bytes | None:
    """The signature scheme m006 moved to, frozen here as it was then: a migration must compute
    the same thing whenever it runs, whatever copies.signature becomes later. (Its
    MinHash permutations come from datasketch's fixed seed 1, as then.)"""
    import unicodedata
    import zlib

    import numpy as np
    from datasketch import MinHash

    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    for old, new in [("’", "'"), ("‘", "'"), ("`", "'"), ("“", '"'), ("”", '"'),
                     ("\u00ad", "")] + [(c, " ") for c in "-‐‑‒–—―_/·•"]:
        text = text.replace(old, new)
    words = text.split()
    if len(words) < 30:
        return None
    word_hash = {w: zlib.crc32(w.encode()) for w in set(words)}
    h = np.fromiter(map(word_hash.__getitem__, words), dtype=np.uint64, count=len(words))
    mix = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                    0xD6E8FEB86659FD93], dtype=np.uint64)
    n = len(words) - 3
    mixed = h[:n] * mix[0]
    for k in range(1, 4):
        mixed ^= h[k:k + n] * mix[k]
    m = MinHash(num_perm=64, hashfunc=int)
    m.update_batch((mixed >> np.uint64(32)).tolist())
    out: bytes = m.hashvalues.astype(np.uint64).tobytes()
    return out


@migrations()
def m007_flagged_at(db: Database) -> None:
    """A story is in the daily digest of the day it was first flagged (stored, or flagged later
    by a retry or rescore), not of the day it is dated: a story seen three days after its date
    would otherwise be in no digest. Articles stored before this are taken as flagged when
    stored."""
    db.table("articles").add_column("flagged_at", str)
    db.execute("UPDATE articles SET flagged_at = fetched_at WHERE flagged = 1")
    db.table("articles").create_index(["flagged_at"])


@migrations()
def m008_page_retries(db: Database) -> None:
    """A page that failed for a passing reason is fetched again at `retry_at`; `page_tries`
    counts the failed fetches. The partial index holds only the pages waiting, so finding
    those due costs nothing however large the archive."""
    db.table("articles").add_column("retry_at", str)
    db.table("articles").add_column("page_tries", int)
    db.execute("CREATE INDEX articles_waiting ON articles (retry_at) WHERE retry_at IS NOT NULL")


@migrations()
def m009_alerts(db: Database) -> None:
    """Instant alerts: one row per rule and story (or per summary of a burst), with what was
    delivered to which target, when, and the last error; and when each rule began, so that
    a rule added to an old archive alerts on what comes next, not on a year of stories."""
    db.table("alerts").create({
        "id": int, "rule": str, "kind": str, "story": int, "article_id": int, "title": str,
        "score": float, "status": str, "created_at": str, "sent_at": str, "attempts": int,
        "next_try_at": str, "delivered": str, "last_error": str, "body": str,
    }, pk="id", defaults={"attempts": 0, "delivered": "[]"})
    db.table("alerts").create_index(["rule", "story"], unique=True)
    db.execute("CREATE INDEX alerts_pending ON alerts (next_try_at) WHERE status = 'pending'")
    db.table("alert_rules").create({"rule": str, "since": str}, pk="rule")


@migrations()
def m010_labels(db: Database) -> None:
    """A reader's judgement of a story, from the web page: relevant or not, with a note. The
    latest label of an article counts; earlier ones are kept as its history."""
    db.table("labels").create({"id": int, "article_id": int, "label": str, "created_at": str,
                         "note": str}, pk="id", foreign_keys=[("article_id", "articles", "id")])
    db.table("labels").create_index(["article_id", "id"])


@migrations()
def m011_lsh_bands(db: Database) -> None:
    """The near-duplicate index in the database, not in memory (datasketch's in-memory LSH
    took about 5 KB an article, loaded at every start): each clustered article's LSH band
    keys. Filled here for the articles a new one can still be a copy of (the window of
    pipeline.CLUSTER_DAYS before the newest article, with a day to spare); older ones are
    never looked up again, and need no keys."""
    db.execute("CREATE TABLE lsh_bands (key INTEGER NOT NULL, article_id INTEGER NOT NULL, "
               "PRIMARY KEY (key, article_id)) WITHOUT ROWID")
    newest = db.execute("SELECT max(fetched_at) FROM articles").fetchone()[0]
    if newest is None:
        return
    since = (datetime.fromisoformat(newest) - timedelta(days=31)).isoformat(timespec="seconds")
    last = 0
    while True:
        rows = db.execute("SELECT id, signature FROM articles WHERE id > ? AND fetched_at >= ? "
                          "AND signature IS NOT NULL AND cluster_id IS NOT NULL ORDER BY id "
                          "LIMIT 5000", [last, since]).fetchall()
        if not rows:
            return
        # sorted by key: the B-tree is filled in order, not at random places
        db.conn.executemany("INSERT OR IGNORE INTO lsh_bands (key, article_id) VALUES (?, ?)",
                            sorted((key, i) for i, sig in rows for key in _m011_band_keys(sig)))
        last = rows[-1][0]


def _m011_band_keys(sig: bytes) -> list[int]:
    """copies.band_keys as m011 filled the table, frozen here like m006's signature:
    14 bands of 4 values of the 64-value signature, each hashed with its band's number."""
    from hashlib import blake2b

    width = 4 * 8
    return [int.from_bytes(blake2b(bytes([band]) + sig[band * width:(band + 1) * width],
                                   digest_size=8).digest(), "big", signed=True)
            for band in range(14)]


@migrations()
def m012_indexes_for_a_large_archive(db: Database) -> None:
    """Found at a million articles (scripts/bench_scale.py): `status` counted each feed's
    articles of the last 7 days by reading their rows, text and all, and `rescore --since`
    read every row to find the days it was asked for."""
    db.execute("CREATE INDEX articles_feed_fetched ON articles (feed_url, fetched_at)")
    db.execute("DROP INDEX IF EXISTS idx_articles_feed_url")  # the new one starts with it
    db.execute("CREATE INDEX articles_day ON articles (coalesce(published, fetched_at))")


@migrations()
def m013_articles_with_text(db: Database) -> None:
    """Retention finds the old articles that still have text without reading the others."""
    db.execute("CREATE INDEX articles_with_text ON articles (fetched_at) "
               "WHERE text IS NOT NULL OR summary IS NOT NULL")


@migrations()
def m014_guid_within_feed(db: Database) -> None:
    """A guid is only unique within its feed (RSS ids such as "1", JSON Feed ids): two feeds
    that reuse ids are different stories. A canonical URL stays unique across feeds. And
    `chores`: when each periodic clean-up last ran (pruning old band keys)."""
    db.execute("DROP INDEX IF EXISTS idx_articles_guid")
    db.execute("CREATE UNIQUE INDEX articles_feed_guid ON articles (feed_url, guid)")
    db.execute("CREATE TABLE chores (name TEXT PRIMARY KEY, done_at TEXT NOT NULL)")


@migrations()
def m015_alerts_considered(db: Database) -> None:
    """Every story a rule considers keeps its row, whatever became of it (filtered out,
    waiting for room in the hour, summarised, sent), so each rule reads only what is new to
    it (`considered_to`); `message_at` is when a row became a message, what max_per_hour
    counts (summaries included)."""
    db.table("alerts").add_column("message_at", str)
    db.execute("UPDATE alerts SET message_at = created_at "
               "WHERE status IN ('pending', 'sent', 'failed')")
    db.execute("CREATE INDEX alerts_messages ON alerts (rule, message_at) "
               "WHERE message_at IS NOT NULL")
    db.execute("CREATE INDEX alerts_waiting ON alerts (rule) WHERE status = 'waiting'")
    db.table("alert_rules").add_column("considered_to", str)


@migrations()
def m016_narrow_bands_and_titles(db: Database) -> None:
    """Near-duplicates found in two steps: 32 bands of 2 signature values (candidates down to
    a similarity near 0.3, where 14 bands of 4 stopped near 0.5 and lost half the copies
    with one word in twelve changed), each candidate then checked on its signature; and a
    key for each distinctive title, by which a text too short for a signature joins its
    story. The window's keys are made anew, as m011 made them (31 days before the newest
    article); older articles are never looked up again."""
    db.execute("DELETE FROM lsh_bands")
    newest = db.execute("SELECT max(fetched_at) FROM articles").fetchone()[0]
    if newest is None:
        return
    since = (datetime.fromisoformat(newest) - timedelta(days=31)).isoformat(timespec="seconds")
    last = 0
    while True:
        rows = db.execute("SELECT id, signature, title FROM articles WHERE id > ? AND "
                          "fetched_at >= ? AND cluster_id IS NOT NULL ORDER BY id LIMIT 5000",
                          [last, since]).fetchall()
        if not rows:
            return
        db.conn.executemany("INSERT OR IGNORE INTO lsh_bands (key, article_id) VALUES (?, ?)",
                            sorted((key, i) for i, sig, title in rows
                                   for key in _m016_keys(sig, title)))
        last = rows[-1][0]


def _m016_keys(sig: bytes | None, title: str | None) -> list[int]:
    """copies' band_keys and title_key as m016 filled the table, frozen here."""
    import re
    import unicodedata
    from hashlib import blake2b

    def key(data: bytes) -> int:
        return int.from_bytes(blake2b(data, digest_size=8).digest(), "big", signed=True)

    keys = [key(bytes([band]) + sig[band * 16:(band + 1) * 16]) for band in range(32)] \
        if sig else []
    text = unicodedata.normalize("NFKC", title or "").casefold()
    for old, new in [("’", "'"), ("‘", "'"), ("`", "'"), ("“", '"'), ("”", '"'),
                     ("\u00ad", "")] + [(c, " ") for c in "-‐‑‒–—―_/·•"]:
        text = text.replace(old, new)
    words = re.findall(r"\w+", " ".join(text.split()))
    if len(words) >= 6:
        keys.append(key(b"title " + " ".join(words).encode()))
    return keys


@migrations()
def m017_search_stems_and_cjk(db: Database) -> None:
    """Search that finds inflections (porter over unicode61: camera finds cameras) and CJK
    terms inside a sentence (articles_cjk: each CJK character a token). The index is built
    again: about a minute per 100,000 articles."""
    conn = db.conn
    for trigger in ("articles_ai", "articles_ad", "articles_au"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("DROP TABLE IF EXISTS articles_fts")
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS articles_cjk USING fts5(body, "
                 "tokenize='unicode61')")
    conn.execute("CREATE VIRTUAL TABLE articles_fts USING fts5(title, text, content='articles', "
                 "tokenize='porter unicode61 remove_diacritics 2')")
    conn.executescript("""
    CREATE TRIGGER articles_ai AFTER INSERT ON articles BEGIN
      INSERT INTO articles_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
    END;
    CREATE TRIGGER articles_ad AFTER DELETE ON articles BEGIN
      INSERT INTO articles_fts (articles_fts, rowid, title, text)
        VALUES ('delete', old.rowid, old.title, old.text);
      DELETE FROM articles_cjk WHERE rowid = old.rowid;
    END;
    CREATE TRIGGER articles_au AFTER UPDATE OF title, text ON articles BEGIN
      INSERT INTO articles_fts (articles_fts, rowid, title, text)
        VALUES ('delete', old.rowid, old.title, old.text);
      INSERT INTO articles_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
    END;
    """)
    conn.execute("INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')")
    glob = "*[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]*"
    run = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                     "\uac00-\ud7af]+")
    rows = conn.execute("SELECT id, title, text FROM articles WHERE title GLOB ? "
                        "OR text GLOB ?", [glob, glob])
    conn.executemany("INSERT INTO articles_cjk (rowid, body) VALUES (?, ?)",
                     ((i, "\n".join(" ".join(r) for t in (title, text) if t
                                     for r in run.findall(t))) for i, title, text in rows))


@migrations()
def m018_stars(db: Database) -> None:
    """A reader's saved stories (the reading room's star)."""
    db.execute("CREATE TABLE IF NOT EXISTS stars (article_id INTEGER PRIMARY KEY "
               "REFERENCES articles(id), created_at TEXT NOT NULL)")


@migrations()
def m019_examples(db: Database) -> None:
    """Labelled examples imported from files, beside the reading room's labels."""
    db.execute("CREATE TABLE IF NOT EXISTS examples (key TEXT PRIMARY KEY, title TEXT NOT NULL, "
               "text TEXT NOT NULL, url TEXT, label TEXT NOT NULL, source TEXT, "
               "imported_at TEXT NOT NULL)")


@migrations()
def m020_models(db: Database) -> None:
    """What `monitor learn` learned, as JSON data (never a pickle), the newest last."""
    db.execute("CREATE TABLE IF NOT EXISTS models (id INTEGER PRIMARY KEY, created_at TEXT "
               "NOT NULL, labels INTEGER NOT NULL, keywords TEXT NOT NULL, data TEXT NOT NULL)")


@migrations()
def m021_learned_part(db: Database) -> None:
    """Each article's learned part of its score, when a model decided (JSON), for the digest's
    "why"."""
    if "learned" not in db.table("articles").columns_dict:
        db.table("articles").add_column("learned", str)


@migrations()
def m022_articles_indexed_by_the_store(db: Database) -> None:
    """New articles enter the search index in one statement per transaction (add_articles),
    not through a trigger per row: FTS5 wrote a segment for each. Updates and deletes keep
    their triggers."""
    db.execute("DROP TRIGGER IF EXISTS articles_ai")
