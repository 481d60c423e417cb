#!/usr/bin/env python3
"""What the scorer flags in a general stream of pages, the way the pipeline reads them.

    python scripts/eval_stream.py FOLDER [FOLDER ...] [--keywords FILE] [--all]

Every page under the folders (`*.html`, `*.htm`, and the same gzipped) goes through the
pipeline's own extraction (trafilatura, as `monitor poll` runs it) and the scorer, in a
process per core. Prints each flagged page with its score, the reason and the terms that
counted most, then how many were flagged of how many read. In a general stream (news,
blogs, institutional pages) almost nothing is about surveillance technology, so what is
flagged there is mostly a false alarm: read the list.

    python scripts/eval_stream.py ../shared/corpus/pages/trafilatura-eval
"""

from __future__ import annotations

import argparse
import gzip
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.errors import ExtractError  # noqa: E402
from monitor.scoring import Rules, load_rules, score  # noqa: E402

KEYWORDS = Path(__file__).resolve().parent.parent / "config" / "keywords.yaml"
_rules: Rules | None = None


def pages(folders: list[str]) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        root = Path(folder)
        found = [root] if root.is_file() else root.rglob("*")
        out += sorted(p for p in found if p.is_file() and p.name.endswith(
            (".html", ".htm", ".html.gz", ".htm.gz")))
    return out


def _start(keywords: str) -> None:
    global _rules
    _rules = load_rules(keywords)


def judge(path: Path) -> tuple[str, str, bool, float, str, str]:
    """(page, title, flagged, score, reason, strongest terms) as the pipeline would."""
    from monitor.extract import extract_page

    assert _rules is not None
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        page = extract_page(raw, f"https://example.org/{path.name}", "text/html", None, False)
    except ExtractError as exc:
        return str(path), "", False, 0.0, f"not extracted: {exc.reason}", ""
    title = page.title or ""
    s = score(_rules, title, page.text)
    top = ", ".join(f"{m.term} ({m.concept}) {m.contribution:+.1f}" for m in s.matches[:8])
    return str(path), title, s.flagged, s.score, s.reason, top


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--keywords", default=str(KEYWORDS))
    ap.add_argument("--all", action="store_true", help="print every page, not only flagged ones")
    args = ap.parse_args()
    files = pages(args.folders)
    if not files:
        print(f"no pages under {', '.join(args.folders)}")
        return 1
    flagged = read = 0
    with ProcessPoolExecutor(initializer=_start, initargs=(args.keywords,)) as pool:
        for name, title, is_flagged, value, reason, top in pool.map(judge, files, chunksize=8):
            read += 1
            flagged += is_flagged
            if is_flagged or args.all:
                print(f"{'FLAGGED' if is_flagged else 'not'} {value:6.1f} {name}\n"
                      f"    {title[:100]!r}\n    {reason}\n    {top}")
    print(f"{flagged} flagged of {read} pages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
