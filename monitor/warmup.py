"""What the workers share, warmed once in their forkserver.

The pool's forkserver imports this module once, so what it loads and warms here is shared,
copy-on-write, by every worker forked from it instead of being built again in each: trafilatura
itself, justext's stoplists of every language (built on the first page that needs them, about
30 MB), and what a first extraction leaves cached. It also fixes glibc's malloc thresholds,
which the workers inherit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from pathlib import Path

from .extract import extract_page

log = logging.getLogger("monitor.warmup")
SAMPLES = Path(__file__).parent / "demo" / "pages"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 8 << 20


def tune_malloc() -> None:
    """glibc raises its mmap and trim thresholds each time a large block is freed, so a
    worker's heap keeps the high-water mark of its largest page. Fixed thresholds hand large
    buffers back as soon as they are freed. (Calling malloc_trim every few pages instead
    returned no more memory here, and cost four times the page faults.)"""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: its own defaults
        log.debug("malloc thresholds left at their defaults")


def warm_up() -> None:
    """Fill trafilatura's lazy caches with our own sample pages. Best effort: these are
    trafilatura's internals, and a version without them only costs memory."""
    tune_malloc()
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
