"""The digest: clusters of copies, every format, hostile content inert (checked in a real
headless Chromium), and email through a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import feedparser
import pytest

from monitor.core import make_monitor
from monitor.digest import render
from monitor.digest.build import Digest, FeedHealth, Source, Story

from .helpers import NOW, Clock, item, rss, stored_day

pytestmark = pytest.mark.dates  # also run with the clock moved ahead (.ci/run)

BODY = ("The city of Ostrava has switched on facial recognition across its network of "
        "1,800 street cameras, turning a traffic programme into a police surveillance system. "
        "Documents show that officers can search live CCTV footage for a face in seconds and "
        "follow a person from camera to camera across the old town and the train station. "
        "Residents were never asked, and the city council will debate a moratorium in March. "
        "Digital-rights groups say there is no retention limit and no independent oversight.")
DISTINCT = [
    ("Sheriff buys 40 licence plate readers", "The county sheriff will install 40 automated "
     "licence plate reader cameras at intersections; police can search a year of records."),
    ("Police drones with thermal cameras over parks", "The city police department will fly "
     "drones with thermal cameras over public parks and stream video to a crime center."),
    ("Predictive policing tool dropped by the city", "The city police stopped using predictive "
     "policing software after an audit found it sent officers to the same neighbourhoods."),
    ("Health code app tracked residents' movements", "The mandatory health code app logged the "
     "movements of residents, and local police used it to track people who attended protests."),
    ("Hikvision cameras found in government buildings", "An audit found 700 Hikvision "
     "surveillance cameras in government buildings and police stations despite a ban."),
]


def test_five_copies_and_five_distinct_stories_make_six_entries(project, web, page_html):
    chrome = ["Share this", "Spread the love", "Read more at the source", "Related: weather",
              "Comments are closed"]
    for n in range(5):  # one story syndicated by five feeds under five URLs and headlines
        web.send(f"/copy{n}", page_html(f"Ostrava cameras now recognise faces ({n})",
                                        f"{chrome[n]}.\n\n{BODY}\n\nPublished by outlet {n}."))
    for n, (title, text) in enumerate(DISTINCT):
        web.send(f"/story{n}", page_html(title, (text + " ") * 3))
    for n in range(5):
        items = [{**item(10 * n, web.base, path=f"/copy{n}", title=f"Ostrava copy {n}"),
                  "pubDate": f"Fri, 27 Nov 2026 0{n}:00:00 GMT"}]
        items.append(item(10 * n + 1, web.base, path=f"/story{n}", title=DISTINCT[n][0]))
        web.send(f"/feed{n}.xml", rss(items), ctype="application/rss+xml")
    project.feeds([(f"Outlet {n}", web.url(f"/feed{n}.xml")) for n in range(5)])
    assert "10 new articles, 10 flagged" in project.run("poll", "--once").output
    day = stored_day(project.db)  # the day stored, not the day the copies are dated
    out = json.loads(project.run("digest", "--format", "json", "--date", day).output)
    assert len(out["stories"]) == 6
    ostrava = [s for s in out["stories"] if len(s["sources"]) > 1]
    assert len(ostrava) == 1 and len(ostrava[0]["sources"]) == 5
    assert [s["feed"] for s in ostrava[0]["sources"]] == [f"Outlet {n}" for n in range(5)]
    assert out["articles"] == 10
    with sqlite3.connect(project.db) as conn:
        clusters = conn.execute("SELECT count(DISTINCT cluster_id) FROM articles").fetchone()[0]
    assert clusters == 6  # kept in the database


def hostile_digest() -> Digest:
    evil = ('<script>document.title="PWNED"</script><img src=x onerror="document.title=\'PWNED\'">'
            '"><svg onload=alert(1)>')
    story = Story(
        id=1, title=f"Title {evil}", url="javascript:alert(1)", feed=f"Feed {evil}",
        published="2026-11-27T08:00:00+00:00", score=12.5,
        matches=[{"term": "facial recognition", "concept": "face_recognition", "field": "title",
                  "count": 1, "contribution": 6.0},
                 {"term": "<script>", "concept": "x", "field": "body", "count": 1,
                  "contribution": 1.0}],
        tags={"vendor": [f"Vendor {evil}"], "place": ["China"]},
        excerpt=f"Police use facial recognition {evil} <a href=\"javascript:alert(2)\">x</a>",
        sources=[Source(feed=f"Feed {evil}", title="t", url=None, published=None),
                 Source(feed="Data", title="t", url=None, published="2026-11-27")])
    clean = Story(id=2, title="Clean", url="https://example.org/a", feed="Feed",
                  published="2026-11-27T09:00:00+00:00", score=9.0, matches=[], tags={},
                  excerpt="", sources=[Source("Feed", "Clean", "https://example.org/a", None)])
    return Digest(date="2026-11-27", timezone="UTC", stories=[story, clean], articles=2,
                  top_tags=[("China", 1)],
                  health=FeedHealth(failing=[{"name": evil, "url": "http://x/",
                                              "last_error": evil, "consecutive_failures": 2}]))


def test_hostile_content_is_inert_in_every_format():
    d = hostile_digest()
    md = render(d, "md")  # markup in Markdown only as backslash-escaped text
    assert "(<javascript" not in md
    assert not re.search(r"(?<!\\)<(script|a |img|svg)", md)
    html = render(d, "html")
    assert "<script" not in html and "onerror=" not in html.replace("onerror=&#34;", "")
    assert 'href="javascript' not in html and "<svg" not in html
    parsed = feedparser.parse(render(d, "atom").encode())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == 2
    assert parsed.entries[0].title.startswith("Title <script>")  # text, shown as text
    assert all(not link.href.startswith("javascript") for e in parsed.entries
               for link in e.get("links", []))
    assert parsed.entries[1].link == "https://example.org/a"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"),
                    reason="no system Chromium (CI installs it)")
def test_html_digest_runs_no_script_in_a_real_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "digest.html"
    page_file.write_text(render(hostile_digest(), "html"), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(page_file.as_uri())
            page.wait_for_timeout(300)
            assert dialogs == []
            assert page.title() == "Digest for 2026-11-27"
            assert page.evaluate("document.querySelectorAll('script').length") == 0
            assert page.evaluate("document.querySelectorAll('[onerror],[onload]').length") == 0
            hrefs = page.evaluate("[...document.querySelectorAll('a')].map(a => a.href)")
            assert hrefs == ["https://example.org/a", "https://example.org/a"]
            assert "<script>" in page.inner_text("main")  # shown as text, not run
            page.screenshot(path=str(tmp_path / "digest.png"), full_page=True)
        finally:
            browser.close()


def test_daily_digest_is_emailed_once_then_only_on_request(project, web, page_html,
                                                          smtp_server):
    controller, received = smtp_server
    web.send("/f.xml", rss([item(1, web.base, title="Police expand facial recognition")]),
             ctype="application/rss+xml")
    web.send("/page/1", page_html("Police expand facial recognition", BODY))
    project.feeds([("F", web.url("/f.xml"))])
    config = project.root / "config" / "settings.yaml"
    config.write_text(config.read_text() + (
        f"digest_dir: {project.root / 'digests'}\nemail:\n  host: 127.0.0.1\n"
        f"  port: {controller.port}\n  tls: none\n"
        "  from: monitor@example.org\n  to: [analyst@example.org]\n"))
    project.run("poll", "--once")
    day = date.fromisoformat(stored_day(project.db))
    monitor = make_monitor(project.paths)
    try:
        files = monitor.write_daily_digest(day)
        monitor.write_daily_digest(day)  # written again, but not sent twice
    finally:
        monitor.close()
    assert {p.suffix for p in files} == {".md", ".html", ".json", ".txt", ".atom"}
    assert len(received) == 1
    msg = received[0]
    assert msg["To"] == "analyst@example.org" and "1 stories" in msg["Subject"]
    parts = {part.get_content_type(): part for part in msg.walk()}
    assert "text/plain" in parts and "text/html" in parts
    assert "Police expand facial recognition" in parts["text/plain"].get_payload(decode=True
                                                                                ).decode()
    with sqlite3.connect(project.db) as conn:
        sent = conn.execute("SELECT day, stories, sent_to FROM digests").fetchall()
    assert sent == [(day.isoformat(), 1, "analyst@example.org")]
    again = project.run("digest", "--send", "--date", day.isoformat())
    assert again.exit_code == 0 and len(received) == 2


def test_terminal_and_range(project, web, page_html):
    web.send("/f.xml", rss([item(1, web.base, title="Police expand facial recognition")]),
             ctype="application/rss+xml")
    web.send("/page/1", page_html("Police expand facial recognition", BODY))
    project.feeds([("F", web.url("/f.xml"))])
    project.run("poll", "--once")
    day = stored_day(project.db)
    term = project.run("digest", "--format", "term", "--date", day).output  # no colour here
    assert "Police expand facial recognition" in term and "╭" in term
    assert "\x1b[" in render(hostile_digest(), "term")
    since = json.loads(project.run("digest", "--since", "2026-01-01", "--format", "json").output)
    assert since["date"].startswith("2026-01-01 to ") and len(since["stories"]) == 1
    assert project.run("digest", "--date", "2026-01-01", "--since", "2026-01-01").exit_code == 2
    # today and yesterday, in the configured time zone (UTC here)
    today = date.fromisoformat(day)
    assert project.run("digest", "--date", "today").output.startswith(f"Digest for {day}")
    yesterday = project.run("digest", "--date", "yesterday", "--format", "json")
    assert json.loads(yesterday.output)["date"] == (today - timedelta(days=1)).isoformat()
    assert "is not a date (YYYY-MM-DD, today or yesterday)" in project.run(
        "digest", "--date", "someday").output


def _articles(store, rows):
    """rows: (id, fetched_at, text or None): stored with their signatures, not clustered."""
    from monitor.copies import signature
    from monitor.store import iso

    store.db.execute("INSERT OR IGNORE INTO feeds (url, name) VALUES ('http://f/', 'F')")
    store.db.conn.executemany(
        "INSERT INTO articles (id, url, guid, feed_url, title, text, signature, fetched_at) "
        "VALUES (?, ?, ?, 'http://f/', 't', ?, ?, ?)",
        [(i, f"http://f/{i}", f"g{i}", text, signature(text) if text else None, iso(at))
         for i, at, text in rows])
    store.db.conn.executemany(  # the search index, as the store's add_articles keeps it
        "INSERT INTO articles_fts (rowid, title, text) VALUES (?, 't', ?)",
        [(i, text) for i, _, text in rows])
    store.db.conn.commit()


def _cluster(store, article_id, sig, now, title="t", feed="http://f/", short=False):
    return store.cluster([(article_id, sig, title, feed, short)],
                         now - timedelta(days=30))[0][1]


def test_signatures_stored_before_the_upgrade_are_made_again(tmp_path):
    """Migration m006: a signature from the old scheme (SHA-1 per shingle) would never meet a
    new one, so the stored ones are recomputed from the stored text; none are added."""
    from monitor.copies import signature
    from monitor.store import Store

    path = tmp_path / "old.db"
    store = Store(path)
    store.db.execute("INSERT INTO feeds (url, name) VALUES ('http://f/', 'F')")
    for n, (text, sig) in enumerate([(BODY * 2, b"old-scheme"), ("too short", None)], 1):
        store.db.execute("INSERT INTO articles (id, url, guid, feed_url, title, text, signature) "
                         "VALUES (?, ?, ?, 'http://f/', 't', ?, ?)",
                         [n, f"http://f/{n}", f"g{n}", text, sig])
    store.db.execute("DELETE FROM _sqlite_migrations WHERE name = "
                     "'m006_signatures_from_word_hashes'")
    store.db.conn.commit()
    store.close()

    store = Store(path)  # the upgrade
    stored = dict(store.db.execute("SELECT id, signature FROM articles").fetchall())
    assert stored == {1: signature(BODY * 2), 2: None}
    store.db.execute("UPDATE articles SET fetched_at = ?", [NOW.isoformat()])
    assert _cluster(store, 1, stored[1], NOW) == 1
    copy = "Spread the love. " + BODY * 2 + " Read More... Related news."
    other = " ".join(text for _, text in DISTINCT) * 2
    _articles(store, [(3, NOW, copy), (4, NOW, other)])
    assert _cluster(store, 3, signature(copy), NOW) == 1  # a later copy meets the upgraded story
    assert _cluster(store, 4, signature(other), NOW) == 4
    store.close()


def test_the_cluster_index_looks_back_over_a_window_of_days(tmp_path):
    """A new article is a copy only of articles fetched in the last 30 days: a later copy of
    an older one starts a story of its own."""
    from monitor.copies import signature
    from monitor.store import Store

    copy = "Spread the love. " + BODY * 2 + " Read More... Related news."
    other = " ".join(text for _, text in DISTINCT) * 2
    store = Store(tmp_path / "m.db")
    _articles(store, [(1, NOW - timedelta(days=40), BODY * 2),
                      (2, NOW - timedelta(days=3), other),
                      (3, NOW - timedelta(days=35), "too short"),
                      (4, NOW - timedelta(days=39), copy), (5, NOW, copy),
                      (6, NOW, other + " Share this.")])
    then = NOW - timedelta(days=39)
    assert [_cluster(store, i, signature(t), then) for i, t in
            [(1, BODY * 2), (3, "too short"), (4, copy)]] == [1, 3, 1]
    assert _cluster(store, 2, signature(other), NOW - timedelta(days=3)) == 2
    assert _cluster(store, 5, signature(copy), NOW) == 5  # its earlier copies are too old
    assert _cluster(store, 6, signature(other + " Share this."), NOW) == 2
    keys = store.db.execute("SELECT count(*), count(DISTINCT article_id) FROM lsh_bands")
    assert keys.fetchone() == (5 * 32, 5)  # none for the text too short to compare
    store.close()


def test_a_late_text_moves_its_article_into_the_story_it_copies(tmp_path):
    """A page whose text arrives on a retry was clustered on its feed summary: its old band
    keys go, and it joins the story its text copies."""
    from monitor.copies import band_keys, signature
    from monitor.store import Store

    summary = " ".join(text for _, text in DISTINCT) * 2
    copy = "Spread the love. " + BODY * 2 + " Read More... Related news."
    store = Store(tmp_path / "m.db")
    _articles(store, [(1, NOW, BODY * 2), (2, NOW, summary)])
    assert _cluster(store, 1, signature(BODY * 2), NOW) == 1
    assert _cluster(store, 2, signature(summary), NOW) == 2
    since = NOW - timedelta(days=30)
    assert store.recluster(2, (signature(summary), "t"), (signature(copy), "t", copy),
                           "http://f/", since) == 1
    keys = {k for (k,) in store.db.execute("SELECT key FROM lsh_bands WHERE article_id = 2")}
    assert keys == set(band_keys(signature(copy)))
    store.close()


def test_the_index_is_filled_from_stored_signatures_on_upgrade(tmp_path):
    """Migration m011: a database clustered by the in-memory index gets the band keys of the
    articles a new one can still copy (the last 31 days); older ones get none."""
    from monitor.copies import signature
    from monitor.store import Store

    other = " ".join(text for _, text in DISTINCT) * 2
    path = tmp_path / "old.db"
    store = Store(path)
    _articles(store, [(1, NOW - timedelta(days=60), other), (2, NOW - timedelta(days=5), BODY * 2),
                      (3, NOW, "too short")])
    store.db.execute("UPDATE articles SET cluster_id = id")
    store.db.execute("DROP TABLE lsh_bands")
    store.db.execute("DELETE FROM _sqlite_migrations WHERE name IN ('m011_lsh_bands', "
                     "'m016_narrow_bands_and_titles')")  # both run again, in order
    store.db.conn.commit()
    store.close()

    store = Store(path)  # the upgrade
    assert store.db.execute("SELECT DISTINCT article_id FROM lsh_bands").fetchall() == [(2,)]
    copy = "Spread the love. " + BODY * 2 + " Read More... Related news."
    _articles(store, [(4, NOW, copy)])
    assert _cluster(store, 4, signature(copy), NOW) == 2
    store.close()


def test_the_minhash_is_datasketchs():
    """cluster.minhash computes datasketch's MinHash (2.x, default scheme, seed 1) without
    importing datasketch (which loads SciPy): the same 64 values for any input."""
    import numpy as np
    from datasketch import MinHash

    from monitor import copies as cluster

    rnd = np.random.default_rng(5)
    inputs = [np.array([0], dtype=np.uint32), np.array([2**32 - 1, 7, 7], dtype=np.uint32)]
    inputs += [rnd.integers(0, 2**32, size=n, dtype=np.uint32) for n in (1, 2, 30, 500, 20_000)]
    for values in inputs:
        m = MinHash(num_perm=cluster.NUM_PERM, hashfunc=int)
        m.update_batch(values.tolist())
        assert cluster.minhash(values) == m.hashvalues.astype(np.uint64).tobytes()


def test_a_long_texts_signature_is_the_whole_texts_in_bounded_memory():
    """Words and shingles are taken a chunk at a time: the signature is the MinHash of every
    shingle of the text (as one pass over all of them computes it), and a page of 380,000
    distinct words costs a few MB, not its words times 64 hashes (255 MB before)."""
    import tracemalloc
    import zlib

    import numpy as np

    from monitor import copies as cluster
    from monitor.scoring.text import normalize

    text = " ".join(f"Word{i}-x" if i % 7 else "the" for i in range(30_000))
    words = normalize(text).split()
    h = np.array([zlib.crc32(w.encode()) for w in words], dtype=np.uint64)
    n = len(words) - cluster.SHINGLE + 1
    mixed = h[:n] * cluster._MIX[0]
    for k in range(1, cluster.SHINGLE):
        mixed ^= h[k:k + n] * cluster._MIX[k]
    whole = cluster.minhash((mixed >> np.uint64(32)).astype(np.uint32))
    assert cluster.signature(text) == whole
    big = " ".join(f"word{i}" for i in range(380_000))
    tracemalloc.start()
    try:
        assert cluster.signature(big) is not None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak


def test_the_stored_index_decides_as_datasketch_did(tmp_path):
    """The same decisions as a reference built on datasketch's MinHashLSH with the same
    banding (32 bands of 2), each candidate checked on its signature, over a 30-day window:
    700 articles, a third of them copies of an earlier one with up to half their words
    changed, the others sharing sentences of boilerplate, fetched over 90 days. No two
    different stories are ever joined, and lightly reworded copies (a word in twelve) all
    are."""
    import random

    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from monitor import copies as cluster
    from monitor.store import Store

    lsh = MinHashLSH(num_perm=cluster.NUM_PERM, params=(cluster.BANDS, cluster.ROWS))
    rnd = random.Random(7)
    vocabulary = [f"w{n}" for n in range(3000)]
    boilerplate = [rnd.choices(vocabulary, k=12) for _ in range(8)]
    texts: list[list[str]] = []
    root: dict[int, int] = {}  # the story each article really tells
    changed: dict[int, float] = {}
    rows = []
    for n in range(1, 701):
        if texts and rnd.random() < 0.35:  # a copy with a share of its words changed
            source = rnd.randrange(max(0, len(texts) - 250), len(texts))  # some too old
            words = list(texts[source])
            changed[n] = rnd.choice([1 / 12, rnd.uniform(0, 0.5)])
            for k in rnd.sample(range(len(words)), int(len(words) * changed[n])):
                words[k] = rnd.choice(vocabulary)
            root[n] = root[source + 1]
        else:  # a story of its own, with a sentence of boilerplate that others share too
            words = rnd.choices(vocabulary, k=rnd.randint(80, 300))
            at = rnd.randrange(len(words))
            words[at:at] = rnd.choice(boilerplate)
            root[n] = n
        texts.append(words)
        rows.append((n, NOW + timedelta(hours=3.6 * n), " ".join(words)))
    store = Store(tmp_path / "m.db")
    _articles(store, rows)

    cluster_of: dict[int, int] = {}  # the reference
    signatures: dict[int, bytes] = {}
    added: list[tuple[datetime, int]] = []
    expected, got = {}, {}
    for n, at, text in rows:
        since = at - timedelta(days=30)
        for when, k in [x for x in added if x[0] < since]:
            added.remove((when, k))
            if k in lsh:
                lsh.remove(k)
            cluster_of.pop(k)
        sig = cluster.signature(text)
        added.append((at, n))
        if sig is None:
            cluster_of[n] = n
        else:
            m = MinHash(num_perm=cluster.NUM_PERM, scheme="affine32",
                        hashvalues=np.frombuffer(sig, np.uint64).astype(np.uint32))
            matches = [cluster_of[k] for k in lsh.query(m) if k in cluster_of
                       and cluster.similarity(sig, signatures[k]) >= cluster.SAME_STORY]
            cluster_of[n] = min(matches) if matches else n
            lsh.insert(n, m)
            signatures[n] = sig
        expected[n] = cluster_of[n]
        got[n] = _cluster(store, n, sig, at)
    store.close()
    assert got == expected
    for n, c in got.items():
        assert root[n] == root[c], f"article {n} joined story {c}, another story"
    joined = sum(1 for n, c in got.items() if c != n)
    assert 100 < joined < 200  # copies joined, and copies too changed or too old to join
    light = [n for n, share in changed.items() if share == 1 / 12 and len(texts[n - 1]) >= 30
             and rows[n - 1][1] - rows[root[n] - 1][1] < timedelta(days=29)]
    assert light and all(got[n] != n for n in light)


def test_a_late_story_is_in_the_digest_of_the_day_it_was_stored(project, web, page_html):
    """Dated three days back, first stored today: in today's digest and no other; a story
    flagged later (a rescore under new keywords) enters the digest of the day it changed."""
    clock = Clock(datetime(2027, 1, 1, 0, 30, tzinfo=UTC))  # just past New Year's midnight
    late = {**item(1, web.base, title="Police expand facial recognition"),
            "pubDate": format_datetime(clock.now - timedelta(days=3), usegmt=True)}
    web.send("/page/1", page_html("Police expand facial recognition", BODY))
    web.send("/page/2", page_html("Council reviews the tram budget", TRAM))
    web.send("/f.xml", rss([late, item(2, web.base, title="Council reviews the tram budget")]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    monitor = make_monitor(project.paths, clock=clock)
    try:
        assert monitor.poll_once().flagged == 1
        today = date(2027, 1, 1)

        def titles(day: date) -> list[str]:
            return [s.title for s in monitor.digest(day).stories]

        assert titles(today) == ["Police expand facial recognition"]
        assert titles(today) == titles(today)  # the same stories when written again
        for back in range(1, 6):
            assert titles(today - timedelta(days=back)) == []
        assert titles(today + timedelta(days=1)) == []
        story = monitor.digest(today).stories[0]
        assert story.published and story.published.startswith("2026-12-29")

        clock.now += timedelta(days=1)  # the next day, "tram" becomes a flagged term
        keywords = project.paths.keywords
        keywords.write_text(keywords.read_text().replace(
            "concepts:\n", "concepts:\n  tram_budget:\n    role: [surveillance, technology, "
            "context]\n    weight: 10\n    terms: [tram budget]\n", 1), encoding="utf-8")
        monitor = _reopen(monitor, project, clock)
        changes = monitor.rescore()
        assert [c["title"] for c in changes] == ["Council reviews the tram budget"]
        assert titles(today) == ["Police expand facial recognition"]
        assert titles(today + timedelta(days=1)) == ["Council reviews the tram budget"]
        since = monitor.digest(since=today - timedelta(days=7))
        assert sorted(s.title for s in since.stories) == [
            "Council reviews the tram budget", "Police expand facial recognition"]
    finally:
        monitor.close()


def _reopen(monitor, project, clock):  # noqa: ANN001, ANN202
    monitor.close()
    return make_monitor(project.paths, clock=clock)


TRAM = ("The city council reviewed the tram budget on Tuesday and agreed to buy six new "
        "low-floor trams for the eastern line, with a new depot to open next spring. ") * 3


def test_a_text_too_short_to_compare_joins_its_story_by_a_distinctive_title(tmp_path):
    """A summary-only entry from another feed joins the full story under the same headline;
    a generic headline ("Daily briefing") or the same feed's recurring one joins nothing."""
    from monitor.copies import signature
    from monitor.store import Store

    headline = "Ostrava switches on facial recognition across its street cameras"
    store = Store(tmp_path / "m.db")
    store.db.execute("INSERT INTO feeds (url, name) VALUES ('http://g/', 'G')")
    _articles(store, [(1, NOW, BODY * 2), (2, NOW, "Ostrava turns on face recognition."),
                      (3, NOW, "Ostrava turns on face recognition."),
                      (4, NOW, "Council budget news."), (5, NOW, "Tram timetable news.")])
    assert _cluster(store, 1, signature(BODY * 2), NOW, title=headline) == 1
    assert _cluster(store, 2, None, NOW, title=headline, feed="http://g/", short=True) == 1
    assert _cluster(store, 3, None, NOW, title=headline, short=True) == 3  # the same feed
    assert _cluster(store, 4, None, NOW, title="Daily briefing", short=True) == 4
    assert _cluster(store, 5, None, NOW, title="Daily briefing", feed="http://g/",
                    short=True) == 5
    store.close()
