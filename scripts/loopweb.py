"""A loopback web for the scripts: N RSS feeds of M items over a folder of real pages, with a
fixed latency per request, served by a separate process so it does not share the measured
process's CPU. Only 127.0.0.1. Used by bench.py and eval_extraction.py."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import time
import urllib.request
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_PAGES = ROOT.parent / "shared" / "corpus" / "pages"


def find_pages(folder: Path | None = None) -> list[Path]:
    """Real HTML pages: the shared corpus when present, else the demo's samples."""
    folder = folder or SHARED_PAGES
    if folder.is_dir():
        pages = sorted(folder.glob("mozilla-readability/*/source.html.gz")) + \
            sorted(folder.glob("newspaper/html/*.html.gz"))
        if pages:
            return pages
    return sorted((ROOT / "monitor" / "demo" / "pages").glob("*.html"))


def read_page(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, no access log, and a one-call reply."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", ctype: str = "text/html",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def _serve(pages: list[str], feeds: int, items: int, latency: float, hosts: int,
           port_q, dead: int = 0, files: list[str] | None = None) -> None:
    import socket
    import threading

    bodies = [read_page(Path(p)) for p in pages]
    captures = [Path(f).read_bytes() for f in files or []]
    # a site that accepts connections and never answers: listening, never accepting
    hung = socket.socket()
    hung.bind(("127.0.0.254", 0))
    hung.listen(4096)
    hung_base = "http://127.0.0.254:%d" % hung.getsockname()[1]
    lock = threading.Lock()
    stats: dict[str, int] = {}  # kept here: a manager process would cost CPU per request

    def count(key: str) -> None:
        with lock:
            stats[key] = stats.get(key, 0) + 1
    stamp = formatdate(time.time() - 3600, usegmt=True)

    class Handler(QuietHandler):

        def do_GET(self) -> None:  # noqa: N802
            kind, _, name = self.path.strip("/").partition("/")
            if kind == "stats":
                with lock:
                    body = json.dumps(stats).encode()
                    if name == "reset":
                        stats.clear()
                return self.reply(200, body, "application/json")
            time.sleep(latency)
            count(kind)
            if kind == "feed":
                n = int(name.split(".")[0])
                etag = f'"feed-{n}"'
                if self.headers.get("If-None-Match") == etag:
                    count("304")
                    return self.reply(304, b"", "text/plain", {"ETag": etag})
                host, port = self.server.server_address[:2]
                base = f"http://{host}:{port}"
                out = [f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}'
                       f"</title><link>{base}/</link><description>bench</description>"]
                for k in range(items):
                    i = n * items + k
                    out.append(f"<item><title>Item {i}</title><link>{base}/page/{i}</link>"
                               f"<guid>urn:bench:{i}</guid><pubDate>{stamp}</pubDate></item>")
                out.append("</channel></rss>")
                return self.reply(200, "".join(out).encode(), "application/rss+xml",
                                  {"ETag": etag})
            if kind == "page":
                body = bodies[int(name) % len(bodies)]
                return self.reply(200, body, "text/html")
            if kind == "dead":  # a feed of `dead` items on the site that never answers
                out = ['<?xml version="1.0"?><rss version="2.0"><channel><title>Dead site'
                       "</title><link>http://dead.example/</link><description>b</description>"]
                out += [f"<item><title>Dead {i}</title><link>{hung_base}/page/{i}</link>"
                        f"<guid>urn:dead:{i}</guid></item>" for i in range(dead)]
                out.append("</channel></rss>")
                return self.reply(200, "".join(out).encode(), "application/rss+xml")
            if kind == "file":  # a real feed capture, as it was
                return self.reply(200, captures[int(name)], "application/xml")
            self.reply(404, b"", "text/plain")

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512

        def handle_error(self, request, client_address) -> None:  # noqa: ANN001
            pass

    servers = [Server((f"127.0.0.{h + 1}", 0), Handler) for h in range(hosts)]
    for httpd in servers[1:]:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port_q.put([httpd.server_address[:2] for httpd in servers])
    servers[0].serve_forever()


class LoopWeb:
    """Feed n lives on host n % hosts (127.0.0.1, 127.0.0.2, ...: all loopback on Linux), its
    pages on the same host, as a site serves its own articles."""

    def __init__(self, pages: list[Path], feeds: int, items: int, latency: float,
                 hosts: int = 1, dead: int = 0, files: list[Path] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        port_q = ctx.Queue()
        self.proc = ctx.Process(target=_serve, daemon=True, args=(
            [str(p) for p in pages], feeds, items, latency, hosts, port_q, dead,
            [str(f) for f in files or []]))
        self.proc.start()
        self.bases = [f"http://{h}:{p}" for h, p in port_q.get(timeout=60)]
        self.base = self.bases[0]
        self.feeds = [f"{self.bases[n % hosts]}/feed/{n}.xml" for n in range(feeds)]
        self.dead_feed = f"{self.base}/dead/0.xml"  # `dead` links to a site that never answers
        self.files = [f"{self.bases[n % hosts]}/file/{n}" for n in range(len(files or []))]

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base}/stats", timeout=10) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        urllib.request.urlopen(f"{self.base}/stats/reset", timeout=10).close()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join()
