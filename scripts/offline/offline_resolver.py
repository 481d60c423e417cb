"""No network for the benchmarks: bench.py imports this, and puts this folder on PYTHONPATH so
that every Python process it starts (the forkserver and the workers it forks, the loopback
web) loads it at start-up (sitecustomize). A host name that is not a loopback address fails
to resolve after 0.2 s, on asyncio's default executor (at most 6 lookups at once on 2
cores), as a resolver without a network does; nothing is asked of a real resolver."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

_resolve = asyncio.BaseEventLoop.getaddrinfo
LOOKUP_SECONDS = 0.2


def _no_answer() -> None:
    time.sleep(LOOKUP_SECONDS)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def _getaddrinfo(loop: asyncio.BaseEventLoop, host: Any, *args: Any,
                       **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.startswith("127.") or name in ("localhost", "::1", "None"):
        return await _resolve(loop, host, *args, **kwargs)
    return await loop.run_in_executor(None, _no_answer)


asyncio.BaseEventLoop.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
