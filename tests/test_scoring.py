"""The scorer: matching that survives real text, explanations, and a quality gate."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from monitor.scoring import load_rules, score
from monitor.scoring.rules import RuleSpec, compile_rules

from .helpers import DATA, ROOT


@pytest.fixture(scope="module")
def rules():
    return load_rules(ROOT / "config" / "keywords.yaml")


def mini(**extra):
    spec = {"threshold": 1, "concepts": {
        "tech": {"role": "surveillance", "weight": 2, "terms": {
            "en": ["face recognition", "camera", "surveil*"], "zh": ["人脸识别"]}}}}
    spec.update(extra)
    return compile_rules(RuleSpec.model_validate(spec))


def terms(s):
    return {(m.term, m.field, m.count) for m in s.matches}


def test_hyphens_case_plurals_and_boundaries():
    r = mini()
    s = score(r, "", "FACE-RECOGNITION and Face Recognition; two cameras, one camera. "
                     "Cameraman and recognitions do not count. Surveilled, surveillance.")
    assert terms(s) == {("face recognition", "lead", 2), ("camera", "lead", 2),
                        ("surveil*", "lead", 2)}


def test_cjk_substrings_and_full_width_forms():
    s = score(mini(), "", "警方在全市部署人脸识别系统。ＣＡＭＥＲＡ")
    assert terms(s) == {("人脸识别", "lead", 1), ("camera", "lead", 1)}


def test_repeats_have_diminishing_returns_and_length_wins_nothing(rules):
    story = ("Police installed facial recognition cameras across the city centre, and "
             "residents say they were not asked. ")
    once = score(rules, "", story)
    padded = score(rules, "", story + "Filler text about the weather. " * 2000 + story * 50)
    assert padded.score < once.score * 1.6
    # weight 2 x lead boost 1.5 x (1 + 1/2 + 1/4 + ...) = at most 6, however long
    assert score(mini(repeat=0.5), "", "camera " * 1000).score < 6.001


def test_title_counts_more_than_body():
    r = mini()
    assert score(r, "camera", "").score > score(r, "", "x " * 400 + "camera").score


def test_catastrophic_regex_is_refused_or_bounded(caplog):
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="repeats a repeated group"):
        mini(concepts={"c": {"role": "surveillance", "regex": ["(a+)+$"]}})
    # a pattern the static check lets through still runs under a time limit (this one
    # backtracks exponentially on a run of a's); reported once, counted as no match
    slow = mini(concepts={"c": {"role": "surveillance", "regex": [r"(a|aa)*\d"]}})
    with caplog.at_level(logging.WARNING, logger="monitor.scoring"):
        for _ in range(3):
            assert score(slow, "", "a" * 40).matches == ()
    hits = [r for r in caplog.records if "time limit" in r.getMessage()]
    assert len(hits) == 1 and "(a|aa)*" in hits[0].outcome


def test_explanation_and_tags(rules):
    s = score(rules, "Hyderabad police add facial recognition to city CCTV",
              "The Hyderabad police will run Hikvision cameras with facial recognition across "
              "the city's CCTV network, officials said, and residents are worried.")
    assert s.flagged
    by_concept = {m.concept for m in s.matches}
    assert {"face_recognition", "cameras", "police", "surveillance_vendors"} <= by_concept
    assert all(m.contribution and m.field in ("title", "lead", "body") for m in s.matches)
    assert s.tags["vendor"] == ["Hikvision"]
    assert "Hyderabad" in s.tags["place"] and "India" not in s.tags["place"]
    assert "facial recognition" in s.tags["technology"]


def _f1(rules, path):
    tp = fp = fn = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        flagged = score(rules, row["title"], row["text"]).flagged
        tp += flagged and row["label"] == 1
        fp += flagged and row["label"] == 0
        fn += (not flagged) and row["label"] == 1
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return precision, recall, 2 * precision * recall / (precision + recall)


def test_quality_gate_on_our_labelled_set(rules):
    """Pinned floors: a change to keywords.yaml that loses quality fails here."""
    precision, recall, f1 = _f1(rules, DATA / "relevance.jsonl")
    assert precision >= 0.92 and recall >= 0.9 and f1 >= 0.92, (precision, recall, f1)


def test_monitor_score_round_trip(tmp_path):
    lines = [{"id": "a", "title": "Police roll out face recognition cameras in the city centre",
              "text": "The city police will use facial recognition on street cameras, "
                      "officials said. Residents and civil liberties groups object."},
             {"id": 7, "title": "Banana bread", "text": "Mash three bananas with butter."},
             {"id": "c", "title": "", "text": ""}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "monitor", "score", str(src)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    result = [json.loads(x) for x in out]
    assert [r["id"] for r in result] == ["a", 7, "c"]
    assert [r["flagged"] for r in result] == [True, False, False]
    assert {"term", "concept", "field", "count", "contribution"} <= set(result[0]["matches"][0])
    via_stdin = subprocess.run([sys.executable, "-m", "monitor", "score"], cwd=ROOT,
                               input=src.read_text(), capture_output=True, text=True, check=True)
    assert via_stdin.stdout.splitlines() == out


def test_footage_in_an_incident_is_not_surveillance_technology(rules):
    """Crime news that uses a camera's footage as evidence (a robbery caught on CCTV, a child
    found through a doorbell camera, surveillance video shown at a trial, card skimmers,
    officers studying CCTV after a riot) is not flagged, and the explanation says what the
    incident-evidence terms took away; stories about the technology itself (a city buying
    face-recognition cameras, a camera network expanded after a shooting, a court ruling on
    police facial recognition) stay flagged."""
    rows = [json.loads(line) for line in (DATA / "incidents.jsonl").read_text().splitlines()]
    for row in rows:
        s = score(rules, row["title"], row["text"])
        assert s.flagged == bool(row["label"]), (row["id"], s.reason)
        if not row["label"]:
            taken = [m for m in s.matches if m.concept == "incident_evidence"]
            assert taken and all(m.contribution < 0 for m in taken), row["id"]


def test_suggest_a_negative_term_for_false_alarms(rules):
    """Stories the rules flag and the reader labelled not relevant, all naming an auction
    house: the suggestion puts its name in a negative concept, which un-flags them and
    leaves the relevant ones flagged."""
    from monitor.scoring.learn import Labelled
    from monitor.scoring.suggest import suggest

    examples = []
    for i in range(6):
        examples.append(Labelled(
            f"Glimbo sale: police CCTV cameras for the city, lot {i}",
            "Glimbo auction house sells used police CCTV cameras from the city council.", False))
        examples.append(Labelled(
            f"Police expand CCTV cameras across the city centre {i}",
            "The city council and police said new CCTV cameras with facial recognition "
            "will watch the square.", True))
    base, edits = suggest(examples, rules)
    assert (base.found, base.false_alarms, base.missed) == (6, 6, 0)
    best = edits[0]
    assert best.kind == "negative" and best.term == "glimbo"
    assert "negative" in best.rules.concepts[best.what.split()[4]].roles
    assert (best.after.found, best.after.false_alarms, best.after.f1) == (6, 0, 1.0)
    assert suggest([e for e in examples if e.relevant], rules)[1] == []
