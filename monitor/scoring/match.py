"""Score one article against compiled Rules, with an explanation. Pure.

Each occurrence of a concept's terms adds ``weight x field boost x repeat**k`` where k counts
the concept's earlier occurrences (strongest field first): repeated mentions give diminishing
returns, so a concept saturates and a long text gains nothing for being long.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import replace

from ..models import Match, Score
from .explain import feature_words
from .learned import rule_features
from .rules import Rules, Term
from .text import normalize

log = logging.getLogger("monitor.scoring")
USER_REGEX_TIMEOUT = 0.05  # seconds per pattern and field
_TIMED_OUT: set[str] = set()  # patterns already reported: once each, not per article
MAX_OCCURRENCES = 12
TAG_ONLY = frozenset({"tag"})  # per concept; later ones add less than 0.03%


def _fields(rules: Rules, title: str, text: str) -> dict[str, str]:
    head = normalize(title)
    body = normalize(text)
    lead_len = rules.lead_chars
    if head and body.startswith(head[:200]):
        lead_len += len(head)  # pages often repeat the headline; it is not the lead
    return {"title": head, "lead": body[:lead_len], "body": body[lead_len:]}


def find_terms(rules: Rules, field_text: str) -> Counter[Term]:
    """Every term of every concept (tag-only concepts included) found in one field."""
    found: Counter[Term] = Counter()
    for terms in rules.matcher.find(field_text):
        for term in terms:
            found[term] += 1
    for compiled, term in rules.user_regex:
        try:
            hits = len(compiled.findall(field_text[:200_000], timeout=USER_REGEX_TIMEOUT))
        except TimeoutError:  # counts as no match rather than hanging the poll
            if compiled.pattern not in _TIMED_OUT:
                _TIMED_OUT.add(compiled.pattern)
                log.warning("keyword regex hit its time limit; counted as no match", extra={
                    "outcome": f"concept {term.concept.name}: {compiled.pattern[:200]!r} "
                               f"(over {USER_REGEX_TIMEOUT:g}s on one field)"})
            continue
        if hits:
            found[term] += hits
    return found


def score(rules: Rules, title: str, text: str) -> Score:
    counts: dict[tuple[Term, str], int] = {}
    tagged: set[Term] = set()
    for field, field_text in _fields(rules, title or "", text or "").items():
        for term, n in find_terms(rules, field_text).items():
            if term.concept.roles == TAG_ONLY:
                tagged.add(term)
            else:
                counts[(term, field)] = counts.get((term, field), 0) + n

    # per concept, strongest field first: the k-th mention adds weight x boost x repeat**k;
    # a block of n mentions starting at k adds weight x boost x r**k x (1 - r**n) / (1 - r)
    by_concept: dict[str, list[tuple[float, Term, str, int]]] = defaultdict(list)
    for (term, field), n in counts.items():
        by_concept[term.concept.name].append((rules.fields.get(field, 1.0), term, field, n))
    r = rules.repeat
    contribution: dict[tuple[Term, str], float] = {}
    role_score: defaultdict[str, float] = defaultdict(float)
    total = 0.0
    for blocks in by_concept.values():
        blocks.sort(key=lambda b: -b[0])
        k = 0
        for boost, term, field, n in blocks:
            n = min(n, MAX_OCCURRENCES - k)
            if n <= 0:
                value = 0.0
            else:
                value = term.concept.weight * boost * r ** k * (1 - r ** n) / (1 - r)
                k += n
            contribution[(term, field)] = value
            total += value
            for role in term.concept.roles:
                role_score[role] += value

    matches = sorted((Match(t.text, t.concept.name, f, counts[(t, f)], contribution[(t, f)])
                      for (t, f) in counts), key=lambda m: -abs(m.contribution))
    tags: dict[str, set[str]] = defaultdict(set)
    for t in [t for (t, _f) in counts] + list(tagged):
        if t.concept.tag:
            tags[t.concept.tag].add(t.label)

    def unmet(need: dict[str, float]) -> list[str]:
        return [f"{r} {role_score[r]:.1f} < {v:g}" for r, v in need.items() if role_score[r] < v]

    gaps = [unmet(need) for need in rules.require] or [[]]
    met = next((i for i, g in enumerate(gaps) if not g), None)
    flagged = total >= rules.threshold and met is not None
    if flagged:
        assert met is not None
        reason = f"score {total:.1f} >= {rules.threshold:g}" + "".join(
            f", {r} {role_score[r]:.1f}" for r in (rules.require[met] if rules.require else {}))
    elif met is None:
        reason = " | ".join("; ".join(g) for g in gaps)
    else:
        reason = f"score {total:.1f} < {rules.threshold:g}"
    result = Score(score=round(total, 3), flagged=flagged, matches=tuple(matches),
                   tags={k: sorted(v) for k, v in sorted(tags.items())}, reason=reason)
    return with_learned(rules, title, text, result) if rules.learned else result


def with_learned(rules: Rules, title: str, text: str, s: Score) -> Score:
    """The rules' score, decided by what was learned from the labels: flagged when its
    log-odds are above 0. The rules' own verdict and reason stay in the score."""
    learned = rules.learned
    assert learned is not None
    logit, parts = learned.logit(title, text, rule_features(s, rules.threshold))
    n = sum(learned.labels.values())
    pushed = ", ".join(f"{feature_words(name)} {p:+.1f}" for name, p in parts[:5])
    return replace(s, flagged=logit > 0, rules_flagged=s.flagged, learned=round(logit, 3),
                   learned_terms=tuple((name, round(p, 3)) for name, p in parts),
                   labels=n, reason=f"rules: {s.reason}; learned from {n} labels: "
                                    f"{logit:+.1f} ({pushed})")
