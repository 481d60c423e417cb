#!/usr/bin/env python3
"""What sending a page's job to the extraction workers costs this process: through the
pipeline's own workers (monitor.pipeline.Workers: one socket per worker, read and written by
the event loop) and, as the baseline, through concurrent.futures' ProcessPoolExecutor (its
manager and queue-feeder threads), which the pipeline used before; with the rules in every
job and by name (RulesKey, as the pipeline sends them), without a model and with the model of
a database.

    python scripts/bench_jobs.py [--model DB] [--jobs 600]

The job is the pipeline's own (extract_job) on one light real page (../shared when present,
else a demo page), two workers forked from the same forkserver either way; its CPU in the
workers is the same every way. Printed: this process's CPU per job (all its threads) and the
jobs per second.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.models import Entry  # noqa: E402
from monitor.pipeline.jobs import extract_job  # noqa: E402
from monitor.pipeline.workers import Workers  # noqa: E402
from monitor.scoring import load_rules  # noqa: E402
from monitor.scoring.rules import RulesMissing  # noqa: E402


def light_page() -> bytes:
    pages = sorted((ROOT.parent / "shared/corpus/pages/newspaper/html").glob("*.html*"))
    if not pages:
        return (ROOT / "monitor" / "demo" / "pages" / "harbourton-safe-city.html").read_bytes()
    page = sorted(pages, key=lambda p: p.stat().st_size)[len(pages) // 4]  # a light one
    return gzip.decompress(page.read_bytes()) if page.suffix == ".gz" else page.read_bytes()


def run_executor(executor, job, whole, jobs: int) -> tuple[float, float]:
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


async def run_workers(workers: Workers, job, whole, jobs: int) -> tuple[float, float]:
    async def one() -> None:
        try:
            await workers.run(job, "job")
        except RulesMissing:
            await workers.run(whole, "job")

    cpu, started = sum(os.times()[:2]), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    return (sum(os.times()[:2]) - cpu) / jobs * 1000, jobs / (time.perf_counter() - started)


def executor() -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["monitor.pipeline.workers", "monitor.preload"])
    pool = ProcessPoolExecutor(2, mp_context=ctx)
    list(pool.map(abs, range(2)))  # started before the clock
    return pool


async def measure(kinds, job, entry, jobs: int) -> None:
    pool, workers = executor(), Workers(2)
    await workers.start()
    try:
        for name, r in kinds:
            whole = partial(job, r, entry)
            ways = [("whole", r), ("by name", r.key)]
            for n, (way, rules_in_job) in enumerate(ways * 3):
                job_now = partial(job, rules_in_job, entry)
                base = run_executor(pool, job_now, whole, jobs)
                ours = await run_workers(workers, job_now, whole, jobs)
                if n >= 2:  # the first of each warms up (and gives every worker the rules)
                    print(f"{name:>24}, rules {way:8}: ProcessPoolExecutor {base[0]:.2f} ms "
                          f"of this process's CPU a job, {base[1]:,.0f} jobs/s; Workers "
                          f"{ours[0]:.2f} ms, {ours[1]:,.0f} jobs/s (CPU ratio "
                          f"{ours[0] / base[0]:.2f})")
    finally:
        pool.shutdown()
        workers.close()


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
    print(f"page of {len(html):,} bytes; {args.jobs} jobs a run; 2 workers")
    asyncio.run(measure(kinds, job, entry, args.jobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
