#!/usr/bin/env python3
"""Checks of the seams where an archive could lose or repeat things, on real processes.

    python scripts/seams.py stops [--feeds 24] [--items 30] [--term 2,3,4,5,6,7] [--kill 3,5]
    python scripts/seams.py big-page [--words 380000] [--rounds 2]

stops: `monitor poll --once` over FEEDS feeds of ITEMS real pages each (a loopback web, one
       host per feed up to 8, 50 ms a request), stopped with SIGTERM after 2, 3 ... 7 s and
       with SIGKILL after 3 and 5 s (or when told), all on one database, then run to its
       end. After every stop: SQLite's integrity check, and how many stored articles have
       text but no story. At the end: every page stored once, with its text, in a story.
big-page: the peak memory of `monitor poll --once` (the summed PSS of the command and its
       workers, sampled every 20 ms) over a feed of 5 real pages, with and without a sixth
       page of WORDS distinct words (about 4.6 MB), default settings (2 workers).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import cpu_and_rss, family  # noqa: E402
from loopweb import LoopWeb, QuietHandler, find_pages, read_page  # noqa: E402


def project(tmp: Path, feeds: list[str], **settings: object) -> list[str]:
    """A project folder; returns the command line that polls it once."""
    (tmp / "feeds.yaml").write_text("feeds:\n" + "".join(
        f"  - url: {u}\n    name: feed {i}\n" for i, u in enumerate(feeds)))
    lines = [f"database: {tmp / 'monitor.db'}", "allow_private_addresses: true"]
    lines += [f"{k}: {v}" for k, v in settings.items()]
    (tmp / "settings.yaml").write_text("\n".join(lines) + "\n")
    keywords = Path(__file__).resolve().parent.parent / "config" / "keywords.yaml"
    return [sys.executable, "-m", "monitor", "--feeds", str(tmp / "feeds.yaml"), "--keywords",
            str(keywords), "--settings", str(tmp / "settings.yaml"), "poll", "--once"]


def state(db: Path) -> tuple[str, int, int, int]:
    """(integrity, articles, articles with text outside a story, distinct URLs)."""
    with sqlite3.connect(db, timeout=30) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        articles, lost, urls = conn.execute(
            "SELECT count(*), sum(text IS NOT NULL AND cluster_id IS NULL), "
            "count(DISTINCT url) FROM articles").fetchone()
    return integrity, articles, lost or 0, urls


def stops(args: argparse.Namespace) -> None:
    pages = find_pages()
    web = LoopWeb(pages, args.feeds, args.items, 0.05, hosts=min(args.feeds, 8))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "monitor.db"
            command = project(Path(tmp), web.feeds)
            print(f"{args.feeds} feeds x {args.items} pages from {len(pages)} real pages")
            print("| stop | exit | articles | with text, outside a story | integrity |")
            print("| --- | --- | --- | --- | --- |")
            plan = [(signal.SIGTERM, float(t)) for t in args.term.split(",") if t] + \
                [(signal.SIGKILL, float(t)) for t in args.kill.split(",") if t]
            for sig, after in plan:
                proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=tmp,
                                        stderr=subprocess.DEVNULL)
                time.sleep(after)
                proc.send_signal(sig)
                code = proc.wait(timeout=60)
                time.sleep(0.5)  # workers see their parent gone (pidfd) and exit
                integrity, articles, lost, _ = state(db) if db.exists() else ("-", 0, 0, 0)
                print(f"| {signal.Signals(sig).name} at {after:g} s | {code} | {articles} | "
                      f"{lost} | {integrity} |")
            proc = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp)
            print(f"to the end: exit {proc.returncode}: {proc.stdout.strip()}")
            integrity, articles, lost, urls = state(db)
            with sqlite3.connect(db) as conn:
                no_text, no_story, errors = conn.execute(
                    "SELECT sum(extract_error IS NOT NULL), sum(cluster_id IS NULL), "
                    "group_concat(DISTINCT extract_error) FROM articles").fetchone()
            print(f"at the end: {articles} articles for {urls} distinct URLs "
                  f"(of {args.feeds * args.items} links); {no_text or 0} without their page's "
                  f"text ({errors or 'none'}); {no_story or 0} outside a story; {lost} with text "
                  f"outside a story; integrity {integrity}")
    finally:
        web.close()


def big_page(args: argparse.Namespace) -> None:
    normal = [read_page(p) for p in find_pages()[:5]]
    words = " ".join(f"wd{i:08d}x" for i in range(args.words))
    big = (f"<html><head><title>A very long page</title></head><body><article><h1>A very "
           f"long page</h1><p>{words}</p></article></body></html>").encode()
    print(f"the big page: {len(big) / 1e6:.1f} MB, {args.words:,} distinct words")

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if self.path.startswith("/feed"):
                n = 6 if "big" in self.path else 5
                items = "".join(f"<item><title>Page {i}</title><link>{base}/page/{i}</link>"
                                f"<guid>p{i}</guid></item>" for i in range(n))
                body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                        f"<link>{base}/</link><description>d</description>{items}"
                        "</channel></rss>").encode()
                return self.reply(200, body, "application/rss+xml")
            i = int(self.path.rsplit("/", 1)[1])
            self.reply(200, big if i == 5 else normal[i], "text/html")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    results: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.rounds):
        for kind in ("without", "with"):
            with tempfile.TemporaryDirectory() as tmp:
                command = project(Path(tmp), [f"{base}/feed-{'big' if kind == 'with' else ''}"])
                proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=tmp,
                                        stderr=subprocess.DEVNULL, text=True)
                peak = 0
                while proc.poll() is None:
                    peak = max(peak, cpu_and_rss(family(proc.pid, {os.getpid()}))[1])
                    time.sleep(0.02)
                line = proc.stdout.read().strip() if proc.stdout else ""
                results[kind].append(peak / 2**20)
                print(f"  {kind} the big page: peak {peak / 2**20:.0f} MiB ({line})")
    server.shutdown()
    print(f"above the same poll without it: "
          f"{min(results['with']) - min(results['without']):.0f} MiB (lowest of each), "
          f"{max(results['with']) - min(results['without']):.0f} MiB (highest with it)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="check", required=True)
    one = sub.add_parser("stops")
    one.add_argument("--feeds", type=int, default=24)
    one.add_argument("--items", type=int, default=30)
    one.add_argument("--term", default="2,3,4,5,6,7", help="seconds: a run stopped by SIGTERM")
    one.add_argument("--kill", default="3,5", help="seconds: a run stopped by SIGKILL")
    two = sub.add_parser("big-page")
    two.add_argument("--words", type=int, default=380_000)
    two.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    stops(args) if args.check == "stops" else big_page(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
