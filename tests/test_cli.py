"""The commands a user runs: demo, digest, explain, rescore; and the documented surface."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import date

import feedparser
import pytest

import monitor
from monitor.cli import cli
from monitor.config import Settings

from .helpers import ROOT, item, rss, stored_day
from .test_pipeline import STORY

pytestmark = pytest.mark.dates  # also run with the clock moved ahead (.ci/run)


def test_demo_runs_offline_and_flags_the_repost_first(tmp_path):
    run = subprocess.run([sys.executable, "-m", "monitor", "demo", "--format", "json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    digest = json.loads(run.stdout)
    titles = [s["title"] for s in digest["stories"]]
    assert titles[0].startswith("Harbourton's Safe City Cameras Now Recognise Faces")
    assert not any(t in " ".join(titles) for t in ("Derby", "Prostate", "Smart-Meter"))
    first = digest["stories"][0]
    concepts = {m["concept"] for m in first["matches"]}
    assert {"face_recognition", "programmes", "smart_city"} <= concepts
    assert "Spread the love" not in first["excerpt"] and "Read More" not in first["excerpt"]
    # the repost carried by two feeds is stored once; the original, elsewhere, joins its story
    assert "6 new articles, 3 flagged" in run.stderr
    # the original at the Ledger, and the repost as carried by both feeds
    assert sorted((s["feed"], s["url"].rsplit("/", 1)[1]) for s in first["sources"]) == [
        ("City Desk", "harbourton-ledger-original.html"),
        ("City Desk", "harbourton-safe-city.html"),
        ("Open Wire Reposts", "harbourton-safe-city.html")]
    assert len(digest["stories"]) == 2
    assert "2 unchanged; 0 new articles" in run.stderr  # the second poll got 304s


def test_demo_says_how_to_browse_it_and_serves_its_archive(tmp_path):
    import signal
    import socket

    import httpx

    assert "`monitor demo --serve`" in subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--format", "text"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120).stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--serve", "--port",
                             str(port), "--format", "text"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "the reading room at" in line:
                break
        base = f"http://127.0.0.1:{port}"
        for _ in range(50):  # uvicorn binds a moment after the line
            try:
                day = httpx.get(base + "/", timeout=5).headers["location"]
                break
            except httpx.ConnectError:
                import time

                time.sleep(0.1)
        assert "Harbourton" in httpx.get(base + day, timeout=5).text
        assert "Harbourton" in httpx.get(base + "/search", params={"q": "camera"},
                                         timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 143  # a clean stop, as every command ends on SIGTERM


def test_digest_explain_and_rescore(project, httpserver, page_html):
    base = httpserver.url_for("")[:-1]
    httpserver.expect_request("/feed.xml").respond_with_data(rss([
        item(1, base, title="Police expand facial recognition"),
        item(2, base, title="Library opens")]))
    httpserver.expect_request("/page/1").respond_with_data(
        page_html("Police expand facial recognition", STORY), content_type="text/html")
    httpserver.expect_request("/page/2").respond_with_data(
        page_html("Library opens", "The new library opened with 40,000 books and a cafe. " * 4),
        content_type="text/html")
    project.feeds([("Test", httpserver.url_for("/feed.xml"))])
    assert project.run("poll", "--once").exit_code == 0

    day = stored_day(project.db)
    out = project.run("digest", "--format", "json", "--date", day)
    stories = json.loads(out.output)["stories"]
    assert [s["title"] for s in stories] == ["Police expand facial recognition"]
    assert set(stories[0]) >= {"title", "url", "feed", "published", "score", "matches"}
    assert stories[0]["feed"] == "Test"
    assert "facial recognition" in project.run("digest", "--format", "md", "--date", day).output
    assert json.loads(project.run("digest", "--format", "json", "--date", "2001-01-01")
                      .output)["stories"] == []

    explained = project.run("explain", f"{base}/page/1", "--format", "json")
    data = json.loads(explained.output)
    assert data["flagged"] and data["matches"][0]["contribution"] > 0
    assert "face_recognition" in project.run("explain", "1").output
    assert project.run("explain", "999").exit_code == 1

    # a stricter rule: the dry run lists the story leaving the digest and changes nothing
    kw = project.paths.keywords
    kw.write_text(kw.read_text().replace("threshold: 6.0", "threshold: 600.0"))
    dry = project.run("rescore", "--dry-run")
    assert "leaves the digest: [1] Police expand facial recognition" in dry.output
    assert "1 stories would change" in dry.output
    assert json.loads(project.run("digest", "--format", "json", "--date", day).output)["stories"]
    assert "1 stories changed" in project.run("rescore").output
    assert json.loads(project.run("digest", "--format", "json", "--date", day).output)[
        "stories"] == []


def test_every_setting_and_command_is_documented():
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`{field.alias or name}`" in readme, f"setting {name} missing from README"
        assert field.description, name
    for name in cli.commands:
        assert re.search(rf"`monitor {name}\b", readme), f"command {name} missing from README"


def test_public_api():
    assert sorted(monitor.__all__) == [
        "AlreadyRunning", "Article", "Blocked", "ConfigError", "CycleSummary", "Entry",
        "ExtractError", "FeedConfig", "FeedResult", "FetchError", "Interrupted", "InvalidLink",
        "MailError", "Match", "Monitor", "MonitorError", "ParseError", "Paths", "Score", "SetAside",
        "Settings", "StorageError", "TooLarge", "make_monitor"]


def test_daily_digest_files_are_written_whole(project, httpserver, page_html):
    from monitor.core import make_monitor

    base = httpserver.url_for("")[:-1]
    httpserver.expect_request("/feed.xml").respond_with_data(rss([
        item(1, base, title="Police expand facial recognition")]))
    httpserver.expect_request("/page/1").respond_with_data(
        page_html("Police expand facial recognition", STORY), content_type="text/html")
    project.feeds([("Test", httpserver.url_for("/feed.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1,
                     digest_dir=str(project.root / "digests"))
    project.run("poll", "--once")
    day = stored_day(project.db)
    monitor = make_monitor(project.paths)
    try:
        written = monitor.write_daily_digest(date.fromisoformat(day))
    finally:
        monitor.close()
    assert sorted(p.name for p in written) == sorted(
        f"{day}.{s}" for s in ("md", "html", "json", "txt", "atom"))
    files = {p.suffix: p.read_text(encoding="utf-8") for p in written}
    assert json.loads(files[".json"])["stories"][0]["title"].startswith("Police")
    assert feedparser.parse(files[".atom"]).entries[0].title.startswith("Police")
    assert files[".html"].rstrip().endswith("</html>")
    for suffix in (".md", ".txt", ".html"):  # every file whole, down to the feed footer
        assert "Police expand facial recognition" in files[suffix], suffix
        assert "1 stories" in files[suffix] or "1 story" in files[suffix], suffix
    assert not list((project.root / "digests").glob(".*"))  # no temporary files left behind


def test_labels_import_and_export_round_trip(project, tmp_path):
    """Examples from a file live beside the reading room's labels; importing again updates
    them by id; bad lines are named by file and line and the rest is imported."""
    source = tmp_path / "team.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "a1", "title": "Police expand facial recognition",
                    "text": "Cameras in the city centre.", "label": 1,
                    "url": "https://example.org/a1"}),
        json.dumps({"id": 7, "title": "Library opens", "text": "Books.", "label":
                    "not_relevant"}),
        "{not json",
        json.dumps({"id": "b", "title": "x", "text": "y", "label": "maybe"}),
        json.dumps({"title": "no id", "text": "y", "label": 0}),
        json.dumps({"id": "人脸", "title": "新疆的人脸识别", "text": "警方部署了人脸识别闸机。",
                    "label": "relevant"}),
    ]) + "\n", encoding="utf-8")
    run = project.run("labels", "import", str(source))
    assert run.exit_code == 0, run.output
    assert "3 examples added, 0 updated, 3 lines skipped" in run.output
    assert f"{source}:3: not JSON" in run.output and f"{source}:4: label must be" in run.output
    assert f"{source}:5: an id" in run.output
    again = project.run("labels", "import", str(source))
    assert "0 examples added, 3 updated" in again.output
    out = tmp_path / "out.jsonl"
    assert project.run("labels", "export", "--out", str(out)).exit_code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["id"], r["label"]) for r in rows) == [("7", 0), ("a1", 1), ("人脸", 1)]
    assert {r["url"] for r in rows} == {"https://example.org/a1", None}
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    other = project.run("--db", str(fresh / "other.db"), "labels", "import", str(out))
    assert "3 examples added" in other.output
    nothing = tmp_path / "bad.jsonl"
    nothing.write_text("{}\n")
    assert project.run("labels", "import", str(nothing)).exit_code == 1


def test_learn_reports_against_the_rules_and_keeps_the_model_as_data(project, tmp_path):
    from .helpers import DATA

    one_kind = tmp_path / "one.jsonl"
    one_kind.write_text(json.dumps({"id": 1, "title": "t", "text": "x", "label": 1}) + "\n")
    project.run("labels", "import", str(one_kind))
    refused = project.run("learn")
    assert refused.exit_code == 1 and "labels of both kinds" in refused.output
    assert project.run("labels", "import", str(DATA / "relevance.jsonl")).exit_code == 0
    run = project.run("learn")
    assert run.exit_code == 0, run.output
    assert "5-fold cross-validation" in run.output and "towards relevant:" in run.output
    rules, learned = (line for line in run.output.splitlines() if "precision" in line)
    assert rules.split()[0] == "rules" and learned.split()[0] == "learned"
    with sqlite3.connect(project.db) as conn:
        labels, data = conn.execute("SELECT labels, data FROM models").fetchone()
    model = json.loads(data)  # data, not a pickle
    assert labels == 29 and len(model["weights"]) == len(model["vocabulary"]) + len(
        model["features"])
    # polling and scoring never load scikit-learn or SciPy
    probe = subprocess.run([sys.executable, "-c", "import sys, monitor.core, monitor.cli, "
                            "monitor.pipeline.workers, monitor.service; "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                            "('sklearn', 'scipy')))"], capture_output=True, text=True)
    assert probe.stdout.strip() == "[]", probe.stdout


def _labelled_set(path, n=24):
    """Relevant stories the rules cannot name (a made-up programme, "Zorblax") and ordinary
    ones that are not, n of each."""
    import random

    rng = random.Random(7)
    words = ("council budget school road park library market river festival bus weather "
             "museum bridge harvest concert").split()
    rows = []
    for i in range(n):
        filler = " ".join(rng.choice(words) for _ in range(40))
        rows.append({"id": f"z{i}", "title": f"Zorblax rollout reaches district {i}",
                     "text": f"The Zorblax programme tracks residents. {filler}", "label": 1})
        rows.append({"id": f"o{i}", "title": f"The {rng.choice(words)} report {i}",
                     "text": f"An ordinary week. {filler}", "label": 0})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_what_is_learned_decides_once_there_are_enough_labels(project, tmp_path):
    """Labels teach what the rules cannot name: after `learn`, an unseen Zorblax story is
    flagged by `score --db`, explained in two parts, and the model survives a restart; with
    learning off, or with too few labels, the rules alone decide."""
    story = json.dumps({"id": "new", "title": "Zorblax comes to the harbour", "text":
                        "Officials said the Zorblax programme starts on Monday, tracking "
                        "residents."})
    few = project.run("labels", "import", str(_labelled_set(tmp_path / "few.jsonl", 10)))
    assert few.exit_code == 0 and project.run("learn").exit_code == 0  # 10 of each
    scored = json.loads(project.run("--db", str(project.db), "score", input=story + "\n"
                                    ).output)
    assert scored["flagged"] is False and "learned" not in scored  # too few to act
    assert project.run("labels", "import", str(_labelled_set(tmp_path / "more.jsonl"))
                       ).exit_code == 0
    learned = project.run("learn")
    assert learned.exit_code == 0 and "zorblax" in learned.output.lower()
    with_db = project.run("--db", str(project.db), "score", input=story + "\n")
    scored = json.loads(with_db.output)
    assert scored["flagged"] is True and scored["rules_flagged"] is False
    assert scored["learned"] > 0 and "learned from 48 labels" in scored["reason"]
    rules_only = json.loads(project.run("score", input=story + "\n").output)
    assert rules_only["flagged"] is False  # no database named: the rules
    keywords = project.paths.keywords  # the reader edits the keywords: the model still acts
    keywords.write_text(keywords.read_text().replace("threshold: 6.0", "threshold: 6.5", 1))
    edited = json.loads(project.run("--db", str(project.db), "score", input=story + "\n").output)
    assert edited["flagged"] is True and "learned from 48 labels" in edited["reason"]
    settings = project.root / "config" / "settings.yaml"
    settings.write_text(settings.read_text() + "learning: false\n")
    off = json.loads(project.run("--db", str(project.db), "score", input=story + "\n").output)
    assert off["flagged"] is False and "learned" not in off


def test_a_model_made_another_way_waits_until_the_service_learns_again(project, tmp_path):
    """After an upgrade that changes how features are made, the stored model no longer acts
    (the rules decide) and the service's daily relearn replaces it without new labels."""
    from monitor.core import make_monitor
    from monitor.scoring.learned import SCHEME

    story = json.dumps({"id": "new", "title": "Zorblax comes to the harbour", "text":
                        "Officials said the Zorblax programme tracks residents."}) + "\n"
    project.run("labels", "import", str(_labelled_set(tmp_path / "z.jsonl")))
    assert project.run("learn").exit_code == 0
    assert json.loads(project.run("--db", str(project.db), "score", input=story).output
                      )["flagged"] is True
    with sqlite3.connect(project.db) as conn:
        conn.execute("UPDATE models SET data = json_set(data, '$.scheme', ?)", [SCHEME - 1])
    older = json.loads(project.run("--db", str(project.db), "score", input=story).output)
    assert older["flagged"] is False and "learned" not in older
    monitor = make_monitor(project.paths)
    try:
        assert monitor.rules.learned is None
        model = monitor.relearn()
        assert model is not None and model["scheme"] == SCHEME
        assert monitor.rules.learned is not None and monitor.relearn() is None  # nothing new
    finally:
        monitor.close()


def test_numpy_applies_the_model_as_scikit_learn_does(tmp_path):
    from monitor.config import Paths
    from monitor.core import load_config
    from monitor.scoring import score
    from monitor.scoring.learn import Labelled, train
    from monitor.scoring.learned import Learned, rule_features

    from .helpers import DATA

    rules = load_config(Paths.resolve(None, None, None, None), need_feeds=False).rules
    rows = [json.loads(line) for line in (DATA / "relevance.jsonl").read_text().splitlines()]
    rows += [json.loads(line) for line in _labelled_set(tmp_path / "z.jsonl").read_text(
        ).splitlines()]
    examples = [Labelled(r["title"], r["text"], bool(r["label"])) for r in rows]
    data, decisions = train(examples, rules)
    learned = Learned.from_data(data)
    for e, expected in zip(examples, decisions, strict=True):
        got, _ = learned.logit(e.title, e.text, rule_features(score(rules, e.title, e.text),
                                                              rules.threshold))
        assert abs(got - expected) < 1e-9


def test_a_poll_flags_what_was_learned_and_a_label_has_the_last_word(project, web, page_html,
                                                                     tmp_path):
    """The model reaches the extraction workers: a poll flags the story the rules alone pass
    over, `explain` gives both parts, and after the reader labels it not relevant, `rescore`
    takes it out of the digest."""
    from monitor.core import make_monitor

    project.run("labels", "import", str(_labelled_set(tmp_path / "z.jsonl")))
    assert project.run("learn").exit_code == 0
    web.send("/page/1", page_html("Zorblax comes to the harbour", (
        "Officials said the Zorblax programme starts on Monday, tracking residents. ") * 4))
    web.send("/f.xml", rss([item(1, web.base, title="Zorblax comes to the harbour")]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=2)
    assert "1 new articles, 1 flagged" in project.run("poll", "--once").output
    explained = " ".join(project.run("explain", "1").output.split())  # wrapped at 80 columns
    assert "learned from 48 labels" in explained and "The rules alone: Not flagged" in explained
    day = stored_day(project.db)
    digest = project.run("digest", "--format", "text", "--date", day).output
    why = next(line.strip() for line in digest.splitlines() if "learned from" in line)
    assert why.startswith("learned from 48 labels: +") and "zorblax" in why
    assert why.endswith("the rules alone: not flagged")
    story = json.loads(project.run("digest", "--format", "json", "--date", day).output
                       )["stories"][0]
    assert story["learned"]["labels"] == 48 and story["learned"]["rules_flagged"] is False
    monitor = make_monitor(project.paths)  # a new process's monitor: the model is kept
    try:
        assert monitor.rules.learned is not None
        assert monitor.label(1, "not_relevant")
    finally:
        monitor.close()
    changed = project.run("rescore")
    assert "leaves the digest: [1]" in changed.output and "labelled not relevant" in \
        changed.output
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT flagged FROM articles").fetchall() == [(0,)]


def test_labels_suggest_keyword_edits_with_their_effect(project, web, page_html, tmp_path):
    """From labels the rules get wrong, `labels suggest` proposes the term that separates
    them, in a concept that flags them, and says what it does to the labels and to the
    stored articles; labels the rules already get right argue for nothing."""
    import random

    rng = random.Random(3)
    filler = ("council budget school road park library market river festival bus weather "
              "museum bridge harvest concert").split()
    verbs = ["reaches", "arrives in", "expands to", "is switched on in", "comes to", "spreads to"]
    places = ["the harbour", "district nine", "the old town", "the suburbs", "the airport"]
    rows = []
    for i in range(24):
        text = " ".join(rng.choice(filler) for _ in range(30))
        rows.append({"id": f"z{i}", "title": f"Zorblax {rng.choice(verbs)} "
                     f"{rng.choice(places)}", "text": f"{text}. Zorblax follows people. {text}",
                     "label": 1})
        rows.append({"id": f"o{i}", "title": f"The {rng.choice(filler)} report", "text": text,
                     "label": 0})
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "no labels yet" in project.run("labels", "suggest").output
    assert project.run("labels", "import", str(labels)).exit_code == 0
    web.send("/page/1", page_html("Zorblax comes to the harbour", (
        "Officials said Zorblax starts on Monday in the harbour district. ") * 4))
    web.send("/page/2", page_html("Harbour festival", "The festival returns. " * 8))
    web.send("/f.xml", rss([item(1, web.base, title="Zorblax comes to the harbour"),
                            item(2, web.base, title="Harbour festival")]),
             ctype="application/rss+xml")
    project.feeds([("F", web.url("/f.xml"))])
    project.settings(allow_private_addresses=True, extract_workers=1)
    assert "2 new articles, 0 flagged" in project.run("poll", "--once").output
    run = project.run("labels", "suggest")
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert lines[0].startswith("the rules on 48 labels: precision 0.000 recall 0.000")
    assert re.match(r'1\. add "zorblax" to concept \w+ \(terms\)', lines[1]), run.output
    assert "recall 1.000 F1 1.000 (24 found, 0 false alarms, 0 missed)" in lines[2]
    assert "stored articles: 1 more flagged, 0 fewer (of 1 holding it)" in lines[3]
    right = tmp_path / "right.jsonl"  # labels the rules agree with: nothing to suggest
    right.write_text(json.dumps({"id": "f", "title": "Police expand facial recognition",
                                 "text": STORY, "label": 1}) + "\n")
    fresh = tmp_path / "fresh.db"
    project.run("--db", str(fresh), "labels", "import", str(right))
    assert "no edit of one term" in project.run("--db", str(fresh), "labels", "suggest").output
