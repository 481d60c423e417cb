"""The fetcher against a real server on 127.0.0.1: connections kept, cookies kept only within
one redirect chain, a bounded number of connection pools; and the sockets under httpx
(monitor.fetch.netio): idle connections the server closed, large bodies, read timeouts, TLS."""

from __future__ import annotations

import asyncio

from monitor import fetch
from monitor.config import Settings
from monitor.fetch import Fetcher

from .helpers import LocalWeb, item, rss


def fetch_all(settings: Settings, urls: list[str], max_bytes: int = 1_000_000,
              **kw: object) -> list[fetch.Response]:
    async def go() -> list[fetch.Response]:
        async with Fetcher(settings) as f:
            return [await f.get(u, max_bytes=max_bytes, trusted=True, **kw) for u in urls]
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
    monkeypatch.setattr(fetch.fetcher, "MAX_POOLS", 2)
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


# -- the sockets under httpx (monitor.fetch.netio) ------------------------------------------

def test_a_connection_the_server_closed_while_idle_is_not_reused(web):
    def once(h) -> None:  # noqa: ANN001
        h.send_response(200)
        h.send_header("Content-Length", "6")
        h.end_headers()
        h.wfile.write(b"<rss/>")
        h.wfile.flush()
        h.close_connection = True  # closed without saying so in a header

    web.routes["/f.xml"] = once

    async def go() -> list[int]:
        async with Fetcher(Settings(per_host_limit=1)) as f:
            statuses = []
            for _ in range(3):
                statuses.append((await f.get(web.url("/f.xml"), max_bytes=100,
                                             trusted=True)).status)
                await asyncio.sleep(0.2)  # the server's close arrives while idle
            return statuses
    assert asyncio.run(go()) == [200, 200, 200]
    assert len(set(web.peers)) == 3  # a new connection each time, no failed reuse


def test_large_bodies_arrive_whole_through_reading_paused_and_resumed(web):
    import gzip
    import random

    data = random.Random(7).randbytes(3_000_000)  # over netio's buffer high-water mark
    web.send("/big.bin", data, ctype="application/octet-stream")
    text = b"surveillance camera " * 200_000  # 4 MB decoded
    web.send("/big.html", gzip.compress(text), headers={"Content-Encoding": "gzip"})
    got = fetch_all(Settings(), [web.url("/big.bin"), web.url("/big.html")],
                    max_bytes=5_000_000)
    assert got[0].content == data
    assert got[1].content == text


def test_a_server_that_never_answers_times_out_on_reading():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections (the kernel's backlog), never answers
    try:
        settings = Settings(read_timeout=0.5, request_deadline=30)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/f.xml"
        started = asyncio.run(_timed_failure(settings, url))
    finally:
        listener.close()
    reason, took = started
    assert reason == "timed out (ReadTimeout)"
    assert 0.4 < took < 25  # the read timeout, well before the 30-s deadline


async def _timed_failure(settings: Settings, url: str) -> tuple[str, float]:
    import time

    from monitor.errors import FetchError

    began = time.monotonic()
    async with Fetcher(settings) as f:
        try:
            await f.get(url, max_bytes=100, trusted=True)
        except FetchError as exc:
            return exc.reason, time.monotonic() - began
    raise AssertionError("no failure")


def test_https_with_a_trusted_certificate_and_refused_without(monkeypatch):
    import ssl

    import trustme

    from monitor.errors import FetchError

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    secure = LocalWeb(tls=server_ctx)
    try:
        secure.send("/f.xml", "<rss/>", ctype="application/rss+xml")
        secure.send("/gone.xml", "", status=304, headers={"ETag": '"e"'})
        urls = [secure.url("/f.xml"), secure.url("/gone.xml"), secure.url("/f.xml")]

        async def attempt() -> str:  # with the CA bundle shipped with certifi
            async with Fetcher(Settings()) as f:
                try:
                    await f.get(urls[0], max_bytes=100, trusted=True)
                except FetchError as exc:
                    return exc.reason
            return "fetched"
        refused = asyncio.run(attempt())
        assert "ConnectError" in refused and "CERTIFICATE_VERIFY_FAILED" in refused, refused

        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        monkeypatch.setattr(fetch.transport, "_tls", lambda: client_ctx)
        got = fetch_all(Settings(per_host_limit=1), urls, etag='"e"')
        assert [(r.status, r.content) for r in got] == [(200, b"<rss/>"), (304, b""),
                                                       (200, b"<rss/>")]
        assert len(set(secure.peers[-3:])) == 1  # one TLS connection carried all three
    finally:
        secure.close()


def test_every_request_carries_the_configured_user_agent(project, web, page_html):
    agent = "bar-check/1.0 (+https://example.org/bot)"
    web.send("/page/1", page_html("Police cameras", "The police cameras story. " * 20))
    web.send("/moved", "", status=301, headers={"Location": "/page/1"})
    web.send("/f.xml", rss([item(1, web.base), item(2, web.base, path="/moved")]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1, user_agent=f'"{agent}"')
    assert "2 new articles" in project.run("poll", "--once").output
    assert project.run("feeds", "check", web.url("/f.xml")).exit_code == 0
    assert web.agents["/f.xml"] == [agent, agent]  # the poll and `feeds check`
    assert set(web.agents["/page/1"]) == {agent} and len(web.agents["/page/1"]) >= 2
    assert web.agents["/moved"] == [agent]  # and every hop of a redirect
    project.settings(allow_private_addresses=True, extract_workers=1)
    project.run("feeds", "check", web.url("/f.xml"))
    assert web.agents["/f.xml"][-1].startswith("monitor/")  # the default names us


def test_a_lent_turn_comes_back_when_the_page_is_in_and_failures_count_against_the_host():
    """Fetcher.lend, as the pipeline uses it for a worker's page: the host's turn and the
    place in the global limit are free as soon as fetched() is called (extraction holds
    neither), each is given back once, and the borrower's unreachable failures set the host
    aside as the fetcher's own would."""
    from monitor.errors import FetchError, SetAside

    url = "http://site.test/page"

    async def run() -> list[str]:
        seen: list[str] = []
        fetcher = Fetcher(Settings(per_host_limit=1, concurrency=1, set_aside_after=2))
        turn = fetcher.turn(url)

        async def other(fetched) -> str:  # called only once it has the global place
            seen.append("global free")
            return ""

        async def page(fetched) -> str:
            fetched()  # the page is in: another request may start while this one extracts
            await asyncio.wait_for(turn.acquire(), 1)  # the host's turn is free
            seen.append("turn free")
            turn.release()
            other_turn = fetcher.turn("http://other.test/")
            await other_turn.acquire()
            await asyncio.wait_for(fetcher.lend("http://other.test/", other_turn, other), 1)
            fetched()  # a second call gives back nothing more
            return "extracted"

        await turn.acquire()
        seen.append(await fetcher.lend(url, turn, page))
        # each given back exactly once: the turn (limit 1) can be taken once, not twice
        await turn.acquire()
        seen.append("taken" if turn.locked() else "given back twice")
        turn.release()

        async def unreachable(fetched) -> str:
            raise FetchError(url, "timed out after 2s", unreachable=True)

        for _ in range(2):
            await turn.acquire()
            try:
                await fetcher.lend(url, turn, unreachable)
            except FetchError as exc:
                seen.append(exc.reason)
        await turn.acquire()
        try:
            await fetcher.lend(url, turn, page)
        except SetAside:
            seen.append("set aside")
        seen.append("turn back" if not turn.locked() else "turn kept")
        return seen

    assert asyncio.run(run()) == ["turn free", "global free", "extracted", "taken",
                                  "timed out after 2s", "timed out after 2s", "set aside",
                                  "turn back"]
