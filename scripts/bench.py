#!/usr/bin/env python3
"""Throughput of one poll cycle against the extraction ceiling, measured in the same run.

    python scripts/bench.py [--feeds 50] [--items 24] [--latency 0.05] [--pages DIR]

1. A loopback web (a separate process, 127.0.0.1 only) serves N feeds of M items whose pages
   are real HTML pages (../shared/corpus/pages when present, else the demo samples), each
   answer after --latency seconds.
2. One full cycle of the real pipeline into a fresh database: articles per second, CPU use
   (this process and its extraction workers), peak memory (the same processes' summed PSS).
3. The ceiling: the same pages extracted with the pipeline's own extraction function and
   settings in a process pool over all cores, with no network and no database.
4. A second cycle with nothing changed: feeds per second, pages fetched, 304 answers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
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
    """Peak summed PSS of a process and its workers, sampled every 0.5 s from a separate
    process: reading smaps_rollup costs milliseconds, which must not land on the measured
    process's CPU or its GIL."""

    def __init__(self, exclude: set[int]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._peak = ctx.Event(), ctx.Value("q", 0)
        self._proc = ctx.Process(target=_sample, daemon=True, args=(
            os.getpid(), exclude, 0.5, self._stop, self._peak))

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
        cpu0 = cpu_and_rss(family(os.getpid(), exclude))[0]
        stat0 = machine_times()
        started = time.perf_counter()
        list(pool.map(_extract, jobs, [fast] * len(jobs), chunksize=4))
        wall = time.perf_counter() - started
        cpu = cpu_and_rss(family(os.getpid(), exclude))[0] - cpu0
        print(f"  ceiling run: {count / wall:.1f} pages/s, {cpu / count * 1000:.0f} ms of CPU "
              f"per page, {cpu / wall / (os.cpu_count() or 1):.0%} of the cores; "
              f"{machine_use(stat0, machine_times())}")
        return count / wall
    finally:
        pool.shutdown()


def _extract(body: bytes, fast: bool) -> int:
    from monitor.extract import extract_page  # in the workers only, as in the pipeline

    try:
        return len(extract_page(body, "http://127.0.0.1/page", "text/html", None, fast).text)
    except Exception:
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=400)
    ap.add_argument("--items", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--pages", type=Path, default=None)
    ap.add_argument("--hosts", type=int, default=32,
                    help="loopback addresses the feeds are spread over (127.0.0.1, .2, ...)")
    ap.add_argument("--concurrency", type=int, default=64,
                    help="requests in flight; the per-host limit is this over --hosts")
    ap.add_argument("--fast", action="store_true", help="trafilatura's fast mode")
    args = ap.parse_args()
    pages = find_pages(args.pages)
    total = args.feeds * args.items
    web = LoopWeb(pages, args.feeds, args.items, args.latency, hosts=args.hosts)
    exclude = {web.proc.pid}
    print(f"loopback web: {args.feeds} feeds x {args.items} items = {total} articles over "
          f"{len(pages)} real pages, {args.latency * 1000:.0f} ms latency; "
          f"{os.cpu_count()} cores")
    try:
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

            # the ceiling is measured before and after the cycle, and the mean is the
            # baseline: the machine's speed drifts over a run of minutes
            before = ceiling(pages, total, args.fast, exclude)
            sampler = Sampler(exclude)
            sampler.start()
            exclude.add(sampler.pid)
            cpu0, _ = cpu_and_rss(family(os.getpid(), exclude))
            main_cpu0 = sum(os.times()[:2])
            web_cpu0 = cpu_and_rss([web.proc.pid])[0]
            stat0 = machine_times()
            started = time.perf_counter()
            first = asyncio.run(monitor.poll_async())
            wall = time.perf_counter() - started
            # workers are gone once the cycle ends: their CPU shows in our children's times
            cpu1 = cpu_and_rss(family(os.getpid(), exclude))[0] + _reaped_children_cpu()
            peak = sampler.stop()
            main_cpu = sum(os.times()[:2]) - main_cpu0
            web_cpu = cpu_and_rss([web.proc.pid])[0] - web_cpu0
            machine = machine_use(stat0, machine_times())
            stored = monitor.store.count_articles()
            rate = stored / wall
            print(f"cycle 1: {first.line()}")
            print(f"  pipeline: {rate:.1f} articles/s; CPU {cpu1 - cpu0:.1f} s over {wall:.1f} s "
                  f"wall = {(cpu1 - cpu0) / wall / os.cpu_count():.0%} of {os.cpu_count()} cores; "
                  f"peak memory {peak / 2**20:.0f} MiB")

            print(f"  of which the main process (fetch, parse, score, store): {main_cpu:.1f} s; "
                  f"{(cpu1 - cpu0) / stored * 1000:.0f} ms of CPU per article in all; the "
                  f"loopback web (not counted) used {web_cpu:.1f} s; {machine}")
            after = ceiling(pages, total, args.fast, exclude)
            top = (before + after) / 2
            print(f"  ceiling (extraction only, {os.cpu_count()} processes): {before:.1f} pages/s "
                  f"before the cycle, {after:.1f} after, mean {top:.1f}")
            print(f"  pipeline / ceiling: {rate / top:.2f}")

            web.reset()
            started = time.perf_counter()
            second = asyncio.run(monitor.poll_async())
            wall2 = time.perf_counter() - started
            counts = web.counts()
            print(f"cycle 2 (nothing changed): {second.line()}")
            print(f"  {args.feeds / wall2:.0f} feeds/s; pages fetched {counts.get('page', 0)}; "
                  f"304 answers {counts.get('304', 0)} of {counts.get('feed', 0)} feed requests")
            monitor.close()
    finally:
        web.close()
    return 0


def _reaped_children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    raise SystemExit(main())
