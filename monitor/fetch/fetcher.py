"""HTTP for feeds and pages: httpx with the protections it leaves to the caller.

- a wall-clock deadline per request, body included (httpx only has per-phase timeouts);
- a cap on the *decoded* body size (gzip/deflate/brotli bombs, endless bodies);
- redirects followed by hand, bounded, http(s) only, each hop re-checked;
- for URLs that come from feed content, and every redirect: only globally routable addresses
  (fetch.policy), judged on every address the name resolves to before any connection;
- conditional GET with stored validators; a global and a per-host concurrency limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterable, Awaitable, Callable
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from ..config import Settings
from ..errors import Blocked, FetchError, InvalidLink, SetAside, TooLarge
from .limits import Decoder, decoded
from .policy import is_global, request_url
from .transport import Transport, as_httpx_errors

log = logging.getLogger("monitor.fetch")
T = TypeVar("T")
REDIRECTS = {301, 302, 303, 307, 308}
PERMANENT = {301, 308}

@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int
    content: bytes
    content_type: str
    charset: str | None
    etag: str | None
    last_modified: str | None
    moved_to: str | None = None  # set when a permanent redirect moved the requested URL

    @property
    def not_modified(self) -> bool:
        return self.status == 304



def parse_retry_after(value: str | None, now: float | None = None,
                      cap: float = 86400) -> float | None:
    """Seconds to wait, from '120' or an HTTP date; None for garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # '²' is a digit to isdigit(), not to float()
        return min(float(value), cap)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, min(when.timestamp() - (now or time()), cap))



MAX_POOLS = 256  # connection pools (one per origin) kept open; idle ones are closed first
HOST_REST = 600.0  # seconds a set-aside host is left alone (page retries come back after it)


class Fetcher:
    """One per poll cycle (or service). Use as ``async with Fetcher(settings) as f``.

    Requests go straight to httpx transports, one connection pool per origin, not through an
    httpx.Client: the client's per-request work (merging, cookie jar, auth and redirect
    machinery) and httpcore's pool bookkeeping, which scans every connection of a pool on each
    request, were most of the CPU of a re-poll. Limits are ours (a global and a per-host
    semaphore), so a pool never holds more than per_host_limit connections.
    """

    def __init__(self, settings: Settings, *, allow_private: bool | None = None) -> None:
        self._allow_private = allow_private  # an explicit choice wins over the setting
        self.reconfigure(settings)
        # Pools are keyed by origin *and* by whether addresses are checked: a kept-alive
        # connection opened for a trusted feed URL must never carry a request for an
        # untrusted link, or the address check (made when a connection opens) would be skipped.
        self._pools: OrderedDict[tuple[str, str, int | None, bool], _Pool] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()  # evicted pools being closed
        self._strikes: dict[str, int] = {}  # host -> failures in a row without an answer
        self._aside: dict[str, tuple[float, str]] = {}  # host -> (until, on the loop's clock; why)

    def reconfigure(self, settings: Settings) -> None:
        """Settings for the requests from now on (a reload); those in flight finish under the
        ones they started with. Idle connections are closed when the per-host limit changes."""
        old: Settings | None = getattr(self, "settings", None)
        self.settings = settings
        self.allow_private = settings.allow_private_addresses if self._allow_private is None \
            else self._allow_private
        self._timeout = httpx.Timeout(settings.read_timeout,
                                      connect=settings.connect_timeout).as_dict()
        if old is None or old.concurrency != settings.concurrency:
            self._global = asyncio.Semaphore(settings.concurrency)
        if old is None or old.per_host_limit != settings.per_host_limit:
            limit = settings.per_host_limit
            self._hosts: dict[str, asyncio.Semaphore] = defaultdict(
                lambda: asyncio.Semaphore(limit))
            if old is not None:
                self._evict(room_for=MAX_POOLS)  # pools are sized by the limit

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.transport.aclose()
        await asyncio.gather(*self._closing)

    def _pool(self, url: httpx.URL, check: bool) -> _Pool:
        key = (url.scheme, url.host, url.port, check)
        pool = self._pools.get(key)
        if pool is None:
            self._evict(room_for=1)
            pool = self._pools[key] = _Pool(Transport(is_global if check else None))
        self._pools.move_to_end(key)
        return pool

    def _evict(self, room_for: int) -> None:
        """Close the least recently used idle pools beyond MAX_POOLS (their sockets too)."""
        excess = len(self._pools) + room_for - MAX_POOLS
        for key in [k for k, p in self._pools.items() if not p.in_use][:max(excess, 0)]:
            task = asyncio.get_running_loop().create_task(self._pools.pop(key).transport.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def turn(self, url: str) -> asyncio.Semaphore:
        """``async with`` it to wait for room on *url*'s host (per_host_limit), then hold it:
        a caller that waits there holds nothing else meanwhile, so one host's backlog never
        keeps another host's requests waiting. Pass ``turn_held=True`` to get() inside it."""
        return self._hosts[request_url(url).host]

    async def get(self, url: str, *, max_bytes: int, trusted: bool = False,
                  etag: str | None = None, last_modified: str | None = None,
                  accept: str = "*/*", turn_held: bool = False) -> Response:
        """GET *url*; raise FetchError (or TooLarge / Blocked / InvalidLink / SetAside) on any
        failure or non-2xx/304.

        *trusted* URLs (the user's feeds.yaml) may point anywhere; untrusted ones, and every
        redirect of theirs, must reach public addresses unless allow_private_addresses.
        A host that did not answer `set_aside_after` times in a row (connect errors, timeouts,
        resets, names that do not resolve) is set aside for HOST_REST seconds: its requests
        fail at once with SetAside, a passing failure that page retries try again later.
        """
        host = request_url(url).host
        try:
            async with nullcontext() if turn_held else self._hosts[host]:
                self._check_aside(url, host)  # again: it may have been set aside meanwhile
                async with self._global:
                    response = await self.request(url, max_bytes=max_bytes, trusted=trusted,
                                                  etag=etag, last_modified=last_modified,
                                                  accept=accept)
        except FetchError as exc:
            self._failed(host, exc)
            raise
        self._strikes.pop(host, None)
        return response

    async def lend(self, url: str, turn: asyncio.Semaphore,
                   request: Callable[[Callable[[], None]], Awaitable[T]]) -> T:
        """A GET of *url* made elsewhere (a worker process) under this fetcher's limits and
        its record of hosts: the caller holds *turn*, url's turn(), and hands it over.
        ``request(fetched)`` is awaited in a place of the global limit; it calls fetched()
        once the response is in, which gives back the turn and that place (the rest of its
        work, extraction, holds neither). A FetchError it raises counts against the host."""
        host = request_url(url).host
        gate, held = self._global, [turn]

        def fetched() -> None:
            while held:
                held.pop().release()
            self._strikes.pop(host, None)

        try:
            self._check_aside(url, host)
            await gate.acquire()
            held.append(gate)
            return await request(fetched)
        except FetchError as exc:
            self._failed(host, exc)
            raise
        finally:
            while held:
                held.pop().release()

    async def request(self, url: str, *, max_bytes: int, trusted: bool = False,
                      etag: str | None = None, last_modified: str | None = None,
                      accept: str = "*/*") -> Response:
        """get() without the limits and without the record of hosts: for a process to which
        another lends its turns (lend())."""
        return await self._get(url, max_bytes, trusted, etag, last_modified, accept)

    def _failed(self, host: str, exc: FetchError) -> None:
        if exc.unreachable and not isinstance(exc, SetAside):
            self._strike(host, exc)

    def _check_aside(self, url: str, host: str) -> None:
        aside = self._aside.get(host)
        if aside is None:
            return
        until, why = aside
        if asyncio.get_running_loop().time() < until:
            raise SetAside(url, f"host set aside for now after {self.settings.set_aside_after} "
                                f"failures in a row ({why})")
        del self._aside[host]

    def _strike(self, host: str, exc: FetchError) -> None:
        self._strikes[host] = strikes = self._strikes.get(host, 0) + 1
        limit = self.settings.set_aside_after
        if limit and strikes >= limit and host not in self._aside:
            self._aside[host] = (asyncio.get_running_loop().time() + HOST_REST, exc.reason)
            self._strikes.pop(host, None)
            log.warning("host set aside", extra={"outcome": (
                f"{host}: {strikes} failures in a row, last {exc.reason}; its requests wait "
                f"{HOST_REST:g}s")})

    async def _get(self, url: str, max_bytes: int, trusted: bool, etag: str | None,
                   last_modified: str | None, accept: str) -> Response:
        headers = [(b"User-Agent", self.settings.user_agent.encode()),
                   (b"Accept", accept.encode()), (b"Accept-Encoding", b"gzip, deflate, br")]
        if etag:
            headers.append((b"If-None-Match", etag.encode("latin-1", "replace")))
        if last_modified:
            headers.append((b"If-Modified-Since", last_modified.encode("latin-1", "replace")))
        try:
            async with asyncio.timeout(self.settings.request_deadline):
                with as_httpx_errors():
                    return await self._follow(url, headers, max_bytes, trusted)
        except Blocked as exc:  # an address refused by the transport, which knew only the host
            raise Blocked(url, exc.reason) from None
        except (httpx.InvalidURL, UnicodeError) as exc:  # a redirect to such a URL
            raise InvalidLink(url, f"invalid URL: {str(exc)[:200]}") from None
        except TimeoutError:
            raise FetchError(url, f"timed out after {self.settings.request_deadline:g}s",
                             unreachable=True) from None
        except httpx.TimeoutException as exc:
            raise FetchError(url, f"timed out ({type(exc).__name__})", unreachable=True) \
                from None
        except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors
            raise FetchError(url, _describe(exc),
                             unreachable=not isinstance(exc, httpx.UnsupportedProtocol)) from None
        except httpx.HTTPError as exc:
            raise FetchError(url, _describe(exc)) from None

    async def _follow(self, url: str, headers: list[tuple[bytes, bytes]], max_bytes: int,
                      trusted: bool) -> Response:
        moved_to = None
        current = url
        permanent_so_far = True
        cookies: dict[str, str] = {}  # only within one redirect chain, on one host
        for hop in range(self.settings.max_redirects + 1):
            from_user = trusted and hop == 0
            check = not from_user and not self.allow_private
            if _scheme(url, current) not in ("http", "https"):
                raise Blocked(url, f"redirect to a non-http(s) URL refused: {current[:200]}")
            target = request_url(current)
            sent = headers if not cookies else [*headers, (b"Cookie", "; ".join(
                f"{k}={v}" for k, v in cookies.items()).encode("latin-1", "replace"))]
            pool = self._pool(target, check)
            pool.in_use += 1
            try:
                answer, connection = await pool.transport.send(target, sent, self._timeout)
                try:
                    assert isinstance(answer.stream, AsyncIterable)  # an async connection's
                    r = _Answer(answer.status, httpx.Headers(answer.headers), answer.stream)
                    if r.status in REDIRECTS and "location" in r.headers:
                        permanent_so_far = permanent_so_far and r.status in PERMANENT
                        following = _join(url, current, r.headers["location"])
                        cookies = _chain_cookies(cookies, r.headers, current, following)
                        current = following
                        if permanent_so_far:
                            moved_to = current
                        continue
                    return await self._read(url, current, r, max_bytes, moved_to)
                finally:
                    await pool.transport.release(answer, connection)
            finally:
                pool.in_use -= 1
        raise FetchError(url, f"more than {self.settings.max_redirects} redirects")

    async def _read(self, url: str, current: str, r: _Answer, max_bytes: int,
                    moved_to: str | None) -> Response:
        if r.status == 304:
            async for _ in r.stream:  # no body by definition; read to its end, the
                pass  # connection is kept
            return self._response(url, r, b"", moved_to)
        if r.status >= 300 or r.status < 200:
            raise FetchError(url, f"HTTP {r.status}", status=r.status,
                             retry_after=parse_retry_after(r.headers.get("retry-after"),
                                                           cap=self.settings.max_backoff))
        declared = r.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and "content-encoding" not in r.headers \
                and int(declared) > max_bytes:
            raise TooLarge(url, f"body of {declared} bytes is over the {max_bytes}-byte cap",
                           status=r.status)
        chunks, size = [], 0
        decoder = Decoder(url, r.headers.get("content-encoding", ""))
        async with aclosing(decoded(r.stream, decoder)) as body:
            async for chunk in body:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(url, f"body over the {max_bytes}-byte cap (decoded)",
                                   status=r.status)
                chunks.append(chunk)
        return self._response(current, r, b"".join(chunks), moved_to)

    @staticmethod
    def _response(url: str, r: _Answer, content: bytes, moved_to: str | None) -> Response:
        ctype = r.headers.get("content-type", "")
        return Response(url=url, status=r.status, content=content,
                        content_type=ctype.split(";")[0].strip().lower(),
                        charset=_charset(ctype) if content else None,
                        etag=r.headers.get("etag"), last_modified=r.headers.get("last-modified"),
                        moved_to=moved_to)


@dataclass
class _Answer:
    """A response as it arrives: its status, headers, and body still to read."""
    status: int
    headers: httpx.Headers
    stream: AsyncIterable[bytes]


def _charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type header, lower case, unquoted."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def _scheme(url: str, current: str) -> str:
    try:
        return urlsplit(current).scheme
    except ValueError as exc:
        raise InvalidLink(url, f"invalid URL: redirect to {current[:200]!r}: {exc}") from None



def _join(url: str, current: str, location: str) -> str:
    try:
        following = urljoin(current, location)
        urlsplit(following).hostname  # noqa: B018 - raises on a malformed IPv6 literal
    except ValueError as exc:
        raise InvalidLink(url, f"invalid URL: redirect to {location[:200]!r}: {exc}") from None
    return following



@dataclass
class _Pool:
    transport: Transport
    in_use: int = 0  # requests on it now: a pool in use is never closed



def _chain_cookies(cookies: dict[str, str], headers: httpx.Headers, current: str,
                   following: str) -> dict[str, str]:
    """Cookies set by a redirect, sent on the next hop when it stays on the same host. Some
    sites redirect to themselves to test for cookies; nothing is kept beyond the chain."""
    if urlsplit(current).hostname != urlsplit(following).hostname:
        return {}
    out = dict(cookies)
    for header in headers.get_list("set-cookie"):
        name, sep, value = header.split(";", 1)[0].partition("=")
        if sep and name.strip():
            out[name.strip()] = value.strip()
    return out



def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]

