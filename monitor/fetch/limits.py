"""Bounded decoding: a compressed body inflated a step at a time, so that the size cap stops
a compression bomb."""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from typing import Any

import brotli

from ..errors import FetchError


class Decoder:
    """Content-Encoding decoded in steps of at most STEP bytes of output, so a compression
    bomb is stopped at the size cap instead of being inflated whole (httpx's own decoders
    inflate each network chunk without a limit)."""

    STEP = 65_536

    def __init__(self, url: str, header: str) -> None:
        codings = [c.strip().lower() for c in header.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate",
                                                                 "br")):
            raise FetchError(url, f"unsupported Content-Encoding: {header[:50]}")
        self.url = url
        self.coding = codings[0] if codings else None
        self._zlib: Any = None
        self._brotli: Any = None
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "br":
            self._brotli = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            if self.coding is None:
                yield data
            elif self._brotli is not None:
                yield self._brotli.process(data, output_buffer_limit=self.STEP)
                while not self._brotli.can_accept_more_data():
                    yield self._brotli.process(b"", output_buffer_limit=self.STEP)
            else:
                if self._zlib is None:  # deflate: zlib-wrapped as the RFC says, or raw
                    wrapped = len(data) > 1 and data[0] & 0x0F == 8 and \
                        (data[0] * 256 + data[1]) % 31 == 0
                    self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped
                                                    else -zlib.MAX_WBITS)
                yield self._zlib.decompress(data, self.STEP)
                while self._zlib.unconsumed_tail:
                    yield self._zlib.decompress(self._zlib.unconsumed_tail, self.STEP)
        except (zlib.error, brotli.error) as exc:
            raise FetchError(self.url, f"bad {self.coding} body: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        if self._zlib is not None:
            yield self._zlib.flush()


async def decoded(stream: AsyncIterable[bytes], decoder: Decoder
                  ) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, decoded. Straight from the connection's stream: httpx's
    aiter_raw() re-chunks and wraps each piece, a fifth of a page's fetch."""
    async for raw in stream:
        for chunk in decoder.decode(raw):
            yield chunk
    for chunk in decoder.flush():
        yield chunk
