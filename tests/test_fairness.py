"""Fair fetching on real servers on 127.0.0.x: one site's backlog does not hold up another,
and a site that never answers is set aside after a couple of tries, its pages kept for later.
Logic only; the figures are scripts/bench.py's."""

from __future__ import annotations

import sqlite3
import time

import pytest

from .helpers import LocalWeb, item, rss
from .test_pipeline import STORY


@pytest.fixture
def site_b():
    server = LocalWeb(host="127.0.0.2")
    yield server
    server.close()


# 1 worker extracts in a thread and fetches here; 2 are processes that fetch their pages
# themselves, under the turns this process lends them: both must keep the same promises
WORKERS = pytest.mark.parametrize("workers", [1, 2], ids=["threads", "processes"])


@WORKERS
def test_a_big_slow_site_does_not_hold_up_a_small_one(project, web, site_b, page_html, workers):
    for n in range(40):  # site A: 40 pages, half a second each, 2 at a time
        web.send(f"/page/{n}", page_html(f"A {n}", STORY), delay=0.5)
    web.send("/a.xml", rss([item(n, web.base) for n in range(40)]), ctype="application/rss+xml")
    for n in range(5):
        site_b.send(f"/page/{n}", page_html(f"B {n}", STORY))
    # B's feed answers later, so A's forty pages are queued first
    site_b.send("/b.xml", rss([item(100 + n, site_b.base, path=f"/page/{n}")
                               for n in range(5)]), ctype="application/rss+xml", delay=0.3)
    project.feeds([("A", web.url("/a.xml")), ("B", site_b.url("/b.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=workers, concurrency=16,
                     per_host_limit=2)
    assert "45 new articles" in project.run("poll", "--once").output
    b_done = max(t for t, path in site_b.times if path.startswith("/page/"))
    a_before = sum(1 for t, path in web.times if path.startswith("/page/") and t < b_done)
    # B's pages were served while A had served about 2 per half second, not 40
    assert a_before <= 8, a_before
    assert max(len([1 for t, p in web.times if p.startswith("/page/") and abs(t - at) < 0.2])
               for at, _ in web.times) <= 2 * 2  # politeness held: about 2 at a time on A


@WORKERS
def test_a_site_that_never_answers_is_set_aside_and_its_pages_kept(project, web, site_b,
                                                                   page_html, workers):
    for n in range(10):  # site B accepts and never answers in time
        site_b.send(f"/page/{n}", page_html(f"B {n}", STORY), delay=20)
    for n in range(3):
        web.send(f"/page/{n}", page_html(f"A {n}", STORY))
    web.send("/f.xml", rss([item(n, web.base) for n in range(3)] +
                           [item(100 + n, site_b.base, path=f"/page/{n}") for n in range(10)]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=workers, read_timeout=1,
                     request_deadline=2, per_host_limit=2)
    started = time.monotonic()
    result = project.run("poll", "--once")
    took = time.monotonic() - started
    assert "13 new articles" in result.output, result.output
    # two tries, then set aside for the cycle. Worker processes report their failures one
    # by one: the turn the first gives back may start one more try before the second is in
    tried = sum(site_b.hits.values())
    assert tried == 2 if workers == 1 else 2 <= tried <= 3, tried
    assert took < 2 * 10 / 2 + 5  # not a timeout per page (10 pages, 2 at a time)
    with sqlite3.connect(project.db) as conn:
        rows = conn.execute("SELECT extract_error, retry_at FROM articles WHERE url LIKE ?",
                            [site_b.base + "%"]).fetchall()
    assert len(rows) == 10 and all(retry for _, retry in rows)  # kept for a later try
    assert sum(1 for e, _ in rows if e.startswith("host set aside")) == 10 - tried
    assert result.output.count("host set aside") == 1, result.output  # one log line
