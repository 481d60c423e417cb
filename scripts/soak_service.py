#!/usr/bin/env python3
"""Soak test of `monitor run`: N loopback feeds polled for M minutes, a tenth failing.

    python scripts/soak_service.py [--feeds 200] [--minutes 10] [--interval 30]

Serves on 127.0.0.1 only: N RSS feeds whose items link to generated article pages; every
tenth feed fails in its own way (500, 404, 410, 429 with Retry-After, 503 with an HTTP date,
a hang past the deadline, a reset connection, HTML instead of a feed, a redirect loop, an
empty body). Each ok feed gains a new item every few minutes. Runs the real service in a
subprocess, stops it with SIGTERM, and reports polls, backoff, peak memory and duplicates.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopweb import QuietHandler  # noqa: E402

FAULTS = ["500", "404", "410", "429", "503", "hang", "reset", "html", "loop", "empty"]
WORDS = ("city council police cameras residents street budget library school park bus "
         "weather festival market harbour museum football election hospital").split()


class Web(QuietHandler):
    started = time.time()

    def do_GET(self) -> None:  # noqa: N802
        parts = self.path.strip("/").split("/")
        if parts[0] == "feed":
            n = int(parts[1].split(".")[0])
            fault = FAULTS[(n // 10) % len(FAULTS)] if n % 10 == 9 else None
            return self.fault(fault) if fault else self.feed(n)
        if parts[0] == "page":
            rng = random.Random(parts[1])
            text = " ".join(rng.choice(WORDS) for _ in range(400))
            body = f"<html><body><article><h1>Story {parts[1]}</h1><p>{text}</p></article>" \
                   "</body></html>"
            return self.reply(200, body.encode())
        self.reply(404)

    def feed(self, n: int) -> None:
        generation = int((time.time() - self.started) // 180)  # a new item every 3 minutes
        items = []
        for k in range(generation, generation + 10):
            when = format_datetime(datetime.now(UTC), usegmt=True)
            items.append(f"<item><title>Feed {n} story {k}</title><link>{self.base}/page/{n}-{k}"
                         f"</link><guid>f{n}-{k}</guid><pubDate>{when}</pubDate></item>")
        body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
                + "".join(items) + "</channel></rss>").encode()
        etag = f'"{n}-{generation}"'
        if self.headers.get("If-None-Match") == etag:
            return self.reply(304, headers={"ETag": etag})
        self.reply(200, body, "application/rss+xml", {"ETag": etag})

    def fault(self, kind: str) -> None:
        if kind == "hang":
            time.sleep(40)
            return
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            # every reference to the socket must go for close() to send the RST; otherwise
            # the handler waits for the next request and the fault is a hang
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
            self.close_connection = True
            return
        statuses = {"500": 500, "404": 404, "410": 410}
        if kind in statuses:
            return self.reply(statuses[kind], b"error")
        if kind == "429":
            return self.reply(429, b"slow down", headers={"Retry-After": "120"})
        if kind == "503":
            later = format_datetime(datetime.fromtimestamp(time.time() + 90, UTC), usegmt=True)
            return self.reply(503, b"maintenance", headers={"Retry-After": later})
        if kind == "html":
            return self.reply(200, b"<html><body>not a feed</body></html>")
        if kind == "loop":
            return self.reply(302, headers={"Location": self.path})
        self.reply(200, b"")


def peak_rss_kib(pid: int) -> int:
    """VmHWM of the service and its children (extraction workers), summed."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--interval", type=int, default=30)
    args = ap.parse_args()
    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:  # noqa: ANN001
            pass  # faults and timeouts break connections on purpose

    httpd = Server(("127.0.0.1", 0), Web)
    httpd.daemon_threads = True
    Web.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="monitor-soak-"))
    (root / "config").mkdir()
    (root / "feeds.yaml").write_text("feeds:\n" + "".join(
        f"  - url: {Web.base}/feed/{n}.xml\n    name: Feed {n}\n" for n in range(args.feeds)))
    (root / "config" / "settings.yaml").write_text(
        f"database: {root / 'soak.db'}\ndefault_interval: {args.interval}\njitter: 0.2\n"
        "allow_private_addresses: true\nrequest_deadline: 10\npoll_deadline: 20\n"
        "max_backoff: 240\n")
    log = (root / "service.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], cwd=root, stderr=log,
                            stdout=subprocess.DEVNULL)
    started, peak = time.monotonic(), 0
    while time.monotonic() - started < args.minutes * 60 and proc.poll() is None:
        time.sleep(5)
        peak = max(peak, peak_rss_kib(proc.pid))
    stop_started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    stop_took = time.monotonic() - stop_started
    db = sqlite3.connect(root / "soak.db")
    q = lambda sql: db.execute(sql).fetchall()  # noqa: E731
    polls = q("SELECT sum(polls) FROM feeds")[0][0]
    ok_polls = q("SELECT sum(polls) FROM feeds WHERE consecutive_failures = 0 "
                 "AND gone_at IS NULL")[0][0]
    failing = q("SELECT count(*), avg(polls), max(consecutive_failures) FROM feeds "
                "WHERE consecutive_failures > 0")[0]
    healthy = q("SELECT count(*), avg(polls) FROM feeds WHERE consecutive_failures = 0 "
                "AND gone_at IS NULL")[0]
    gone = q("SELECT count(*) FROM feeds WHERE gone_at IS NOT NULL")[0][0]
    articles, distinct_urls, distinct_guids = q(
        "SELECT count(*), count(DISTINCT url), count(DISTINCT guid) FROM articles")[0]
    errors = q("SELECT last_error, count(*) FROM feeds WHERE last_error IS NOT NULL "
               "GROUP BY 1 ORDER BY 2 DESC")
    tracebacks = (root / "service.log").read_text().count("Traceback")
    print(f"run: {args.feeds} feeds, interval {args.interval}s, {args.minutes:g} minutes; "
          f"exit code {code} {stop_took:.1f}s after SIGTERM")
    print(f"polls: {polls} in all ({ok_polls} by healthy feeds); healthy feeds {healthy[0]} "
          f"averaged {healthy[1]:.1f} polls; failing feeds {failing[0]} averaged "
          f"{(failing[1] or 0):.1f} polls (backed off; most consecutive failures {failing[2]}); "
          f"gone (410): {gone}")
    print(f"articles: {articles}; duplicates by url: {articles - distinct_urls}, "
          f"by guid: {articles - distinct_guids}")
    print(f"peak memory (service + workers, VmHWM): {peak / 1024:.0f} MiB")
    print(f"tracebacks in the log: {tracebacks}")
    for error, n in errors:
        print(f"  {n:3d} x {error}")
    print(f"files kept in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
