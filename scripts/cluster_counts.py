"""How the monitor on the import path clusters copies: the demo, and the real pages of
../shared/corpus/pages (or the demo's pages) each served with six kinds of copy (KINDS),
polled with `monitor poll --once` on 127.0.0.1, and short stories under generic titles that
must stay apart. Prints counts, a fingerprint of the partition, and pairwise precision and
recall against the known grouping, overall and per kind of copy, so two versions of the
clustering can be compared in one command each (PYTHONPATH choosing the version).

    python scripts/cluster_counts.py [--pages N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from html import escape
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trafilatura

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopweb import QuietHandler, find_pages, read_page  # noqa: E402

CHROME = ("<p>Spread the love</p><p>Share on Facebook · Share on X · Email</p>",
          "<p>Read More...</p><ul><li><a href='/x'>Related: weather</a></li></ul>"
          "<p>Comments are closed.</p>")
KINDS = ["original", "repost in other chrome", "first two thirds", "a word in twelve changed",
         "first half", "syndicated edit", "summary only, same headline"]
GENERIC = ["Daily briefing", "Newsletter", "Morning report"]  # titles that name no story


def copies(text: str, rnd: random.Random) -> list[str]:
    """A repost in chrome, a shortened copy, an edited copy, a heavily cut one, and a
    syndicated edit: an agency line and an editor's sentence inserted, two paragraphs
    swapped, the last one dropped (its headline is rewritten too, in the feed)."""
    paras = [p for p in text.split("\n") if p.strip()]
    words = text.split()
    edited = [rnd.choice(words) if n % 12 == 5 else w for n, w in enumerate(words)]
    synd = list(paras[:-1]) if len(paras) > 3 else list(paras)
    if len(synd) > 2:
        synd[1], synd[2] = synd[2], synd[1]
    synd.insert(min(2, len(synd)), "The story has been updated with comments from officials, "
                "the newsroom said on Tuesday.")
    synd[0] = "LONDON (Wire) - " + synd[0]
    return [CHROME[0] + _paras(paras) + CHROME[1],
            _paras(paras[:max(1, len(paras) * 2 // 3)]),
            _paras([" ".join(edited)]),
            _paras([" ".join(words[:len(words) // 2])]),
            _paras(synd)]


def _paras(paras: list[str]) -> str:
    return "".join(f"<p>{escape(p)}</p>" for p in paras)


def page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><title>{escape(title)}</title></head><body><article>"
            f"<h1>{escape(title)}</h1>{body}</article></body></html>").encode()


def rss(base: str, name: str, items: list[tuple[str, str]]) -> bytes:
    out = "".join(f"<item><title>{escape(title)}</title><link>{base}{p}</link><guid>{base}{p}"
                  f"</guid></item>" for p, title in items)
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>{name}</title>"
            f"<link>{base}/</link>{out}</channel></rss>").encode()


def serve(routes: dict[str, tuple[bytes, str]]) -> ThreadingHTTPServer:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            body, ctype = routes.get(self.path, (b"", "text/plain"))
            self.reply(200 if body else 404, body, ctype)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def partition(db: Path) -> tuple[int, int, int, str]:
    """articles, stories, stories with copies, and a fingerprint of which URLs go together."""
    conn = sqlite3.connect(db)
    groups: dict[int, list[str]] = {}
    for url, cluster in conn.execute("SELECT url, cluster_id FROM articles"):
        groups.setdefault(cluster, []).append(url.split("/", 3)[-1])
    conn.close()
    shape = sorted(sorted(g) for g in groups.values())
    return (sum(map(len, groups.values())), len(groups), sum(len(g) > 1 for g in groups.values()),
            hashlib.sha256(repr(shape).encode()).hexdigest()[:12])


def pairwise(db: Path, truth: dict[str, tuple[str, int]]) -> list[tuple[str, float, float, int]]:
    """Pairwise precision and recall against the known grouping (path -> (story, kind)):
    over all pairs of articles; then, for each kind of copy, the precision of the pairs it
    is put in and the recall of the pairs (original, copy of that kind). A pair is predicted
    when both are in one cluster, true when both tell one story."""
    conn = sqlite3.connect(db)
    cluster = {url.split("/", 3)[-1]: c for url, c in
               conn.execute("SELECT url, cluster_id FROM articles") if url.split("/", 3)[-1]
               in truth}
    conn.close()

    def pairs(key: dict[str, Any]) -> set[tuple[str, str]]:
        groups: dict[Any, list[str]] = {}
        for path in cluster:
            groups.setdefault(key[path], []).append(path)
        return {(a, b) for g in groups.values() for a in g for b in g if a < b}

    predicted = pairs(cluster)
    actual = pairs({path: truth[path][0] for path in cluster})
    out = []
    for k, name in [(-1, "all pairs")] + list(enumerate(KINDS))[1:]:
        def involves(pair: tuple[str, str], k: int = k) -> bool:
            return k < 0 or k in (truth[pair[0]][1], truth[pair[1]][1])

        def with_original(pair: tuple[str, str], k: int = k) -> bool:
            return k < 0 or {truth[pair[0]][1], truth[pair[1]][1]} == {0, k}
        got = {p for p in predicted if involves(p)}
        want = {p for p in actual if with_original(p)}
        out.append((name, len(got & actual) / len(got) if got else 1.0,
                    len(want & predicted) / len(want) if want else 1.0, len(want)))
    return out


def _clusters(db: Path, prefix: str) -> dict[int, int]:
    conn = sqlite3.connect(db)
    out: dict[int, int] = {}
    for (c,) in conn.execute("SELECT cluster_id FROM articles WHERE url LIKE ?",
                             [f"%{prefix}%"]):
        out[c] = out.get(c, 0) + 1
    conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=0, help="at most this many pages (0: all)")
    ap.add_argument("--keep", type=Path, help="copy the pages' database here")
    args = ap.parse_args()
    rnd = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="monitor-clusters-") as tmp_:
        tmp = Path(tmp_)
        run = [sys.executable, "-m", "monitor"]
        subprocess.run([*run, "--db", str(tmp / "demo.db"), "demo", "--format", "text"],
                       check=True, capture_output=True, cwd=tmp)  # cwd: PYTHONPATH decides
        print("demo: %d articles, %d stories, %d with copies, partition %s"
              % partition(tmp / "demo.db"))

        routes: dict[str, tuple[bytes, str]] = {}
        kinds: list[list[tuple[str, str]]] = [[] for _ in range(len(KINDS) + 2)]
        truth: dict[str, tuple[str, int]] = {}
        pages = find_pages()
        seen: dict[str, int] = {}  # the corpus holds a few pages twice, under two names
        for n, path in enumerate(pages[:args.pages or None]):
            html = read_page(path)
            text = trafilatura.extract(html) or ""
            if len(text.split()) < 60:
                continue
            story = str(seen.setdefault(" ".join(text.split()), n))
            meta = trafilatura.extract_metadata(html)
            title = (meta.title if meta and meta.title else "") or f"Page {n}"
            routes[f"/p/{n}"] = (html, "text/html")
            kinds[0].append((f"/p/{n}", title))
            truth[f"p/{n}"] = (story, 0)
            for k, body in enumerate(copies(text, rnd), 1):
                routes[f"/v/{n}/{k}"] = (page(f"Copy {k} of page {n}", body), "text/html")
                kinds[k].append((f"/v/{n}/{k}", f"Copy {k} of page {n}"))
                truth[f"v/{n}/{k}"] = (story, k)
            # the summary only: too short to compare, its headline as the original's
            first = " ".join(text.split()[:20])
            routes[f"/v/{n}/6"] = (page(title, f"<p>{escape(first)}</p>"), "text/html")
            kinds[6].append((f"/v/{n}/6", title))
            truth[f"v/{n}/6"] = (story, 6)
            # two different short stories under one generic title, in two other feeds
            for g in (7, 8):
                generic = GENERIC[n % len(GENERIC)]
                words = text.split()
                short = " ".join(words[20 * (g - 6):20 * (g - 5)])
                routes[f"/g/{n}/{g}"] = (page(generic, f"<p>{escape(short)}</p>"), "text/html")
                kinds[g].append((f"/g/{n}/{g}", generic))
                truth[f"g/{n}/{g}"] = (f"g{n}.{g}", g)
        server = serve(routes)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for k, items in enumerate(kinds):
            routes[f"/feed{k}.xml"] = (rss(base, f"Feed {k}", items), "application/rss+xml")
        (tmp / "settings.yaml").write_text("allow_private_addresses: true\nconcurrency: 1\n"
                                           "per_host_limit: 1\n")
        # one feed at a time, in order: the originals first, then each kind of copy
        for k in range(len(kinds)):
            (tmp / "one.yaml").write_text(f"feeds:\n  - name: Feed {k}\n"
                                          f"    url: {base}/feed{k}.xml\n")
            subprocess.run([*run, "--feeds", str(tmp / "one.yaml"), "--settings",
                            str(tmp / "settings.yaml"), "--db", str(tmp / "pages.db"), "poll",
                            "--once"], check=True, capture_output=True, cwd=tmp)
        server.shutdown()
        if args.keep:
            shutil.copyfile(tmp / "pages.db", args.keep)
        print(f"pages ({len(kinds[0])} real pages, {len(KINDS) - 1} copies each, and "
              f"{len(kinds[7]) * 2} short stories under generic titles): %d articles, "
              "%d stories, %d with copies, partition %s" % partition(tmp / "pages.db"))
        print("| kind | pairwise precision | recall | pairs |\n| --- | --- | --- | --- |")
        for name, precision, recall, pairs in pairwise(tmp / "pages.db", truth):
            print(f"| {name} | {precision:.3f} | {recall:.3f} | {pairs} |")
        generic_joined = sum(1 for c in _clusters(tmp / "pages.db", "/g/").values() if c > 1)
        print(f"generic titles: {generic_joined} stories joined under one (of "
              f"{len(kinds[7]) * 2} short stories)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
