"""The extraction workers' side of the process pool.

The pool's forkserver imports this module once, so what it loads and warms here is shared,
copy-on-write, by every worker forked from it instead of being built again in each: trafilatura
itself, justext's stoplists of every language (built on the first page that needs them, about
30 MB), and what a first extraction leaves cached. Each worker also hands freed memory back to
the system every few pages; otherwise the high-water mark of its largest page stays.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable
from pathlib import Path

from .extract import extract_page
from .models import Page

log = logging.getLogger("monitor.worker")
SAMPLES = Path(__file__).parent / "demo" / "pages"


def _libc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim with
        return None


_malloc_trim = _libc_trim()
TRIM_EVERY = 32  # pages; trimming after each one cost 10-20% more CPU (memory faulted back in)
_pages = 0


def extract(content: bytes, url: str, content_type: str, charset: str | None,
            fast: bool) -> Page:
    global _pages
    try:
        return extract_page(content, url, content_type, charset, fast)
    finally:
        _pages += 1
        if _malloc_trim is not None and _pages % TRIM_EVERY == 0:
            _malloc_trim(0)


def warm_up() -> None:
    """Fill trafilatura's lazy caches with our own sample pages. Best effort: these are
    trafilatura's internals, and a version without them only costs memory."""
    try:
        from justext.core import define_stoplist
        from trafilatura.external import jt_stoplist_init

        define_stoplist(jt_stoplist_init())
    except (ImportError, AttributeError) as exc:
        log.debug("justext stoplists not preloaded: %s", exc)
    for sample in sorted(SAMPLES.glob("*.html")):
        try:
            extract_page(sample.read_bytes(), "http://127.0.0.1/sample", "text/html", "utf-8")
        except Exception as exc:  # noqa: BLE001 - a sample that fails only warms less
            log.debug("warm-up page %s: %s", sample.name, exc)
    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) the shared objects

