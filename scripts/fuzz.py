#!/usr/bin/env python3
"""A long fuzzing campaign: mutated feeds through feed parsing, generated links through the
entry and fetch path. Only the project's own errors may come out; everything else is counted
as unhandled, grouped by where it was raised, with one example of each kept on disk.

    python scripts/fuzz.py [--feeds 50000] [--links 50000] [--seed 1]
                           [--corpus ../shared/corpus/feeds] [--out fuzz-failures]

The tests run the same properties briefly with Hypothesis (tests/test_fuzz.py); this runs
them at length, on the real captures in ../shared (for local checks only: never commit them).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from monitor.errors import FetchError, MonitorError, ParseError  # noqa: E402
from monitor.feeds import canonical_url, parse_feed  # noqa: E402
from monitor.fetch import request_url  # noqa: E402

NOW = datetime(2026, 6, 1, tzinfo=UTC)
INJECT = [b"&#99999999;", b"&#xD800;", b"&#0;", b"&#x110000;", b"&#1114111;", b"\x00",
          b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"<![CDATA[", b"]]>", b"</item>",
          b"<item>", b"</entry>", b"<entry>", b"<title>", b"</title>", b"&amp;", b"&", b"<",
          b"&nbsp;", b"&bogus;", b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"<!ENTITY",
          b"<?xml version='1.0' encoding='utf-16'?>", b"<?xml version='1.0' encoding='x'?>",
          b"<link>http://[::1</link>", b"<link>http://a..b/</link>", b'href="http://xn--/"',
          b"<pubDate>Thu, 99 Foo 99999 99:99:99 +9999</pubDate>", b"<updated>-1</updated>",
          b"<guid>", b"\r\n", b"\x80\x81\xfe", b"\xed\xa0\x80", b"<![", b"<!--", b"-->",
          b"<media:content url='http://[x'/>", b"<georss:where>", b"<creativeCommons:license>",
          b"xmlns:media='http://search.yahoo.com/mrss/'", b'{"items": [', b'"url": 7']
HOSTS = ["example.org", "127.0.0.1", "[::1]", "[2001:db8::1]", "[::1", "::1]", "a..b", "xn--",
         "xn--abc", "xn--mnchen-3ya.de", "münchen.de", "例子.测试", "a" * 64 + ".org",
         "a" * 300 + ".org", ".org", "org.", "-a.org", "a_b.org", "a%00b.org", "a\x00b.org",
         "a b.org", "user:pass@h.org", "@h.org", "h.org:99999", "h.org:-1", "h.org:",
         "999.1.1.1", "0x7f.1", "1.2.3.4.5", "\ud800.org", "ﬀ.org", "h.org\\x", ""]
PIECES = ["/", "//", "?", "#", "&", "=", "%", "%zz", "%00", "\x00", "\ud800", "\udfff", " ",
          "\t", "\n", "é", "例", "..", "./", "utm_source=x", "a", "1", "[", "]", "@", ":",
          "\\", "\u202e", "\ufeff"]
SCHEMES = ["http://", "https://", "HTTP://", "ftp://", "javascript:", "//", "http:/", "http:",
           "", "data:text/html,", "http:\\\\"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["flip", "flip", "cut", "inject", "inject", "drop", "dup"])
        at = rng.randrange(len(out)) if out else 0
        if kind == "flip" and out:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == "cut":
            del out[at:]
        elif kind == "inject":
            out[at:at] = rng.choice(INJECT) if rng.random() < 0.8 else rng.randbytes(
                rng.randint(1, 16))
        elif kind == "drop" and out:
            del out[at:at + rng.randint(1, 256)]
        elif kind == "dup" and out:
            out[at:at] = out[at:at + rng.randint(1, 512)]
    return bytes(out)


def link(rng: random.Random) -> str:
    parts = [rng.choice(SCHEMES), rng.choice(HOSTS)]
    parts += [rng.choice(PIECES) for _ in range(rng.randint(0, 8))]
    if rng.random() < 0.2:
        parts.append("".join(chr(rng.randrange(0x110000)) for _ in range(rng.randint(1, 5))))
    return "".join(parts)


def where(exc: BaseException) -> str:
    """The exception's type and the frame that raised it: one kind of failure."""
    frames = traceback.extract_tb(exc.__traceback__)
    frame = frames[-1] if frames else None
    place = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    return f"{type(exc).__name__} at {place}"


def check_feed(args: tuple[int, bytes, str]) -> tuple[str, str | None]:
    """One mutated feed: 'parsed', 'refused' (a ParseError) or 'unhandled' with where."""
    n, content, ctype = args
    try:
        parsed = parse_feed(content, f"http://fuzz.example/{n}", content_type=ctype,
                            fetched=NOW)
        for e in parsed.entries:
            for text in (e.title, e.summary, e.guid, e.url or "", e.author or ""):
                text.encode("utf-8")  # what SQLite will be given
            if e.url:
                check_url(e.url)
    except ParseError:
        return "refused", None
    except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
        return "unhandled", where(exc)
    return "parsed", None


def check_url(url: str) -> str:
    """The fetch path up to the network: refused as InvalidLink, or a request httpx builds
    and whose host the resolver would take."""
    try:
        target = request_url(url)
    except FetchError as exc:
        if exc.transient or not exc.reason.startswith("invalid URL"):
            raise AssertionError(f"not an invalid-URL error: {exc!r}") from None
        return "invalid"
    request = httpx.Request("GET", target)
    request.url.host.encode("utf-8")  # the per-host limit's key
    raw = request.url.raw_host.decode("ascii")
    if not raw.replace(":", "").replace(".", "").isalnum() and "[" not in str(request.url):
        raw.encode("idna")
    return "valid"


def check_link(args: tuple[int, str]) -> tuple[str, str | None]:
    _, raw = args
    try:
        url = canonical_url(raw, "http://base.example/dir/")
        if url is None:
            return "no link", None
        url.encode("utf-8")
        return check_url(url), None
    except MonitorError:
        return "unhandled", "a MonitorError out of canonical_url"
    except Exception as exc:  # noqa: BLE001
        return "unhandled", where(exc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=50_000)
    ap.add_argument("--links", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2]
                    / "shared" / "corpus" / "feeds")
    ap.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seeds = [p.read_bytes() for p in sorted(args.corpus.rglob("*")) if p.is_file()
             and p.stat().st_size < 2_000_000]
    if not seeds:
        sys.exit(f"no feeds under {args.corpus}")
    ctypes = ["application/rss+xml", "application/atom+xml", "text/xml", "application/json",
              "text/html", "", "application/feed+json"]

    def feeds():  # noqa: ANN202
        for n in range(args.feeds):
            yield n, mutate(rng.choice(seeds), rng), rng.choice(ctypes)

    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    examples: dict[str, bytes] = {}
    with ProcessPoolExecutor() as pool:
        jobs = feeds()
        while batch := list(itertools.islice(jobs, 500)):  # a few at a time: feeds are big
            for (_, content, _), (outcome, what) in zip(
                    batch, pool.map(check_feed, batch, chunksize=16), strict=True):
                outcomes[outcome] += 1
                if what:
                    failures[what] += 1
                    examples.setdefault(what, content)
        print(f"feeds: {args.feeds} mutated from {len(seeds)} captures in "
              f"{time.monotonic() - started:.0f}s: " + ", ".join(
                  f"{k} {v}" for k, v in sorted(outcomes.items())))
        started = time.monotonic()
        link_outcomes: Counter[str] = Counter()
        links = [(n, link(rng)) for n in range(args.links)]
        for (_, raw), (outcome, what) in zip(links, pool.map(check_link, links, chunksize=256),
                                             strict=True):
            link_outcomes[outcome] += 1
            if what:
                failures[what] += 1
                examples.setdefault(what, raw.encode("utf-8", "surrogatepass"))
        print(f"links: {args.links} generated in {time.monotonic() - started:.0f}s: " +
              ", ".join(f"{k} {v}" for k, v in sorted(link_outcomes.items())))
    unhandled = outcomes["unhandled"] + link_outcomes["unhandled"]
    print(f"unhandled: {unhandled}")
    if failures:
        args.out.mkdir(exist_ok=True)
        for i, (what, count) in enumerate(failures.most_common()):
            (args.out / f"{i:03d}.bin").write_bytes(examples[what])
            print(f"  {count:6d}  {what}  (example: {args.out / f'{i:03d}.bin'})")
    sys.exit(1 if unhandled else 0)


if __name__ == "__main__":
    main()
