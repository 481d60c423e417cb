"""Applying what `monitor learn` learned: the stored model (vocabulary, IDF, weights) read
back as data and applied with numpy, as scikit-learn's TF-IDF and logistic regression would
(a test holds the two equal). No scikit-learn or SciPy here: this runs in every worker."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from ..models import Score

# scikit-learn's default words, (?u)\b\w\w+\b: without the \b, which a greedy \w\w+ implies,
# at half the cost
_WORD = re.compile(r"\w\w+")
SCHEME = 4  # how features are made: a model made otherwise is not applied (learn again)
# the words the model reads: the title and the start of the text, where a story says what it
# is about (the rules read it all). Every labelled excerpt we have is within it; past it, a
# long page cost throughput (3,000 characters: 1,800-2,000 articles/s, under the 2,000 asked)
READ_CHARS = 2000


def model_text(title: str, text: str) -> str:
    return f"{title}\n{text[:READ_CHARS]}"


def tokens(text: str) -> list[str]:
    """The words of *text* as the model counts them, in order."""
    return _WORD.findall(text.lower())


@dataclass(eq=False)
class Learned:
    """A model as `monitor learn` kept it; `labels` is how many of each kind it came from."""

    model_id: int
    vocabulary: dict[str, int]
    idf: Any  # numpy float array, by vocabulary index
    features: dict[str, int]  # the rules' features, by their index after the words
    weights: Any
    intercept: float
    labels: dict[str, int]
    names: list[str] = field(default_factory=list)  # every feature's name, by index
    _prepared: tuple[dict[str, int], Any, Any, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Learned:
        n = len(data["idf"])
        names = [""] * n
        for word, i in data["vocabulary"].items():
            names[i] = word
        return cls(model_id=int(data.get("id") or 0), vocabulary=data["vocabulary"],
                   idf=np.asarray(data["idf"], dtype=float),
                   features={f: n + i for i, f in enumerate(data["features"])},
                   weights=np.asarray(data["weights"], dtype=float),
                   intercept=float(data["intercept"]), labels=dict(data["labels"]),
                   names=names + list(data["features"]))

    def as_bytes(self) -> bytes:
        """The model as JSON, for the workers."""
        vocab = self.vocabulary
        return json.dumps({"id": self.model_id, "vocabulary": vocab,
                           "idf": self.idf.tolist(), "weights": self.weights.tolist(),
                           "features": sorted(self.features, key=self.features.__getitem__),
                           "intercept": self.intercept, "labels": self.labels}).encode()

    def logit(self, title: str, text: str, rules_features: dict[str, float]
              ) -> tuple[float, list[tuple[str, float]]]:
        """The model's log-odds that the article is relevant, and what pushed it, strongest
        first: (term or rules' feature, its part of the log-odds)."""
        words = tokens(model_text(title, text))
        known, single, pair_keys, pair_at = self._lookup()
        # each word as a number once (a C-level map; len(known) for a word the model does not
        # know), then the words and adjacent pairs it knows found and counted in numpy: no
        # Python step per word of a long text
        ids = np.fromiter(map(known.get, words, repeat(len(known))), dtype=np.int64,
                          count=len(words))
        features = single[ids]
        if len(pair_keys) and len(ids) > 1:
            keys = ids[:-1] * (len(known) + 1) + ids[1:]
            at = np.minimum(np.searchsorted(pair_keys, keys), len(pair_keys) - 1)
            features = np.concatenate([features, pair_at[at[pair_keys[at] == keys]]])
        index, counts = np.unique(features, return_counts=True)
        if len(index) and index[0] < 0:
            index, counts = index[1:], counts[1:]
        words_found = len(index)
        rule_parts = [(self.features[k], v) for k, v in rules_features.items()
                      if k in self.features and v]
        at = np.concatenate([index, np.asarray([i for i, _ in rule_parts], dtype=np.int64)])
        parts = np.zeros(len(at))
        if words_found:
            x = (1.0 + np.log(counts)) * self.idf[index]
            parts[:words_found] = x / np.sqrt((x * x).sum()) * self.weights[index]
        if rule_parts:
            parts[words_found:] = np.asarray([v for _, v in rule_parts]) * \
                self.weights[at[words_found:]]
        total = self.intercept + float(parts.sum())
        top = np.argsort(-np.abs(parts), kind="stable")[:12]
        return total, [(self.names[int(at[k])], float(parts[k])) for k in top]

    def _lookup(self) -> tuple[dict[str, int], Any, Any, Any]:
        """Every word the model knows (alone or in a pair) as a number; by that number, its
        feature (-1: only in pairs, or unknown: the last); the pairs as sorted
        first * (known + 1) + second, and their features."""
        if self._prepared is None:
            known: dict[str, int] = {}
            for term in self.vocabulary:
                for word in term.split(" "):
                    known.setdefault(word, len(known))
            single = np.full(len(known) + 1, -1, dtype=np.int64)
            keys: list[int] = []
            features: list[int] = []
            for term, i in self.vocabulary.items():
                first, _, second = term.partition(" ")
                if second:
                    keys.append(known[first] * (len(known) + 1) + known[second])
                    features.append(i)
                else:
                    single[known[term]] = i
            order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
            self._prepared = (known, single, np.asarray(keys, dtype=np.int64)[order],
                              np.asarray(features, dtype=np.int64)[order])
        return self._prepared


def rule_features(s: Score, threshold: float) -> dict[str, float]:
    """The rules' judgement as features: the score and each concept's contribution in units
    of the threshold (raw, a concept's 20 points outweighed every word of the text, whose
    TF-IDF values are normalised), and the flag."""
    unit = max(threshold, 1.0)
    out: dict[str, float] = {"rules:score": s.score / unit, "rules:flagged": float(s.flagged)}
    for m in s.matches:
        out[f"concept:{m.concept}"] = out.get(f"concept:{m.concept}", 0.0) + \
            m.contribution / unit
    return out
