"""Edits to config/keywords.yaml that the reader's labels argue for, for a reader who keeps
everything in YAML: a term the rules miss in stories labelled relevant (added to the concept
whose role those stories lack), a term of the false alarms (added to a negative concept),
and the threshold; each measured on the labels. Pure: the archive's part is learning.py's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..models import Score
from .explain import role_scores
from .learn import Labelled
from .learned import tokens
from .match import score
from .rules import Rules, compile_rules
from .text import inflections, normalize

CANDIDATES = 12  # terms of each kind tried, the most telling first
CONCEPTS_TRIED = 4  # concepts a term is tried in, the heaviest of the role it lacks


@dataclass(frozen=True)
class Quality:
    found: int  # relevant and flagged
    false_alarms: int  # not relevant and flagged
    missed: int  # relevant and not flagged
    labels: int  # all of them

    @property
    def precision(self) -> float:
        flagged = self.found + self.false_alarms
        return self.found / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        relevant = self.found + self.missed
        return self.found / relevant if relevant else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class Edit:
    """One change to the keywords file and what it does to the labels."""

    kind: str  # term | negative | threshold
    what: str  # as a reader would do it: 'add "unveiled" to concept cameras (terms)'
    rules: Rules  # the rules with the edit made
    term: str | None
    after: Quality


def suggest(examples: Sequence[Labelled], rules: Rules, limit: int = 8
            ) -> tuple[Quality, list[Edit]]:
    """The rules' quality on the labels, and the edits that raise it (F1), best first."""
    rules = replace(rules, learned=None)  # edits to the rules, measured on the rules alone
    scores = [score(rules, e.title, e.text) for e in examples]
    flags = [s.flagged for s in scores]
    base = _quality(examples, flags)
    words = [_terms(e) for e in examples]
    texts = [normalize(f"{e.title} {e.text}") for e in examples]
    missed = [i for i, e in enumerate(examples) if e.relevant and not flags[i]]
    alarms = [i for i, e in enumerate(examples) if not e.relevant and flags[i]]
    relevant = [i for i, e in enumerate(examples) if e.relevant]
    unwanted = [i for i, e in enumerate(examples) if not e.relevant]
    edits: list[Edit] = []
    common = _common(words)
    rank: dict[str, int] = {}
    for term in _telling(words, missed, unwanted, rules, common):
        rank.setdefault(term, len(rank))
        lacking = Counter(role for i in missed if term in words[i]
                          for role in _lacking(scores[i], rules))
        role = lacking.most_common(1)[0][0] if lacking else "surveillance"
        concepts = sorted((c for c in rules.concepts.values() if role in c.roles
                           and c.weight > 0), key=lambda c: -c.weight)[:CONCEPTS_TRIED]
        edits += _best([_with_term(examples, texts, flags, rules, c.name, term, "term")
                        for c in concepts])
    negatives = [c for c in rules.concepts.values() if "negative" in c.roles]
    for term in _telling(words, alarms, relevant, rules, common) if negatives else []:
        rank.setdefault(term, len(rank))
        edits += _best([_with_term(examples, texts, flags, rules, c.name, term,
                                   "negative")
                        for c in negatives])
    edits += _threshold(examples, scores, rules)
    better = [e for e in edits if e.after.f1 > base.f1]
    better.sort(key=lambda e: (-e.after.f1, e.after.false_alarms, rank.get(e.term or "", -1)))
    return base, better[:limit]


def _terms(e: Labelled) -> Counter[str]:
    """The words and adjacent pairs of an example, with how often each occurs."""
    words = tokens(f"{e.title}\n{e.text}")
    found = Counter(words)
    found.update(map(" ".join, zip(words, words[1:], strict=False)))
    return found


def _common(words: list[Counter[str]]) -> set[str]:
    """Words in four fifths of the labelled texts ("the", "said"): a pair with one of them
    says no more than its other word."""
    counted = Counter(w for terms in words for w in terms if " " not in w)
    return {w for w, n in counted.items() if n * 5 >= len(words) * 4}


def _telling(words: list[Counter[str]], side: list[int], other: list[int], rules: Rules,
             common: set[str]) -> list[str]:
    """Words and pairs common on *side* (in two texts at least) and rare on *other* (a
    quarter as many texts at most), that the rules do not know yet; the most telling first,
    and of equals, the one said most often on *side*."""
    on_side = Counter(t for i in side for t in words[i])
    said = Counter[str]()
    for i in side:
        said.update(words[i])
    on_other = Counter(t for i in other for t in words[i] if t in on_side)
    known = set(rules.matcher.forms)
    picked = [(n - 2 * on_other[t], said[t], t) for t, n in on_side.items()
              if n >= 2 and on_other[t] * 4 <= n and _usable(t)
              and not (" " in t and common & set(t.split()))
              and not inflections(normalize(t)) & known]
    picked.sort(key=lambda p: (-p[0], -p[1], p[2]))
    return [t for _, _, t in picked[:CANDIDATES]]


def _usable(term: str) -> bool:
    return not any(w.isdigit() for w in term.split()) and len(term) >= 4


def _lacking(s: Score, rules: Rules) -> list[str]:
    """The roles a story lacks for the nearest of the rules' sets of minimums."""
    roles = role_scores(s, rules)
    sets = rules.require or [{}]
    nearest = min(sets, key=lambda need: sum(roles[r] < v for r, v in need.items()))
    return [r for r, v in nearest.items() if roles[r] < v]


def _with_term(examples: Sequence[Labelled], texts: list[str], flags: list[bool],
               rules: Rules, concept: str, term: str, kind: str) -> Edit:
    """The rules with *term* added to *concept*, measured on the labels: only the examples
    that hold it are scored again."""
    assert rules.spec is not None
    spec = rules.spec.model_copy(deep=True)
    terms = spec.concepts[concept].terms
    if isinstance(terms, dict):
        terms.setdefault("en" if "en" in terms or not terms else next(iter(terms)), []
                         ).append(term)
    else:
        terms.append(term)
    edited = compile_rules(spec)
    form = normalize(term)
    new = [score(edited, e.title, e.text).flagged if form in texts[i] else flags[i]
           for i, e in enumerate(examples)]
    where = "terms" if kind == "term" else "terms, a negative concept"
    return Edit(kind, f'add "{term}" to concept {concept} ({where})', edited, term,
                _quality(examples, new))


def _best(edits: list[Edit]) -> list[Edit]:
    return sorted(edits, key=lambda e: -e.after.f1)[:1]


def _threshold(examples: Sequence[Labelled], scores: list[Score], rules: Rules
               ) -> list[Edit]:
    """The threshold that serves the labels best, if another does better: from half to
    twice the present one, by halves."""
    assert rules.spec is not None
    roles = [role_scores(s, rules) for s in scores]
    met = [any(all(r[k] >= v for k, v in need.items()) for need in rules.require or [{}])
           for r in roles]
    totals = [s.score for s in scores]
    best: tuple[float, Quality] | None = None
    for step in range(1, int(rules.threshold * 4) + 1):
        value = step / 2
        if value == rules.threshold or value < rules.threshold / 2:
            continue
        q = _quality(examples, [m and t >= value for m, t in zip(met, totals, strict=True)])
        if best is None or q.f1 > best[1].f1:
            best = (value, q)
    if best is None:
        return []
    spec = rules.spec.model_copy(update={"threshold": best[0]})
    return [Edit("threshold", f"threshold {rules.threshold:g} -> {best[0]:g}",
                 compile_rules(spec), None, best[1])]


def _quality(examples: Sequence[Labelled], flags: Sequence[bool]) -> Quality:
    found = sum(1 for e, f in zip(examples, flags, strict=True) if f and e.relevant)
    alarms = sum(1 for e, f in zip(examples, flags, strict=True) if f and not e.relevant)
    return Quality(found, alarms, sum(e.relevant for e in examples) - found, len(examples))

