"""The fetcher against a real server on 127.0.0.1: connections kept, cookies kept only within
one redirect chain, a bounded number of connection pools."""

from __future__ import annotations

import asyncio

from monitor import fetch
from monitor.config import Settings
from monitor.fetch import Fetcher

from .helpers import LocalWeb


def fetch_all(settings: Settings, urls: list[str], **kw: object) -> list[fetch.Response]:
    async def go() -> list[fetch.Response]:
        async with Fetcher(settings) as f:
            return [await f.get(u, max_bytes=1_000_000, trusted=True, **kw) for u in urls]
    return asyncio.run(go())


def test_unchanged_answers_keep_the_connection(web):
    web.send("/a.xml", "", status=304, headers={"ETag": '"x"'})
    web.send("/b.xml", "", status=304, headers={"ETag": '"x"'})
    web.send("/c.xml", "<rss/>", ctype="application/rss+xml")
    settings = Settings(per_host_limit=1)
    got = fetch_all(settings, [web.url(p) for p in ("/a.xml", "/b.xml", "/c.xml", "/a.xml")],
                    etag='"x"')
    assert [r.status for r in got] == [304, 304, 200, 304]
    assert len(set(web.peers)) == 1  # one connection carried all four


def test_cookies_live_only_within_one_redirect_chain(web):
    seen: list[str | None] = []

    def check(h) -> None:  # noqa: ANN001
        seen.append(h.headers.get("Cookie"))
        if h.headers.get("Cookie") == "consent=yes":
            body = b"<rss/>"
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        h.send_response(302)
        h.send_header("Location", "/set")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def set_cookie(h) -> None:  # noqa: ANN001
        h.send_response(302)
        h.send_header("Set-Cookie", "consent=yes; Path=/; HttpOnly")
        h.send_header("Location", "/check")
        h.send_header("Content-Length", "0")
        h.end_headers()

    web.routes["/check"], web.routes["/set"] = check, set_cookie
    got = fetch_all(Settings(allow_private_addresses=True), [web.url("/check")] * 2)
    assert [r.status for r in got] == [200, 200]
    # each chain starts without the cookie the previous one was given
    assert seen == [None, "consent=yes", None, "consent=yes"]


def test_connection_pools_are_bounded(web, monkeypatch):
    monkeypatch.setattr(fetch, "MAX_POOLS", 2)
    others = [LocalWeb() for _ in range(3)]
    try:
        for server in [web, *others]:
            server.send("/f.xml", "<rss/>", ctype="application/rss+xml")

        async def go() -> tuple[list[int], int]:
            async with Fetcher(Settings()) as f:
                statuses = []
                for server in [web, *others]:
                    r = await f.get(server.url("/f.xml"), max_bytes=1000, trusted=True)
                    statuses.append(r.status)
                return statuses, len(f._pools)
        statuses, pools = asyncio.run(go())
        assert statuses == [200] * 4
        assert pools == 2  # the least recently used idle pools were closed
    finally:
        for server in others:
            server.close()
