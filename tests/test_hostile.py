"""Hostile and broken input, each case against a real server on 127.0.0.1 (or a controlled
fault): every fault handled, nothing lost."""

from __future__ import annotations

import gzip
import socket
import sqlite3
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime

import brotli
import pytest

from monitor.fetch.policy import is_global

from .helpers import NOW, ROOT, item, rss, stop, wait_for
from .test_pipeline import STORY


def q(project, sql, *args):
    with sqlite3.connect(project.db, timeout=20) as conn:
        return conn.execute(sql, args).fetchall()


def errors(project) -> dict[str, str]:
    return {u.rsplit("/", 1)[1]: e for u, e in q(project, "SELECT url, last_error FROM feeds")}


def reset(handler) -> None:
    """Close with RST instead of FIN."""
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  b"\x01\x00\x00\x00\x00\x00\x00\x00")
    handler.rfile.close()  # every reference must go for close() to send the RST
    handler.wfile.close()
    handler.connection.close()
    handler.close_connection = True


# -- 1, 2: hangs, trickles, resets, short bodies ----------------------------------------------

def test_slow_and_broken_servers_end_in_recorded_errors(project, web):
    # every route is on one host here: not set aside, so that each shows its own error
    project.settings(allow_private_addresses=True, extract_workers=1, request_deadline=2,
                     read_timeout=10, set_aside_after=0)

    def hang(h):
        time.sleep(20)

    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        for ch in rss([item(1, web.base)]):
            h.wfile.write(ch.encode())
            h.wfile.flush()
            time.sleep(1)

    def slow_headers(h):
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(20):
            h.wfile.write(f"X-Wait-{i}: 1\r\n".encode())
            h.wfile.flush()
            time.sleep(1.5)

    def reset_mid_body(h):
        body = rss([item(n, web.base) for n in range(50)]).encode()
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:300])
        reset(h)

    def short_body(h):
        body = rss([item(n, web.base) for n in range(50)]).encode()
        h.send_response(200)
        h.send_header("Content-Length", str(len(body) + 500))
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
        h.close_connection = True

    for name, route in [("hang", hang), ("trickle", trickle), ("headers", slow_headers),
                        ("reset", reset_mid_body), ("short", short_body)]:
        web.routes[f"/{name}.xml"] = route
    web.send("/empty.xml", "", ctype="application/rss+xml")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{sock.getsockname()[1]}/closed.xml"
    sock.close()
    project.feeds([(n, web.url(f"/{n}.xml")) for n in
                   ("hang", "trickle", "headers", "reset", "short", "empty")]
                  + [("closed", closed)])
    started = time.monotonic()
    result = project.run("poll", "--once")
    took = time.monotonic() - started
    assert result.exit_code == 0 and "0 ok, 7 failed" in result.output
    assert took < 19, took  # each request ended by its own 2-s deadline, not by the 20-s hang
    e = errors(project)
    for name in ("hang", "trickle", "headers"):
        assert e[f"{name}.xml"] == "timed out after 2s", e
    assert "RemoteProtocolError" in e["reset.xml"] or "ReadError" in e["reset.xml"]
    assert "RemoteProtocolError" in e["short.xml"]
    assert e["empty.xml"] == "not a feed: empty body"
    assert "ConnectError" in e["closed.xml"]
    assert q(project, "SELECT count(*) FROM articles") == [(0,)]
    assert "Traceback" not in result.output


# -- 3: status codes ------------------------------------------------------------------------

def test_500_three_times_then_200_resets_the_count(project, web, page_html):
    project.settings(allow_private_addresses=True, extract_workers=1, jitter=0)
    calls = {"n": 0}
    good = rss([item(1, web.base)]).encode()

    def flaky(h):
        calls["n"] += 1
        status, body = (500, b"boom") if calls["n"] <= 3 else (200, good)
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    web.routes["/f.xml"] = flaky
    web.send("/page/1", page_html("Story 1", STORY))
    project.feeds([("F", web.url("/f.xml"))])
    counts = []
    for _ in range(4):
        project.run("poll", "--once")
        counts.append(q(project, "SELECT consecutive_failures, last_status FROM feeds")[0])
    assert counts == [(1, "failed"), (2, "failed"), (3, "failed"), (0, "ok")]


# -- 4: redirects ---------------------------------------------------------------------------

def test_redirect_loops_long_chains_and_other_schemes(project, web):
    web.send("/loop.xml", "", status=302, headers={"Location": "/loop.xml"})
    for n in range(30):
        web.send(f"/hop{n}.xml", "", status=301, headers={"Location": f"/hop{n + 1}.xml"})
    web.send("/hop30.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    web.send("/file.xml", "", status=302, headers={"Location": "file:///etc/passwd"})
    web.send("/gopher.xml", "", status=302, headers={"Location": "gopher://127.0.0.1/"})
    project.feeds([(n, web.url(f"/{n}.xml")) for n in ("loop", "hop0", "file", "gopher")])
    assert project.run("poll", "--once").exit_code == 0
    e = errors(project)
    assert e["loop.xml"] == e["hop0.xml"] == "more than 5 redirects"
    assert web.hits["/loop.xml"] == 6 and web.hits["/hop6.xml"] == 0
    assert e["file.xml"].startswith("redirect to a non-http(s) URL refused: file:///etc/passwd")
    assert e["gopher.xml"].startswith("redirect to a non-http(s) URL refused")


# -- 5: the address policy ------------------------------------------------------------------

@pytest.mark.parametrize("address, public", [
    ("127.0.0.1", False), ("127.9.9.9", False), ("::1", False), ("10.1.2.3", False),
    ("172.16.0.1", False), ("172.31.255.255", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("::ffff:127.0.0.1", False),
    ("fe80::1", False), ("93.184.216.34", True), ("172.32.0.1", True), ("2606:4700::1", True),
])
def test_address_policy_ranges(address, public):
    assert is_global(address) is public


@pytest.mark.parametrize("workers", [1, 2], ids=["threads", "processes"])
def test_links_from_feed_content_may_not_reach_private_addresses(project, web, page_html,
                                                                 workers):
    project.settings(allow_private_addresses=False, extract_workers=workers)
    port = web.base.rsplit(":", 1)[1]
    web.send("/feed.xml", rss([item(1, web.base), item(2, f"http://localhost:{port}")]),
             ctype="application/rss+xml")  # the feed itself is trusted: it is in feeds.yaml
    web.send("/page/1", page_html("Story 1", STORY))
    web.send("/page/2", page_html("Story 2", STORY))
    project.feeds([("Local", web.url("/feed.xml"))])
    assert "1 ok" in project.run("poll", "--once").output
    rows = q(project, "SELECT guid, text, extract_error FROM articles ORDER BY guid")
    assert [r[1] for r in rows] == ["Summary of story 1.", "Summary of story 2."]
    assert rows[0][2] == "refused: 127.0.0.1 is not a globally routable address"
    assert rows[1][2].endswith("is not a globally routable address (localhost)")  # or ::1
    assert web.hits["/page/1"] == web.hits["/page/2"] == 0  # not a byte was sent to them
    # the setting (and the injectable check) lets them through
    project.settings(allow_private_addresses=True, extract_workers=1)
    web.send("/feed.xml", rss([item(3, web.base)]), ctype="application/rss+xml")
    web.send("/page/3", page_html("Story 3", STORY))
    project.run("poll", "--once")
    assert web.hits["/page/3"] == 1


# -- 6: bombs and huge bodies, with the process's peak memory ---------------------------------

def test_bombs_and_huge_bodies_are_cut_at_the_cap_in_bounded_memory(project, web, tmp_path):
    project.settings(allow_private_addresses=True, extract_workers=1, max_page_bytes=2_000_000,
                     max_feed_bytes=5_000_000, request_deadline=30)
    zeros = b"\0" * (256 << 20)
    bombs = {"gzip": gzip.compress(zeros, 9), "deflate": zlib.compress(zeros, 9),
             "br": brotli.compress(zeros, quality=5)}
    for coding, body in bombs.items():
        web.send(f"/bomb-{coding}", body, headers={"Content-Encoding": coding})

    def endless(h):  # 200 MB with no Content-Length
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        chunk = b"<p>" + b"x" * 65_000 + b"</p>"
        for _ in range(3200):
            h.wfile.write(chunk)

    web.routes["/endless"] = endless

    def declared(h):  # claims 200 MB up front
        h.send_response(200)
        h.send_header("Content-Length", str(200 << 20))
        h.end_headers()
        h.wfile.write(b"<html>" + b"x" * 1000)

    web.routes["/declared"] = declared
    entries = [item(i, web.base, path=p) for i, p in enumerate(
        ["/bomb-gzip", "/bomb-deflate", "/bomb-br", "/endless", "/declared"])]
    web.send("/feed.xml", rss(entries), ctype="application/rss+xml")
    big = rss([item(i, web.base, title="t" * 900) for i in range(30_000)])
    web.send("/big.xml", big, ctype="application/rss+xml")
    project.feeds([("Bombs", web.url("/feed.xml")), ("Big", web.url("/big.xml"))])
    p = project.paths
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so the child would
    # report this test process's own peak (it holds the bombs); VmHWM starts anew at exec
    script = ("import re, sys\nfrom monitor.cli import cli\n"
              "try:\n    cli(sys.argv[1:], standalone_mode=False)\nfinally:\n"
              "    status = open('/proc/self/status').read()\n"
              "    print('maxrss_kib', re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n")
    run = subprocess.run([sys.executable, "-c", script, "--feeds", str(p.feeds), "--keywords",
                          str(p.keywords), "--settings", str(p.settings), "poll", "--once"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "1 ok, 1 failed" in run.stdout, run.stdout + run.stderr
    peak_mib = int(run.stdout.split("maxrss_kib")[1]) / 1024
    assert peak_mib < 300, peak_mib
    stored = dict(q(project, "SELECT url, extract_error FROM articles"))
    for path in ("/bomb-gzip", "/bomb-deflate", "/bomb-br", "/endless"):
        assert stored[web.url(path)] == "body over the 2000000-byte cap (decoded)", stored
    assert stored[web.url("/declared")] == \
        f"body of {200 << 20} bytes is over the 2000000-byte cap"
    assert errors(project)["big.xml"] == "body of %d bytes is over the 5000000-byte cap" % len(
        big.encode())


# -- 7, 8: not articles; charsets ---------------------------------------------------------------

def test_pdfs_images_and_charsets(project, web):
    fr = ("Le conseil municipal de Zürich a voté un crédit pour la vidéosurveillance du "
          "café-théâtre et de la place à côté de la gare, malgré les réserves exprimées.")
    ru = ("Городские власти установили камеры видеонаблюдения с распознаванием лиц на всех "
          "улицах центра. Полиция получила доступ к записям, а жители требуют отчёта.")
    zh = ("市公安局表示，全市新增两万个高清监控摄像头，"
          "并接入天网工程平台，实现人脸识别和车辆轨迹分析。"
          "有市民担心个人隐私得不到保护。")

    def page(text, meta=""):
        return (f"<html><head>{meta}<title>t</title></head><body><article><p>{text}</p>"
                f"<p>{text[::-1]}</p></article></body></html>")

    pages = {
        "/pdf": (b"%PDF-1.7\n%binary", "application/pdf"),
        "/pdf-as-html": (b"%PDF-1.4 pretending", "text/html"),
        "/png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png"),
        "/latin1-as-utf8": (page(fr).encode("latin-1"), "text/html; charset=utf-8"),
        "/utf8-as-latin1": (page(fr).encode("utf-8"), "text/html; charset=iso-8859-1"),
        "/gb2312": (page(zh, '<meta charset="gb2312">').encode("gb2312"), "text/html"),
        "/koi8r": (page(ru).encode("koi8-r"), "text/html; charset=koi8-r"),
        "/cp1251": (page(ru).encode("cp1251"), "text/html"),
    }
    for path, (body, ctype) in pages.items():
        web.send(path, body, ctype=ctype)
    web.send("/feed.xml", rss([item(i, web.base, path=p) for i, p in enumerate(pages)]),
             ctype="application/rss+xml")
    project.feeds([("Mixed", web.url("/feed.xml"))])
    project.run("poll", "--once")
    got = {u.rsplit("/", 1)[1]: (t, e) for u, t, e in
           q(project, "SELECT url, text, extract_error FROM articles")}
    assert got["pdf"] == ("Summary of story 0.", "a PDF, not an article page")
    assert got["pdf-as-html"][1] == "a PDF, not an article page"
    assert got["png"][1] == "an image, not an article page"
    for name, text in [("latin1-as-utf8", fr), ("utf8-as-latin1", fr), ("gb2312", zh),
                       ("koi8r", ru), ("cp1251", ru)]:
        assert got[name][1] is None and text[:60] in got[name][0], (name, got[name])


# -- 9, 10: entity bombs, external entities, malformed XML -------------------------------------

def test_entity_bombs_and_external_entities_are_inert(project, web, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    web.send("/target", "LOOPBACK-SECRET")
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "lol">{laughs}]>'
            '<rss version="2.0"><channel><title>&l9;</title><item><title>t &l9;</title>'
            f'<link>{web.base}/page/1</link><guid>b1</guid></item></channel></rss>')
    xxe = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY f SYSTEM "file://{secret}">'
           '<!ENTITY u SYSTEM "{base}/target">]><rss version="2.0"><channel><title>x</title>'
           '<item><title>&f; &u;</title><description>&f;&u;</description>'
           '<link>{base}/page/2</link><guid>x1</guid></item></channel></rss>'
           ).format(secret=secret, base=web.base)
    web.send("/bomb1.xml", bomb, ctype="application/rss+xml")
    web.send("/bomb2.xml", bomb.replace("><", ">\n<"), ctype="application/rss+xml")
    web.send("/xxe.xml", xxe, ctype="application/rss+xml")
    project.settings(allow_private_addresses=True, extract_workers=1, fetch_articles=False)
    project.feeds([(n, web.url(f"/{n}.xml")) for n in ("bomb1", "bomb2", "xxe")])
    started = time.monotonic()
    result = project.run("poll", "--once")
    assert time.monotonic() - started < 30  # an expanded bomb takes minutes and gigabytes
    assert "3 ok" in result.output
    titles = " ".join(t for (t,) in q(project, "SELECT title || ' ' || text FROM articles"))
    assert "lollol" not in titles and "TOP-SECRET" not in titles and "LOOPBACK" not in titles
    assert web.hits["/target"] == 0
    assert all("entity declarations in the DOCTYPE ignored" in e for e in errors(project).values())


def test_malformed_feeds_keep_what_can_be_read(project, web):
    def ok(n: int) -> str:
        return (f"<item><title>Fine</title><link>{web.base}/page/{n}</link>"
                f"<guid>urn:g:g{n}</guid></item>")

    feeds = {
        "amp": f'<?xml version="1.0"?><rss version="2.0"><channel><title>A & B</title>{ok(1)}'
               "<item><title>Tom & Jerry</title><guid>urn:g:g2</guid></item></channel></rss>",
        "entity": f'<?xml version="1.0"?><rss version="2.0"><channel><title>x&nbsp;y</title>'
                  f"{ok(3)}</channel></rss>",
        "cut": f'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
               f"{ok(4)}<item><title>half",
        "newline": f'\n\n<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
                   f"{ok(5)}</channel></rss>",
    }
    for name, body in feeds.items():
        web.send(f"/{name}.xml", body, ctype="application/rss+xml")
    web.send("/html.xml", "<html><body><h1>Hello</h1><p>A web page.</p></body></html>")
    web.send("/empty.xml", "")
    web.send("/pdf.xml", b"%PDF-1.5\n" + bytes(range(256)) * 10, ctype="application/pdf")
    project.settings(allow_private_addresses=True, fetch_articles=False)
    names = [*feeds, "html", "empty", "pdf"]
    project.feeds([(n, web.url(f"/{n}.xml")) for n in names])
    result = project.run("-v", "poll", "--once")
    assert "4 ok, 3 failed" in result.output
    guids = {g for (g,) in q(project, "SELECT guid FROM articles")}
    assert {"urn:g:g1", "urn:g:g3", "urn:g:g4", "urn:g:g5"} <= guids
    e = errors(project)
    assert e["amp.xml"].startswith("malformed feed, read what could be read")
    assert e["newline.xml"] is None  # leading whitespace is simply skipped
    for name in ("html", "empty", "pdf"):
        assert e[f"{name}.xml"].startswith("not a feed"), e
    assert "malformed feed" in result.output  # logged as a warning


# -- 11, 12: volume, duplicates, dates, hostile titles -----------------------------------------

def test_ten_thousand_entries_odd_dates_and_missing_fields(project, web):
    entries = [item(i, web.base) for i in range(9_996)]  # 10,000 with the four below
    entries += [{**item(1, web.base), "title": "same guid again"},  # duplicate guid
                {"title": "no link, no guid, no date"},
                {"title": "from the future", "link": f"{web.base}/page/future",
                 "pubDate": "Mon, 01 Jan 2035 00:00:00 GMT"},
                {"title": "epoch", "link": f"{web.base}/page/epoch",
                 "pubDate": "Thu, 01 Jan 1970 00:00:00 GMT"}]
    web.send("/many.xml", rss(entries), ctype="application/rss+xml")
    project.settings(allow_private_addresses=True, fetch_articles=False)
    project.feeds([("Many", web.url("/many.xml"))])
    started = time.monotonic()
    first = project.run("poll", "--once")
    took = time.monotonic() - started
    assert "9999 new articles" in first.output, first.output  # the duplicate guid is skipped
    assert took < 60, took
    web.send("/many.xml", rss(entries, title="changed bytes"), ctype="application/rss+xml")
    assert "0 new articles" in project.run("poll", "--once").output
    rows = dict(q(project, "SELECT title, published FROM articles WHERE title IN "
                           "('from the future', 'epoch', 'no link, no guid, no date')"))
    future = datetime.fromisoformat(rows["from the future"])
    assert future <= datetime.now(UTC) and future.year == NOW.year
    assert rows["epoch"] is None and rows["no link, no guid, no date"] is None


def test_hostile_titles_and_links_are_stored_as_text(project, web):
    from xml.sax.saxutils import escape

    entries = [
        {"title": escape('<script>alert(1)</script>Real <b>title</b> <img src=x onerror=alert(2)>'),
         "link": "javascript:alert(3)", "guid": "urn:h1",
         "description": escape('<a href="javascript:alert(4)">x</a> text <script>bad()</script>')},
        {"title": "data link", "link": "data:text/html;base64,PHNjcmlwdD4=", "guid": "urn:h2"},
        {"title": "x" * 100_000, "link": f"{web.base}/page/long", "guid": "urn:h3"},
    ]
    web.send("/h.xml", rss(entries), ctype="application/rss+xml")
    project.settings(allow_private_addresses=True, fetch_articles=False)
    project.feeds([("Hostile", web.url("/h.xml"))])
    project.run("poll", "--once")
    rows = {g: (t, u, s) for g, t, u, s in
            q(project, "SELECT guid, title, url, summary FROM articles")}
    assert rows["urn:h1"][0] == "Real title" and rows["urn:h1"][1] is None
    assert "script" not in rows["urn:h1"][2] and "bad()" not in rows["urn:h1"][2]
    assert rows["urn:h2"][1] is None
    assert len(rows["urn:h3"][0]) == 1000


# -- 15, 16, 17, 18: storage and process faults ----------------------------------------------------

def test_readers_and_a_held_write_lock(project, web, page_html):
    web.send("/f.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    web.send("/page/1", page_html("Story 1", STORY))
    project.feeds([("F", web.url("/f.xml"))])
    project.run("poll", "--once")
    reader = sqlite3.connect(project.db)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM articles").fetchall()  # a read transaction stays open
    web.send("/f.xml", rss([item(1, web.base), item(2, web.base)]), ctype="application/rss+xml")
    web.send("/page/2", page_html("Story 2", STORY))
    assert "1 new articles" in project.run("poll", "--once").output  # WAL: writers go on
    reader.rollback()
    # another writer holds the lock for 2 s: the poll waits (bounded) and loses nothing
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, time, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(2); c.rollback()"
    ), str(project.db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.stdout.close()
    web.send("/f.xml", rss([item(n, web.base) for n in (1, 2, 3)]), ctype="application/rss+xml")
    web.send("/page/3", page_html("Story 3", STORY))
    assert "1 new articles" in project.run("poll", "--once").output
    holder.wait()
    assert q(project, "SELECT count(*), count(DISTINCT guid) FROM articles") == [(3, 3)]


def test_disk_full_is_logged_and_nothing_is_corrupted(project, web, page_html):
    web.send("/f.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    web.send("/page/1", page_html("Story 1", STORY))
    project.feeds([("F", web.url("/f.xml"))])
    project.run("poll", "--once")
    big = "Many words about the town. " * 8000
    web.send("/f.xml", rss([item(n, web.base) for n in range(1, 40)]), ctype="application/rss+xml")
    for n in range(2, 40):
        web.send(f"/page/{n}", page_html(f"Story {n}", big))
    size = project.db.stat().st_size + (project.db.with_suffix(".db-wal").stat().st_size
                                        if project.db.with_suffix(".db-wal").exists() else 0)
    limit = size + 200_000
    p = project.paths
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
              "from monitor.cli import main\nsys.argv[0] = 'monitor'\nmain()\n")
    run = subprocess.run([sys.executable, "-c", script, "--feeds", str(p.feeds), "--keywords",
                          str(p.keywords), "--settings", str(p.settings), "poll", "--once"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "database write failed" in run.stderr and "Traceback" not in run.stderr
    assert "0 ok, 1 failed" in run.stdout
    assert q(project, "PRAGMA integrity_check") == [("ok",)]
    assert q(project, "SELECT count(*) FROM articles") == [(1,)]  # what was stored is still there
    assert "38 new articles" in project.run("poll", "--once").output  # and it recovers


def test_kill_9_mid_poll_loses_nothing_and_stores_nothing_twice(project, web, page_html):
    project.settings(allow_private_addresses=True, extract_workers=1, default_interval=1,
                     jitter=0, concurrency=2, per_host_limit=1)

    for n in range(40):
        web.send(f"/page/{n}", page_html(f"Story {n}", STORY), delay=0.3)
    web.send("/f.xml", rss([item(n, web.base) for n in range(40)]), ctype="application/rss+xml")
    project.feeds([("Slow", web.url("/f.xml"))])
    p = project.paths
    cmd = [sys.executable, "-m", "monitor", "--feeds", str(p.feeds), "--keywords",
           str(p.keywords), "--settings", str(p.settings), "run"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, cwd=project.root)
    try:
        deadline = time.monotonic() + 20
        while sum(web.hits[f"/page/{n}"] for n in range(40)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL in the middle of fetching the feed's pages
        proc.wait()
    assert q(project, "PRAGMA integrity_check") == [("ok",)]
    before = q(project, "SELECT count(*) FROM articles")[0][0]
    assert before in (0, 40)  # a feed's articles are written in one transaction
    again = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, cwd=project.root)
    try:
        deadline = time.monotonic() + 60
        while q(project, "SELECT count(*) FROM articles")[0][0] < 40 and \
                time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        code = stop(again)
    assert code == 0
    assert q(project, "SELECT count(*), count(DISTINCT url), count(DISTINCT guid) "
                      "FROM articles") == [(40, 40, 40)]


def test_kill_9_mid_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "2026-11-26.md"
    target.write_text("the old digest, complete\n")
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from monitor.atomic import write_bytes\n"
        "print('writing', flush=True)\n"
        "write_bytes(Path(sys.argv[1]), b'new digest line\\n' * (60 << 20))"), str(target)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert writer.stdout.readline().strip() == "writing"
    writer.stdout.close()
    time.sleep(0.3)
    writer.kill()
    writer.wait()
    assert target.read_text() == "the old digest, complete\n"


def test_a_job_that_raises_is_logged_once_and_the_service_goes_on(project, web, page_html):
    project.settings(allow_private_addresses=True, extract_workers=1, default_interval=1,
                     jitter=0, digest_dir=str(project.root / "not-a-folder"))
    (project.root / "not-a-folder").write_text("a file where the digest folder should be")
    web.send("/f.xml", rss([item(1, web.base)]), ctype="application/rss+xml")
    web.send("/page/1", page_html("Story 1", STORY))
    project.feeds([("F", web.url("/f.xml"))])
    p = project.paths
    # a controlled fault: the first poll raises an unexpected error, and the digest job runs
    # now (every second) against a digest folder that is a file
    script = (
        "import sys\nfrom monitor import pipeline, service\n"
        "real = pipeline.Pipeline.poll_feed\ncalls = []\n"
        "async def flaky(self, feed):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 1:\n        raise RuntimeError('injected fault')\n"
        "    return await real(self, feed)\n"
        "pipeline.Pipeline.poll_feed = flaky\n"
        "def every_second(self):\n"
        "    self.scheduler.add_job(self._digest_job, 'interval', seconds=1, id='digest',\n"
        "                           replace_existing=True)\n"
        "service.Service._schedule_digest = every_second\n"
        "from monitor.cli import main\nsys.argv[0] = 'monitor'\nmain()\n")
    log = project.root / "service.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", script, "--feeds", str(p.feeds),
                                 "--keywords", str(p.keywords), "--settings", str(p.settings),
                                 "run"], stderr=err, cwd=ROOT)
        try:
            def polled_twice_and_digest_failed_twice() -> bool:
                rows = q(project, "SELECT polls FROM feeds") if project.db.exists() else []
                return bool(rows) and (rows[0][0] or 0) >= 2 and \
                    log.read_text().count("digest job raised") >= 2
            wait_for(polled_twice_and_digest_failed_twice, timeout=30,
                     what="two polls and two failed digest jobs")
        finally:
            code = stop(proc)
        assert code == 0
    text = log.read_text()
    assert text.count("RuntimeError: injected fault") == 1
    assert text.count("poll raised") == 1
    assert q(project, "SELECT count(*) FROM articles") == [(1,)]  # the next poll happened
    assert text.count("digest job raised") >= 2  # and the digest job keeps being run


def test_pages_fetched_in_worker_processes_keep_the_deadline_caps_and_retries(project, web,
                                                                              page_html):
    """Worker processes fetch their pages themselves: the request deadline, the size cap, an
    HTTP error and a passing failure end as they do when this process fetches them."""
    project.settings(allow_private_addresses=True, extract_workers=2, request_deadline=2,
                     read_timeout=10, set_aside_after=0, max_page_bytes=100_000)
    web.send("/page/1", page_html("Story 1", STORY))
    web.send("/page/2", page_html("Story 2", STORY), delay=20)  # never in time
    web.send("/page/3", "<p>" + "x" * 300_000 + "</p>")  # over the cap
    web.send("/page/4", "gone", status=404)
    web.send("/page/5", "busy", status=503, headers={"Retry-After": "120"})
    web.send("/feed.xml", rss([item(n, web.base) for n in range(1, 6)]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/feed.xml"))])
    started = time.monotonic()
    assert "5 new articles" in project.run("poll", "--once").output
    assert time.monotonic() - started < 15  # the 20-s page ended at its own 2-s deadline
    rows = {url.rsplit("/", 1)[1]: (text, error, retry) for url, text, error, retry in q(
        project, "SELECT url, text, extract_error, retry_at FROM articles")}
    assert "Monday" in rows["1"][0] and rows["1"][1] is None
    assert rows["2"][1] == "timed out after 2s" and rows["2"][2]  # kept for a retry
    assert rows["3"][1].startswith("body of ") or "cap" in rows["3"][1]
    assert rows["4"][1] == "HTTP 404" and rows["4"][2] is None  # not worth a retry
    assert rows["5"][1] == "HTTP 503" and rows["5"][2]
