"""How the monitor on the import path clusters copies: the demo, and the real pages of
../shared/corpus/pages (or the demo's pages) each served with four kinds of copy, polled with
`monitor poll --once` on 127.0.0.1. Prints counts and a fingerprint of the partition, so two
versions of the clustering can be compared (run it once per version, PYTHONPATH choosing).

    python scripts/cluster_counts.py [--pages N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
from html import escape
from http.server import ThreadingHTTPServer
from pathlib import Path

import trafilatura

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopweb import QuietHandler, find_pages, read_page  # noqa: E402

CHROME = ("<p>Spread the love</p><p>Share on Facebook · Share on X · Email</p>",
          "<p>Read More...</p><ul><li><a href='/x'>Related: weather</a></li></ul>"
          "<p>Comments are closed.</p>")


def copies(text: str, rnd: random.Random) -> list[str]:
    """A repost in chrome, a shortened copy, an edited copy and a heavily cut one."""
    paras = [p for p in text.split("\n") if p.strip()]
    words = text.split()
    edited = [rnd.choice(words) if n % 12 == 5 else w for n, w in enumerate(words)]
    return [CHROME[0] + _paras(paras) + CHROME[1],
            _paras(paras[:max(1, len(paras) * 2 // 3)]),
            _paras([" ".join(edited)]),
            _paras([" ".join(words[:len(words) // 2])])]


def _paras(paras: list[str]) -> str:
    return "".join(f"<p>{escape(p)}</p>" for p in paras)


def page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><title>{escape(title)}</title></head><body><article>"
            f"<h1>{escape(title)}</h1>{body}</article></body></html>").encode()


def rss(base: str, name: str, paths: list[str]) -> bytes:
    items = "".join(f"<item><title>{name} {n}</title><link>{base}{p}</link><guid>{base}{p}"
                    f"</guid></item>" for n, p in enumerate(paths))
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>{name}</title>"
            f"<link>{base}/</link>{items}</channel></rss>").encode()


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=0, help="at most this many pages (0: all)")
    args = ap.parse_args()
    rnd = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="monitor-clusters-") as tmp_:
        tmp = Path(tmp_)
        run = [sys.executable, "-m", "monitor"]
        subprocess.run([*run, "--db", str(tmp / "demo.db"), "demo", "--format", "text"],
                       check=True, capture_output=True)
        print("demo: %d articles, %d stories, %d with copies, partition %s"
              % partition(tmp / "demo.db"))

        routes: dict[str, tuple[bytes, str]] = {}
        kinds: list[list[str]] = [[] for _ in range(5)]
        pages = find_pages()
        for n, path in enumerate(pages[:args.pages or None]):
            html = read_page(path)
            text = trafilatura.extract(html) or ""
            if len(text.split()) < 60:
                continue
            routes[f"/p/{n}"] = (html, "text/html")
            kinds[0].append(f"/p/{n}")
            for k, body in enumerate(copies(text, rnd), 1):
                routes[f"/v/{n}/{k}"] = (page(f"Copy {k} of page {n}", body), "text/html")
                kinds[k].append(f"/v/{n}/{k}")
        server = serve(routes)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for k, paths in enumerate(kinds):
            routes[f"/feed{k}.xml"] = (rss(base, f"Feed {k}", paths), "application/rss+xml")
        (tmp / "feeds.yaml").write_text("feeds:\n" + "".join(
            f"  - name: Feed {k}\n    url: {base}/feed{k}.xml\n" for k in range(5)))
        (tmp / "settings.yaml").write_text("allow_private_addresses: true\nconcurrency: 1\n"
                                           "per_host_limit: 1\n")
        # one feed at a time, in order: the originals first, then each kind of copy
        for k in range(5):
            (tmp / "one.yaml").write_text(f"feeds:\n  - name: Feed {k}\n"
                                          f"    url: {base}/feed{k}.xml\n")
            subprocess.run([*run, "--feeds", str(tmp / "one.yaml"), "--settings",
                            str(tmp / "settings.yaml"), "--db", str(tmp / "pages.db"), "poll",
                            "--once"], check=True, capture_output=True)
        server.shutdown()
        print(f"pages ({len(kinds[0])} real pages, 4 copies each): %d articles, %d stories, "
              "%d with copies, partition %s" % partition(tmp / "pages.db"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
