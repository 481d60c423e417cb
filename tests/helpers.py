"""Test helpers: a project folder with real YAML files, a real SQLite file, and a real
HTTP server on 127.0.0.1 (pytest-httpserver) for feeds and pages."""

from __future__ import annotations

import sqlite3
import ssl
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import Paths

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
NOW = datetime.now(UTC).replace(microsecond=0)


def rss(items: list[dict[str, str]], title: str = "Test feed") -> str:
    out = ['<?xml version="1.0" encoding="utf-8"?>', '<rss version="2.0"><channel>',
           f"<title>{title}</title><link>http://example.org/</link><description>t</description>"]
    for it in items:
        out.append("<item>" + "".join(
            f"<{k}>{v}</{k}>" for k, v in it.items()) + "</item>")
    out.append("</channel></rss>")
    return "\n".join(out)


def item(n: int, base: str, path: str | None = None, title: str | None = None,
         **extra: str) -> dict[str, str]:
    return {"title": title or f"Story {n}", "link": f"{base}{path or f'/page/{n}'}",
            "guid": f"urn:test:{n}", "pubDate": format_datetime(NOW, usegmt=True),
            "description": f"Summary of story {n}.", **extra}


class Project:
    """A user's folder: feeds.yaml, config/settings.yaml, the shipped keywords.yaml."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "config").mkdir()
        self.db = root / "monitor.db"
        self.settings(allow_private_addresses=True, extract_workers=1)
        (root / "config" / "keywords.yaml").write_bytes(
            (ROOT / "config" / "keywords.yaml").read_bytes())
        self.feeds([])

    @property
    def paths(self) -> Paths:
        return Paths(self.root / "feeds.yaml", self.root / "config" / "keywords.yaml",
                     self.root / "config" / "settings.yaml", self.db)

    def settings(self, **values: object) -> None:
        lines = [f"database: {self.db}"]
        for key, value in values.items():
            lines.append(f"{key}: {str(value).lower() if isinstance(value, bool) else value}")
        (self.root / "config" / "settings.yaml").write_text("\n".join(lines) + "\n")

    def feeds(self, feeds: list[tuple[str, str]] | str) -> None:
        if isinstance(feeds, str):
            text = textwrap.dedent(feeds)
        else:
            text = "feeds:\n" + "".join(
                f"  - url: {url}\n    name: {name}\n" for name, url in feeds) if feeds \
                else "feeds: []\n"
        (self.root / "feeds.yaml").write_text(text)

    def run(self, *args: str, input: str | None = None) -> Result:
        p = self.paths
        return CliRunner().invoke(cli, ["--feeds", str(p.feeds), "--keywords", str(p.keywords),
                                        "--settings", str(p.settings), *args], input=input)


class Clock:
    """A clock the test sets; the monitor asks it what time it is."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def stored_day(db: Path) -> str:
    """The day (UTC, the test projects' time zone) the articles were stored: the digest's day,
    read from the database rather than assumed to be today, which a poll may cross."""
    with sqlite3.connect(db) as conn:
        day = conn.execute("SELECT min(substr(fetched_at, 1, 10)) FROM articles").fetchone()[0]
    assert day, "no article stored"
    return str(day)


def wait_for(check: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
    """Poll `check` until it is truthy; a service still creating its tables counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except sqlite3.OperationalError:
            value = None  # the database file exists before its tables do
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc, timeout: float = 15) -> int:  # noqa: ANN001
    """SIGTERM and wait; SIGKILL if it will not go. Returns the exit code."""
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class LocalWeb:
    """A threaded HTTP server on 127.0.0.1 whose routes are plain functions of the request
    handler, so a route can hang, trickle, reset the connection or lie about its length.
    Counts requests per path."""

    def __init__(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        import threading
        from collections import Counter
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.hits: Counter[str] = Counter()
        self.peers: list[int] = []  # the client port of each request: connection reuse
        self.agents: dict[str, list[str | None]] = {}  # the User-Agent of each request, by path
        self.times: list[tuple[float, str]] = []  # (monotonic time, path) of each request
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                web.hits[path] += 1
                web.peers.append(self.client_address[1])
                web.agents.setdefault(path, []).append(self.headers.get("User-Agent"))
                web.times.append((time.monotonic(), path))
                route = web.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:  # noqa: ANN001
                pass  # routes break connections on purpose

        self.httpd = Server((host, 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.base = f"{scheme}://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def send(self, path: str, body: str | bytes, status: int = 200,
             ctype: str = "text/html; charset=utf-8", headers: dict[str, str] | None = None,
             delay: float = 0.0) -> None:
        """Serve *body* at *path*, after *delay* seconds."""
        import time

        data = body.encode() if isinstance(body, str) else body

        def route(h) -> None:  # noqa: ANN001
            if delay:
                time.sleep(delay)
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)

        self.routes[path] = route

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
