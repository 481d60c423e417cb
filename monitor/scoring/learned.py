"""Applying what `monitor learn` learned: the stored model (vocabulary, IDF, weights) read
back as data and applied with numpy, as scikit-learn's TF-IDF and logistic regression would
(a test holds the two equal). No scikit-learn or SciPy here: this runs in every worker."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models import Score

# scikit-learn's default words, (?u)\b\w\w+\b: without the \b, which a greedy \w\w+ implies,
# at half the cost
_WORD = re.compile(r"\w\w+")
SCHEME = 3  # how features are made: a model made otherwise is not applied (learn again)
# the words the model reads: the title and the start of the text, where a story says what it
# is about (the rules read it all); past this, a long page cost a third of the throughput
READ_CHARS = 3000


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
    _word_pairs: dict[tuple[str, str], int] | None = field(default=None, repr=False)

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
        vocabulary, pairs = self.vocabulary, self._pairs()
        index: list[int] = []
        counts: list[int] = []
        # the few words and pairs the model knows, found by set intersection (in C), then
        # counted: a text's hundreds of other words cost no lookup in Python
        single = Counter(words)
        for word in single.keys() & vocabulary.keys():
            index.append(vocabulary[word])
            counts.append(single[word])
        double = Counter(zip(words, words[1:], strict=False))
        for pair in double.keys() & pairs.keys():
            index.append(pairs[pair])
            counts.append(double[pair])
        words_found = len(index)
        rule_parts = [(self.features[k], v) for k, v in rules_features.items()
                      if k in self.features and v]
        index += [i for i, _ in rule_parts]
        at = np.asarray(index, dtype=np.int64)
        parts = np.zeros(len(index))
        if words_found:
            x = (1.0 + np.log(np.asarray(counts, dtype=float))) * self.idf[at[:words_found]]
            parts[:words_found] = x / np.sqrt((x * x).sum()) * self.weights[at[:words_found]]
        if rule_parts:
            parts[words_found:] = np.asarray([v for _, v in rule_parts]) * \
                self.weights[at[words_found:]]
        total = self.intercept + float(parts.sum())
        top = np.argsort(-np.abs(parts))[:12]
        return total, [(self.names[int(at[k])], float(parts[k])) for k in top]

    def _pairs(self) -> dict[tuple[str, str], int]:
        if self._word_pairs is None:
            self._word_pairs = {(g.partition(" ")[0], g.partition(" ")[2]): i
                                for g, i in self.vocabulary.items() if " " in g}
        return self._word_pairs


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
