"""Retention, off by default: past `retention_days`, the text of unflagged, unlabelled
articles goes and the row stays; `monitor compact` gives the space back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from monitor.core import make_monitor

from .helpers import Clock, item, rss
from .test_digest import BODY


def test_old_unflagged_text_is_dropped_and_the_rows_kept(project, web, page_html):
    web.send("/page/1", page_html("Police expand facial recognition", BODY))
    for n in (2, 3):
        web.send(f"/page/{n}", page_html(f"Library news {n}",
                                         f"The library opened a new reading room {n}. " * 12))
    web.send("/f.xml", rss([item(1, web.base, title="Police expand facial recognition"),
                            item(2, web.base, title="Library news 2"),
                            item(3, web.base, title="Library news 3")]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    clock = Clock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    monitor = make_monitor(project.paths, clock=clock)
    try:
        assert monitor.poll_once().flagged == 1
        assert monitor.label(3, "relevant")  # a reader's judgement keeps its text
        clock.now += timedelta(days=40)
        monitor.poll_once()  # retention is off by default: nothing goes
    finally:
        monitor.close()

    def texts() -> dict[int, bool]:
        with sqlite3.connect(project.db) as conn:
            return {i: t is not None for i, t in conn.execute("SELECT id, text FROM articles")}
    assert texts() == {1: True, 2: True, 3: True}

    project.settings(allow_private_addresses=True, extract_workers=1, retention_days=30)
    monitor = make_monitor(project.paths, clock=clock)
    try:
        monitor.poll_once()
    finally:
        monitor.close()
    assert texts() == {1: True, 2: False, 3: True}
    with sqlite3.connect(project.db) as conn:
        row = conn.execute("SELECT title, url, score, cluster_id FROM articles WHERE id = 2"
                           ).fetchone()
        found = conn.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH "
                             "'library AND news AND 2'").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert row[0] == "Library news 2" and row[1] and row[2] is not None and row[3] == 2
    assert found == [(2,)]  # still found by its title
    result = project.run("compact")
    assert result.exit_code == 0 and "MiB given back" in result.output, result.output


def test_compact_refuses_while_the_service_holds_the_database(project):
    from monitor.service import Lock

    assert project.run("compact").exit_code == 0  # creates the database
    held = Lock(project.db)
    held.acquire()  # as `monitor run` does
    try:
        result = project.run("compact")
    finally:
        held.release()
    assert result.exit_code == 1 and "already running" in result.output, result.output
    assert project.run("compact").exit_code == 0
