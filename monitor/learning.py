"""Learning from the reader's labels against the archive: the reading room's labels and the
imported examples gathered (each text once), a model trained on them (scoring/learn.py) and
kept in the database; the model attached to the rules when it may act; stored articles
scored again, each labelled one following its label."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .errors import LabelsError
from .models import ScoreUpdate
from .scoring import Rules, score
from .scoring.learn import Labelled
from .scoring.suggest import Edit, Quality
from .scoring.suggest import suggest as edits_from_labels
from .store import Store


def attach(store: Store, rules: Rules, learning: bool) -> Rules:
    """*rules* with the database's latest model attached when it may act: learning is on and
    the model is trusted (before that, and with learning off, scoring is exactly the
    rules)."""
    from .scoring.learned import Learned

    if not learning:
        return rules if rules.learned is None else replace(rules, learned=None)
    # every Monitor attaches (each web page opens one): the model itself is read only when
    # the database's latest is not the one these rules carry already
    if rules.learned is not None and rules.learned.model_id == store.latest_model_id():
        return rules
    data = store.latest_model()
    learned = Learned.from_data(data) if data is not None and trusted(data) else None
    if learned is None and rules.learned is None:
        return rules
    return replace(rules, learned=learned)


def trusted(model: dict[str, Any]) -> bool:
    """A model acts once it came from MIN_PER_CLASS labels of each kind and, cross-validated
    on those labels, did better than the rules alone (F1): labels that only repeat what the
    rules already get right change nothing. A model whose features were made
    another way (SCHEME) waits for `monitor learn`."""
    from .scoring.learn import MIN_PER_CLASS
    from .scoring.learned import SCHEME

    check = model.get("cross_validated")
    if not check or min(model["labels"].values()) < MIN_PER_CLASS or \
            model.get("scheme") != SCHEME:
        return False
    return bool(check["learned"]["f1"] > check["rules"]["f1"])


def due(store: Store) -> bool:
    """Labels given or imported since the latest model (or labels and no model yet), or a
    latest model whose features were made another way (after an upgrade)."""
    from .scoring.learned import SCHEME

    newest = store.newest_label_at()
    model = store.latest_model()
    return newest is not None and (model is None or newest > model["created_at"]
                                   or model.get("scheme") != SCHEME)


def relearn(store: Store, rules: Rules, now: datetime) -> dict[str, Any] | None:
    """learn() when labels came since the latest model; None when nothing is new or the
    labels are not of both kinds yet."""
    if not due(store):
        return None
    try:
        return learn(store, rules, now)
    except LabelsError:
        return None


def learn(store: Store, rules: Rules, now: datetime) -> dict[str, Any]:
    """Train on every label and keep the model; returns it with its cross-validated quality
    against the rules. LabelsError when the labels are not of both kinds."""
    from .scoring.learn import train

    examples = labelled(store)
    if {e.relevant for e in examples} != {True, False}:
        raise LabelsError("learning needs labels of both kinds, relevant and not relevant "
                          f"({len(examples)} labelled so far)")
    model, _ = train(examples, replace(rules, learned=None))
    model["id"] = store.save_model(model, len(examples), rules.version, now)
    return model


def export_lines(store: Store) -> Iterator[str]:
    """JSON lines {id, title, text, label (1 relevant, 0 not), url}: the reading room's
    labels, then the imported examples (for eval_relevance.py, or another archive)."""
    for row in [*store.labelled_articles(), *store.examples()]:
        key = row.pop("key", None)
        yield json.dumps({"id": row.pop("id", key), **row,
                          "label": 1 if row["label"] == "relevant" else 0}, ensure_ascii=False)


def labelled(store: Store) -> list[Labelled]:
    """Every label, the reading room's and the imported examples', each text once."""
    seen: set[tuple[str, str]] = set()
    examples = []
    for row in [*store.labelled_articles(), *store.examples()]:
        key = (row["title"] or "", row["text"] or "")
        if key not in seen and any(key):
            seen.add(key)
            examples.append(Labelled(key[0], key[1], row["label"] == "relevant"))
    return examples


# articles scored both ways per suggestion, the newest: a word in a third of 100,000 articles
# took 11 s a suggestion to score them all
SUGGEST_NEWEST = 5000


def suggest(store: Store, rules: Rules, limit: int) -> tuple[Quality, list[Suggestion]]:
    """Edits to the keywords that the labels argue for (scoring/suggest.py), each with what
    it would change among the stored articles, by the rules alone (as `rescore --dry-run`
    counts, before labels): how many it would flag and unflag, of how many it touches."""
    base, edits = edits_from_labels(labelled(store), rules, limit)
    alone = replace(rules, learned=None)
    out = []
    for edit in edits:
        low, high = sorted((alone.threshold, edit.rules.threshold))
        touched, rows = store.articles_holding(edit.term, SUGGEST_NEWEST) if edit.term else \
            store.articles_scored(low, high, SUGGEST_NEWEST)
        scored = flagged = unflagged = 0
        for row in rows:
            title, text = row["title"] or "", row["text"] or ""
            was, now = score(alone, title, text).flagged, score(edit.rules, title, text).flagged
            scored += 1
            flagged += now and not was
            unflagged += was and not now
        out.append(Suggestion(edit, touched, scored, flagged, unflagged))
    return base, out


@dataclass(frozen=True)
class Suggestion:
    edit: Edit
    touched: int  # stored articles the edit could change (holding the term, or near the line)
    scored: int  # the newest of those, scored both ways (SUGGEST_NEWEST at most)
    flagged: int  # of those, newly flagged by the rules
    unflagged: int


def rescore(store: Store, rules: Rules, start: datetime | None, now: datetime,
            dry_run: bool) -> list[dict[str, Any]]:
    """Score stored articles (dated since *start*, or all) again; an article the reader
    labelled follows its label. Returns the ones whose flag changes; writes 500 at a time
    (a year of scores is never held), or nothing when *dry_run*."""
    changes: list[dict[str, Any]] = []
    updates: list[ScoreUpdate] = []
    for batch in _batches(store.articles_since(start), 500):
        labels = store.labels([row["id"] for row in batch])
        for row in batch:
            s = score(rules, row["title"] or "", row["text"] or "")
            label = labels.get(row["id"])
            if label is not None and (label["label"] == "relevant") != s.flagged:
                s = replace(s, flagged=label["label"] == "relevant",
                            reason=f"labelled {label['label'].replace('_', ' ')}; {s.reason}")
            if bool(row["flagged"]) != s.flagged:
                changes.append({"id": row["id"], "title": row["title"], "url": row["url"],
                                "was": bool(row["flagged"]), "now": s.flagged,
                                "score": s.score, "reason": s.reason})
            updates.append(ScoreUpdate(row["id"], s))
        if not dry_run:
            store.update_scores(updates, now)
        updates = []
    return changes


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
