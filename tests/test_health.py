"""Feed health: backoff, Retry-After, 410 Gone, permanent redirects; status and feeds commands."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.config import load_feeds

from .helpers import item, rss

pytestmark = pytest.mark.dates  # also run with the clock moved ahead (.ci/run)


def feed_row(project, url):
    with sqlite3.connect(project.db) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM feeds WHERE url = ?", [url]).fetchone())


def wait_seconds(row) -> float:
    return (datetime.fromisoformat(row["next_poll_at"])
            - datetime.fromisoformat(row["last_polled_at"])).total_seconds()


def test_backoff_doubles_is_capped_and_resets(project, web):
    project.settings(allow_private_addresses=True, extract_workers=1, default_interval=100,
                     jitter=0, max_backoff=350)
    url = web.url("/flaky.xml")
    project.feeds([("Flaky", url)])
    web.send("/flaky.xml", "down", status=500)
    waits = []
    for _ in range(4):
        assert project.run("poll", "--once").exit_code == 0
        row = feed_row(project, url)
        waits.append(wait_seconds(row))
    assert waits == [100, 200, 350, 350]
    assert row["consecutive_failures"] == 4 and row["last_error"] == "HTTP 500"
    web.send("/flaky.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    web.send("/page/1", "<html><body><p>" + "Words about the weather. " * 20 + "</p></body></html>")
    project.run("poll", "--once")
    row = feed_row(project, url)
    assert (row["consecutive_failures"], row["last_status"], wait_seconds(row)) == (0, "ok", 100)


def test_retry_after_seconds_date_and_garbage(project, web):
    project.settings(allow_private_addresses=True, default_interval=60, jitter=0,
                     max_backoff=3600)
    # from the clock now, not the suite's start: earlier tests can take more than a minute
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=900), usegmt=True)
    cases = {"/s.xml": (429, "300"), "/d.xml": (503, later), "/g.xml": (503, "soon-ish"),
             "/cap.xml": (429, "999999")}
    for path, (status, value) in cases.items():
        web.send(path, "slow down", status=status, headers={"Retry-After": value})
    project.feeds([(p, web.url(p)) for p in cases])
    project.run("poll", "--once")
    waits = {p: wait_seconds(feed_row(project, web.url(p))) for p in cases}
    assert waits["/s.xml"] == 300
    assert 850 <= waits["/d.xml"] <= 905
    assert waits["/g.xml"] == 60  # garbage ignored: the plain interval
    assert waits["/cap.xml"] == 3600  # capped at max_backoff
    assert feed_row(project, web.url("/s.xml"))["last_error"] == "HTTP 429"


def test_gone_feed_is_not_polled_until_enabled(project, web):
    url = web.url("/gone.xml")
    project.feeds([("Gone", url)])
    web.send("/gone.xml", "gone", status=410)
    project.run("poll", "--once")
    row = feed_row(project, url)
    assert row["last_status"] == "gone" and row["gone_at"] and row["next_poll_at"] is None
    project.run("poll", "--once")
    assert web.hits["/gone.xml"] == 1
    status = json.loads(project.run("status", "--format", "json").output)
    assert status[0]["state"] == "gone"
    assert "will be polled again" in project.run("feeds", "enable", url).output
    project.run("poll", "--once")
    assert web.hits["/gone.xml"] == 2


def test_permanent_redirect_moves_the_feed(project, web, page_html):
    old, new = web.url("/old.xml"), web.url("/new.xml")
    web.send("/old.xml", "", status=301, headers={"Location": "/new.xml"})
    web.send("/new.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    web.send("/page/1", page_html("Story 1", "Plain words about a town fair. " * 10))
    project.feeds([("Moved", old)])
    result = project.run("-v", "poll", "--once")
    assert "feed moved permanently" in result.output and "update feeds.yaml" in result.output
    assert feed_row(project, old)["moved_to"] == new
    project.run("poll", "--once")
    assert web.hits["/old.xml"] == 1 and web.hits["/new.xml"] == 2


def test_status_table_and_json(project, web, page_html):
    web.send("/a.xml", rss([item(1, web.base)]), ctype="application/rss+xml",
             headers={"ETag": '"x"'})
    web.send("/page/1", page_html("Story 1", "Plain words about a town fair. " * 10))
    web.send("/b.xml", "nope", status=500)
    project.feeds([("Alpha", web.url("/a.xml")), ("Beta", web.url("/b.xml"))])
    project.run("poll", "--once")
    rows = {r["name"]: r for r in json.loads(project.run("status", "--format", "json").output)}
    assert rows["Alpha"]["state"] == "ok" and rows["Alpha"]["articles_7d"] == 1
    assert rows["Beta"]["state"] == "failed" and rows["Beta"]["consecutive_failures"] == 1
    assert rows["Beta"]["last_error"] == "HTTP 500" and rows["Alpha"]["next_poll_at"]
    table = project.run("status").output
    assert "Alpha" in table and "HTTP 500" in table
    # piped (CliRunner is no terminal), every column keeps its width: one line per feed
    header = next(line for line in table.splitlines() if "feed" in line and "state" in line)
    assert all(c in header for c in ("last success", "articles 7d", "304s", "next poll"))
    beta = next(line for line in table.splitlines() if "Beta" in line)
    assert "failed" in beta and "HTTP 500" in beta


def test_feeds_add_checks_finds_the_feed_of_a_page_and_writes_any_name(project, web):
    project.feeds("feeds: []\n")
    web.send("/feed.xml", rss([item(1, web.base)], title="Site News"),
             ctype="application/rss+xml")
    web.send("/home", '<html><head><title>Home</title><link rel="alternate" '
             'type="application/rss+xml" title="News" href="/feed.xml"></head><body>hi</body>'
             '</html>', ctype="text/html")
    web.send("/plain", "<html><head><title>No feed</title></head><body>hi</body></html>",
             ctype="text/html")
    found = project.run("feeds", "check", web.url("/home"))
    assert found.exit_code == 0 and f"its feed: {web.url('/feed.xml')}" in found.output
    added = project.run("feeds", "add", web.url("/home"), "--name", "No")
    assert added.exit_code == 0, added.output
    assert f"added {web.url('/feed.xml')} as 'No'" in added.output
    assert project.run("check-config").exit_code == 0  # 'No' is a name, not a boolean
    assert [f.name for f in load_feeds(project.paths.feeds)] == ["No"]
    plain = project.run("feeds", "add", web.url("/plain"), "--name", "Plain")
    assert plain.exit_code == 1 and "no feed link found" in plain.output
    assert "not added" in plain.output
    gone = project.run("feeds", "add", "http://127.0.0.1:9/feed.xml", "--name", "Gone")
    assert gone.exit_code == 1 and "not added" in gone.output
    assert len(load_feeds(project.paths.feeds)) == 1
    kept = project.run("feeds", "add", web.url("/plain"), "--name", "on", "--no-check")
    assert kept.exit_code == 0 and [f.name for f in load_feeds(project.paths.feeds)] == [
        "No", "on"]


def test_feeds_add_remove_keep_comments_and_opml(project, web, tmp_path):
    project.feeds("# my feeds, keep this comment\nfeeds:\n  - url: https://example.org/a.xml\n"
                  "    name: A   # first\n")
    web.send("/new.xml", rss([item(1, web.base)], title="The New Feed"),
             ctype="application/rss+xml")
    out = project.run("feeds", "add", web.url("/new.xml"), "--tag", "china")
    assert "added" in out.output and "'The New Feed'" in out.output
    text = project.paths.feeds.read_text()
    assert text.startswith("# my feeds, keep this comment") and "# first" in text
    assert 'name: "The New Feed"' in text and '- "china"' in text
    assert "already in" in project.run("feeds", "add", web.url("/new.xml")).output
    assert project.run("feeds", "add", "ftp://x.org/f").exit_code == 2

    opml = project.run("feeds", "export").output
    assert 'xmlUrl="https://example.org/a.xml"' in opml and "The New Feed" in opml
    (tmp_path / "in.opml").write_text(
        '<?xml version="1.0"?><opml version="2.0"><body><outline text="China">'
        '<outline text="CDT" xmlUrl="https://chinadigitaltimes.net/feed/"/></outline>'
        '<outline text="A again" xmlUrl="https://example.org/a.xml"/></body></opml>')
    assert "1 feeds added, 1 already listed" in project.run(
        "feeds", "import", str(tmp_path / "in.opml")).output
    assert project.run("feeds", "remove", "https://example.org/a.xml").exit_code == 0
    text = project.paths.feeds.read_text()
    assert "example.org/a.xml" not in text and "chinadigitaltimes" in text
    assert text.startswith("# my feeds, keep this comment")
    assert project.run("check-config").exit_code == 0
    assert project.run("feeds", "remove", "https://nowhere.org/").exit_code == 1


def test_feeds_check(project, web, page_html):
    web.send("/f.xml", rss([item(1, web.base, title="Police facial recognition")]),
             ctype="application/rss+xml")
    web.send("/page/1", page_html("Police facial recognition",
                                  "Police in the city will use facial recognition cameras on "
                                  "every street, officials said, and residents object. " * 3))
    out = project.run("feeds", "check", web.url("/f.xml"))
    assert out.exit_code == 0
    assert "a feed: Test feed, 1 entries" in out.output
    assert "extracts to" in out.output and "flagged" in out.output
    web.send("/html", "<html><body>hello</body></html>")
    bad = project.run("feeds", "check", web.url("/html"))
    assert bad.exit_code == 1 and "not usable" in bad.output and "not a feed" in bad.output


def test_log_lines_as_json(project, web):
    project.settings(allow_private_addresses=True, log_format="json")
    web.send("/bad.xml", "down", status=503)
    project.feeds([("Bad", web.url("/bad.xml"))])
    out = project.run("-v", "poll", "--once").output.splitlines()
    events = [json.loads(line) for line in out if line.startswith("{")]
    failed = [e for e in events if e["event"] == "feed failed"]
    assert failed and failed[0]["feed"] == web.url("/bad.xml")
    assert failed[0]["outcome"] == "HTTP 503" and failed[0]["level"] == "warning"
    assert set(failed[0]) == {"time", "level", "event", "feed", "outcome"}
