"""A threaded HTTP server on 127.0.0.1 that serves the demo's feeds and pages.

Feeds are templates: {base} becomes the server's address and {date0}, {iso0} ... recent
times, so the demo's stories fall on today. ETag and Last-Modified are honoured, so a second
poll shows 304 answers.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

HERE = resources.files(__package__)


class DemoServer:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.demo = self  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        times = {}
        for i in range(6):
            when = self.now - timedelta(minutes=5 * i)
            times[f"date{i}"] = format_datetime(when, usegmt=True)
            times[f"iso{i}"] = when.isoformat()
        for item in HERE.joinpath("feeds").iterdir():
            text = item.read_text(encoding="utf-8").replace("{base}", self.base)
            for key, value in times.items():
                text = text.replace("{" + key + "}", value)
            ctype = "application/atom+xml" if "<feed" in text[:300] else "application/rss+xml"
            self.files[f"/feeds/{item.name}"] = (text.encode("utf-8"), ctype)
        for item in HERE.joinpath("pages").iterdir():
            self.files[f"/pages/{item.name}"] = (item.read_bytes(), "text/html; charset=utf-8")
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def feed_urls(self) -> list[tuple[str, str]]:
        """(name, url) of each sample feed."""
        names = {"open-wire.xml": "Open Wire Reposts", "city-desk.xml": "City Desk"}
        return [(names.get(Path(p).name, Path(p).stem), self.base + p)
                for p in sorted(self.files) if p.startswith("/feeds/")]

    def __enter__(self) -> DemoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "monitor-demo/1"

    def do_GET(self) -> None:  # noqa: N802
        demo: DemoServer = self.server.demo  # type: ignore[attr-defined]
        found = demo.files.get(self.path.split("?")[0])
        if found is None:
            self.send_error(404)
            return
        body, ctype = found
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", format_datetime(demo.now, usegmt=True))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the demo prints its own summary
