#!/usr/bin/env python3
"""Throughput of a poll cycle against the extraction ceiling, measured in the same run.

    python scripts/bench.py [--feeds 400] [--items 10] [--latency 0.05] [--rounds 3]

1. A loopback web (a separate process, 127.0.0.1 only) serves N feeds of M items whose pages
   are real HTML pages (../shared/corpus/pages when present, else the demo samples), each
   answer after --latency seconds.
2. The ceiling: the same pages extracted with the pipeline's own extraction function and
   settings (trafilatura and the checks around it, not the near-duplicate signature) in a
   process pool over all cores, with no network and no database.
3. Each round: one full cycle of the real pipeline into a fresh database (articles per
   second, CPU use of this process and its workers, peak memory as their summed PSS), then a
   second cycle with nothing changed (feeds per second, pages fetched, 304 answers), then the
   ceiling again. A round's ratio uses the mean of the ceilings on either side of it.
   Both sides start their worker pool before the clock, as the service does once; the
   pipeline's start is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopweb import LoopWeb, find_pages, read_page  # noqa: E402

from monitor.config import FeedConfig, Paths, Settings  # noqa: E402
from monitor.core import Monitor, load_config  # noqa: E402
from monitor.pipeline import make_executor  # noqa: E402
from monitor.store import Store  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def family(root: int, exclude: set[int]) -> list[int]:
    """root and its descendants, without the excluded subtrees (the loopback server)."""
    kids, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def cpu_and_rss(pids: list[int]) -> tuple[float, int]:
    """CPU seconds and memory (PSS: shared pages split between the processes sharing them, so
    the forkserver's workers are not counted twice) of these processes."""
    cpu = mem = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        cpu += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        pss = [line for line in rollup.splitlines() if line.startswith("Pss:")]
        mem += int(pss[0].split()[1]) * 1024 if pss else int(fields[21]) * PAGE
    return cpu / TICKS, mem


def _sample(root: int, exclude: set[int], interval: float, stop, peak) -> None:
    exclude = exclude | {os.getpid()}
    while not stop.wait(interval):
        peak.value = max(peak.value, cpu_and_rss(family(root, exclude))[1])


def machine_times() -> list[int]:
    """The whole machine's CPU ticks: user, nice, system, idle, iowait, irq, softirq, steal."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_use(before: list[int], after: list[int]) -> str:
    d = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(d) or 1
    return (f"machine: {(d[0] + d[1] + d[2] + d[5] + d[6]) / total:.0%} busy, "
            f"{(d[3] + d[4]) / total:.0%} idle, {d[7] / total:.0%} stolen by the host")


class Sampler:
    """Peak summed PSS of a process and its workers, sampled every second from a separate
    process: reading smaps_rollup costs milliseconds, which must not land on the measured
    process's CPU or its GIL. Forked, not spawned: a spawned child would import this script
    and the monitor package again, a second of CPU taken from the cycle it measures."""

    def __init__(self, exclude: set[int]) -> None:
        ctx = multiprocessing.get_context("fork")
        self._stop, self._peak = ctx.Event(), ctx.Value("q", 0)
        self._proc = ctx.Process(target=_sample, daemon=True, args=(
            os.getpid(), exclude, 1.0, self._stop, self._peak))

    def start(self) -> None:
        self._proc.start()
        self.pid = self._proc.pid

    def stop(self) -> int:
        """Stops sampling; returns the peak in bytes."""
        self._stop.set()
        self._proc.join()
        return int(self._peak.value)


def ceiling(pages: list[Path], count: int, fast: bool, exclude: set[int]) -> float:
    """Pages per second of extraction alone, in the pipeline's own pool (forkserver with the
    same preload, one worker per core), started before the clock."""
    bodies = [read_page(p) for p in pages]
    jobs = [bodies[i % len(bodies)] for i in range(count)]
    pool = make_executor(os.cpu_count() or 1)
    try:
        list(pool.map(_extract, bodies[:4], [fast] * 4))  # start the workers first
        sampler = Sampler(exclude)  # as in the cycle: it costs a little CPU
        sampler.start()
        watched = exclude | {sampler.pid}
        cpu0 = cpu_and_rss(family(os.getpid(), watched))[0]
        stat0 = machine_times()
        started = time.perf_counter()
        list(pool.map(_extract, jobs, [fast] * len(jobs), chunksize=4))
        wall = time.perf_counter() - started
        cpu = cpu_and_rss(family(os.getpid(), watched))[0] - cpu0
        peak = sampler.stop()
        print(f"  ceiling run: {count / wall:.1f} pages/s, {cpu / count * 1000:.0f} ms of CPU "
              f"per page, {cpu / wall / (os.cpu_count() or 1):.0%} of the cores, peak memory "
              f"{peak / 2**20:.0f} MiB; {machine_use(stat0, machine_times())}")
        return count / wall
    finally:
        pool.shutdown()


def _extract(body: bytes, fast: bool) -> int:
    """Extraction alone, as the pipeline calls it (decoding, trafilatura with its settings,
    its checks); not the near-duplicate signature, which the pipeline's job adds."""
    from monitor.extract import extract_page  # in the workers only

    try:
        return len(extract_page(body, "http://127.0.0.1/page", "text/html", None, fast).text)
    except Exception:
        return 0


def cycle(web: LoopWeb, args: argparse.Namespace, exclude: set[int]) -> dict[str, float]:
    """One full cycle into a fresh database, then an unchanged re-poll of it. The pipeline
    is kept across both, with its workers started before the clock, as the service keeps
    it and as the ceiling's pool is started (the start is timed apart)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database=f"{tmp}/bench.db", allow_private_addresses=True,
                            concurrency=args.concurrency,
                            per_host_limit=max(1, args.concurrency // args.hosts),
                            poll_deadline=3600, extract_fast=args.fast)
        paths = Paths(Path(tmp) / "feeds.yaml", Paths.resolve().keywords,
                      Path(tmp) / "settings.yaml", Path(settings.database))
        config = load_config(paths, need_feeds=False)
        config.settings = settings
        config.feeds = [FeedConfig(url=u, name=f"feed {i}") for i, u in enumerate(web.feeds)]
        monitor = Monitor(paths, config, Store(settings.database))
        try:
            return asyncio.run(_cycle(monitor, web, args, exclude))
        finally:
            monitor.close()


async def _cycle(monitor: Monitor, web: LoopWeb, args: argparse.Namespace,
                 exclude: set[int]) -> dict[str, float]:
    async with monitor.pipeline() as pipeline:
        started = time.perf_counter()
        await pipeline.start()
        start = time.perf_counter() - started
        web.reset()
        sampler = Sampler(exclude)
        sampler.start()
        watched = exclude | {sampler.pid}
        cpu0 = cpu_and_rss(family(os.getpid(), watched))[0]
        main_cpu0 = sum(os.times()[:2])
        web_cpu0 = cpu_and_rss([web.proc.pid])[0]
        stat0 = machine_times()
        started = time.perf_counter()
        first = await monitor.poll_async(pipeline=pipeline)
        wall = time.perf_counter() - started
        cpu = cpu_and_rss(family(os.getpid(), watched))[0] - cpu0
        peak = sampler.stop()
        main_cpu = sum(os.times()[:2]) - main_cpu0
        web_cpu = cpu_and_rss([web.proc.pid])[0] - web_cpu0
        machine = machine_use(stat0, machine_times())
        stored = monitor.store.count_articles()
        print(f"  cycle: {first.line()}")
        print(f"    {stored / wall:.1f} articles/s; CPU {cpu:.1f} s over {wall:.1f} s wall = "
              f"{cpu / wall / (os.cpu_count() or 1):.0%} of {os.cpu_count()} cores, "
              f"{cpu / stored * 1000:.0f} ms per article, of which the main process (fetch, "
              f"score, store) {main_cpu:.1f} s; peak memory {peak / 2**20:.0f} MiB; the "
              f"loopback web (not counted) used {web_cpu:.1f} s; {machine}; starting the "
              f"workers took {start:.1f} s before the clock")

        web.reset()
        started = time.perf_counter()
        second = await monitor.poll_async(pipeline=pipeline)
        wall2 = time.perf_counter() - started
        counts = web.counts()
        print(f"  re-poll, nothing changed: {second.line()}; {args.feeds / wall2:.0f} feeds/s, "
              f"pages fetched {counts.get('page', 0)}, 304 answers {counts.get('304', 0)} of "
              f"{counts.get('feed', 0)} feed requests")
    return {"rate": stored / wall, "peak": peak, "repoll": args.feeds / wall2,
            "refetched": counts.get("page", 0), "not_modified": counts.get("304", 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=400)
    ap.add_argument("--items", type=int, default=10,
                    help="items per feed: 10 is the median of the 115 real feed captures in "
                         "../shared/corpus/feeds/real that have entries")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--pages", type=Path, default=None)
    ap.add_argument("--hosts", type=int, default=32,
                    help="loopback addresses the feeds are spread over (127.0.0.1, .2, ...)")
    ap.add_argument("--concurrency", type=int, default=64,
                    help="requests in flight; the per-host limit is this over --hosts")
    ap.add_argument("--rounds", type=int, default=3,
                    help="cycles, each between two ceiling measurements")
    ap.add_argument("--fast", action="store_true", help="trafilatura's fast mode")
    args = ap.parse_args()
    pages = find_pages(args.pages)
    total = args.feeds * args.items
    # the ceiling extracts every page the same number of times, 1,000 pages or more
    passes = max(1, -(-min(total, 1000) // len(pages)))
    ceiling_pages = passes * len(pages)
    web = LoopWeb(pages, args.feeds, args.items, args.latency, hosts=args.hosts)
    exclude = {web.proc.pid}
    print(f"loopback web: {args.feeds} feeds x {args.items} items = {total} articles over "
          f"{len(pages)} real pages, {args.latency * 1000:.0f} ms latency; "
          f"{os.cpu_count()} cores; {args.rounds} rounds; each ceiling extracts every page "
          f"{passes} times ({ceiling_pages} pages)")
    try:
        # The machine's speed drifts by a fifth over minutes, so each cycle is compared with
        # the mean of the ceilings measured just before and just after it.
        ceilings = [ceiling(pages, ceiling_pages, args.fast, exclude)]
        rounds = []
        for n in range(1, args.rounds + 1):
            print(f"round {n}:")
            result = cycle(web, args, exclude)
            ceilings.append(ceiling(pages, ceiling_pages, args.fast, exclude))
            result["ceiling"] = (ceilings[-2] + ceilings[-1]) / 2
            result["ratio"] = result["rate"] / result["ceiling"]
            print(f"  pipeline {result['rate']:.1f} articles/s / ceiling {result['ceiling']:.1f} "
                  f"pages/s (mean of {ceilings[-2]:.1f} before and {ceilings[-1]:.1f} after) = "
                  f"{result['ratio']:.2f}")
            rounds.append(result)
    finally:
        web.close()
    ratios = sorted(r["ratio"] for r in rounds)
    print(f"summary over {len(rounds)} rounds: pipeline / ceiling median "
          f"{statistics.median(ratios):.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f}); "
          f"peak memory at most {max(r['peak'] for r in rounds) / 2**20:.0f} MiB; unchanged "
          f"re-poll at least {min(r['repoll'] for r in rounds):.0f} feeds/s with "
          f"{max(r['refetched'] for r in rounds)} pages fetched again")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
