#!/usr/bin/env python3
"""Cost as the archive grows: the same measurements on archives of 10,000, 100,000 and
1,000,000 articles, each figure also as a ratio to the smallest archive's, measured in the same
run.

    python scripts/bench_scale.py [--sizes 10000,100000,1000000] [--dir /tmp/monitor-scale]
                                  [--rebuild] [--port 18765]

An archive is built through the store (Store.add_articles, which clusters as it stores, an hour of
articles at a time): a year of articles from 300 feeds. The last 7 days are the same in every
archive (1,300 articles a day: what the daily figures read), the rest spread over the year
before them, so that the archives differ by their history alone. Text lengths around 2,500
characters (log-normal, 200 to 20,000) made of paragraphs of made-up words with a few real
ones ("police" in about a quarter of the articles, "clearview" in 20); 10% are syndicated
copies of a story from the last two days, in another feed, which cluster with it; about 2%
flagged; 5% with only a feed summary after a failed extraction. Signatures are
random (copies: the original's with 8 of 64 values changed), not computed from the text,
which would take longer than the rest of the build. Archives are kept in --dir and reused.

On each archive, every figure in a process of its own (median of three runs where timed):
- database size per article (the file and its WAL);
- a small poll: `monitor poll --once` of one feed with 5 new pages (served on 127.0.0.1):
  wall time, and the peak memory (summed PSS) of the process and its workers;
- the service (`monitor run`) with the 300 feeds, served on 127.0.0.1 as 10 known entries
  each: time from launch to "service started", and its memory 15 s to 25 s after, once the
  first cycle is over;
- the digest of yesterday (Monitor.digest), `status` (Monitor.feed_status), a full-text
  search for a common and a rare term, newest first and best match (Monitor.search: the first
  20 and the count), `explain` (the mean over the 20 newest flagged stories), and
  `rescore --dry-run` over the last 7 days (articles per second).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import cpu_and_rss, family  # noqa: E402
from loopweb import QuietHandler  # noqa: E402

from monitor.models import Article, Entry, FeedResult, Match, Score  # noqa: E402
from monitor.pipeline import CLUSTER_DAYS  # noqa: E402
from monitor.store import Store  # noqa: E402

FEEDS = 300
COMMON, RARE = "police", "clearview"  # in about a quarter of the articles; in 20 of them
RECENT_DAYS, RECENT_PER_DAY = 7, 1300  # the same last week in every archive
SURVEILLANCE = ("The city expanded its facial recognition camera network, and police can now "
                "search live CCTV footage; civil liberties groups called for a moratorium.")
REAL_WORDS = ("the of and to in a is that for on was with as by at from it an be has are "
              "city council said will its have which more this year new people government "
              "data public system report after about would million local people over two "
              "camera network residents officials program project company contract").split()


def feed_url(port: int, n: int) -> str:
    return f"http://127.0.0.1:{port}/feed/{n}.xml"


# -- building an archive ---------------------------------------------------------------------

class Writer:
    """Made-up text: a pool of paragraphs of Zipf-distributed words, a few real ones."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        syllables = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"]
        vocab = list(dict.fromkeys("".join(rnd.choices(syllables, k=rnd.randint(1, 4)))
                                   for _ in range(40_000)))
        weights = [1 / (n + 1) for n in range(len(vocab))]
        pool = []
        for _ in range(20_000):
            words = rnd.choices(vocab, weights, k=rnd.randint(40, 110))
            for k in rnd.sample(range(len(words)), len(words) // 4):
                words[k] = rnd.choice(REAL_WORDS)
            if rnd.random() < 0.05:
                words.insert(rnd.randrange(len(words)), COMMON)
            pool.append(" ".join(words).capitalize() + ".")
        self.pool = pool

    def text(self) -> str:
        length = min(max(int(self.rnd.lognormvariate(7.8, 0.7)), 200), 20_000)
        paras: list[str] = []
        while sum(map(len, paras)) < length:
            paras.append(self.rnd.choice(self.pool))
        return "\n".join(paras)


def _value(rnd: random.Random) -> bytes:
    """One MinHash value as signatures hold them: below 2^32, in 8 little-endian bytes."""
    return rnd.getrandbits(32).to_bytes(8, "little")


def build(path: Path, size: int, port: int, now: datetime) -> float:
    """A year of *size* articles ending at *now*; returns the seconds it took."""
    started = time.perf_counter()
    rnd = random.Random(size)
    writer = Writer(rnd)
    store = Store(path)
    store.db.execute("PRAGMA cache_size = -200000")  # the build only: 200 MB of page cache
    feeds = [SimpleNamespace(url=feed_url(port, n), name=f"Feed {n}", tags=(), enabled=True)
             for n in range(FEEDS)]
    store.sync_feeds(feeds)
    hours, last_week = 365 * 24, RECENT_DAYS * 24
    week = RECENT_DAYS * RECENT_PER_DAY
    rare = set(rnd.sample(range(size), 20))
    # (text, signature) of the stories of each of the last 48 hours
    recent: deque[list[tuple[str, bytes]]] = deque(maxlen=48)
    made = 0
    for hour in range(hours):
        at = now - timedelta(hours=hours - hour)
        before = hours - last_week
        count = ((size - week) * (hour + 1) // before if hour < before else
                 size - week + week * (hour + 1 - before) // last_week) - made
        batch, this_hour = [], []
        pool = [story for hour_ in recent for story in hour_]
        for k in range(made, made + count):
            feed = rnd.randrange(FEEDS)
            url = f"https://news{feed}.example/{k}"
            entry = Entry(feed_url=feed_url(port, feed), guid=url, url=url,
                          title=f"Story {k} about the city", summary="A summary. " * 20,
                          author=None, published=at - timedelta(minutes=rnd.randint(0, 600)))
            if pool and rnd.random() < 0.10:  # a syndicated copy
                text, sig = rnd.choice(pool)
                text = "Spread the love. Share this story.\n" + text + "\nRead More..."
                values = bytearray(sig)
                for v in rnd.sample(range(64), 8):
                    values[v * 8:(v + 1) * 8] = _value(rnd)
                sig = bytes(values)
            else:
                text, sig = writer.text(), b"".join(_value(rnd) for _ in range(64))
            if k in rare:
                text += f"\nThe vendor {RARE.capitalize()} AI supplied the matching software."
            error = None
            if rnd.random() < 0.05:
                text, sig, error = entry.summary, None, "HTTP 403"
            if rnd.random() < 0.02:
                text += "\n" + SURVEILLANCE
                s = Score(score=rnd.uniform(4, 20), flagged=True, matches=(
                    Match("facial recognition", "facial recognition", "text", 1, 4.0),
                    Match("cctv", "cctv", "text", 1, 2.0)),
                    tags={"technology": ["facial recognition", "cctv"]},
                    reason="facial recognition (4.0)")
            else:
                s = Score(score=rnd.uniform(0, 2), flagged=False)
            batch.append(Article(entry=entry, text=text, title=entry.title, author=None,
                                 published=entry.published, language="en",
                                 extract_error=error, score=s, signature=sig))
            if sig:
                this_hour.append((text, sig))
        made += count
        recent.append(this_hour)
        if batch:
            store.add_articles(batch, at, at - timedelta(days=CLUSTER_DAYS))
        if hour % 720 == 0:
            print(f"    {made:,} articles, {time.perf_counter() - started:.0f} s", flush=True)
    for f in feeds:
        store.record_poll(FeedResult(url=f.url, status="ok", http_status=200,
                                     next_poll_at=now + timedelta(hours=1)), now)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return time.perf_counter() - started


# -- the loopback web ------------------------------------------------------------------------

def page_html(n: int, nonce: str) -> bytes:
    body = "".join(f"<p>{SURVEILLANCE} Paragraph {k} of page {n}, run {nonce}, with more words "
                   f"about the council meeting and the budget.</p>" for k in range(8))
    return (f"<!doctype html><html><head><title>Page {n}</title></head><body><article>"
            f"<h1>Small feed story {n} {nonce}</h1>{body}</article></body></html>").encode()


def rss(items: list[tuple[str, str]]) -> bytes:
    body = "".join(f"<item><title>{t}</title><link>{u}</link><guid>{u}</guid></item>"
                   for t, u in items)
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>Feed</title>"
            f"<link>http://127.0.0.1/</link>{body}</channel></rss>").encode()


class Web:
    """The archive's feeds (their last 10 stored entries) and the small feed (5 new pages a
    run), on 127.0.0.1:port, in a thread of this process."""

    def __init__(self, port: int, db: Path) -> None:
        import sqlite3

        conn = sqlite3.connect(db)
        self.feeds = {}
        for n in range(FEEDS):
            rows = conn.execute("SELECT title, url FROM articles WHERE feed_url = ? "
                                "ORDER BY id DESC LIMIT 10", [feed_url(port, n)]).fetchall()
            self.feeds[f"/feed/{n}.xml"] = rss(rows)
        conn.close()
        self.nonce = "0"
        web = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path in web.feeds:
                    self.reply(200, web.feeds[self.path], "application/rss+xml")
                elif self.path == "/small.xml":
                    base = f"http://127.0.0.1:{port}/page/{web.nonce}"
                    self.reply(200, rss([(f"Small {k}", f"{base}/{k}") for k in range(5)]),
                               "application/rss+xml")
                elif self.path.startswith("/page/"):
                    _, _, nonce, n = self.path.split("/")
                    self.reply(200, page_html(int(n), nonce))
                else:
                    self.reply(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- measuring -------------------------------------------------------------------------------

def watch(proc: subprocess.Popen[bytes], until: threading.Event | None = None,
          interval: float = 0.05) -> dict[str, int]:
    """Peak summed PSS of a process and its descendants, sampled until it exits (or *until*)."""
    peak = {"pss": 0}

    def run() -> None:
        while proc.poll() is None and not (until and until.is_set()):
            peak["pss"] = max(peak["pss"], cpu_and_rss(family(proc.pid, set()))[1])
            time.sleep(interval)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    peak["thread"] = thread  # type: ignore[assignment]
    return peak


def config_files(folder: Path, port: int) -> dict[str, Path]:
    settings = folder / "settings.yaml"
    settings.write_text("allow_private_addresses: true\npage_retry_delays: []\n")
    small = folder / "small.yaml"
    small.write_text(f"feeds:\n  - name: Small\n    url: http://127.0.0.1:{port}/small.xml\n")
    every = folder / "all.yaml"
    every.write_text("feeds:\n" + "".join(f"  - name: Feed {n}\n    url: {feed_url(port, n)}\n"
                                          for n in range(FEEDS)))
    return {"settings": settings, "small": small, "all": every}


def small_poll(db: Path, files: dict[str, Path], web: Web, run: int) -> tuple[float, int]:
    web.nonce = f"{db.stem}-{run}-{time.time_ns()}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--feeds", str(files["small"]),
                             "--settings", str(files["settings"]), "--db", str(db), "poll",
                             "--once"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=db.parent)  # not the checkout: PYTHONPATH picks the version
    peak = watch(proc, interval=0.02)
    out = proc.communicate()[0].decode()
    seconds = time.perf_counter() - started
    peak["thread"].join()  # type: ignore[attr-defined]
    if proc.returncode != 0 or "5 new" not in out:
        raise SystemExit(f"small poll failed ({proc.returncode}): {out}")
    return seconds, peak["pss"]


def service(db: Path, files: dict[str, Path]) -> tuple[float, int]:
    """Seconds from launch to 'service started'; peak PSS 15 s to 25 s after it."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "-v", "--feeds",
                             str(files["all"]), "--settings", str(files["settings"]), "--db",
                             str(db), "run"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=db.parent)
    assert proc.stderr is not None
    ready = None
    for line in proc.stderr:
        if "service started" in line:
            ready = time.perf_counter() - started
            break
    if ready is None:
        raise SystemExit(f"the service did not start ({proc.wait()})")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain the log
    time.sleep(15)
    pss = 0
    until = time.monotonic() + 10
    while time.monotonic() < until:
        pss = max(pss, cpu_and_rss(family(proc.pid, set()))[1])
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return ready, pss


def measure(op: str, db: Path, files: dict[str, Path]) -> dict[str, Any]:
    """One operation in this process: --measure OP (run in a process of its own)."""
    from monitor.config import Paths
    from monitor.core import make_monitor

    monitor = make_monitor(Paths.resolve(str(files["all"]), None, str(files["settings"]),
                                         str(db)), need_feeds=False)
    day = monitor.today() - timedelta(days=1)
    started = time.perf_counter()
    detail: Any
    if op == "digest":
        detail = len(monitor.digest(day).stories)
    elif op == "status":
        detail = len(monitor.feed_status())
    elif op.startswith("search-"):
        _, which, order = op.split("-")
        total, rows = monitor.search(COMMON if which == "common" else RARE, order=order)
        detail = f"{total:,} found, {len(rows)} shown"
    elif op == "explain":  # the mean over the 20 newest flagged stories
        with sqlite3.connect(db) as conn:
            keys = [str(r[0]) for r in conn.execute(
                "SELECT id FROM articles WHERE flagged = 1 ORDER BY id DESC LIMIT 20")]
        started = time.perf_counter()
        for key in keys:
            assert monitor.explain(key) is not None
        return {"seconds": (time.perf_counter() - started) / len(keys), "detail": len(keys)}
    elif op == "rescore":
        since = monitor.today() - timedelta(days=7)
        started = time.perf_counter()
        monitor.rescore(since, dry_run=True)
        seconds = time.perf_counter() - started
        with sqlite3.connect(db) as conn:
            count = conn.execute(
                "SELECT count(*) FROM articles WHERE coalesce(published, fetched_at) >= ?",
                [(datetime.combine(since, datetime.min.time(), UTC)).isoformat()]).fetchone()[0]
        return {"seconds": seconds, "detail": count / seconds}
    else:
        raise SystemExit(f"unknown operation {op}")
    seconds = time.perf_counter() - started
    monitor.close()
    return {"seconds": seconds, "detail": detail}


def timed(op: str, db: Path, files: dict[str, Path], runs: int = 3) -> dict[str, Any]:
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--measure", op, "--db", str(db),
                              "--dir", str(files["all"].parent)], capture_output=True,
                             text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"{op} failed: {out.stderr[-2000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    results.sort(key=lambda r: r["seconds"])
    return results[len(results) // 2]


def bench(db: Path, files: dict[str, Path], port: int, poll_only: bool = False
          ) -> dict[str, Any]:
    size = Store(db)
    articles = size.count_articles()
    size.close()
    row: dict[str, Any] = {"articles": articles}
    row["bytes/article"] = sum(p.stat().st_size for p in db.parent.glob(db.name + "*")
                               if p.suffix != ".lock") / articles
    web = Web(port, db)
    try:
        polls = [small_poll(db, files, web, run) for run in range(3)]
        row["poll s"] = statistics.median(p[0] for p in polls)
        row["poll MB"] = max(p[1] for p in polls) / 1e6
        if poll_only:
            return row
        start, steady = service(db, files)
        row["start s"], row["service MB"] = start, steady / 1e6
    finally:
        web.close()
    for op in ("digest", "status", "search-common-newest", "search-rare-newest",
               "search-common-best", "search-rare-best", "explain", "rescore"):
        result = timed(op, db, files)
        row[op] = result["seconds"]
        row[op + " detail"] = result["detail"]
    return row


def table(rows: list[dict[str, Any]]) -> str:
    first = rows[0]
    cols = [("database bytes/article", "bytes/article", "{:,.0f}"),
            ("small poll, s", "poll s", "{:.2f}"), ("small poll peak, MB", "poll MB", "{:.0f}"),
            ("service start, s", "start s", "{:.2f}"),
            ("service steady, MB", "service MB", "{:.0f}"),
            ("digest of a day, s", "digest", "{:.3f}"), ("status, s", "status", "{:.3f}"),
            (f"search '{COMMON}', newest first, s", "search-common-newest", "{:.4f}"),
            (f"search '{RARE}', newest first, s", "search-rare-newest", "{:.4f}"),
            (f"search '{COMMON}', best match, s", "search-common-best", "{:.4f}"),
            (f"search '{RARE}', best match, s", "search-rare-best", "{:.4f}"),
            ("explain, s", "explain", "{:.4f}"),
            ("rescore --dry-run, articles/s", "rescore detail", "{:,.0f}")]
    lines = ["| figure | " + " | ".join(f"{r['articles']:,} articles" for r in rows) + " |",
             "| --- |" + " --- |" * len(rows)]
    for label, key, fmt in [c for c in cols if c[1] in first]:
        cells = []
        for r in rows:
            cell = fmt.format(r[key])
            if r is not first and first[key]:
                cell += f" ({r[key] / first[key]:.2f}x)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = [f"{r['articles']:,}: digest {r['digest detail']} stories; search "
             f"'{COMMON}' {r['search-common-newest detail']}, '{RARE}' "
             f"{r['search-rare-newest detail']}" for r in rows if "digest detail" in r]
    return "\n".join(lines + [""] + notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dir", default="/tmp/monitor-scale", type=Path)
    ap.add_argument("--rebuild", action="store_true", help="build the archives again")
    ap.add_argument("--port", type=int, default=18765, help="the loopback web's port (the "
                    "archives' feed URLs name it)")
    ap.add_argument("--build-only", action="store_true", help="build the missing archives")
    ap.add_argument("--poll-only", action="store_true", help="measure the small poll alone "
                    "(with PYTHONPATH naming another checkout: compare two versions)")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = args.dir if args.dir.is_dir() or args.measure is None else args.dir.parent
    if args.measure:
        files = {"all": folder / "all.yaml", "settings": folder / "settings.yaml"}
        print(json.dumps(measure(args.measure, args.db, files)))
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    files = config_files(args.dir, args.port)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        db = args.dir / f"archive-{size}.db"
        if args.rebuild or not db.exists():
            for old in args.dir.glob(db.name + "*"):
                old.unlink()
            print(f"building {size:,} articles", flush=True)
            print(f"  built in {build(db, size, args.port, now):.0f} s", flush=True)
        if args.build_only:
            continue
        print(f"measuring {size:,} articles", flush=True)
        rows.append(bench(db, files, args.port, args.poll_only))
        print("  " + json.dumps(rows[-1]), flush=True)
    if rows:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
