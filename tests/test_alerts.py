"""Instant alerts through Apprise to real endpoints on 127.0.0.1: a JSON webhook
(pytest-httpserver) and an SMTP server (aiosmtpd). Once per story, capped bursts with a
summary, failed deliveries retried while polling goes on."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

from pytest_httpserver import HTTPServer
from werkzeug import Response

from monitor.core import make_monitor

from .helpers import Clock, item, rss
from .test_digest import BODY


def alert_rules(project, text: str) -> None:  # noqa: ANN001
    path = project.root / "config" / "settings.yaml"
    path.write_text(path.read_text() + "alerts:\n" + text)


def posts(httpserver: HTTPServer, path: str = "/hook") -> list[dict]:
    return [json.loads(req.get_data()) for req, _ in httpserver.log
            if req.path == path and req.method == "POST"]


def flagged_items(web, n: int) -> list[dict[str, str]]:  # noqa: ANN001
    return [{**item(n * 1000 + k, web.base, title=f"Police deploy facial recognition cameras "
                                                     f"in district {k}"),
             "description": f"The city police will run facial recognition on CCTV cameras "
                            f"in district {k}, officials said."} for k in range(n)]


def flagged_feed(web, n: int) -> str:  # noqa: ANN001
    return rss(flagged_items(web, n))


def test_one_story_in_five_feeds_gives_one_alert(project, web, page_html,
                                                 httpserver: HTTPServer):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    for n in range(6):  # one story syndicated by six feeds under six URLs
        web.send(f"/copy{n}", page_html(f"Ostrava cameras now recognise faces ({n})",
                                        f"Shared by outlet {n}.\n\n{BODY}\n\nRead more."))
        web.send(f"/feed{n}.xml", rss([item(n, web.base, path=f"/copy{n}",
                                            title=f"Ostrava copy {n}")]),
                 ctype="application/rss+xml")
    project.feeds([(f"Outlet {n}", web.url(f"/feed{n}.xml")) for n in range(5)])
    alert_rules(project, f"  - name: strong\n    urls: [\"json://{httpserver.host}:"
                         f"{httpserver.port}/hook\"]\n    min_score: 6\n")
    result = project.run("poll", "--once")
    assert "5 new articles, 5 flagged" in result.output and "1 alerts sent" in result.output
    sent = posts(httpserver)
    assert len(sent) == 1
    assert sent[0]["title"].startswith("[monitor] Ostrava copy")
    message = sent[0]["message"]
    assert "score " in message and "matched: " in message and "facial recognition" in message
    assert web.base + "/copy" in message and "<" not in message

    # a sixth copy arriving later is a source of the same story, not a new alert
    project.feeds([(f"Outlet {n}", web.url(f"/feed{n}.xml")) for n in range(6)])
    assert "1 new articles" in project.run("poll", "--once").output
    assert len(posts(httpserver)) == 1
    with sqlite3.connect(project.db) as conn:
        rows = conn.execute("SELECT rule, kind, status, sent_at IS NOT NULL FROM alerts"
                            ).fetchall()
    assert rows == [("strong", "story", "sent", 1)]


def test_a_burst_is_capped_and_the_rest_summarised(project, web, httpserver: HTTPServer):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    web.send("/burst.xml", flagged_feed(web, 50), ctype="application/rss+xml")
    project.feeds([("Burst", web.url("/burst.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    alert_rules(project, f"  - urls: [\"json://{httpserver.host}:{httpserver.port}/hook\"]\n"
                         "    max_per_hour: 10\n")
    result = project.run("poll", "--once")
    assert "50 new articles, 50 flagged" in result.output, result.output
    sent = posts(httpserver)
    assert len(sent) == 10  # the cap counts the summary too: 9 stories and 1 summary
    summaries = [s for s in sent if "more flagged stories" in s["title"]]
    assert len(summaries) == 1 and summaries[0]["title"] == "[monitor] 41 more flagged stories"
    assert "and 21 more; see the digest" in summaries[0]["message"]
    # the next poll alerts nothing again: every story is recorded
    project.run("poll", "--once")
    assert len(posts(httpserver)) == 10


def test_a_failing_endpoint_is_retried_and_polling_goes_on(project, web,
                                                           httpserver: HTTPServer):
    answers = iter([503, 500, 200])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(
        lambda request: Response("x", status=next(answers, 200)))
    web.send("/f.xml", flagged_feed(web, 1), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    alert_rules(project, f"  - urls: [\"json://{httpserver.host}:{httpserver.port}/hook\"]\n")
    clock = Clock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    monitor = make_monitor(project.paths, clock=clock)
    try:
        summary = monitor.poll_once()
        assert summary.new_articles == 1 and summary.alerts_failed == 1  # polled all the same
        assert monitor.send_alerts() == (0, 0)  # not due yet
        clock.now += timedelta(seconds=61)
        assert monitor.send_alerts() == (0, 1)  # the second try fails too
        clock.now += timedelta(seconds=301)
        assert monitor.send_alerts() == (1, 0)
        clock.now += timedelta(hours=2)
        assert monitor.send_alerts() == (0, 0)  # sent once
    finally:
        monitor.close()
    assert len(posts(httpserver)) == 3
    with sqlite3.connect(project.db) as conn:
        row = conn.execute("SELECT status, attempts, last_error FROM alerts").fetchone()
    assert row[:2] == ("sent", 3) and row[2] is None


def test_email_through_smtp_and_secrets_from_the_environment(project, web, smtp_server,
                                                            httpserver: HTTPServer,
                                                            monkeypatch):
    controller, received = smtp_server
    httpserver.expect_request("/hook/s3cret", method="POST").respond_with_data("ok")
    monkeypatch.setenv("MONITOR_ALERT_TOKEN", "s3cret")
    web.send("/f.xml", flagged_feed(web, 1), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    alert_rules(project, (
        "  - name: desk\n    urls:\n"
        f"      - \"mailto://127.0.0.1:{controller.port}?from=monitor@example.org"
        "&to=analyst@example.org\"\n"
        f"      - \"json://{httpserver.host}:{httpserver.port}/hook/${{MONITOR_ALERT_TOKEN}}\"\n"))
    assert "1 alerts sent" in project.run("poll", "--once").output
    assert len(received) == 1 and len(posts(httpserver, "/hook/s3cret")) == 1
    mail = received[0]
    assert mail["To"] == "analyst@example.org"
    assert "Police deploy facial recognition cameras" in mail["Subject"]
    text = mail.get_payload(decode=True).decode() if not mail.is_multipart() else \
        next(p for p in mail.walk() if p.get_content_type() == "text/plain"
             ).get_payload(decode=True).decode()
    assert "score " in text and web.base in text
    assert "s3cret" not in (project.root / "config" / "settings.yaml").read_text()

    report = project.run("alerts", "test")
    assert report.exit_code == 0, report.output
    assert report.output.count(": ok") == 2 and len(received) == 2

    monkeypatch.delenv("MONITOR_ALERT_TOKEN")
    checked = project.run("check-config")
    assert checked.exit_code == 2
    assert "settings.yaml" in checked.output and "MONITOR_ALERT_TOKEN is not set" in \
        checked.output


def test_alerts_test_reports_a_target_that_refuses(project, httpserver: HTTPServer):
    httpserver.expect_request("/down", method="POST").respond_with_data("no", status=500)
    alert_rules(project, f"  - urls: [\"json://{httpserver.host}:{httpserver.port}/down\"]\n")
    result = project.run("alerts", "test")
    assert result.exit_code == 1
    assert "rule 1: target 1 (json): failed: " in result.output
    assert "Traceback" not in result.output


def test_a_new_rule_skips_the_archive_and_a_story_flagged_later_alerts_once(
        project, web, httpserver: HTTPServer):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    tram = {**item(7, web.base, title="Council reviews the tram budget"),
            "description": "The council reviewed the tram budget for the eastern line."}
    web.send("/f.xml", rss([tram] + flagged_items(web, 1)), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    clock = Clock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    monitor = make_monitor(project.paths, clock=clock)
    try:
        assert monitor.poll_once().flagged == 1  # the archive, before any rule
    finally:
        monitor.close()
    alert_rules(project, f"  - urls: [\"json://{httpserver.host}:{httpserver.port}/hook\"]\n")
    keywords = project.paths.keywords
    keywords.write_text(keywords.read_text().replace(
        "concepts:\n", "concepts:\n  tram_budget:\n    role: [surveillance, technology, "
        "context]\n    weight: 10\n    terms: [tram budget]\n", 1), encoding="utf-8")
    clock.now += timedelta(days=1)
    monitor = make_monitor(project.paths, clock=clock)
    try:
        assert monitor.poll_once().alerts_sent == 0  # yesterday's story is not news
        clock.now += timedelta(minutes=5)
        assert [c["title"] for c in monitor.rescore()] == ["Council reviews the tram budget"]
        assert monitor.send_alerts() == (1, 0)
        assert monitor.send_alerts() == (0, 0)
    finally:
        monitor.close()
    sent = posts(httpserver)
    assert [s["title"] for s in sent] == ["[monitor] Council reviews the tram budget"]


def test_a_busy_hour_sends_at_most_its_cap_and_the_rest_waits(project, web,
                                                               httpserver: HTTPServer):
    """Four polls within a minute, three new flagged stories each, max_per_hour 2: two
    messages in that hour (a story and a summary), every story recorded; an hour later the
    stories that waited go out together."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    alert_rules(project, f"  - urls: [\"json://{httpserver.host}:{httpserver.port}/hook\"]\n"
                         "    max_per_hour: 2\n")
    clock = Clock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    monitor = make_monitor(project.paths, clock=clock)
    try:
        for poll in range(4):
            web.send("/f.xml", rss([{**i, "guid": f"p{poll}-{n}"} for n, i in
                                    enumerate(flagged_items(web, 3 * (poll + 1))[-3:])]),
                     ctype="application/rss+xml")
            assert monitor.poll_once().flagged == 3
            clock.now += timedelta(seconds=15)
        sent = posts(httpserver)
        assert len(sent) == 2
        assert sent[1]["title"] == "[monitor] 2 more flagged stories"
        with sqlite3.connect(project.db) as conn:
            stories = conn.execute("SELECT count(DISTINCT cluster_id) FROM articles "
                                   "WHERE flagged = 1").fetchone()[0]
            statuses = dict(conn.execute("SELECT status, count(*) FROM alerts WHERE kind = "
                                         "'story' GROUP BY status").fetchall())
        assert stories == 12 and statuses == {"sent": 1, "summarised": 2, "waiting": 9}
        clock.now += timedelta(minutes=30)
        assert monitor.send_alerts() == (0, 0)  # still within the hour of the first two
        clock.now += timedelta(minutes=30)
        assert monitor.send_alerts() == (2, 0)
        later = posts(httpserver)[2:]
        assert [s["title"] for s in later][1] == "[monitor] 8 more flagged stories"
    finally:
        monitor.close()


def test_stories_a_rule_filters_out_are_recorded_and_not_read_again(project, web,
                                                                    httpserver: HTTPServer):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    web.send("/f.xml", flagged_feed(web, 3), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    alert_rules(project, f"  - urls: [\"json://{httpserver.host}:{httpserver.port}/hook\"]\n"
                         "    min_score: 1000\n")
    monitor = make_monitor(project.paths)
    try:
        assert monitor.poll_once().flagged == 3
        with sqlite3.connect(project.db) as conn:
            assert conn.execute("SELECT status, count(*) FROM alerts GROUP BY status"
                                ).fetchall() == [("filtered", 3)]
        store = monitor._store  # the connection send_alerts writes on
        assert store.alert_candidates("rule 1", "2000-01-01") == []
        changes = store.db.conn.total_changes
        assert monitor.send_alerts() == (0, 0)
        assert store.db.conn.total_changes == changes  # no write, no write lock
    finally:
        monitor.close()
    assert posts(httpserver) == []


DELIVER = """
import sys
from monitor.config import Paths
from monitor.core import make_monitor
from pathlib import Path
root = Path(sys.argv[1])
monitor = make_monitor(Paths(root / "feeds.yaml", root / "config" / "keywords.yaml",
                             root / "config" / "settings.yaml", root / "monitor.db"))
print(monitor.send_alerts())
"""


def test_two_processes_never_deliver_the_same_alert(project, web, httpserver: HTTPServer):
    """`poll --once` beside the service: both look for due alerts at the same moment, against
    a target that takes a second to answer."""
    import subprocess
    import sys
    import time

    def slow(request):  # noqa: ANN001, ANN202
        time.sleep(1.0)
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(slow)
    web.send("/f.xml", flagged_feed(web, 3), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    monitor = make_monitor(project.paths)
    try:
        assert monitor.poll_once().flagged == 3  # stored before any rule: nothing planned
    finally:
        monitor.close()
    alert_rules(project, f"  - urls: [\"json://{httpserver.host}:{httpserver.port}/hook\"]\n")
    with sqlite3.connect(project.db) as conn:  # the rule began before those stories
        conn.execute("UPDATE articles SET flagged_at = '2100-01-01T00:00:00+00:00'")
    procs = [subprocess.Popen([sys.executable, "-c", DELIVER, str(project.root)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outputs) == ["(0, 0)", "(3, 0)"], outputs
    assert len(posts(httpserver)) == 3


def test_an_alert_says_what_was_learned_when_it_decided():
    from monitor.alerts import story_message

    story = {"title": "Zorblax comes to the harbour", "url": "https://example.org/z",
             "feed_name": "Harbour news", "score": 3.4, "tags": {}, "text": "Zorblax starts.",
             "matches": [{"term": "residents", "concept": "public_space", "field": "lead",
                          "count": 2, "contribution": 3.4}],
             "learned": {"logit": 4.3, "labels": 48, "rules_flagged": False,
                         "terms": [["rules:score", 2.1], ["zorblax", 0.7], ["council", -0.1]]}}
    _, body = story_message(story)
    assert "learned from 48 labels: +4.3 (the rules' score, zorblax); the rules alone: not " \
           "flagged" in body
    _, rules_only = story_message({**story, "learned": None})
    assert "learned" not in rules_only
