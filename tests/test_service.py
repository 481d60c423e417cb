"""The real service in a subprocess against servers on 127.0.0.1, intervals of a second."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import item, rss, wait_for
from .test_pipeline import STORY


def query(db: Path, sql: str, *args):
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql, args).fetchall()


def polls(db: Path, url: str) -> int:
    rows = query(db, "SELECT polls FROM feeds WHERE url = ?", url)
    return rows[0][0] or 0 if rows else 0


class Service:
    def __init__(self, project, *extra: str) -> None:
        p = project.paths
        self.log = project.root / f"service-{time.monotonic_ns()}.log"
        self.out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--feeds", str(p.feeds), "--keywords",
             str(p.keywords), "--settings", str(p.settings), "run", *extra],
            cwd=project.root, stdout=subprocess.DEVNULL, stderr=self.out)

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=15)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


@pytest.fixture
def service_project(project, web, page_html):
    project.settings(allow_private_addresses=True, extract_workers=1, default_interval=1,
                     jitter=0, request_deadline=2, poll_deadline=4, max_backoff=4)
    web.send("/a.xml", rss([item(1, web.base, title="Police facial recognition")]),
             ctype="application/rss+xml")
    web.send("/b.xml", rss([item(2, web.base, title="Second feed story")]),
             ctype="application/rss+xml")
    web.send("/page/1", page_html("Police facial recognition", STORY))
    web.send("/page/2", page_html("Second feed story", STORY.replace("old town", "harbour")))
    project.feeds([("A", web.url("/a.xml"))])
    services: list[Service] = []

    def start(*extra: str) -> Service:
        services.append(Service(project, *extra))
        return services[-1]

    yield project, web, start
    for s in services:
        s.kill()


def test_live_reload_bad_edit_sigterm_and_restart(service_project):
    project, web, start = service_project
    db, a, b = project.db, web.url("/a.xml"), web.url("/b.xml")
    svc = start()
    wait_for(lambda: polls(db, a) >= 2, what="feed A polled twice")

    # a broken edit: logged with file and line, the service keeps polling the old list
    project.feeds("feeds:\n  - url: " + a + "\n    name: A\n   broken: [\n")
    wait_for(lambda: "configuration not reloaded" in svc.text(), what="reload error logged")
    assert "feeds.yaml:4: invalid YAML" in svc.text()
    before = polls(db, a)
    wait_for(lambda: polls(db, a) >= before + 2, what="A still polled after a bad edit")
    assert svc.proc.poll() is None

    # a feed added while running gets polled
    project.feeds([("A", a), ("B", b)])
    wait_for(lambda: polls(db, b) >= 1, what="feed B polled after being added")
    assert "configuration reloaded" in svc.text()

    code, took = svc.stop(signal.SIGTERM)
    assert code == 0 and took < 20, (code, took)  # STOP_GRACE is 5 s
    assert "Traceback" not in svc.text()
    stored = query(db, "SELECT count(*), count(DISTINCT url) FROM articles")[0]
    assert stored == (2, 2)

    # restart: it picks up the stored schedule and stores nothing twice
    after = polls(db, a)
    again = start()
    wait_for(lambda: polls(db, a) >= after + 2, what="polling after restart")
    assert query(db, "SELECT count(*) FROM articles")[0][0] == 2
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert again.stop(signal.SIGINT)[0] == 0


def test_second_instance_refuses_to_start(service_project):
    project, web, start = service_project
    first = start()
    wait_for(lambda: polls(project.db, web.url("/a.xml")) >= 1, what="first instance polling")
    second = start()
    assert second.proc.wait(timeout=20) == 1
    assert "another monitor (pid " in second.text() and "already running" in second.text()
    assert first.proc.poll() is None
    assert first.stop()[0] == 0


def test_hanging_feed_does_not_stop_the_others(service_project):
    project, web, start = service_project

    def hang(handler) -> None:
        time.sleep(30)

    web.routes["/hang.xml"] = hang
    project.feeds([("Hang", web.url("/hang.xml")), ("A", web.url("/a.xml"))])
    svc = start()
    wait_for(lambda: polls(project.db, web.url("/a.xml")) >= 4, timeout=30,
             what="A polled while the other feed hangs")
    wait_for(lambda: query(project.db, "SELECT last_error FROM feeds WHERE url = ?",
                           web.url("/hang.xml"))[0][0], what="hang recorded as an error")
    error = query(project.db, "SELECT last_error FROM feeds WHERE url = ?",
                  web.url("/hang.xml"))[0][0]
    assert "timed out" in error
    code, took = svc.stop()
    assert code == 0 and took < 20


def test_reload_applies_every_setting_or_says_it_needs_a_restart(service_project):
    """A changed settings file reaches the fetcher (User-Agent, timeouts, limits), the
    workers and the digest job; the database path needs a restart, and the log says so."""
    project, web, start = service_project
    a = web.url("/a.xml")
    svc = start()
    wait_for(lambda: polls(project.db, a) >= 2, what="feed A polled twice")
    assert web.agents["/a.xml"][-1].startswith("monitor/")
    settings = project.root / "config" / "settings.yaml"
    settings.write_text(settings.read_text().replace("extract_workers: 1", "extract_workers: 2")
                        .replace(str(project.db), str(project.root / "other.db"))
                        + 'user_agent: "reloaded/2.0 (+https://example.org/bot)"\n'
                        "per_host_limit: 3\ntimezone: Europe/Berlin\n")
    wait_for(lambda: "settings changed" in svc.text(), what="the reload logged")
    log = svc.text()
    for name in ("user_agent", "per_host_limit", "extract_workers", "timezone", "database"):
        assert name in log.split("settings changed:")[1].splitlines()[0], name
    assert "database: restart the service to apply" in log
    count = len(web.agents["/a.xml"])
    wait_for(lambda: len(web.agents["/a.xml"]) >= count + 2, what="polls after the reload")
    assert web.agents["/a.xml"][-1] == "reloaded/2.0 (+https://example.org/bot)"
    assert not (project.root / "other.db").exists()  # still on the database it opened
    assert svc.stop()[0] == 0 and "Traceback" not in svc.text()


def test_the_service_sends_alerts(service_project, httpserver):
    project, web, start = service_project
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    path = project.root / "config" / "settings.yaml"
    path.write_text(path.read_text() + "alerts:\n  - urls: [\"json://"
                    f"{httpserver.host}:{httpserver.port}/hook\"]\n")
    svc = start()
    wait_for(lambda: any(r.path == "/hook" for r, _ in httpserver.log), timeout=30,
             what="an alert from the service")
    polled = polls(project.db, web.url("/a.xml"))
    wait_for(lambda: polls(project.db, web.url("/a.xml")) >= polled + 2, what="more polls")
    assert sum(1 for r, _ in httpserver.log if r.path == "/hook") == 1  # once, not per poll
    assert svc.stop()[0] == 0 and "Traceback" not in svc.text()


def test_the_service_serves_the_reading_room(service_project):
    import socket

    import httpx

    project, web, start = service_project
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    svc = start("--serve", "--port", str(port))
    wait_for(lambda: polls(project.db, web.url("/a.xml")) >= 1, what="a poll")

    def feeds_page() -> str | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/feeds").text
        except httpx.TransportError:
            return None
    page = wait_for(feeds_page, what="the feeds page")
    assert web.url("/a.xml") in page and "pages waiting for a retry" in page
    assert svc.stop()[0] == 0 and "Traceback" not in svc.text()
    assert svc.proc.returncode == 0


def test_a_reload_the_database_refuses_is_tried_again(service_project):
    """Another process holds the write lock longer than the busy timeout while feeds.yaml
    gains a feed: the reload is not applied halfway, the log says it will be tried again,
    and once the lock is gone the new feed is polled."""
    project, web, start = service_project
    a, b = web.url("/a.xml"), web.url("/b.xml")
    svc = start()
    wait_for(lambda: polls(project.db, a) >= 1, what="feed A polled")
    holder = sqlite3.connect(project.db, timeout=10, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a backup or another writer would
    try:
        project.feeds([("A", a), ("B", b)])
        wait_for(lambda: "configuration not reloaded yet" in svc.text(), timeout=40,
                 what="the refused reload logged")
        assert "configuration reloaded" not in svc.text()
    finally:
        holder.rollback()
        holder.close()
    wait_for(lambda: polls(project.db, b) >= 1, timeout=30, what="feed B polled after the lock")
    assert "configuration reloaded" in svc.text()
    assert svc.stop()[0] == 0 and "Traceback" not in svc.text()
