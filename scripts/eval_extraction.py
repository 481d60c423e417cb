#!/usr/bin/env python3
"""Extraction quality through the real pipeline, against pages with a known main text.

    python scripts/eval_extraction.py [--pages ../shared/corpus/pages] [--fast] [-v]

Every page with an expected text (mozilla-readability's expected.html, newspaper's text/) is
served on 127.0.0.1 from a feed, polled by the real pipeline (HTTP, decoding, extraction in
worker processes, storage), and the stored text is compared with the expected one: precision,
recall and F1 over words (with multiplicity), per page and overall. The same pages are then
given straight to trafilatura with the same settings (no HTTP, no decoding of ours), so a
setting such as --fast is chosen on measured quality.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import trafilatura  # noqa: E402
from loopweb import SHARED_PAGES, LoopWeb, read_page  # noqa: E402
from lxml import html as lxml_html  # noqa: E402

from monitor.config import FeedConfig, Paths, Settings  # noqa: E402
from monitor.core import Monitor, load_config  # noqa: E402
from monitor.store import Store  # noqa: E402

_WORD = re.compile(r"\w+", re.U)


def words(text: str) -> Counter[str]:
    return Counter(w.casefold() for w in _WORD.findall(text or ""))


def prf(got: str, want: str) -> tuple[float, float, float]:
    g, w = words(got), words(want)
    overlap = sum((g & w).values())
    p = overlap / sum(g.values()) if g else 0.0
    r = overlap / sum(w.values()) if w else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def corpus(folder: Path) -> list[tuple[str, Path, str]]:
    """(name, page, expected text) for every page with an expected text."""
    out = []
    for d in sorted(folder.glob("mozilla-readability/*")):
        src, exp = d / "source.html.gz", d / "expected.html"
        if src.exists() and exp.exists():
            text = lxml_html.fromstring(exp.read_bytes()).text_content()
            out.append((f"readability/{d.name}", src, text))
    for src in sorted(folder.glob("newspaper/html/*.html.gz")):
        exp = folder / "newspaper" / "text" / (src.name.removesuffix(".html.gz") + ".txt")
        if exp.exists():
            out.append((f"newspaper/{src.name.removesuffix('.html.gz')}", src,
                        exp.read_text(encoding="utf-8", errors="replace")))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=Path, default=SHARED_PAGES)
    ap.add_argument("--fast", action="store_true", help="trafilatura's fast mode")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every page")
    args = ap.parse_args()
    pages = corpus(args.pages)
    if not pages:
        print(f"no pages with expected text under {args.pages}")
        return 1
    web = LoopWeb([p for _, p, _ in pages], feeds=1, items=len(pages), latency=0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(database=f"{tmp}/eval.db", allow_private_addresses=True,
                                extract_fast=args.fast, poll_deadline=3600,
                                max_entries_per_feed=len(pages))
            paths = Paths(Path(tmp) / "feeds.yaml", Paths.resolve().keywords,
                          Path(tmp) / "settings.yaml", Path(settings.database))
            config = load_config(paths, need_feeds=False)
            config.settings = settings
            config.feeds = [FeedConfig(url=web.feeds[0], name="eval")]
            monitor = Monitor(paths, config, Store(settings.database))
            summary = asyncio.run(monitor.poll_async())
            print(f"pipeline: {summary.line()}")
            with sqlite3.connect(settings.database) as conn:
                stored = dict(conn.execute("SELECT url, text FROM articles"))
            monitor.close()
    finally:
        web.close()
    totals = {"pipeline": [0.0, 0.0, 0.0], "trafilatura": [0.0, 0.0, 0.0]}
    for i, (name, page, expected) in enumerate(pages):
        got = stored.get(f"{web.base}/page/{i}", "")
        direct = trafilatura.extract(read_page(page), fast=args.fast, include_comments=False,
                                     include_tables=True, deduplicate=False) or ""
        ours, theirs = prf(got, expected), prf(direct, expected)
        for key, value in (("pipeline", ours), ("trafilatura", theirs)):
            for k in range(3):
                totals[key][k] += value[k]
        if args.verbose:
            print(f"{name:50} pipeline P {ours[0]:.2f} R {ours[1]:.2f} F1 {ours[2]:.2f}   "
                  f"trafilatura F1 {theirs[2]:.2f}")
    n = len(pages)
    print(f"pages: {n} ({'fast' if args.fast else 'default'} mode, comments excluded)")
    for key, (p, r, f) in totals.items():
        print(f"{key:12} mean precision {p / n:.3f}  recall {r / n:.3f}  F1 {f / n:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
