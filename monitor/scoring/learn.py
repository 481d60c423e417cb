"""What the monitor learns from its reader's labels: one logistic regression over the rules'
own judgement (each concept's contribution, the score, the flag) and the words and word pairs
of the text (TF-IDF). Trained with scikit-learn (imported only here, by `monitor learn`);
kept as data (vocabulary, weights), so that applying it needs numpy alone."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .learned import SCHEME, model_text, rule_features, tokens
from .match import score
from .rules import Rules

MIN_PER_CLASS = 20  # labels of each kind before what is learned is trusted
FOLDS = 5


@dataclass(frozen=True)
class Labelled:
    title: str
    text: str
    relevant: bool


def train(examples: list[Labelled], rules: Rules, folds: int = FOLDS
          ) -> tuple[dict[str, Any], list[float]]:
    """The model as data, with its cross-validated precision, recall and F1 against the rules'
    own on the same examples and the strongest terms each way; and scikit-learn's log-odds
    for each example (what Learned.logit must give back)."""
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.array([int(e.relevant) for e in examples])
    alone = replace(rules, learned=None)  # the rules' own judgement is a feature
    scores = [score(alone, e.title, e.text) for e in examples]
    texts = [model_text(e.title, e.text) for e in examples]

    def fit(index: Any) -> tuple[Any, Any, Any]:
        words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                tokenizer=tokens, token_pattern=None, lowercase=False,
                                max_features=50_000)
        concepts = DictVectorizer()
        x = hstack([words.fit_transform([texts[i] for i in index]),
                    csr_matrix(concepts.fit_transform(
                        [rule_features(scores[i], rules.threshold) for i in index]))]).tocsr()
        model = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced")
        model.fit(x, y[index])
        return words, concepts, model

    def predict(parts: tuple[Any, Any, Any], index: Any) -> Any:
        words, concepts, model = parts
        x = hstack([words.transform([texts[i] for i in index]),
                    csr_matrix(concepts.transform(
                        [rule_features(scores[i], rules.threshold) for i in index]))]).tocsr()
        return model.predict(x)

    learned = np.zeros(len(examples), dtype=int)
    splits = min(folds, int(min(y.sum(), len(y) - y.sum())))
    if splits >= 2:
        for fit_on, held in StratifiedKFold(splits, shuffle=True, random_state=0).split(
                texts, y):
            learned[held] = predict(fit(fit_on), held)
    by_rules = np.array([int(s.flagged) for s in scores])
    words, concepts, model = fit(np.arange(len(examples)))
    every = np.arange(len(examples))
    decisions = model.decision_function(hstack([
        words.transform(texts), csr_matrix(concepts.transform(
            [rule_features(scores[i], rules.threshold) for i in every]))]).tocsr())
    names = list(words.get_feature_names_out()) + list(concepts.feature_names_)
    weights = model.coef_[0]
    order = np.argsort(weights)
    return {
        "vocabulary": {w: int(i) for w, i in words.vocabulary_.items()},
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


def _quality(y: Any, predicted: Any) -> dict[str, float]:
    tp = int(((predicted == 1) & (y == 1)).sum())
    fp = int(((predicted == 1) & (y == 0)).sum())
    fn = int(((predicted == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}
