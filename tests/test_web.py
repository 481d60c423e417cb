"""The reading room (`monitor serve`): the real ASGI app under uvicorn on 127.0.0.1, read over
HTTP and in the system Chromium (Playwright); labels through CSRF-protected forms."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from datetime import timedelta

import feedparser
import httpx
import pytest

from monitor.core import make_monitor
from monitor.web import make_app
from monitor.web.security import CSP

from .helpers import NOW, item, rss, stored_day
from .test_digest import BODY, DISTINCT

pytestmark = pytest.mark.dates  # pages are days; also run with the clock moved ahead
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = '<script>document.title="PWNED"</script><img src=x onerror=alert(1)>'


class Served:
    """uvicorn in a thread on a free port of 127.0.0.1."""

    def __init__(self, app) -> None:  # noqa: ANN001
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def room(project, web, page_html):
    web.send("/page/1", page_html("Police expand facial recognition", BODY))
    web.send("/page/2", page_html(f"Cameras {EVIL}", (DISTINCT[4][1] + " ") * 3))
    web.send("/page/3", page_html("Library opens", "The new library opened its doors. " * 9))
    web.send("/f.xml", rss([item(1, web.base, title="Police expand facial recognition"),
                            item(2, web.base, title=f"Cameras {EVIL.replace('<', '&lt;')}"),
                            item(3, web.base, title="Library opens")]),
             ctype="application/rss+xml")
    project.feeds([("City Desk", web.url("/f.xml"))])
    assert "3 new articles, 2 flagged" in project.run("poll", "--once").output
    monitor = make_monitor(project.paths)
    served = Served(make_app(monitor))
    yield served, stored_day(project.db), project
    served.close()
    monitor.close()


def test_day_story_search_and_feeds_read_well_and_run_nothing(room):
    served, day, project = room
    with httpx.Client(base_url=served.base) as client:
        home = client.get("/")
        assert home.status_code == 302 and home.headers["location"].startswith("/day/")
        page = client.get(f"/day/{day}")
        assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
        html = page.text
        assert "Police expand facial recognition" in html and "Library opens" not in html
        assert "<script>" not in html and "onerror=" not in html and "Cameras" in html
        assert html.count("<script") == 1 and '<script src="/static/keys.js" defer>' in html
        assert "<mark>facial recognition</mark>" in html
        assert 'name="csrftoken"' in html and "relevant</button>" in html
        assert f'href="/day/{day}?tag=' in html  # facets
        atom = feedparser.parse(client.get(f"/day/{day}.atom").content)
        assert atom.bozo == 0 and len(atom.entries) == 2
        data = client.get(f"/day/{day}.json").json()
        assert {s["title"] for s in data["stories"]} >= {"Police expand facial recognition"}
        with sqlite3.connect(project.db) as conn:
            story_id = conn.execute("SELECT id FROM articles WHERE title LIKE 'Police%'"
                                    ).fetchone()[0]
        assert f'href="/story/{story_id}"' in html

        story = client.get(f"/story/{story_id}").text
        assert "How the score was made" in story and "flagged" in story
        # concepts by their label, and the reason in plain words first
        assert "<td>facial recognition</td>" in story and "face_recognition" not in story
        assert "Flagged: score" in story and "of the 6 needed, with surveillance" in story
        assert "<mark>" in story and "City Desk" in story
        assert client.get("/story/999999").status_code == 404

        found = client.get("/search", params={"q": "cameras", "flagged": "1"}).text
        assert "2 stories" in found and "<mark>cameras</mark>" in found
        assert "1 story" in client.get("/search", params={"q": "recognition"}).text
        # what FTS5 cannot parse is searched as its words, not refused
        broken = client.get("/search", params={"q": '"library AND'})
        assert broken.status_code == 200 and "could not be read" not in broken.text
        assert "1 story" in broken.text
        assert "1 story" in client.get("/search", params={"q": "library"}).text
        feeds = client.get("/feeds").text
        assert "City Desk" in feeds and "pages waiting for a retry" in feeds
        assert client.get("/static/monitor.css").status_code == 200
        assert client.get("/day/not-a-day").status_code == 404
        # the day filtered by a tag facet
        tagged = client.get(f"/day/{day}", params={"tag": "technology:facial recognition"})
        assert "Police expand facial recognition" in tagged.text
        assert "all stories" in tagged.text


def test_a_post_without_its_csrf_token_is_refused(room):
    served, day, project = room
    with httpx.Client(base_url=served.base) as client:
        refused = client.post("/label", data={"story": "1", "label": "relevant"})
        assert refused.status_code == 403
        client.get(f"/day/{day}")  # a cookie now, but still no token in the form
        assert client.post("/label", data={"story": "1", "label": "relevant"}
                           ).status_code == 403
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT count(*) FROM labels").fetchone()[0] == 0


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"),
                    reason="no system Chromium (CI installs it)")
def test_labelling_in_a_real_browser_and_exporting_the_labels(room, tmp_path):
    from playwright.sync_api import sync_playwright

    served, day, project = room
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(f"{served.base}/day/{day}")
            assert page.title() == f"Digest for {day} · monitor"
            story = page.locator("article.story", has_text="Police expand facial recognition")
            story.get_by_role("button", name="relevant", exact=True).click()
            page.wait_for_load_state()
            assert page.url.endswith(f"/day/{day}")
            story = page.locator("article.story", has_text="Police expand facial recognition")
            assert "labelled relevant" in story.inner_text()
            other = page.locator("article.story").filter(
                has=page.locator("h2", has_text="Cameras"))
            other.get_by_role("button", name="not relevant").click()
            page.wait_for_load_state()
            assert dialogs == [] and page.title() != "PWNED"
            assert page.evaluate("document.querySelectorAll("
                                 "'script:not([src=\"/static/keys.js\"])').length") == 0
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390  # nothing wider than the phone
            page.screenshot(path=str(tmp_path / "day.png"), full_page=True)
        finally:
            browser.close()
    lines = [json.loads(line) for line in
             project.run("labels", "export").output.splitlines()]
    assert sorted((row["title"][:7], row["label"]) for row in lines) == [
        ("Cameras", 0), ("Police ", 1)]
    assert all(set(row) == {"id", "title", "text", "label", "url"} for row in lines)


def test_other_addresses_need_a_password(room, monkeypatch):
    served, day, project = room
    monkeypatch.delenv("MONITOR_WEB_PASSWORD", raising=False)
    refused = project.run("serve", "--host", "0.0.0.0", "--port", "1")
    assert refused.exit_code == 2 and "MONITOR_WEB_PASSWORD" in refused.output
    monitor = make_monitor(project.paths)
    guarded = Served(make_app(monitor, password="s3cret"))
    try:
        with httpx.Client(base_url=guarded.base) as client:
            assert client.get(f"/day/{day}").status_code == 401
            assert client.get(f"/day/{day}", auth=("any", "wrong")).status_code == 401
            assert client.get(f"/day/{day}", auth=("any", "s3cret")).status_code == 200
    finally:
        guarded.close()
        monitor.close()


def test_a_common_word_is_ranked_among_its_newest_matches(tmp_path, monkeypatch):
    """Ranking every match of a common word in a large archive takes seconds: past
    SEARCH_LIMIT matches, the best of the newest SEARCH_LIMIT come first, and the count says
    'more than'. Below it, every match is ranked. By default the newest come first."""
    import monitor.store
    from monitor.store import Store

    from .test_digest import _articles

    monkeypatch.setattr(monitor.store.search, "SEARCH_LIMIT", 3)
    store = Store(tmp_path / "m.db")
    texts = ["cameras " * 30, "cameras once", "cameras twice cameras", "cameras once more",
             "cameras and cameras and cameras"]  # the oldest matches best
    _articles(store, [(n, NOW, text) for n, text in enumerate(texts, 1)])
    total, rows = store.search("cameras", order="best")
    assert total == 4 and [r["id"] for r in rows] == [5, 3, 4]
    assert [r["id"] for r in store.search("cameras", order="best", limit=1, offset=1)[1]] == [3]
    total, rows = store.search("cameras")  # by default, the newest first
    assert total == 4 and [r["id"] for r in rows] == [5, 4, 3]
    total, rows = store.search("once")
    assert total == 2 and {r["id"] for r in rows} == {2, 4}
    total, rows = store.search("cameras", start=NOW + timedelta(days=1))
    assert (total, rows) == (0, [])
    store.close()


def test_the_search_page_says_when_it_ranks_only_the_newest(room, monkeypatch):
    import monitor.store.search
    import monitor.web

    served, _, _ = room
    for module in (monitor.store.search, monitor.web):
        monkeypatch.setattr(module, "SEARCH_LIMIT", 1)
    with httpx.Client(base_url=served.base) as client:
        page = client.get("/search", params={"q": "cameras", "order": "best"}).text
        assert "More than 1 matching articles, the best of the newest 1 first" in page
        assert page.count('class="result"') == 1
        newest = client.get("/search", params={"q": "cameras"}).text
        assert "More than 1 matching articles (narrow" in newest


def _token(client: httpx.Client, path: str) -> str:
    import re

    html = client.get(path).text
    found = re.search(r'name="csrftoken" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def test_odd_input_answers_a_page_not_a_server_error(room):
    served, day, project = room
    with httpx.Client(base_url=served.base) as client:
        for path in ("/day/0001-01-01", "/day/9999-12-31", "/day/9999-12-31.atom",
                     "/day/0001-01-01.json", "/search?q=police&to=9999-12-31",
                     "/search?q=police&from=0001-01-01",
                     "/search?q=police&page=99999999999999999999",
                     "/story/99999999999999999999", "/search?q=%22", "/search?q=%26%26"):
            answer = client.get(path)
            assert 400 <= answer.status_code < 500 or answer.status_code == 200, path
            assert answer.status_code != 200 or "day" not in path, path
        token = _token(client, "/story/1")
        huge = client.post("/label", data={"story": "99999999999999999999",
                                           "label": "relevant", "csrftoken": token})
        assert huge.status_code == 404
        multipart = client.post("/label", files={"story": (None, "1"), "label": (None, "x"),
                                                 "csrftoken": (None, token)})
        assert multipart.status_code == 415
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT count(*) FROM labels").fetchone()[0] == 0


def test_search_takes_what_people_type(room):
    served, day, project = room
    with httpx.Client(base_url=served.base) as client:
        for query in ("Ostrava's", "U.S.", "face-recognition", "Clearview AI?",
                      "Ostrava & cameras", "facial recognition: police", "street-cameras"):
            page = client.get("/search", params={"q": query})
            assert page.status_code == 200 and "could not be read" not in page.text, query
        found = client.get("/search", params={"q": "Ostrava's"}).text
        assert "Police expand facial recognition" in found
        assert "Police expand facial recognition" in client.get(
            "/search", params={"q": "facial-recognition"}).text
        # the advanced syntax still works, and a bare tag name matches any kind
        assert "Police expand facial recognition" in client.get(
            "/search", params={"q": '"facial recognition" AND ostrava'}).text
        tagged = client.get("/search", params={"q": "police", "tag": "facial recognition"})
        assert "Police expand facial recognition" in tagged.text


def test_other_hosts_are_refused_and_a_missing_database_is_503(room):
    served, day, project = room
    port = served.base.rsplit(":", 1)[1]
    with httpx.Client(base_url=served.base) as client:
        assert client.get(f"/day/{day}", headers={"Host": "evil.example"}).status_code == 400
        assert client.get(f"/day/{day}", headers={"Host": f"evil.example:{port}"}
                          ).status_code == 400
        assert client.get(f"/day/{day}", headers={"Host": f"localhost:{port}"}
                          ).status_code == 200
        project.db.rename(project.db.with_suffix(".moved"))
        gone = client.get(f"/day/{day}")
        assert gone.status_code == 503 and "cannot be read" in gone.text


def test_a_form_loaded_before_a_restart_still_posts(room):
    served, day, project = room
    with httpx.Client(base_url=served.base) as client:
        token = _token(client, "/story/1")
        cookies = dict(client.cookies)
    served.close()
    monitor = make_monitor(project.paths)
    again = Served(make_app(monitor))
    try:
        with httpx.Client(base_url=again.base, cookies=cookies) as client:
            posted = client.post("/label", data={"story": "1", "label": "relevant",
                                                 "csrftoken": token})
            assert posted.status_code == 303, posted.text
    finally:
        again.close()
        monitor.close()
    assert (project.db.parent / "monitor.db.web-secret").stat().st_mode & 0o077 == 0


def test_password_pages_are_not_cached_and_serve_needs_a_database(room, tmp_path):
    served, day, project = room
    monitor = make_monitor(project.paths)
    guarded = Served(make_app(monitor, password="s3cret"))
    try:
        with httpx.Client(base_url=guarded.base) as client:
            page = client.get(f"/day/{day}", auth=("any", "s3cret"))
            assert page.headers["cache-control"] == "no-store"
    finally:
        guarded.close()
        monitor.close()
    missing = tmp_path / "nothing-here.db"
    refused = project.run("--db", str(missing), "serve", "--port", "1")
    assert refused.exit_code == 1 and "no database at" in refused.output
    assert not missing.exists()


def _stored(store, rows):
    """rows: (id, title, text, cluster): stored through add_articles, then put in *cluster*."""
    from monitor.models import Article, Entry

    store.db.execute("INSERT OR IGNORE INTO feeds (url, name) VALUES ('http://f/', 'F')")
    arts = [Article(entry=Entry(feed_url="http://f/", guid=f"g{i}", url=f"http://f/{i}",
                                title=title, summary="", author=None, published=None),
                    text=text, title=title, author=None, published=None, language=None,
                    extract_error=None) for i, title, text, _ in rows]
    added = store.add_articles(arts, NOW, NOW - timedelta(days=30))
    with store.transaction():
        for (article_id, _), (_, _, _, cluster) in zip(added, rows, strict=True):
            store.db.conn.execute("UPDATE articles SET cluster_id = ? WHERE id = ?",
                                  [added[cluster - 1][0] if cluster else article_id,
                                   article_id])
    return [a for a, _ in added]


def test_search_finds_inflections_cjk_terms_and_one_result_per_story(tmp_path):
    from monitor.store import Store

    store = Store(tmp_path / "s.db")
    ids = _stored(store, [
        (1, "Readers at every junction", "The council added licence-plate readers.", 0),
        (2, "A camera on the square", "One camera watches the market.", 0),
        (3, "深圳扩大监控", "警方在全市部署了人脸识别摄像头，Hikvision 提供设备。", 0),
        (4, "Copy one", "Wire copy about facial recognition vans in the harbour.", 0),
        (5, "Copy two", "Wire copy about facial recognition vans in the harbour, again.", 4),
    ])
    found = {q: [r["id"] for r in store.search(q)[1]] for q in
             ("cameras", "reader", "junctions", "人脸识别", "监控", "Hikvision 人脸识别",
              "人脸识别 cameras")}
    assert found["cameras"] == [ids[1]] and found["reader"] == [ids[0]]
    assert found["junctions"] == [ids[0]]  # a title word, inflected
    assert found["人脸识别"] == [ids[2]] and found["监控"] == [ids[2]]
    assert found["Hikvision 人脸识别"] == [ids[2]] and found["人脸识别 cameras"] == []
    snippet = store.search("人脸识别")[1][0]["snippet"]
    assert "\x02人脸识别\x03" in snippet
    total, rows = store.search("facial recognition vans")
    assert total == 1 and [(r["id"], r["copies"]) for r in rows] == [(ids[4], 2)]
    total, rows = store.search("facial recognition vans", order="best")
    assert total == 1 and rows[0]["copies"] == 2
    store.close()


def test_an_archive_indexed_before_m017_is_searched_with_stems_and_cjk(tmp_path):
    from sqlite_utils import Database

    from monitor.store import Store
    from monitor.store.schema import migrations

    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="m017_search_stems_and_cjk")
    db["feeds"].insert({"url": "a"})
    db["articles"].insert_all([
        {"url": "u1", "feed_url": "a", "guid": "1", "title": "Cameras", "text": "cameras"},
        {"url": "u2", "feed_url": "a", "guid": "2", "title": "上海", "text": "人脸识别系统"}])
    db.close()
    store = Store(path)
    assert [r["url"] for r in store.search("camera")[1]] == ["u1"]
    assert [r["url"] for r in store.search("识别")[1]] == ["u2"]
    store.close()


def test_rolling_feeds_link_each_story_page_and_its_original(room):
    served, day, project = room
    with httpx.Client(base_url=served.base) as client:
        atom = client.get("/feed.atom")
        assert atom.headers["content-type"].startswith("application/atom+xml")
        parsed = feedparser.parse(atom.content)
        assert not parsed.bozo, parsed.bozo_exception
        assert len(parsed.entries) == 2
        for entry in parsed.entries:
            links = {link["rel"]: link["href"] for link in entry.links}
            assert links["alternate"].startswith(f"{served.base}/story/")
            assert links["related"].startswith(web_base(project))
            assert client.get(links["alternate"]).status_code == 200
        assert "<script" not in atom.text and "Cameras" in atom.text
        feed = client.get("/feed.json")
        assert feed.headers["content-type"].startswith("application/feed+json")
        data = feed.json()
        assert data["version"] == "https://jsonfeed.org/version/1.1"
        assert {i["url"] for i in data["items"]} == {e.link for e in parsed.entries}
        assert all(i["external_url"].startswith("http://") for i in data["items"])
        tagged = feedparser.parse(client.get("/feed.atom", params={"tag": "facial recognition"}
                                             ).content)
        assert [e.title for e in tagged.entries] == ["Police expand facial recognition"]
        assert feedparser.parse(client.get("/feed.json", params={"tag": "nothing"}).content
                                ).entries == []


def web_base(project) -> str:
    with sqlite3.connect(project.db) as conn:
        url = conn.execute("SELECT url FROM articles LIMIT 1").fetchone()[0]
    return url.split("/page/")[0]


def test_stars_notes_and_new_since_the_last_visit(room):
    served, day, project = room
    with httpx.Client(base_url=served.base) as client:
        token = _token(client, "/story/1")
        assert client.post("/star", data={"story": "1", "csrftoken": token, "star": "on",
                                          "back": "/saved"}).status_code == 303
        saved = client.get("/saved").text
        assert "Police expand facial recognition" in saved and "★ saved" in saved
        assert client.post("/label", data={"story": "1", "label": "relevant", "note":
                                           "the council vote matters", "csrftoken": token}
                           ).status_code == 303
        assert "the council vote matters" in client.get("/saved").text
        assert 'value="the council vote matters"' in client.get("/story/1").text
        assert client.post("/star", data={"story": "1", "csrftoken": token, "star": "off"}
                           ).status_code == 303
        assert "No story saved yet" in client.get("/saved").text
        assert client.post("/star", data={"story": "1", "star": "on"}).status_code == 403
        assert client.post("/star", data={"story": "999999", "csrftoken": token}
                           ).status_code == 404
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT note FROM labels").fetchall() == [
            ("the council vote matters",)]
    # a first visit marks nothing new and remembers when it was; a visit begun more than
    # half an hour after the last page seen marks what was flagged since as new
    with httpx.Client(base_url=served.base) as client:
        first = client.get(f"/day/{day}")
        assert "new</span>" not in first.text and "monitor_last" in first.cookies
        before = "2000-01-01T00:00:00+00:00"
        client.cookies.set("monitor_last", before)
        again = client.get(f"/day/{day}").text
        assert again.count('<span class="new">new</span>') == 3  # 2 stories and the legend
        assert client.cookies["monitor_seen"].strip('"') == before
        assert again.count('<span class="new">new</span>') == client.get(
            f"/day/{day}").text.count('<span class="new">new</span>')  # the same visit


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"),
                    reason="no system Chromium (CI installs it)")
def test_pages_fit_a_phone_read_in_the_dark_and_follow_the_keys(room, tmp_path):
    """At 1280 and 390 px, light and dark: nothing wider than the screen, the story first,
    badges at WCAG AA contrast; j, o, s and r do what the footer says."""
    from playwright.sync_api import sync_playwright

    served, day, project = room
    contrast = """(el) => {
      const rgb = (c) => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map((v) => {
        v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
      const lum = (c) => { const [r, g, b] = rgb(c); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
      const s = getComputedStyle(el);
      const a = lum(s.color), b = lum(s.backgroundColor);
      return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    }"""
    shots = os.environ.get("MONITOR_SCREENSHOTS") or str(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            for width, scheme in ((1280, "light"), (390, "light"), (390, "dark")):
                page = browser.new_page(viewport={"width": width, "height": 900},
                                        color_scheme=scheme)
                for path in (f"/day/{day}", "/story/1", "/search?q=cameras", "/saved",
                             "/feeds"):
                    page.goto(served.base + path)
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, \
                        (width, path)
                    for badge in page.locator(".flag").all():
                        assert page.evaluate(contrast, badge.element_handle()) >= 4.5
                    name = path.strip("/").split("/")[0].split("?")[0]
                    page.screenshot(path=f"{shots}/{width}-{scheme}-{name}.png",
                                    full_page=True)
                page.goto(served.base + "/story/1")
                heading = page.locator("h1").bounding_box()
                text = page.locator("section.text").bounding_box()
                table = page.locator("details.why").bounding_box()
                assert heading and text and table and heading["y"] < text["y"] < table["y"]
                background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert (background == "rgb(21, 21, 23)") == (scheme == "dark")
                page.close()
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{served.base}/day/{day}")
            page.keyboard.press("j")
            first = page.locator("[data-story].selected")
            assert first.count() == 1
            title = first.locator("h2 a").inner_text()
            page.keyboard.press("o")
            page.wait_for_url("**/story/*")
            assert page.locator("h1").inner_text() == title
            with page.expect_navigation():
                page.keyboard.press("s")
            assert "★ saved" in page.content()
            with page.expect_navigation():
                page.keyboard.press("r")
            assert "labelled relevant" in page.locator("form.label").inner_text()
            page.keyboard.press("/")
            assert page.evaluate("document.activeElement.type") == "search"
        finally:
            browser.close()
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT count(*) FROM stars").fetchone()[0] == 1
        assert conn.execute("SELECT label FROM labels").fetchall() == [("relevant",)]


def test_what_people_type_finds_what_is_there(tmp_path):
    """The queries of issue 24 over stories that hold what they ask for, and over a Chinese
    archive: each finds its story, and only it."""
    from monitor.store import Store

    store = Store(tmp_path / "q.db")
    ids = _stored(store, [
        (1, "Hikvision's cameras in schools", "Schools bought Hikvision's thermal cameras.", 0),
        (2, "U.S. bans Dahua", "The U.S. Commerce Department added Dahua to a list.", 0),
        (3, "Face-recognition vans", "Police used face-recognition vans at the match.", 0),
        (4, "Sheriff adds licence plate readers", "The county's licence plate readers "
         "(ALPR) log every car.", 0),
        (5, "杭州城市大脑", "杭州市政府表示，城市大脑已接入全市五万个监控摄像头。", 0),
        (6, "新疆的人脸识别", "报道称，当地警方在检查站部署了人脸识别闸机和手机扫描设备。", 0),
        (7, "Library opens", "The new library opened with 40,000 books.", 0),
    ])
    for query, wanted in (("Hikvision's", 1), ("U.S.", 2), ("face-recognition", 3),
                          ("camera", 1), ("licence plate readers (ALPR)", 4),
                          ("监控摄像头", 5), ("城市大脑", 5), ("人脸识别", 6), ("检查站", 6)):
        assert [r["id"] for r in store.search(query)[1]] == [ids[wanted - 1]], query
    store.close()
