"""Score one article against compiled Rules, with an explanation. Pure.

Each occurrence of a concept's terms adds ``weight x field boost x repeat**k`` where k counts
the concept's earlier occurrences (strongest field first): repeated mentions give diminishing
returns, so a concept saturates and a long text gains nothing for being long.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from ..models import Match, Score
from .rules import Matcher, Rules, Term
from .text import normalize

USER_REGEX_TIMEOUT = 0.05  # seconds per pattern and field
MAX_OCCURRENCES = 12  # per concept; later ones add less than 0.03%


def _fields(rules: Rules, title: str, text: str) -> dict[str, str]:
    body = normalize(text)
    lead_len = rules.lead_chars
    if body.startswith(normalize(title)[:200]) and title:
        lead_len += len(title)  # pages often repeat the headline; it is not the lead
    return {"title": normalize(title), "lead": body[:lead_len], "body": body[lead_len:]}


def find_terms(rules: Rules, field_text: str, matcher: Matcher | None = None) -> Counter[Term]:
    matcher = matcher or rules.scoring
    found: Counter[Term] = Counter()
    for pattern in (matcher.latin, matcher.cjk):
        if pattern is None:
            continue
        for m in pattern.finditer(field_text):
            term = matcher.term_for(m.group(0))
            if term is not None:
                found[term] += 1
    if matcher is not rules.scoring:
        return found
    for compiled, term in rules.user_regex:
        try:
            hits = len(compiled.findall(field_text[:200_000], timeout=USER_REGEX_TIMEOUT))
        except TimeoutError:
            continue  # a slow user pattern counts as no match rather than hanging the poll
        if hits:
            found[term] += hits
    return found


def score(rules: Rules, title: str, text: str) -> Score:
    hits: dict[str, list[tuple[float, Term, str]]] = defaultdict(list)  # concept -> occurrences
    counts: Counter[tuple[Term, str]] = Counter()
    tagged: set[Term] = set()
    for field, field_text in _fields(rules, title or "", text or "").items():
        tagged.update(find_terms(rules, field_text, rules.tagging))
        boost = rules.fields.get(field, 1.0)
        for term, n in find_terms(rules, field_text).items():
            counts[(term, field)] += n
            hits[term.concept.name].extend([(boost, term, field)] * min(n, MAX_OCCURRENCES))

    contribution: Counter[tuple[Term, str]] = Counter()
    role_score: Counter[str] = Counter()
    total = 0.0
    for occurrences in hits.values():
        occurrences.sort(key=lambda o: -o[0])
        for k, (boost, term, field) in enumerate(occurrences[:MAX_OCCURRENCES]):
            value = term.concept.weight * boost * rules.repeat ** k
            contribution[(term, field)] += value
            total += value
            for role in term.concept.roles:
                role_score[role] += value

    matches = tuple(sorted(
        (Match(t.text, t.concept.name, f, counts[(t, f)], contribution[(t, f)])
         for (t, f) in counts),
        key=lambda m: -abs(m.contribution)))
    tags: dict[str, list[str]] = defaultdict(list)
    for t in [t for (t, _f) in counts] + sorted(tagged, key=lambda t: t.label):
        if t.concept.tag and t.label not in tags[t.concept.tag]:
            tags[t.concept.tag].append(t.label)

    def unmet(need: dict[str, float]) -> list[str]:
        return [f"{r} {role_score[r]:.1f} < {v:g}" for r, v in need.items() if role_score[r] < v]

    gaps = [unmet(need) for need in rules.require] or [[]]
    met = next((i for i, g in enumerate(gaps) if not g), None)
    flagged = total >= rules.threshold and met is not None
    if flagged:
        reason = f"score {total:.1f} >= {rules.threshold:g} with " + ", ".join(
            f"{r} {role_score[r]:.1f}" for r in (rules.require[met] if rules.require else {}))
    elif met is None:
        reason = " | ".join("; ".join(g) for g in gaps)
    else:
        reason = f"score {total:.1f} < {rules.threshold:g}"
    return Score(score=round(total, 3), flagged=flagged, matches=matches,
                 tags={k: sorted(v) for k, v in sorted(tags.items())}, reason=reason)
