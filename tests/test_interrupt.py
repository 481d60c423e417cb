"""A one-shot command stopped mid-cycle (SIGTERM, SIGINT, kill -9) leaves no process behind
and nothing half-written; the real `monitor poll --once` in a subprocess."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import item, rss, wait_for
from .test_pipeline import STORY


def descendants(pid: int) -> set[int]:
    """Every live process below *pid* (from /proc), zombies left out."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_poll_stopped_mid_cycle_leaves_nothing_behind(project, web, page_html, how):
    for n in range(6):
        web.send(f"/page/{n}", page_html(f"Police cameras {n}", STORY))
    web.send("/page/hang", page_html("Slow", STORY), delay=60)
    web.send("/fast.xml", rss([item(n, web.base) for n in range(6)]),
             ctype="application/rss+xml")
    web.send("/slow.xml", rss([item(100 + n, web.base, path="/page/hang" if n == 0
                                    else f"/page/{n}?slow") for n in range(3)]),
             ctype="application/rss+xml")
    project.feeds([("Fast", web.url("/fast.xml")), ("Slow", web.url("/slow.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=2)
    p = project.paths
    log = project.root / "poll.log"  # a file, not a pipe: processes left behind hold a pipe
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--feeds", str(p.feeds), "--keywords",
             str(p.keywords), "--settings", str(p.settings), "poll", "--once"],
            cwd=project.root, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        def fast_stored() -> bool:
            with sqlite3.connect(project.db, timeout=10) as conn:
                return conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 6
        wait_for(fast_stored, 60, "the fast feed's articles")
        wait_for(lambda: web.hits["/page/hang"], 30, "the hanging page")
        family = descendants(proc.pid)
        assert len(family) >= 3, family  # the forkserver and the workers, at least
        proc.send_signal(how)
        code = proc.wait(timeout=30)
        err = log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + how, err
        assert "Traceback" not in err and "stopped by" in err, err
    deadline = time.monotonic() + 5
    while alive(family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(family), {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:120]
                               for pid in alive(family)}
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        slow = conn.execute("SELECT count(*) FROM articles WHERE feed_url = ?",
                            [web.url("/slow.xml")]).fetchone()[0]
        assert slow == 0  # a feed's articles are stored together, or not at all
    assert os.path.exists(project.db)


def test_a_command_stopped_in_a_library_call_exits_with_the_signal(project):
    """`digest --send` stopped while the mail server keeps it waiting: 143, not the exit 1
    of an ordinary error (Interrupted is no MonitorError, which the command catches)."""
    import socket

    with socket.socket() as server:  # accepts the connection, never greets
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        project.settings(allow_private_addresses=True, extract_workers=1)
        path = project.root / "config" / "settings.yaml"
        path.write_text(path.read_text() + f"email:\n  host: 127.0.0.1\n  port: {port}\n"
                        "  tls: none\n  from: monitor@example.org\n"
                        "  to: [analyst@example.org]\n")
        p = project.paths
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--feeds", str(p.feeds), "--keywords",
             str(p.keywords), "--settings", str(p.settings), "digest", "--send"],
            cwd=project.root, stderr=subprocess.PIPE, text=True)
        conn, _ = server.accept()  # the command is now waiting for the greeting
        try:
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            conn.close()
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
