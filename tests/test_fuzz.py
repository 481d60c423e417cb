"""One bad byte or link must not sink a feed. The cases found by fuzzing, on a real server on
127.0.0.1, and property tests (Hypothesis, derandomized so CI is repeatable) on our own
fixtures: only the project's own errors may come out."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ConfigError, FetchError, InvalidLink, MonitorError, ParseError
from monitor.extract import extract_page
from monitor.feeds import canonical_url, parse_feed
from monitor.fetch import request_url

from .helpers import DATA, ROOT, item, rss
from .test_pipeline import STORY

QUICK = settings(derandomize=True, database=None, max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 6, 1, tzinfo=UTC)
BAD_LINKS = ["http://a..b/x", "http://xn--/x", "http://" + "a" * 300 + ".org/x",
             "http://a\x00b.org/x", "http://[::1/x"]


def test_a_character_reference_beyond_unicode_sinks_one_title_not_the_feed(project, web,
                                                                          page_html):
    for n in (1, 2, 3):
        web.send(f"/page/{n}", page_html(f"Police cameras {n}", STORY))
    items = [item(n, web.base) for n in (1, 2, 3)]
    items[1]["title"] = "Cameras &#99999999; and &#xD800; and &#0; everywhere"
    web.send("/f.xml", rss(items), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    result = project.run("-v", "poll", "--once")
    assert "3 new articles" in result.output and "Traceback" not in result.output
    with sqlite3.connect(project.db) as conn:
        titles = [r[0] for r in conn.execute("SELECT title FROM articles ORDER BY id")]
        texts = conn.execute("SELECT count(*) FROM articles WHERE extract_error IS NULL")
        assert texts.fetchone()[0] == 3
    assert titles[1] == "Cameras \ufffd and \ufffd and \ufffd everywhere"


def test_malformed_links_are_their_entries_errors_and_the_good_ones_are_stored(project, web,
                                                                              page_html):
    for n in (1, 2, 3):
        web.send(f"/page/{n}", page_html(f"Police cameras {n}", STORY))
    good = [{"id": f"g{n}", "url": web.url(f"/page/{n}"), "title": f"Good {n}"}
            for n in (1, 2, 3)]
    bad = [{"id": f"b{n}", "url": link, "title": f"Bad {n}"} for n, link in enumerate(
        BAD_LINKS[:4] + [web.url("/page/\ud800")])]
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": good + bad}
    web.send("/f.json", json.dumps(feed), ctype="application/feed+json")
    project.feeds([("J", web.url("/f.json"))])
    result = project.run("-v", "poll", "--once")
    assert "Traceback" not in result.output, result.output
    assert "8 new articles" in result.output, result.output
    with sqlite3.connect(project.db) as conn:
        rows = dict(conn.execute("SELECT title, coalesce(extract_error, '') FROM articles"))
        status = conn.execute("SELECT last_status, last_error FROM feeds").fetchone()
    assert all(rows[f"Good {n}"] == "" for n in (1, 2, 3))
    assert all(rows[f"Bad {n}"].startswith("invalid URL: ") for n in range(4)), rows
    assert rows["Bad 4"] == "HTTP 404"  # the surrogate became U+FFFD: a URL, not found
    assert status == ("ok", None)


def test_ipv6_literals_stay_valid_urls():
    assert canonical_url("http://[::1]:8080/x?utm_source=a&b=1") == "http://[::1]:8080/x?b=1"
    assert canonical_url("https://[2001:DB8::1]/") == "https://[2001:db8::1]/"
    assert str(request_url("http://[::1]:8080/x")) == "http://[::1]:8080/x"
    for link in BAD_LINKS[:4]:
        with pytest.raises(InvalidLink, match="invalid URL"):
            request_url(canonical_url(link) or link)


def test_a_bug_in_a_poll_is_recorded_with_backoff_and_logged_once(project, web, monkeypatch,
                                                                   caplog):
    from monitor.core import make_monitor

    web.send("/f.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1)

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyError("where")

    monkeypatch.setattr("monitor.pipeline.stages.parse_feed", broken)
    monitor = make_monitor(project.paths)
    try:
        async def twice() -> None:
            async with monitor.pipeline() as p:
                for _ in range(2):
                    with sqlite3.connect(project.db) as conn:
                        conn.execute("UPDATE feeds SET content_hash = NULL")
                    await monitor.poll_async(pipeline=p)
        import asyncio

        asyncio.run(twice())
        with sqlite3.connect(project.db) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM feeds WHERE url = ?", [web.url("/f.xml")]).fetchone()
    finally:
        monitor.close()
    assert row["last_status"] == "failed" and row["consecutive_failures"] == 2
    assert row["last_error"] == "internal error: KeyError: 'where'" and row["next_poll_at"]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1


# -- properties ------------------------------------------------------------------------------

# our own feeds: the test fixtures and the demo's, in every format we read
FIXTURES = sorted((DATA / "feeds").glob("*")) + sorted((ROOT / "monitor" / "demo" / "feeds")
                                                        .glob("*.xml"))


def fixture(path: Path) -> bytes:
    """The demo's feeds are templates ({base}, {date0} ...): filled in."""
    data = path.read_bytes().replace(b"{base}", b"http://demo.example.org")
    return re.sub(rb"\{date\d+\}", b"Mon, 01 Jun 2026 08:00:00 GMT", data)


SEEDS = [fixture(p) for p in FIXTURES]


def test_the_fixtures_parse_whole():
    counts = {p.name: len(parse_feed(fixture(p), "http://example.org/f", fetched=NOW)
                          .entries) for p in FIXTURES}
    assert len(counts) >= 6 and all(counts.values()), counts
INJECT = [b"&#99999999;", b"&#xD800;", b"&#0;", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe",
          b"<![CDATA[", b"]]>", b"</item>", b"<item>", b"<title>", b"&amp;", b"&", b"<",
          b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"<?xml version='1.0' encoding='utf-16'?>",
          b"<link>http://[::1</link>", b"<link>http://a..b/</link>", b"\r\n", b"\x80\x81"]


@st.composite
def mutated_feeds(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "inject", "drop"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "inject":
            data[at:at] = draw(st.sampled_from(INJECT) | st.binary(max_size=16))
        elif data:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


@QUICK
@given(mutated_feeds())
def test_mutated_feeds_give_entries_or_a_parse_error(content):
    try:
        parsed = parse_feed(content, "http://example.org/feed", fetched=NOW)
    except ParseError:
        return
    for entry in parsed.entries:  # everything that comes out can be stored
        for text in (entry.title, entry.summary, entry.guid, entry.url or "", entry.author or ""):
            text.encode("utf-8")


@QUICK
@given(st.one_of(st.text(), st.builds(lambda a, b: a + b, st.sampled_from(
    ["http://", "https://", "http://[", "http://xn--", "http://a..", "HTTP://", "//"]),
    st.text())))
def test_any_string_as_a_link_is_a_url_or_an_entry_error(link):
    url = canonical_url(link, "http://example.org/")
    if url is None:
        return
    url.encode("utf-8")  # storable
    try:
        request_url(url)
    except FetchError as exc:
        assert exc.reason.startswith("invalid URL") and not exc.transient


@QUICK
@given(st.binary(max_size=4000), st.sampled_from(["text/html", "", "application/pdf"]))
def test_any_bytes_as_a_page_are_text_or_an_extract_error(content, ctype):
    try:
        page = extract_page(content, "http://example.org/a", ctype, None)
    except MonitorError:
        return
    assert page.text


@QUICK
@given(st.text(max_size=400))
def test_any_text_as_configuration_is_valid_or_a_config_error(tmp_path_factory, text):
    from monitor.config import load_feeds, load_settings
    from monitor.scoring import load_rules

    path: Path = tmp_path_factory.mktemp("yaml") / "file.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for load in (load_feeds, load_settings, load_rules):
        try:
            load(path)
        except ConfigError:
            pass
