"""Keep-alive HTTP/1.1 connections to one origin: httpcore's connections, reaching the
network through netio (asyncio's transports, each address judged before it is connected to),
with httpcore's errors raised as httpx's."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import certifi
import httpcore
import httpx

from .netio import AsyncioBackend

KEEPALIVE = 5.0  # seconds an idle connection is kept


class Transport:
    """The connections to one origin. The fetcher lets at most per_host_limit requests run on
    a host at once, so an idle list is all the pooling needed here: httpcore's own
    AsyncConnectionPool scans its connections and takes its locks on every request, and with
    httpx's request and response objects around it cost a fifth of a page's fetch."""

    def __init__(self, allow: Callable[[str], bool] | None = None) -> None:
        self._backend = AsyncioBackend(allow)
        self._idle: list[httpcore.AsyncHTTPConnection] = []  # the last used on top
        self._open: set[httpcore.AsyncHTTPConnection] = set()

    async def send(self, url: httpx.URL, headers: list[tuple[bytes, bytes]],
                   timeout: dict[str, float | None]
                   ) -> tuple[httpcore.Response, httpcore.AsyncHTTPConnection]:
        """GET *url* (its Host header first); the response's body is left to read, then
        release() it."""
        request = httpcore.Request(
            b"GET", httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                                 target=url.raw_path),
            headers=[(b"Host", url.netloc), *headers], extensions={"timeout": timeout})
        while True:
            connection = await self._connection(request.url.origin)
            try:
                return await connection.handle_async_request(request), connection
            except httpcore.ConnectionNotAvailable:  # an idle one the server just closed
                self._open.discard(connection)
            except BaseException:
                self._open.discard(connection)
                await connection.aclose()
                raise

    async def release(self, response: httpcore.Response,
                      connection: httpcore.AsyncHTTPConnection) -> None:
        """The response closed; its connection kept when it may carry another request (its
        body was read to the end and the server keeps it alive)."""
        try:
            await response.aclose()
        finally:
            if connection.is_idle() and connection in self._open:
                self._idle.append(connection)
            else:
                self._open.discard(connection)
                await connection.aclose()

    async def _connection(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            self._open.discard(connection)  # the server closed it, or it idled too long
            await connection.aclose()
        connection = httpcore.AsyncHTTPConnection(
            origin, ssl_context=_tls(), keepalive_expiry=KEEPALIVE,
            network_backend=self._backend)
        self._open.add(connection)
        return connection

    async def aclose(self) -> None:
        connections, self._open, self._idle = self._open, set(), []
        for connection in connections:
            await connection.aclose()


# most specific first: the first match wins
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError), (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError), (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextmanager
def as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
            httpcore.UnsupportedProtocol, httpcore.ProxyError) as exc:
        for core, ours in _ERRORS:
            if isinstance(exc, core):
                raise ours(str(exc)) from exc
        raise



@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs tens of milliseconds."""
    return ssl.create_default_context(cafile=certifi.where())

