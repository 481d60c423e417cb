"""The event loop never waits on the database: while another process holds the write lock, a
poll keeps fetching, and stores everything once the lock is released. Real processes, a real
SQLite file, a real server on 127.0.0.1."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from .helpers import item, rss, wait_for
from .test_pipeline import STORY

HOLD = 5.5
LOCKER = f"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE feeds SET polls = polls")
print("locked", flush=True)
time.sleep({HOLD})
conn.execute("COMMIT")
"""


def test_a_poll_keeps_fetching_while_another_process_holds_the_write_lock(project, web,
                                                                          page_html):
    for n in range(300):
        web.send(f"/page/{n}", page_html(f"Cameras {n}", STORY), delay=0.05)
    for f in range(60):
        web.send(f"/f{f}.xml", rss([item(f * 5 + k, web.base) for k in range(5)]),
                 ctype="application/rss+xml")
    project.feeds([(f"F{f}", web.url(f"/f{f}.xml")) for f in range(60)])
    project.settings(allow_private_addresses=True, extract_workers=2)
    p = project.paths
    with (project.root / "poll.log").open("w") as log:
        poll = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--feeds", str(p.feeds), "--keywords",
             str(p.keywords), "--settings", str(p.settings), "poll", "--once"],
            cwd=project.root, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        wait_for(lambda: sum(web.hits.values()) > 0, 60, "the first request")
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(project.db)],
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout.readline().strip() == "locked"
        held = time.monotonic()
        time.sleep(1.5)  # by now a feed is done and waits to write: the loop must not wait
        before = sum(web.hits.values())
        locker.wait(timeout=30)
        locker.stdout.close()
        served = sum(web.hits.values()) - before
        assert time.monotonic() - held >= HOLD - 0.5
        out, _ = poll.communicate(timeout=120)
    finally:
        if poll.poll() is None:
            poll.kill()
    print(f"{served} requests served in the last {HOLD - 1.5}s of the lock")
    assert served >= 20, served  # fetching went on while the database was locked
    assert "300 new articles" in out, out
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 300
        assert conn.execute("SELECT count(*) FROM feeds WHERE last_status = 'ok'"
                            ).fetchone()[0] == 60
