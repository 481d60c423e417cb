"""A worker process's side of monitor.pipeline.workers: its life (serve) and the messages
it and its owner exchange over their socket, each its length, then a head (the job's number
and the message's kind) and a pickle."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")

SIZE = struct.Struct("!Q")  # each message's length
HEAD = struct.Struct("!QB")  # the job's number and the kind of message
RUN, START, CANCEL, RETIRE = range(4)  # to a worker: a call, a coroutine, stop one, finish
DONE, FAILED, NOTICE = range(3)  # from a worker: its job's result, its exception, a notice


def watch_parent(pid: int) -> None:
    """In each worker: exit as soon as the process that owns it is gone, even in the middle
    of a long job (a parent killed with -9 cannot stop its workers; its socket's end reaches a
    worker only when it next waits for a job)."""
    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux 5.3+: look every second
            while True:
                time.sleep(1.0)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    os._exit(0)
                except PermissionError:
                    pass
        select.select([fd], [], [])  # readable when the process has exited
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def serve(sock: socket.socket, owner: int) -> None:
    """A worker's life, until its socket ends (the owner closed it) or it is retired: run each
    call it is sent, and each coroutine, as a task beside the others, and send back their
    outcomes. Calls run in turn on one thread of their own, as does the CPU work of the
    coroutines (in_work_thread), so that the event loop keeps reading their sockets: a page
    that is in is reported at once, not after the extractions before it. Ctrl-C is for the
    owner, which stops its workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(owner)
    with sock, contextlib.suppress(OSError):  # a socket reset: the owner is gone
        asyncio.run(_serve(sock))


# Not the loop's default executor: that one resolves host names, which must never wait
# behind an extraction.
_WORK = ThreadPoolExecutor(1, thread_name_prefix="monitor-work")


async def in_work_thread(call: Callable[[], T]) -> T:
    """A job's CPU work on the worker's one thread for it, in turn with the others."""
    return await asyncio.get_running_loop().run_in_executor(_WORK, call)


async def _serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    tasks: dict[int, asyncio.Task[None]] = {}
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    retiring = False

    def end(*_: object) -> None:
        if not ended.done():
            ended.set_result(None)

    def send(number: int, kind: int, value: object) -> None:
        try:
            data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an outcome that cannot be pickled
            kind, data = FAILED, pickle.dumps(RuntimeError(
                f"a worker's result could not be sent back: {exc!r}"[:500]))
        writer.write(SIZE.pack(HEAD.size + len(data)) + HEAD.pack(number, kind) + data)

    async def start(number: int, job: Callable[..., Any], kind: int) -> None:
        try:
            if kind == START:
                send(number, DONE, await job(partial(send, number, NOTICE, None)))
            else:
                send(number, DONE, await in_work_thread(job))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to its caller
            send(number, FAILED, exc)
        finally:
            del tasks[number]
            if retiring and not tasks:
                end()

    async def read() -> None:
        nonlocal retiring
        while True:
            try:
                size = SIZE.unpack(await reader.readexactly(SIZE.size))[0]
                data = await reader.readexactly(size)
            except asyncio.IncompleteReadError:  # the owner closed it
                return
            number, kind = HEAD.unpack_from(data)
            if kind == RETIRE:  # the coroutines running end first; cancels still count
                retiring = True
                if not tasks:
                    return
            elif kind == CANCEL:
                if number in tasks:
                    tasks[number].cancel()
            else:
                job = pickle.loads(memoryview(data)[HEAD.size:])
                tasks[number] = asyncio.ensure_future(start(number, job, kind))

    reading = asyncio.ensure_future(read())
    reading.add_done_callback(end)
    try:
        await ended
        await writer.drain()
    finally:
        reading.cancel()
        for task in list(tasks.values()):
            task.cancel()
        writer.close()
