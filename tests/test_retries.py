"""Nothing missed: a page that fails for a passing reason is fetched again on the schedule of
`page_retry_delays`, rescored and re-clustered; a permanent failure is not retried."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest

from .helpers import Clock, item, rss
from .test_pipeline import STORY

pytestmark = pytest.mark.dates  # also run with the clock moved ahead (.ci/run)


def flaky(web, path: str, body: str, failures: int, status: int = 503,  # noqa: ANN001
          retry_after: str = "1") -> None:
    """*path* answers *status* (with Retry-After) *failures* times, then *body*."""
    data = body.encode()
    left = [failures]

    def route(h) -> None:  # noqa: ANN001
        if left[0] > 0:
            left[0] -= 1
            h.send_response(status)
            h.send_header("Retry-After", retry_after)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    web.routes[path] = route


def article(db, url: str) -> dict:  # noqa: ANN001
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM articles WHERE url = ?", [url]).fetchone()
    return dict(row)


def test_a_page_that_fails_once_has_its_text_after_the_next_due_poll(project, web, page_html):
    flaky(web, "/page/1", page_html("Police expand facial recognition", STORY), failures=1)
    web.send("/page/2", "gone", status=404)
    web.send("/f.xml", rss([item(1, web.base, title="Police expand facial recognition"),
                            item(2, web.base, title="Council budget")]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    # long enough that the first poll's own retry pass (after its feeds) finds nothing due,
    # even on a loaded machine
    project.settings(allow_private_addresses=True, extract_workers=1,
                     page_retry_delays="[4s]")
    first = project.run("poll", "--once")
    assert "2 new articles" in first.output, first.output
    failed = article(project.db, web.url("/page/1"))
    assert failed["extract_error"] == "HTTP 503" and failed["retry_at"]
    assert failed["text"] == "Summary of story 1."
    assert article(project.db, web.url("/page/2"))["retry_at"] is None  # 404: permanent
    status = json.loads(project.run("status", "--format", "json").output)
    assert status[0]["pages_waiting"] == 1
    assert "1 pages waiting for a retry" in project.run("digest", "--since",
                                                        "2000-01-01").output

    due = datetime.fromisoformat(failed["retry_at"]) - datetime.now(UTC)
    time.sleep(max(due.total_seconds(), 0) + 1)
    second = project.run("poll", "--once")
    assert "1 of 1 pages retried arrived" in second.output, second.output
    done = article(project.db, web.url("/page/1"))
    assert done["extract_error"] is None and done["retry_at"] is None
    assert "Ostrava" in done["text"] or len(done["text"]) > 200
    assert done["score"] > failed["score"] and done["flagged"] == 1 and done["flagged_at"]
    with sqlite3.connect(project.db) as conn:  # the full-text index follows the new text
        hits = conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH "
                            "'recognition'").fetchone()[0]
    assert hits == 1
    assert web.hits["/page/1"] == 2 and web.hits["/page/2"] == 1
    assert json.loads(project.run("status", "--format", "json").output)[0]["pages_waiting"] == 0


def test_retries_follow_the_schedule_then_stop(project, web, page_html):
    """Not before it is due; given up when the schedule is spent, keeping the last error."""

    from monitor.core import make_monitor

    flaky(web, "/page/1", page_html("t", STORY), failures=10, status=429, retry_after="0")
    web.send("/f.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1,
                     page_retry_delays="[15m, 1h]")
    clock = Clock(datetime(2026, 3, 1, 23, 50, tzinfo=UTC))
    monitor = make_monitor(project.paths, clock=clock)
    try:
        assert monitor.poll_once().retried == 0
        clock.now += timedelta(minutes=14)
        assert monitor.poll_once().retried == 0  # not due yet
        for wait in (timedelta(minutes=1), timedelta(hours=1)):
            clock.now += wait
            summary = monitor.poll_once()
            assert (summary.retried, summary.recovered) == (1, 0)
        clock.now += timedelta(days=2)
        assert monitor.poll_once().retried == 0  # given up
    finally:
        monitor.close()
    row = article(project.db, web.url("/page/1"))
    assert row["retry_at"] is None and row["extract_error"] == "HTTP 429"
    assert row["page_tries"] == 3 and web.hits["/page/1"] == 3


def test_which_failures_are_retried_and_when():

    from monitor.errors import Blocked, ExtractError, FetchError, InvalidLink, SetAside, TooLarge
    from monitor.retry import retry_at

    now = datetime(2026, 6, 1, tzinfo=UTC)
    delays = [900.0, 3600.0]
    for transient in (FetchError("u", "ConnectError: refused", unreachable=True),
                      FetchError("u", "x", status=503), FetchError("u", "x", status=429),
                      FetchError("u", "timed out", unreachable=True),
                      SetAside("u", "host set aside")):
        assert retry_at(transient, now, 1, delays) == now + timedelta(seconds=900)
        assert retry_at(transient, now, 2, delays) == now + timedelta(seconds=3600)
        assert retry_at(transient, now, 3, delays) is None  # the schedule is spent
    for permanent in (FetchError("u", "x", status=404), FetchError("u", "x", status=410),
                      TooLarge("u", "big"), Blocked("u", "private"),
                      FetchError("u", "more than 5 redirects"),
                      InvalidLink("u", "invalid URL: x"),
                      ExtractError("u", "no article text")):
        assert retry_at(permanent, now, 1, delays) is None
    slow = FetchError("u", "x", status=503, retry_after=7200.0)
    assert retry_at(slow, now, 1, delays) == now + timedelta(seconds=7200)
    assert retry_at(FetchError("u", "x", status=503), now, 1, []) is None
