"""A score in plain words, for the story page and the digest: which of the rules' minimums
were met, and what was missing, from the matches the score is made of."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from ..models import Score
from .rules import Rules

# what each role of config/keywords.yaml stands for, as a reader would say it
ROLE_WORDS = {
    "surveillance": "surveillance",
    "technology": "a surveillance technology, programme or vendor",
    "context": "a state, police or city setting",
    "urban": "a city or its public spaces",
}


def feature_words(name: str) -> str:
    """A learned model's feature as a reader says it: a term, a concept, the rules' verdict."""
    return {"rules:score": "the rules' score", "rules:flagged": "the rules' verdict"}.get(
        name, name.removeprefix("concept:").replace("_", " "))


def learned_why(learned: dict[str, Any] | None) -> str:
    """The learned part of why a stored article was (not) flagged, from its `learned` column:
    "learned from 212 labels: +3.1 (unveiled, cameras detect, morality police); the rules
    alone: not flagged"; "" when the rules alone decided."""
    if not learned:
        return ""
    logit = learned["logit"]
    pushed = [feature_words(name) for name, part in learned["terms"]
              if (part > 0) == (logit > 0)][:4]
    rules_flagged = learned.get("rules_flagged")
    alone = "" if rules_flagged is None else "flagged" if rules_flagged else "not flagged"
    return (f"learned from {learned['labels']} labels: {logit:+.1f}"
            + (f" ({', '.join(pushed)})" if pushed else "")
            + (f"; the rules alone: {alone}" if alone else ""))


def role_scores(score: Score, rules: Rules) -> dict[str, float]:
    """What each role gathered: the contributions of its concepts' matches (negative ones
    included), as the scorer sums them."""
    roles: dict[str, float] = defaultdict(float)
    for m in score.matches:
        concept = rules.concepts.get(m.concept)
        for role in concept.roles if concept else ():
            roles[role] += m.contribution
    return roles


def in_plain_words(score: Score, rules: Rules) -> str:
    """The rules' part, then, when what was learned from the labels decided, its part:
    "Flagged: learned from 212 labels, +3.1 (unveiled +1.2, cameras detect +0.9 ...). The
    rules alone: Not flagged: score 4 of the 6 needed ...". """
    if score.learned is None or score.rules_flagged is None:
        return _rules_in_words(replace(score, flagged=score.flagged), rules)
    rules_part = _rules_in_words(replace(score, flagged=score.rules_flagged), rules)
    pushed = ", ".join(f"{feature_words(name)} {part:+.1f}"
                       for name, part in score.learned_terms[:5])
    verdict = "Flagged" if score.flagged else "Not flagged"
    return (f"{verdict}: learned from {score.labels} labels, {score.learned:+.1f} "
            f"({pushed}). The rules alone: {rules_part}")


def _rules_in_words(score: Score, rules: Rules) -> str:
    """"Flagged: score 53 of the 6 needed, with surveillance (39), a surveillance technology,
    programme or vendor (35) and a state, police or city setting (27)." or "Not flagged:
    score 12 of the 6 needed, but not enough about a state, police or city setting (0 of
    2)."."""
    roles = role_scores(score, rules)
    need = f"score {score.score:.0f} of the {rules.threshold:g} needed"
    sets = rules.require or [{}]
    if score.flagged:
        met = next((s for s in sets if all(roles[r] >= v for r, v in s.items())), {})
        parts = [f"{ROLE_WORDS.get(r, r)} ({roles[r]:.0f})" for r in met]
        return f"Flagged: {need}" + (f", with {_join(parts)}" if parts else "") + "."
    closest = min(sets, key=lambda s: sum(1 for r, v in s.items() if roles[r] < v))
    missing = [f"{ROLE_WORDS.get(r, r)} ({max(roles[r], 0):.0f} of {v:g})"
               for r, v in closest.items() if roles[r] < v]
    if not missing:
        return f"Not flagged: {need}."
    joint = "but" if score.score >= rules.threshold else "and"
    return f"Not flagged: {need}, {joint} not enough about {_join(missing, 'or')}."


def _join(parts: list[str], word: str = "and") -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {word} {parts[-1]}"
