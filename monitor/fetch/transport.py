"""The transport under httpx: an httpcore pool whose connections go through netio (asyncio's
transports, each address judged before it is connected to), with httpcore's errors raised as
httpx's."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import certifi
import httpcore
import httpx

from .netio import AsyncioBackend


class Transport(httpx.AsyncBaseTransport):
    """httpx's public custom-transport API around an httpcore pool that reaches the network
    through asyncio's transports (netio) instead of anyio's. What it does is what httpx's own
    AsyncHTTPTransport does: requests and responses converted, httpcore's errors raised as
    httpx's."""

    def __init__(self, connections: int, allow: Callable[[str], bool] | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls(), max_connections=connections,
            max_keepalive_connections=connections, keepalive_expiry=5.0,
            network_backend=AsyncioBackend(allow))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream,
            extensions=request.extensions)
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_Stream(response.stream),  # type: ignore[arg-type]
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()



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
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
            httpcore.UnsupportedProtocol, httpcore.ProxyError) as exc:
        for core, ours in _ERRORS:
            if isinstance(exc, core):
                raise ours(str(exc)) from exc
        raise



class _Stream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()



@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs tens of milliseconds."""
    return ssl.create_default_context(cafile=certifi.where())

