"""The seams where an archive can lose or repeat things: two feeds that reuse ids, a write cut
by a signal, two processes, a reload. Real servers on 127.0.0.1, real SQLite files, real
processes."""

from __future__ import annotations

import json
import sqlite3

from sqlite_utils import Database

from .helpers import LocalWeb

WORDS = ("harbour council budget ferry timetable school library bridge repair market festival "
         "orchard rainfall museum tram depot choir station garden election tenants").split()


def distinct_text(n: int) -> str:
    """A page text of its own: no two of these are near-duplicates."""
    import random

    rnd = random.Random(n)
    return " ".join(rnd.choice(WORDS) + ("." if i % 12 == 11 else "") for i in range(160))


def page(title: str, text: str) -> str:
    return (f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><article>"
            f"<h1>{title}</h1><p>{text}</p></article></body></html>")


def rss_with_ids(base: str, numbers: range) -> str:
    """RSS whose guids are bare numbers (isPermaLink="false"), unique within the feed only."""
    items = "".join(f'<item><title>Story {n}</title><link>{base}/page/{n}</link>'
                    f'<guid isPermaLink="false">{n - numbers.start + 1}</guid></item>'
                    for n in numbers)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"<link>{base}/</link><description>d</description>{items}</channel></rss>")


def rows(db, sql, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_two_feeds_that_reuse_ids_keep_all_their_stories(project, web: LocalWeb):
    # an RSS feed with guids 1-3 (isPermaLink="false") and a JSON Feed with ids 1-3, each
    # linking to its own pages; a third feed repeats the first's entries exactly
    for n in range(1, 7):
        web.send(f"/page/{n}", page(f"Story {n}", distinct_text(n)))
    web.send("/rss.xml", rss_with_ids(web.base, range(1, 4)), ctype="application/rss+xml")
    web.send("/mirror.xml", rss_with_ids(web.base, range(1, 4)), ctype="application/rss+xml")
    web.send("/feed.json", json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "JSON",
        "items": [{"id": str(n - 3), "url": web.url(f"/page/{n}"), "title": f"Story {n}",
                   "content_text": "summary"} for n in (4, 5, 6)]}),
        ctype="application/feed+json")
    project.feeds([("RSS", web.url("/rss.xml")), ("JSON", web.url("/feed.json")),
                   ("Mirror", web.url("/mirror.xml"))])
    result = project.run("poll", "--once")
    assert result.exit_code == 0, result.output
    stored = rows(project.db, "SELECT guid, url, length(text) > 500, cluster_id IS NOT NULL "
                  "FROM articles ORDER BY url")
    assert [(g, u.rsplit("/", 1)[1]) for g, u, *_ in stored] == [
        ("1", "1"), ("2", "2"), ("3", "3"), ("1", "4"), ("2", "5"), ("3", "6")]
    assert all(has_text and clustered for *_, has_text, clustered in stored)
    assert len({c for (c,) in rows(project.db, "SELECT cluster_id FROM articles")}) == 6
    # the mirror's entries are sightings of the first feed's stories, not articles
    assert sorted(rows(project.db, "SELECT feed_url, story_key FROM sightings")) == [
        (web.url("/mirror.xml"), web.url(f"/page/{n}")) for n in (1, 2, 3)]
    again = project.run("poll", "--once")
    assert "0 new articles" in again.output, again.output


def test_the_guid_migration_keeps_every_row(tmp_path):
    """An archive made before m014 (guids unique across feeds) opens with every row, and then
    takes a reused guid from another feed."""
    from datetime import UTC, datetime

    from monitor.models import Article, Entry
    from monitor.store import Store
    from monitor.store.schema import migrations

    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="m014_guid_within_feed")
    db["feeds"].insert_all([{"url": "a"}, {"url": "b"}])
    db["articles"].insert_all([{"url": f"u{n}", "feed_url": "a", "guid": str(n), "text": "t"}
                               for n in range(50)])
    db.close()
    store = Store(path)
    assert store.count_articles() == 50
    now = datetime.now(UTC)
    entry = Entry(feed_url="b", guid="7", url="u-b7", title="t", summary="", author=None,
                  published=None)
    added = store.add_articles([Article(entry=entry, text="t", title="t", author=None,
                                        published=None, language=None, extract_error=None)],
                               now, now)
    assert len(added) == 1 and store.count_articles() == 51


def test_band_keys_leave_with_the_window(tmp_path):
    """Keys of articles older than the clustering window are pruned (once a day); the
    window's own stay, so a copy arriving now still joins its story."""
    from datetime import UTC, datetime, timedelta

    from monitor.copies import band_keys, signature
    from monitor.models import Article, Entry
    from monitor.store import Store

    store = Store(tmp_path / "m.db")
    store.db["feeds"].insert({"url": "f"})
    now = datetime(2030, 6, 1, tzinfo=UTC)
    for age in (90, 60, 40, 10, 1):  # days; a story of its own each
        at = now - timedelta(days=age)
        text = distinct_text(age)
        entry = Entry(feed_url="f", guid=str(age), url=f"https://x.example/{age}", title="t",
                      summary="", author=None, published=None)
        sig = signature(text)
        assert sig is not None
        store.add_articles([Article(entry=entry, text=text, title="t", author=None,
                                    published=None, language=None, extract_error=None,
                                    signature=sig)], at, at - timedelta(days=30))
    bands = "SELECT count(DISTINCT article_id) FROM lsh_bands"
    assert store.db.execute(bands).fetchone()[0] == 5
    assert store.prune_bands(now - timedelta(days=31), now) == 3 * len(band_keys(sig))
    assert store.db.execute(bands).fetchone()[0] == 2
    assert store.prune_bands(now - timedelta(days=31), now + timedelta(hours=2)) is None
    assert store.prune_bands(now - timedelta(days=31), now + timedelta(days=2)) == 0


NON_GLOBAL = ["127.0.0.2", "10.0.0.1", "[::1]", "169.254.169.254", "198.18.0.1", "100.64.0.1",
              "192.0.0.8", "224.0.0.1", "240.0.0.1", "255.255.255.255", "0.0.0.0",
              "[64:ff9b::7f00:1]", "[2002:7f00:1::1]", "[fec0::1]", "[::ffff:127.0.0.1]"]


def test_links_to_non_global_addresses_are_refused_before_any_connection(project, web,
                                                                         monkeypatch):
    import asyncio

    project.settings(extract_workers=1)  # the default policy: links reach global addresses
    items = "".join(f"<item><title>Story {n}</title><link>http://{host}:9/page</link>"
                    f"<guid>g{n}</guid></item>" for n, host in enumerate(NON_GLOBAL))
    web.send("/feed.xml", f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
             f"<link>{web.base}/</link><description>d</description>{items}</channel></rss>",
             ctype="application/rss+xml")  # the feed itself is trusted: it is in feeds.yaml
    project.feeds([("Local", web.url("/feed.xml"))])
    attempts = []
    connect = asyncio.BaseEventLoop.create_connection

    async def watched(loop, protocol, host=None, port=None, **kw):  # noqa: ANN001, ANN202
        attempts.append(host)
        return await connect(loop, protocol, host, port, **kw)

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", watched)
    result = project.run("poll", "--once")
    assert result.exit_code == 0 and "1 ok" in result.output, result.output
    errors = [e for (e,) in rows(project.db, "SELECT extract_error FROM articles")]
    assert len(errors) == 15
    assert all(e.startswith("refused: ") and "not a globally routable address" in e
               for e in errors), errors
    assert attempts == ["127.0.0.1"]  # the feed alone
    # refused for good: nothing waits for a retry
    assert rows(project.db, "SELECT count(*) FROM articles WHERE retry_at IS NOT NULL") == [(0,)]


def test_numbers_are_ascii_digits_only(project, web):
    """'²' is a digit to str.isdigit(), not to int(): a Retry-After of '²' is no number, and
    `monitor explain ²` looks for an article, without a traceback."""
    from monitor.fetch import parse_retry_after

    assert parse_retry_after("²") is None and parse_retry_after("120") == 120.0
    web.send("/feed.xml", "busy", status=503, headers={"Retry-After": "²"})
    project.feeds([("Busy", web.url("/feed.xml"))])
    result = project.run("poll", "--once")
    assert result.exit_code == 0 and "1 failed" in result.output, result.output
    assert rows(project.db, "SELECT last_error FROM feeds") == [("HTTP 503",)]
    for key in ("²", "99999999999999999999"):
        explained = project.run("explain", key)
        assert explained.exit_code == 1 and "Traceback" not in explained.output, explained.output


def test_entries_claimed_by_a_poll_whose_write_failed_are_fetched_next_time(project, web,
                                                                            monkeypatch):
    """A pipeline kept across polls, as the service keeps it: a poll fails writing its
    sightings (another process holds the write lock past the busy timeout); the entries it
    had claimed are not left claimed, so the next poll stores them."""
    import asyncio

    import monitor.store.base
    from monitor.core import make_monitor
    from monitor.models import FeedResult

    monkeypatch.setattr(monitor.store.base, "BUSY_TIMEOUT_MS", 500)
    for n in (1, 2):
        web.send(f"/page/{n}", page(f"Story {n}", distinct_text(n)))
    web.send("/a.xml", rss_with_ids(web.base, range(1, 2)), ctype="application/rss+xml")
    web.send("/b.xml", rss_with_ids(web.base, range(1, 3)), ctype="application/rss+xml")
    project.feeds([("A", web.url("/a.xml"))])
    assert "1 new articles" in project.run("poll", "--once").output
    project.feeds([("B", web.url("/b.xml"))])
    mon = make_monitor(project.paths)

    async def two_polls() -> tuple[FeedResult, FeedResult]:
        async with mon.pipeline() as pipeline:
            holder = sqlite3.connect(project.db, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                first = await pipeline.poll_feed(feed)
            finally:
                holder.rollback()
                holder.close()
            return first, await pipeline.poll_feed(feed)

    try:
        mon.sync_feeds()
        feed = mon.feeds[0]
        first, second = asyncio.run(two_polls())
    finally:
        mon.close()
    assert first.status == "failed" and "database is locked" in (first.error or ""), first
    assert second.status == "ok" and second.new_articles == 1, second
    assert rows(project.db, "SELECT count(*) FROM articles WHERE feed_url = ?",
                web.url("/b.xml")) == [(1,)]


def test_the_search_index_follows_every_write_of_the_store(tmp_path):
    """New articles enter the search index in one statement per feed (no trigger per row):
    after adding, skipping what is stored already, a page that arrives late and old texts
    dropped, FTS5's own check against the articles table passes and each story is found."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from monitor.models import Article, Entry, Score
    from monitor.store import Store

    now = datetime(2026, 3, 2, tzinfo=UTC)
    store = Store(tmp_path / "m.db")
    store.db.conn.execute("INSERT INTO feeds (url, name) VALUES ('a', 'A'), ('b', 'B')")
    store.db.conn.commit()

    def article(feed: str, n: int, text: str) -> Article:
        entry = Entry(feed_url=feed, guid=str(n), url=f"u{n}", title=f"Story {n}", summary="",
                      author=None, published=None)
        return Article(entry=entry, text=text, title=entry.title, author=None, published=None,
                       language=None, extract_error=None)

    added = store.add_articles([article("a", n, distinct_text(n)) for n in range(1, 6)]
                               + [article("a", 9, "监控摄像头 cameras")], now, now)
    assert len(added) == 6
    # the same guids again and another feed carrying u1: nothing new, nothing indexed twice
    assert store.add_articles([article("a", 2, "x"), article("b", 1, "y")], now, now) == []
    first = added[0][0]
    late = replace(article("a", 1, "a late page about licence plate readers"),
                   score=Score(score=0.0, flagged=False))
    store.page_arrived(late, first, now)
    assert [r["url"] for r in store.search("licence plate")[1]] == ["u1"]
    assert store.drop_old_text(now + timedelta(days=1)) == 6
    store.add_articles([article("a", 7, "facial recognition at the station")],
                       now + timedelta(days=2), now)
    store.db.conn.execute("INSERT INTO articles_fts (articles_fts, rank) "
                          "VALUES ('integrity-check', 1)")
    assert [r["url"] for r in store.search("recognition")[1]] == ["u7"]
    assert [r["url"] for r in store.search("Story 9")[1]] == ["u9"]  # its title is kept
    assert store.search("摄像")[0] == 0  # its text was dropped with its CJK
    store.close()
