"""What the monitor learns from its reader's labels: one logistic regression over the rules'
own judgement (each concept's contribution, the score, the flag) and the words and word pairs
of the text (TF-IDF). Trained with scikit-learn (imported only here, by `monitor learn`);
kept as data (vocabulary, weights), so that applying it needs numpy alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from itertools import count
from typing import Any

from .learned import SCHEME, model_text, rule_features, tokens
from .match import score
from .rules import Rules

MIN_PER_CLASS = 20  # labels of each kind before what is learned is trusted
MAX_TERMS = 50_000  # words and pairs a model keeps, the most frequent
FOLDS = 5
MANY = 1000  # labels past which three folds measure as well as five, in two thirds the time


@dataclass(frozen=True)
class Labelled:
    title: str
    text: str
    relevant: bool


def train(examples: list[Labelled], rules: Rules, folds: int | None = None
          ) -> tuple[dict[str, Any], list[float]]:
    """The model as data, with its cross-validated precision, recall and F1 against the rules'
    own on the same examples and the strongest terms each way; and scikit-learn's log-odds
    for each example (what Learned.logit must give back)."""
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.array([int(e.relevant) for e in examples])
    alone = replace(rules, learned=None)  # the rules' own judgement is a feature
    scores = [score(alone, e.title, e.text) for e in examples]
    # each fold keeps what TfidfVectorizer(min_df=2, max_features=MAX_TERMS) would keep, from
    # words and pairs counted once for all folds (TfidfVectorizer counted them once per fold
    # and sorted them each time: 29 s for 5,000 labels, four fifths of it counting)
    counted, terms = _count_terms([model_text(e.title, e.text) for e in examples])
    somewhere_twice = np.flatnonzero(np.bincount(counted.indices,
                                                 minlength=counted.shape[1]) >= 2)
    counted = counted[:, somewhere_twice].tocsr()  # a term in one text is kept by no fold
    terms = terms[somewhere_twice]

    def concept_rows(index: Any) -> list[dict[str, float]]:
        return [rule_features(scores[i], rules.threshold) for i in index]

    def fit(index: Any) -> tuple[Any, Any, Any, Any]:
        rows = counted[index]
        kept = np.flatnonzero(np.bincount(rows.indices, minlength=rows.shape[1]) >= 2)
        if len(kept) > MAX_TERMS:  # the most frequent, as TfidfVectorizer's max_features
            often = np.bincount(rows.indices, weights=rows.data, minlength=rows.shape[1])
            kept = np.sort(kept[np.argsort(-often[kept], kind="stable")[:MAX_TERMS]])
        words = TfidfTransformer(sublinear_tf=True).fit(rows[:, kept])
        concepts = DictVectorizer()
        x = hstack([words.transform(rows[:, kept]),
                    csr_matrix(concepts.fit_transform(concept_rows(index)))]).tocsr()
        model = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced")
        model.fit(x, y[index])
        return kept, words, concepts, model

    def features(parts: tuple[Any, Any, Any, Any], index: Any) -> Any:
        kept, words, concepts, _ = parts
        return hstack([words.transform(counted[index][:, kept]),
                       csr_matrix(concepts.transform(concept_rows(index)))]).tocsr()

    every = np.arange(len(examples))
    folds = folds or (FOLDS if len(examples) <= MANY else 3)
    learned = np.zeros(len(examples), dtype=int)
    splits = min(folds, int(min(y.sum(), len(y) - y.sum())))
    if splits >= 2:
        for fit_on, held in StratifiedKFold(splits, shuffle=True, random_state=0).split(
                every, y):
            parts = fit(fit_on)
            learned[held] = parts[3].predict(features(parts, held))
    by_rules = np.array([int(s.flagged) for s in scores])
    final = fit(every)
    kept, words, concepts, model = final
    decisions = model.decision_function(features(final, every))
    names = list(terms[kept]) + list(concepts.feature_names_)
    weights = model.coef_[0]
    order = np.argsort(weights)
    return {
        "vocabulary": {str(w): i for i, w in enumerate(terms[kept])},
        "idf": [float(v) for v in words.idf_],
        "features": list(concepts.feature_names_),
        "weights": [float(v) for v in weights], "intercept": float(model.intercept_[0]),
        "labels": {"relevant": int(y.sum()), "not_relevant": int(len(y) - y.sum())},
        "keywords": rules.version, "scheme": SCHEME,
        "cross_validated": {"folds": splits, "learned": _quality(y, learned),
                            "rules": _quality(y, by_rules)} if splits >= 2 else None,
        "strongest": {"relevant": [names[i] for i in order[::-1][:12] if weights[i] > 0],
                      "not_relevant": [names[i] for i in order[:12] if weights[i] < 0]},
    }, [float(d) for d in decisions]


def _count_terms(texts: list[str]) -> tuple[Any, Any]:
    """How often each word and adjacent pair (as CountVectorizer(ngram_range=(1, 2)) with our
    tokens makes them) occurs in each text, as a CSR matrix, and the terms by column. Counted
    with Counter and numbered by a defaultdict, all in C: CountVectorizer's own loop and its
    sorting of every term took 3.6 s of 5,000 labels' training against 1.6 s."""
    import numpy as np
    from scipy.sparse import csr_matrix

    number: defaultdict[str, int] = defaultdict(count().__next__)
    columns: list[int] = []
    counts: list[int] = []
    rows = [0]
    for text in texts:
        words = tokens(text)
        found = Counter(words)
        found.update(map(" ".join, zip(words, words[1:], strict=False)))
        columns.extend(map(number.__getitem__, found))
        counts.extend(found.values())
        rows.append(len(columns))
    matrix = csr_matrix((np.asarray(counts, dtype=np.float64),
                         np.asarray(columns, dtype=np.int64), np.asarray(rows, dtype=np.int64)),
                        shape=(len(texts), len(number)))
    terms = np.empty(len(number), dtype=object)
    terms[np.fromiter(number.values(), dtype=np.int64, count=len(number))] = list(number)
    return matrix, terms


def _quality(y: Any, predicted: Any) -> dict[str, float]:
    tp = int(((predicted == 1) & (y == 1)).sum())
    fp = int(((predicted == 1) & (y == 0)).sum())
    fn = int(((predicted == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}
