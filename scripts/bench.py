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
import contextlib
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# every process started from here (the workers fetch pages too) resolves names without a
# network: scripts/offline/offline_resolver.py, imported here and by each child at its start
_OFFLINE = Path(__file__).resolve().parent / "offline"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(_OFFLINE), os.environ.get("PYTHONPATH")) if p)
sys.path.insert(0, str(_OFFLINE))
import offline_resolver  # noqa: E402, F401
from loopweb import LoopWeb, find_pages, read_page  # noqa: E402

from monitor.config import FeedConfig, Paths, Settings  # noqa: E402
from monitor.core import Monitor, load_config  # noqa: E402
from monitor.models import CycleSummary, FeedResult  # noqa: E402
from monitor.pipeline import Workers  # noqa: E402
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
    return asyncio.run(_ceiling(bodies, jobs, fast, exclude))


async def _ceiling(bodies: list[bytes], jobs: list[bytes], fast: bool,
                   exclude: set[int]) -> float:
    pool = Workers(os.cpu_count() or 1)
    try:
        await pool.start()
        await asyncio.gather(*(pool.run(partial(_extract, b, fast), "warm-up")
                               for b in bodies[:4]))
        sampler = Sampler(exclude)  # as in the cycle: it costs a little CPU
        sampler.start()
        watched = exclude | {sampler.pid}
        cpu0 = cpu_and_rss(family(os.getpid(), watched))[0]
        stat0 = machine_times()
        started = time.perf_counter()
        await asyncio.gather(*(pool.run(partial(_extract, b, fast), "page") for b in jobs))
        wall = time.perf_counter() - started
        cpu = cpu_and_rss(family(os.getpid(), watched))[0] - cpu0
        peak = sampler.stop()
        count = len(jobs)
        print(f"  ceiling run: {count / wall:.1f} pages/s, {cpu / count * 1000:.0f} ms of CPU "
              f"per page, {cpu / wall / (os.cpu_count() or 1):.0%} of the cores, peak memory "
              f"{peak / 2**20:.0f} MiB; {machine_use(stat0, machine_times())}")
        return count / wall
    finally:
        pool.close()


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
    with bench_monitor(web.feeds, args.concurrency, args.per_host, args.fast) as monitor:
        return asyncio.run(_cycle(monitor, web, args, exclude))


MODEL_FROM: Path | None = None  # --model

@contextlib.contextmanager
def bench_monitor(feeds: list[str], concurrency: int, per_host: int,
                  fast: bool = False) -> Iterator[Monitor]:
    """A Monitor over a fresh database in a temporary folder, polling *feeds*, with the
    model of --model attached when given."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database=f"{tmp}/bench.db", allow_private_addresses=True,
                            concurrency=concurrency, per_host_limit=per_host,
                            poll_deadline=3600, extract_fast=fast)
        paths = Paths(Path(tmp) / "feeds.yaml", Paths.resolve().keywords,
                      Path(tmp) / "settings.yaml", Path(settings.database))
        config = load_config(paths, need_feeds=False)
        config.settings = settings
        config.feeds = [FeedConfig(url=u, name=f"feed {i}") for i, u in enumerate(feeds)]
        if MODEL_FROM:
            from monitor.learning import attach

            labelled = Store(MODEL_FROM)
            try:
                config.rules = attach(labelled, config.rules, learning=True)
            finally:
                labelled.close()
            if config.rules.learned is None:
                raise SystemExit(f"{MODEL_FROM}: no model that may act")
        monitor = Monitor(paths, config, Store(settings.database))
        try:
            yield monitor
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
        stored = monitor.article_count()
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


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by its name (pool threads summed
    under their prefix), from /proc: where the main process's CPU goes."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        name = name.rstrip("_0123456789") if "_" in name else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


def timed_poll(monitor: Monitor, watch: set[str]) -> tuple[float, float, CycleSummary]:
    """One cycle with the workers started first: (seconds until every feed in *watch* had
    its result, seconds for the whole cycle, summary)."""
    async def run() -> tuple[float, float, CycleSummary]:
        async with monitor.pipeline() as pipeline:
            await pipeline.start()
            started = time.perf_counter()
            done: list[float] = []

            def seen(result: FeedResult) -> None:
                if result.url in watch:
                    done.append(time.perf_counter() - started)
            cpu, threads = sum(os.times()[:2]), thread_cpu()
            summary = await monitor.poll_async(seen, pipeline=pipeline)
            summary.main_cpu = sum(os.times()[:2]) - cpu  # type: ignore[attr-defined]
            summary.threads = {  # type: ignore[attr-defined]
                name: spent - threads.get(name, 0.0) for name, spent in thread_cpu().items()}
            return max(done, default=0.0), time.perf_counter() - started, summary
    return asyncio.run(run())


def shape_big(args: argparse.Namespace, pages: list[Path]) -> str:
    """A few big feeds, each on its own host, its links on that host."""
    feeds, items = 8, args.big_items
    web = LoopWeb(pages, feeds, items, args.latency, hosts=feeds)
    exclude = {web.proc.pid}
    total = feeds * items
    try:
        before = ceiling(pages, total, args.fast, exclude)
        with bench_monitor(web.feeds, 16, args.per_host, args.fast) as monitor:
            others, machine0 = cpu_and_rss(family(os.getpid(), exclude))[0], machine_times()
            web0 = cpu_and_rss(family(web.proc.pid, set()))[0]
            _, wall, summary = timed_poll(monitor, set())
            main_cpu = summary.main_cpu  # type: ignore[attr-defined]
            # the workers (and the forkserver) alone: the family's CPU less this process's
            workers = cpu_and_rss(family(os.getpid(), exclude))[0] - others - main_cpu
            served = cpu_and_rss(family(web.proc.pid, set()))[0] - web0
            use = machine_use(machine0, machine_times())
            per = {n: c / max(summary.new_articles, 1) * 1000  # type: ignore[attr-defined]
                   for n, c in summary.threads.items()}  # type: ignore[attr-defined]
            stored = monitor.article_count()
        after = ceiling(pages, total, args.fast, exclude)
    finally:
        web.close()
    rate, roof = stored / wall, (before + after) / 2
    return (f"few big feeds ({feeds} x {items} pages, one host each, per-host limit "
            f"{args.per_host}): {stored} articles in {wall:.1f}s = {rate:.1f}/s against a "
            f"ceiling of {roof:.1f} pages/s ({before:.1f} before, {after:.1f} after): ratio "
            f"{rate / roof:.2f}{unsteady(before, after)}; the main process "
            f"{main_cpu / max(stored, 1) * 1000:.1f} ms of CPU per article ({main_cpu:.1f} s: "
            + ", ".join(f"{n} {ms:.2f}" for n, ms in sorted(per.items(), key=lambda i: -i[1])
                        if ms >= 0.01)
            + f" ms by thread); the workers {workers / max(stored, 1) * 1000:.1f} ms per "
            f"article, the loopback web {served / max(stored, 1) * 1000:.1f} ms; {use}; "
            f"{summary.line()}")


def shape_dead(args: argparse.Namespace, pages: list[Path]) -> str:
    """Eight healthy feeds of 20 pages, alone and beside a feed of 100 links to a site that
    accepts connections and never answers (default timeouts)."""
    web = LoopWeb(pages, 8, 20, args.latency, hosts=8, dead=100)
    try:
        healthy = set(web.feeds)
        with bench_monitor(web.feeds, 16, args.per_host, args.fast) as monitor:
            alone, _, _ = timed_poll(monitor, healthy)
            stored_alone = monitor.article_count()
        with bench_monitor(web.feeds + [web.dead_feed], 16, args.per_host,
                           args.fast) as monitor:
            beside, wall, summary = timed_poll(monitor, healthy)
            stored = monitor.article_count()
    finally:
        web.close()
    limit = 1.5 * alone + 5
    return (f"dead site beside healthy feeds: the {stored_alone} healthy articles stored in "
            f"{alone:.1f}s alone, {beside:.1f}s beside 100 links that never answer (limit "
            f"1.5 x {alone:.1f} + 5 = {limit:.1f}s: {'met' if beside <= limit else 'MISSED'}); "
            f"the whole cycle {wall:.1f}s, {stored} articles; {summary.line()}")


def unsteady(before: float, after: float) -> str:
    """A warning when the machine's speed moved during a cycle: its ceilings on either side
    differ by more than a tenth, and its ratio says more about the machine than the code."""
    moved = abs(after - before) / min(before, after)
    return f" (unsteady: the ceiling moved {moved:.0%} during the cycle)" if moved > 0.1 else ""


def shape_dns(args: argparse.Namespace, pages: list[Path]) -> str:
    """The real feed captures, whose links name hosts that do not resolve here: each lookup
    fails after 0.2 s, in whichever process makes it (scripts/offline/sitecustomize.py)."""
    files = sorted(p for p in args.captures.glob("*") if p.is_file())
    if not files:
        return f"links that do not resolve: skipped (no captures in {args.captures})"
    web = LoopWeb(pages, 0, 0, args.latency, hosts=8, files=files)

    async def run(monitor: Monitor) -> tuple[float, CycleSummary]:
        async with monitor.pipeline() as pipeline:
            await pipeline.start()
            started = time.perf_counter()
            summary = await monitor.poll_async(pipeline=pipeline)
            return time.perf_counter() - started, summary

    try:
        with bench_monitor(web.files, 16, args.per_host, args.fast) as monitor:
            wall, summary = asyncio.run(run(monitor))
            stored = monitor.article_count()
            waiting = monitor.pages_waiting()
    finally:
        web.close()
    return (f"links that do not resolve ({len(files)} real captures): one cycle in {wall:.1f}s "
            f"(target under 90s), {stored} articles stored, {waiting} pages waiting for a "
            f"retry; {summary.line()}")


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
    ap.add_argument("--per-host", type=int, default=2, help="per_host_limit (its default)")
    ap.add_argument("--shape", choices=["small", "big", "dead", "dns", "all"], default="all",
                    help="small: many small feeds on many hosts (the rounds above); big: 8 "
                         "feeds of --big-items pages, one host each; dead: a site that never "
                         "answers beside healthy feeds; dns: links whose hosts do not resolve")
    ap.add_argument("--big-items", type=int, default=181)
    ap.add_argument("--light", action="store_true",
                    help="only the lighter half of the pages (by size): the lighter the "
                         "pages, the more the main process's work per article weighs")
    ap.add_argument("--model", type=Path, help="a monitor database whose learned model the "
                    "pipeline applies (as for a reader with labels); it must be one that acts")
    ap.add_argument("--captures", type=Path, default=Path(__file__).resolve().parents[2]
                    / "shared" / "corpus" / "feeds" / "real")
    args = ap.parse_args()
    global MODEL_FROM
    MODEL_FROM = args.model
    logging.getLogger("monitor").setLevel(logging.ERROR)  # set-aside hosts are expected here
    pages = find_pages(args.pages)
    if args.light:
        pages = sorted(pages, key=lambda p: len(read_page(p)))[:max(1, len(pages) // 2)]
    shapes = []
    for name, run in (("big", shape_big), ("dead", shape_dead), ("dns", shape_dns)):
        if args.shape in (name, "all"):
            print(f"shape {name}:", flush=True)
            shapes.append(run(args, pages))
            print("  " + shapes[-1], flush=True)
    if args.shape not in ("small", "all"):
        return 0
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
                  f"{result['ratio']:.2f}{unsteady(ceilings[-2], ceilings[-1])}")
            rounds.append(result)
    finally:
        web.close()
    ratios = sorted(r["ratio"] for r in rounds)
    print(f"summary over {len(rounds)} rounds: pipeline / ceiling median "
          f"{statistics.median(ratios):.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f}); "
          f"peak memory at most {max(r['peak'] for r in rounds) / 2**20:.0f} MiB; unchanged "
          f"re-poll at least {min(r['repoll'] for r in rounds):.0f} feeds/s with "
          f"{max(r['refetched'] for r in rounds)} pages fetched again")
    print(f"many small feeds ({args.feeds} x {args.items} on {args.hosts} hosts): ratio median "
          f"{statistics.median(ratios):.2f}")
    for line in shapes:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
