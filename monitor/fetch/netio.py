"""Sockets for httpcore on asyncio's own transports, without anyio in between.

httpcore (under httpx) reaches the network through a backend; under asyncio its default goes
through anyio, which on every read and write opens a cancel scope with a timer, maps
exceptions through a context manager and rebuilds a dict of socket attributes, and which
checks whether an idle connection is still good with a poll() system call. For a re-poll of
unchanged feeds, where each request is a few hundred bytes each way, that was about 15% of
the CPU. Here a protocol keeps what arrives in a buffer, so a read that has data returns
at once, a timeout is one timer, and an idle connection's state is known without asking the
kernel (the server's close arrives as an end of stream).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import httpcore

from ..errors import Blocked

HIGH_WATER = 256 * 1024  # bytes buffered before reading from the socket pauses
LOW_WATER = 64 * 1024  # ... and resumes


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport  # set by connection_made, before any data
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.lost: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None  # set while writing is paused
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self._wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        """What has arrived, up to *max_bytes*, as one piece: every read costs a pass through
        h11, httpcore and httpx, and a page arrives in many small segments."""
        chunk = self.chunks.popleft()
        if len(chunk) < max_bytes and self.chunks:
            parts = [chunk]
            room = max_bytes - len(chunk)
            while self.chunks and len(self.chunks[0]) <= room:
                part = self.chunks.popleft()
                parts.append(part)
                room -= len(part)
            chunk = b"".join(parts)
        if len(chunk) > max_bytes:
            self.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        self.size -= len(chunk)
        if self.reading_paused and self.size < LOW_WATER:
            self.reading_paused = False
            self.transport.resume_reading()
        return chunk


async def _wait(future: asyncio.Future[None], timeout: float | None,
                error: Callable[[str], Exception]) -> None:
    """Wait for *future*; after *timeout* seconds raise error(...) instead."""
    if timeout is None:
        await future
        return
    loop = asyncio.get_running_loop()
    handle = loop.call_later(timeout, _expire, future)
    try:
        await future
    except _Expired:
        raise error(f"no progress in {timeout:g}s") from None
    finally:
        handle.cancel()


class _Expired(Exception):
    pass


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(_Expired())


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @property
    def _transport(self) -> asyncio.Transport:  # the TLS one once start_tls has run
        return self._protocol.transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        while not protocol.chunks:
            if protocol.eof:
                if protocol.lost is not None:
                    raise httpcore.ReadError(str(protocol.lost) or type(protocol.lost).__name__)
                return b""
            protocol.waiter = asyncio.get_running_loop().create_future()
            await _wait(protocol.waiter, timeout, httpcore.ReadTimeout)
        return protocol.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.lost is not None or self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self._transport.write(buffer)
        if protocol.drained is not None:
            await _wait(protocol.drained, timeout, httpcore.WriteTimeout)
            if protocol.lost is not None:
                raise httpcore.WriteError(str(protocol.lost))

    async def aclose(self) -> None:
        # abort, not close: closing a TLS transport waits up to 30 s for the server's
        # close_notify, which HTTP (framed by lengths) does not need; anyio does the same.
        self._transport.abort()
        await asyncio.sleep(0)  # the socket itself is closed on the loop's next pass

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context,
                    server_hostname=server_hostname, ssl_handshake_timeout=timeout)
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout(f"TLS handshake took over {timeout:g}s") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle connection with data or an end: not reusable
            return bool(self._protocol.chunks) or self._protocol.eof
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """*allow*: when given, the host's name is resolved here, every address it resolves to is
    judged before any connection is attempted (one refused address refuses the host: a name
    that answers with a private address among public ones is a rebinding trick), and only
    the addresses judged are connected to, in the resolver's order."""

    def __init__(self, allow: Callable[[str], bool] | None = None) -> None:
        self._allow = allow

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            transport: asyncio.BaseTransport
            async with asyncio.timeout(timeout):
                if self._allow is None:
                    transport, protocol = await loop.create_connection(
                        _Protocol, host, port, happy_eyeballs_delay=0.25, local_addr=local)
                else:
                    transport, protocol = await self._checked(loop, host, port, local)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting took over {timeout:g}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(protocol)

    async def _checked(self, loop: asyncio.AbstractEventLoop, host: str, port: int,
                       local: tuple[str, int] | None) -> tuple[asyncio.BaseTransport, _Protocol]:
        assert self._allow is not None
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys((family, str(addr[0])) for family, *_, addr in infos))
        for _, address in addresses:
            if not self._allow(address):
                raise Blocked(host, f"refused: {address} is not a globally routable address"
                              + (f" ({host})" if host.strip("[]") != address else ""))
        error: OSError = OSError(f"{host} resolved to no address")
        for family, address in addresses:
            try:
                return await loop.create_connection(_Protocol, address, port, family=family,
                                                    local_addr=local)
            except OSError as exc:
                error = exc
        raise error

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
