"""The pipeline end to end against a real HTTP server on 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .helpers import item, rss

STORY = ("Police in the city have installed facial recognition cameras on every street "
         "corner of the old town, officials said on Monday. Residents were not consulted.\n\n"
         "The surveillance cameras send live video to a police command centre, where software "
         "matches faces against a watchlist. Civil liberties groups asked the city council to "
         "suspend the system until a privacy assessment is published.")


def rows(db, sql, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_poll_stores_scores_and_flags(project, httpserver: HTTPServer, page_html):
    base = httpserver.url_for("")[:-1]
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([item(1, base, title="City installs face recognition cameras"),
             item(2, base, title="Local bakery wins prize")]), content_type="application/rss+xml")
    httpserver.expect_request("/page/1").respond_with_data(
        page_html("City installs face recognition cameras", STORY), content_type="text/html")
    httpserver.expect_request("/page/2").respond_with_data(
        page_html("Local bakery wins prize", "The bakery on Mill Street won the regional bread "
                  "prize for its rye loaf, the third year running. " * 3),
        content_type="text/html")
    project.feeds([("Test", httpserver.url_for("/feed.xml"))])
    result = project.run("poll", "--once")
    assert result.exit_code == 0, result.output
    assert "1 ok, 0 failed, 0 unchanged; 2 new articles, 1 flagged" in result.output
    stored = rows(project.db, "SELECT title, flagged, text, language, matches FROM articles "
                  "ORDER BY id")
    assert [(r[0], r[1]) for r in stored] == [
        ("City installs face recognition cameras", 1), ("Local bakery wins prize", 0)]
    assert "watchlist" in stored[0][2] and "Footer text" not in stored[0][2]
    assert '"concept": "face_recognition"' in stored[0][4]
    # the full-text index answers over title and text
    assert rows(project.db, "SELECT rowid FROM articles_fts WHERE articles_fts MATCH 'watchlist'")
    # ... is re-indexed when the text changes, and only then (not for a cluster or a score)
    with sqlite3.connect(project.db) as conn:
        before = conn.total_changes
        conn.execute("UPDATE articles SET cluster_id = 7, score = 1.5 WHERE id = 1")
        assert conn.total_changes - before == 1  # the row alone: the index is not touched
        conn.execute("UPDATE articles SET text = 'Gait recognition trial' WHERE id = 1")
        assert conn.total_changes - before > 2
        match = "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?"
        assert conn.execute(match, ["gait"]).fetchall() == [(1,)]
        assert conn.execute(match, ["watchlist"]).fetchall() == []


def test_304_uses_stored_validators(project, httpserver: HTTPServer, page_html):
    base = httpserver.url_for("")[:-1]
    seen: list[dict[str, str | None]] = []

    def feed(request: Request) -> Response:
        seen.append({"inm": request.headers.get("If-None-Match"),
                     "ims": request.headers.get("If-Modified-Since")})
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(rss([item(1, base)]), content_type="application/rss+xml",
                        headers={"ETag": '"v1"', "Last-Modified": "Mon, 02 Nov 2026 10:00:00 GMT"})

    httpserver.expect_request("/feed.xml").respond_with_handler(feed)
    httpserver.expect_request("/page/1").respond_with_data(page_html("Story 1", STORY),
                                                            content_type="text/html")
    project.feeds([("Test", httpserver.url_for("/feed.xml"))])
    assert project.run("poll", "--once").exit_code == 0
    assert rows(project.db, "SELECT etag, last_modified FROM feeds") == [
        ('"v1"', "Mon, 02 Nov 2026 10:00:00 GMT")]
    second = project.run("poll", "--once")
    assert "0 ok, 0 failed, 1 unchanged; 0 new articles" in second.output
    assert seen == [{"inm": None, "ims": None},
                    {"inm": '"v1"', "ims": "Mon, 02 Nov 2026 10:00:00 GMT"}]
    assert rows(project.db, "SELECT last_status, not_modified, polls FROM feeds") == [
        ("unchanged", 1, 2)]
    assert rows(project.db, "SELECT count(*) FROM articles") == [(1,)]
    # the page was fetched once: a 304 means nothing is parsed or fetched again
    assert sum(1 for req, _ in httpserver.log if req.path == "/page/1") == 1


def test_one_story_in_two_feeds_is_stored_once(project, httpserver: HTTPServer, page_html):
    base = httpserver.url_for("")[:-1]
    httpserver.expect_request("/a.xml").respond_with_data(
        rss([item(1, base, path="/page/1?utm_source=a&utm_medium=rss")]))
    httpserver.expect_request("/b.xml").respond_with_data(
        rss([{**item(1, base, path="/page/1?utm_campaign=b"), "guid": "urn:other:77"}]))
    httpserver.expect_request("/page/1").respond_with_data(page_html("Story 1", STORY),
                                                            content_type="text/html")
    project.feeds([("A", httpserver.url_for("/a.xml")), ("B", httpserver.url_for("/b.xml"))])
    result = project.run("poll", "--once")
    assert "1 new articles" in result.output, result.output
    assert rows(project.db, "SELECT url FROM articles") == [(f"{base}/page/1",)]
    # and polling again (new bytes, same stories) stores nothing twice
    httpserver.clear()
    httpserver.expect_request("/a.xml").respond_with_data(
        rss([item(1, base, path="/page/1?utm_source=a")], title="changed"))
    httpserver.expect_request("/b.xml").respond_with_data(
        rss([item(1, base, path="/page/1")], title="changed"))
    assert "0 new articles" in project.run("poll", "--once").output
    assert rows(project.db, "SELECT count(*) FROM articles") == [(1,)]


def test_failing_feed_beside_a_working_one(project, httpserver: HTTPServer, page_html):
    base = httpserver.url_for("")[:-1]
    httpserver.expect_request("/ok.xml").respond_with_data(rss([item(1, base)]))
    httpserver.expect_request("/page/1").respond_with_data(page_html("Story 1", STORY),
                                                            content_type="text/html")
    httpserver.expect_request("/broken.xml").respond_with_data("oops", status=500)
    httpserver.expect_request("/html.xml").respond_with_data(
        "<html><body><p>Not a feed at all</p></body></html>", content_type="text/html")
    project.feeds([("OK", httpserver.url_for("/ok.xml")),
                   ("Broken", httpserver.url_for("/broken.xml")),
                   ("Html", httpserver.url_for("/html.xml"))])
    result = project.run("poll", "--once")
    assert result.exit_code == 0
    assert "1 ok, 2 failed" in result.output
    assert "Traceback" not in result.output
    state = dict((r[0].rsplit("/", 1)[1], r[1:]) for r in rows(
        project.db, "SELECT url, last_status, last_http_status, last_error, "
        "consecutive_failures FROM feeds"))
    assert state["ok.xml"] == ("ok", 200, None, 0)
    assert state["broken.xml"] == ("failed", 500, "HTTP 500", 1)
    assert state["html.xml"][0] == "failed" and state["html.xml"][2].startswith("not a feed")
    assert rows(project.db, "SELECT count(*) FROM articles") == [(1,)]


def test_page_without_text_keeps_the_summary(project, httpserver: HTTPServer):
    base = httpserver.url_for("")[:-1]
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([item(1, base), item(2, base), item(3, base)]))
    httpserver.expect_request("/page/1").respond_with_data(
        "<html><body><nav><a href='/'>Home</a></nav></body></html>", content_type="text/html")
    httpserver.expect_request("/page/2").respond_with_data(b"%PDF-1.7 binary",
                                                            content_type="text/html")
    httpserver.expect_request("/page/3").respond_with_data("gone", status=404)
    project.feeds([("Test", httpserver.url_for("/feed.xml"))])
    assert project.run("poll", "--once").exit_code == 0
    stored = rows(project.db, "SELECT guid, text, extract_error FROM articles ORDER BY guid")
    assert [r[1] for r in stored] == ["Summary of story 1.", "Summary of story 2.",
                                      "Summary of story 3."]
    assert stored[0][2].startswith("no article text found")
    assert stored[1][2] == "a PDF, not an article page"
    assert stored[2][2] == "HTTP 404"


def test_demo_seed_page_is_extracted_without_chrome():
    from importlib import resources

    from monitor.extract import extract_page

    raw = resources.files("monitor.demo").joinpath("pages/harbourton-safe-city.html").read_bytes()
    page = extract_page(raw, "http://127.0.0.1/pages/harbourton-safe-city.html")
    assert "facial recognition across its network of 4,200 street cameras" in page.text
    assert "the cameras stay on" in page.text
    for chrome in ("Spread the love", "Read More", "Related News", "Disqus", "Facebook",
                   "crypto channel", "Celebrity chef", "Privacy"):
        assert chrome not in page.text, chrome
    assert page.author == "Mara Velasquez" and page.language == "en"


def test_poll_deadline_keeps_what_is_done_and_finishes_next_time(project, web, page_html):
    project.settings(allow_private_addresses=True, extract_workers=1, poll_deadline=3,
                     per_host_limit=1)
    for n in range(12):
        web.send(f"/page/{n}", page_html(f"Story {n}", STORY), delay=0.5)
    web.send("/f.xml", rss([item(n, web.base) for n in range(12)]), ctype="application/rss+xml",
             headers={"ETag": '"same"'})
    project.feeds([("Slow", web.url("/f.xml"))])
    first = project.run("-v", "poll", "--once").output
    stored = rows(project.db, "SELECT count(*) FROM articles")[0][0]
    assert 2 <= stored < 12, first
    assert "pages left for the next poll" in first
    assert rows(project.db, "SELECT etag, content_hash FROM feeds") == [(None, None)]
    for _ in range(5):
        project.run("poll", "--once")
    assert rows(project.db, "SELECT count(*), count(DISTINCT url) FROM articles") == [(12, 12)]
    assert rows(project.db, "SELECT etag FROM feeds") == [('"same"',)]


def test_worker_processes_report_extraction_failures(project, web, page_html):
    """Extraction in real worker processes: an error raised there must cross back intact."""
    project.settings(allow_private_addresses=True, extract_workers=2)
    web.send("/page/1", page_html("Story 1", STORY))
    web.send("/page/2", "<html><body><nav>menu</nav></body></html>")
    web.send("/page/3", b"%PDF-1.4 not html", ctype="text/html")
    web.send("/f.xml", rss([item(n, web.base) for n in (1, 2, 3)]), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    result = project.run("poll", "--once")
    assert "1 ok, 0 failed" in result.output and "3 new articles" in result.output
    stored = dict(rows(project.db, "SELECT guid, extract_error FROM articles"))
    assert stored["urn:test:1"] is None
    assert stored["urn:test:2"].startswith("no article text found")
    assert stored["urn:test:3"] == "a PDF, not an article page"


def test_worker_pool_is_recycled_without_losing_work(project, web, page_html, monkeypatch):
    """The pool is replaced every few jobs (here every one per worker); nothing queued is
    lost and nothing hangs, which the pool's own max_tasks_per_child did on Python 3.11."""
    import monitor.pipeline.workers

    monkeypatch.setattr(monitor.pipeline.workers, "WORKER_JOBS", 1)
    project.settings(allow_private_addresses=True, extract_workers=2)
    for n in range(1, 9):
        web.send(f"/page/{n}", page_html(f"Story {n}", STORY.replace("Monday", f"day {n}")))
    web.send("/f.xml", rss([item(n, web.base) for n in range(1, 9)]), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    result = project.run("poll", "--once")
    assert "1 ok, 0 failed" in result.output and "8 new articles" in result.output
    assert rows(project.db, "SELECT count(*) FROM articles WHERE extract_error IS NULL") == [(8,)]


def test_a_worker_that_dies_fails_its_job_and_the_pool_is_replaced(caplog, tmp_path):
    """A crash in a parser (here the worker simply exits) fails that one job; the next job
    runs in a new pool."""
    import asyncio
    import os
    from concurrent.futures.process import BrokenProcessPool
    from functools import partial

    from monitor.config import Settings
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    async def run() -> None:
        store = Store(tmp_path / "t.db")
        pipeline = Pipeline(Settings(extract_workers=2), None, store.path, None)  # type: ignore[arg-type]
        try:
            try:
                await pipeline.workers.run(partial(os._exit, 1), "the crashing page")
            except BrokenProcessPool:
                pass
            else:
                raise AssertionError("a dead worker must fail its job")
            assert await pipeline.workers.run(partial(abs, -3), "the next page") == 3
        finally:
            pipeline.close()
            store.close()

    asyncio.run(run())
    assert "worker process died; pool replaced" in caplog.text


def test_workers_follow_a_new_number_without_losing_work(caplog):
    """A reload's new number of workers: more are started on the next jobs, those beyond it
    finish what they have and leave; one worker or none runs jobs in threads. Nothing fails
    and nothing is reported dead."""
    import asyncio
    import os
    import time
    from functools import partial

    from monitor.pipeline import Workers

    async def run() -> None:
        workers = Workers(2)
        try:
            await workers.start()
            first = workers.pids()
            assert len(first) == 2
            workers.resize(3)
            await asyncio.gather(*(workers.run(partial(time.sleep, 0.1), "nap")
                                   for _ in range(9)))
            assert len(workers.pids()) == 3 and first <= workers.pids()
            naps = [asyncio.ensure_future(workers.run(partial(time.sleep, 0.3), "nap"))
                    for _ in range(6)]
            await asyncio.sleep(0.1)
            workers.resize(1)  # the running naps finish in the workers that leave
            assert await workers.run(os.getpid, "pid") == os.getpid()  # a thread of ours
            assert await asyncio.gather(*naps) == [None] * 6
            for _ in range(50):
                if not workers.pids():
                    break
                await asyncio.sleep(0.1)
            assert workers.pids() == set()
        finally:
            workers.close()

    asyncio.run(run())
    assert "died" not in caplog.text


def test_a_pipeline_kept_across_polls_starts_its_workers_once(project, web, page_html):
    """As the service does: workers started before the first poll serve every later one."""
    import asyncio
    import os

    from monitor.core import make_monitor

    project.settings(allow_private_addresses=True, extract_workers=2)
    for n in (1, 2):
        web.send(f"/page/{n}", page_html(f"Story {n}", STORY.replace("Monday", f"day {n}")))
    web.send("/f.xml", rss([item(n, web.base) for n in (1, 2)]), ctype="application/rss+xml",
             headers={"ETag": '"v1"'})
    project.feeds([("F", web.url("/f.xml"))])
    monitor = make_monitor(project.paths)

    async def run() -> tuple[set[int], set[int], list[str]]:
        async with monitor.pipeline() as pipeline:
            await pipeline.start()
            workers = pipeline.workers.pids()
            assert len(workers) == 2
            lines = [(await monitor.poll_async(pipeline=pipeline)).line(),
                     (await monitor.poll_async(pipeline=pipeline)).line()]
            after = {await pipeline.workers.run(os.getpid, "pid") for _ in range(4)}
        return workers, after, lines

    try:
        workers, after, (first, second) = asyncio.run(run())
    finally:
        monitor.close()
    assert "1 ok, 0 failed, 0 unchanged; 2 new articles" in first
    assert "0 ok, 0 failed, 1 unchanged; 0 new articles" in second
    assert after <= workers  # the same processes: no pool was started for the later polls


def test_feeds_in_progress_are_bounded(project, web, page_html):
    """A feed holds a slot from its fetch to its last page, two per request allowed: with one
    request at a time, the third feed is fetched only after a page of the first two (a cycle
    of thousands of feeds would otherwise hold every new entry of every feed at once)."""
    project.settings(allow_private_addresses=True, extract_workers=1, concurrency=1)
    order: list[str] = []
    for n in range(3):
        web.send(f"/page/{n}", page_html(f"Story {n}", STORY.replace("Monday", f"day {n}")))
        web.send(f"/f{n}.xml", rss([item(n, web.base)]), ctype="application/rss+xml")
    for path, route in list(web.routes.items()):
        web.routes[path] = lambda handler, path=path, route=route: (order.append(path),
                                                                    route(handler))
    project.feeds([(f"F{n}", web.url(f"/f{n}.xml")) for n in range(3)])
    result = project.run("poll", "--once")
    assert "3 ok, 0 failed" in result.output and "3 new articles" in result.output
    feeds = [i for i, p in enumerate(order) if p.endswith(".xml")]
    pages = [i for i, p in enumerate(order) if p.startswith("/page/")]
    assert len(feeds) == len(pages) == 3
    assert feeds[-1] > pages[0], order


def test_errors_survive_pickling():
    import pickle

    from monitor.errors import ConfigError, ExtractError, FetchError, TooLarge

    for error in (ExtractError("http://a/", "no text"), TooLarge("http://a/", "big", status=200),
                  FetchError("http://a/", "HTTP 503", status=503, retry_after=30.0),
                  ConfigError("unknown key", file="feeds.yaml", line=3, key="feeds[0].x")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.__dict__ == error.__dict__


def test_every_feed_that_carried_a_story_is_a_source(project, web, page_html):
    web.send("/page/1", page_html("Police expand facial recognition", STORY))
    for name in ("a", "b", "c"):
        web.send(f"/{name}.xml", rss([item(1, web.base, path=f"/page/1?utm_source={name}",
                                           title="Police expand facial recognition")]),
                 ctype="application/rss+xml")
    project.feeds([(name.upper(), web.url(f"/{name}.xml")) for name in ("a", "b", "c")])
    assert "1 new articles" in project.run("poll", "--once").output
    project.run("poll", "--once")  # seen again: no new sightings, no duplicates
    out = json.loads(project.run("digest", "--format", "json").output)
    assert len(out["stories"]) == 1
    assert sorted(s["feed"] for s in out["stories"][0]["sources"]) == ["A", "B", "C"]
    assert rows(project.db, "SELECT count(*) FROM sightings") == [(2,)]


def test_a_worker_is_sent_the_rules_once_then_named():
    """A page's job names the rules (a few bytes, not 20 KB or a model's megabytes); a
    worker that has not compiled them asks for them, and has them from then on."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    from dataclasses import replace
    from functools import partial

    import pytest

    from monitor.models import Entry
    from monitor.pipeline.jobs import extract_job
    from monitor.scoring import load_rules
    from monitor.scoring.rules import RulesMissing

    from .helpers import ROOT

    rules = load_rules(ROOT / "config" / "keywords.yaml")
    html = ("<html><head><title>Police expand facial recognition</title></head><body>"
            "<article><p>" + "Police switched on facial recognition cameras across the "
            "city centre. " * 8 + "</p></article></body></html>").encode()
    entry = Entry(feed_url="https://example.org/f.xml", guid="1", url="https://example.org/1",
                  title="Police expand facial recognition", summary="", published=None,
                  author=None)
    job = partial(extract_job, html, entry.url, "text/html", "utf-8", False)
    assert len(pickle.dumps(rules.key)) < 200 < 20_000 < len(pickle.dumps(rules))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as one:
        with pytest.raises(RulesMissing):
            one.submit(partial(job, rules.key, entry)).result()
        sent = one.submit(partial(job, rules, entry)).result()
        named = one.submit(partial(job, rules.key, entry)).result()
        assert sent.score is not None and sent.score.flagged and named.score == sent.score
        changed = replace(rules, version="reloaded")  # new rules are asked for again
        with pytest.raises(RulesMissing):
            one.submit(partial(job, changed.key, entry)).result()


def test_a_worker_fetches_a_page_and_reports_it_in_before_its_result(web, page_html):
    """A page's whole job in a worker process: notice once the page is in (its turn is free
    then), then the page extracted; a caller that gives up cancels the job in the worker."""
    import asyncio
    from functools import partial

    from monitor.config import Settings
    from monitor.pipeline import Workers
    from monitor.pipeline.jobs import PageFetch, page_job

    web.send("/page/1", page_html("Story 1", STORY))
    how = PageFetch.of(Settings(), "text/html", allow_private=True)

    async def run() -> list[str]:
        seen: list[str] = []
        workers = Workers(2)
        try:
            await workers.start()
            page = await workers.start_job(partial(page_job, web.url("/page/1"), how, False,
                                                   None, None), "page 1",
                                           lambda: seen.append("in"))
            seen.append(page.title or "")
            # a job that would run for a minute, given up on: cancelled there too, so the
            # worker that has it retires at once rather than after the minute
            sleeping = asyncio.ensure_future(workers.start_job(partial(asyncio.sleep, 60),
                                                               "nap"))
            await asyncio.sleep(0.3)
            sleeping.cancel()
            await asyncio.sleep(0.1)
            workers.resize(1)
            for _ in range(50):
                if not workers.pids():
                    break
                await asyncio.sleep(0.1)
            seen.append(f"{len(workers.pids())} left")
        finally:
            workers.close()
        return seen

    assert asyncio.run(run()) == ["in", "Story 1", "0 left"]


def test_a_reload_gives_a_workers_page_fetches_new_settings_and_closes_the_old(web, page_html):
    """page_job as a worker runs it: a new User-Agent (a reload) is sent from the next page
    on, and the fetcher of the old settings is closed once its requests have ended."""
    import asyncio

    from monitor.config import Settings
    from monitor.pipeline import jobs

    agents: list[str] = []

    def page(h):
        agents.append(h.headers["User-Agent"])
        body = page_html("Story 1", STORY).encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    web.routes["/page/1"] = page
    old, new = (jobs.PageFetch.of(Settings(user_agent=agent), "text/html", allow_private=True)
                for agent in ("monitor-test/1", "monitor-test/2"))

    async def run() -> list[str | None]:
        titles = []
        for how in (old, old, new):
            got = await jobs.page_job(web.url("/page/1"), how, False, None, None, lambda: None)
            titles.append(got.title)
        await asyncio.gather(*jobs._CLOSING)
        assert list(jobs._FETCHERS) == [new]
        await jobs._FETCHERS.pop(new).__aexit__(None, None, None)
        return titles

    assert asyncio.run(run()) == ["Story 1"] * 3
    assert agents == ["monitor-test/1", "monitor-test/1", "monitor-test/2"]
