#!/usr/bin/env python3
"""What sending a page's job to the extraction workers costs this process, with the rules in
every job (as before) and by name (RulesKey, as the pipeline sends them), without a model and
with the model of a database.

    python scripts/bench_jobs.py [--model DB] [--jobs 600]

The job is the pipeline's own (extract_job) on one light real page (../shared when present,
else a demo page), in the pipeline's own pool of two workers; its CPU in the workers is the
same both ways. Printed: this process's CPU per job (all its threads: the pool's manager and
queue feeder pickle and write each job) and the jobs per second.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.models import Entry  # noqa: E402
from monitor.pipeline.workers import extract_job, make_executor, start_workers  # noqa: E402
from monitor.scoring import load_rules  # noqa: E402
from monitor.scoring.rules import RulesMissing  # noqa: E402


def light_page() -> bytes:
    pages = sorted((ROOT.parent / "shared/corpus/pages/newspaper/html").glob("*.html*"))
    if not pages:
        return (ROOT / "monitor" / "demo" / "pages" / "harbourton-safe-city.html").read_bytes()
    page = sorted(pages, key=lambda p: p.stat().st_size)[len(pages) // 4]  # a light one
    return gzip.decompress(page.read_bytes()) if page.suffix == ".gz" else page.read_bytes()


def run(executor, job, whole, jobs: int) -> tuple[float, float]:
    """*jobs* jobs at once; one a worker has no rules for goes again with them (*whole*), as
    the pipeline does."""
    cpu, started = sum(os.times()[:2]), time.perf_counter()
    futures = [executor.submit(job) for _ in range(jobs)]
    for f in futures:
        try:
            f.result()
        except RulesMissing:
            executor.submit(whole).result()
    return (sum(os.times()[:2]) - cpu) / jobs * 1000, jobs / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, help="a monitor database with a model that acts")
    ap.add_argument("--jobs", type=int, default=600)
    args = ap.parse_args()
    rules = load_rules(ROOT / "config" / "keywords.yaml")
    kinds = [("no model", rules)]
    if args.model:
        from monitor.learning import attach
        from monitor.store import Store

        store = Store(args.model)
        try:
            kinds.append((f"model of {args.model}", attach(store, rules, learning=True)))
        finally:
            store.close()
    html = light_page()
    entry = Entry(feed_url="https://example.org/f.xml", guid="1", url="https://example.org/1",
                  title="A page", summary="", published=None, author=None)
    job = partial(extract_job, html, entry.url, "text/html", "utf-8", False)
    executor = make_executor(2)
    assert executor is not None
    start_workers(executor, 2)
    try:
        print(f"page of {len(html):,} bytes; {args.jobs} jobs a run; 2 workers")
        for name, r in kinds:
            whole = partial(job, r, entry)
            for n, (way, rules_in_job) in enumerate([("whole", r), ("by name", r.key)] * 3):
                cpu, rate = run(executor, partial(job, rules_in_job, entry), whole, args.jobs)
                if n >= 2:  # the first of each warms up (and gives every worker the rules)
                    print(f"{name:>24}, rules {way:8}: {cpu:.2f} ms of this process's CPU a "
                          f"job, {rate:,.0f} jobs/s")
    finally:
        executor.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
