"""Learning from the reader's labels against the archive: the reading room's labels and the
imported examples gathered (each text once), a model trained on them (scoring/learn.py) and
kept in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .errors import LabelsError
from .scoring import Rules
from .store import Store


def learn(store: Store, rules: Rules, now: datetime) -> dict[str, Any]:
    """Train on every label and keep the model; returns it with its cross-validated quality
    against the rules. LabelsError when the labels are not of both kinds."""
    from .scoring.learn import Labelled, train

    seen: set[tuple[str, str]] = set()
    examples = []
    for row in [*store.labelled_articles(), *store.examples()]:
        key = (row["title"] or "", row["text"] or "")
        if key not in seen and any(key):
            seen.add(key)
            examples.append(Labelled(key[0], key[1], row["label"] == "relevant"))
    if {e.relevant for e in examples} != {True, False}:
        raise LabelsError("learning needs labels of both kinds, relevant and not relevant "
                          f"({len(examples)} labelled so far)")
    model = train(examples, rules)
    model["id"] = store.save_model(model, len(examples), rules.version, now)
    return model
