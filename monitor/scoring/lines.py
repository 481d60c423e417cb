"""`monitor score`: JSON lines in, a score per line out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from .match import score
from .rules import Rules


def score_lines(rules: Rules, lines: Iterable[str]) -> Iterator[str]:
    """JSON lines {id, title, text} -> JSON lines {id, score, flagged, matches}, same order.
    A bad line gets an error object in its place, so output stays aligned with input."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            yield json.dumps({"line": n, "error": f"not JSON: {exc}"})
            continue
        if not isinstance(row, dict):
            yield json.dumps({"line": n, "error": f"not a JSON object: {type(row).__name__}"})
            continue
        s = score(rules, str(row.get("title") or ""), str(row.get("text") or ""))
        yield json.dumps({"id": row.get("id"), "score": s.score, "flagged": s.flagged,
                          "matches": [m.as_dict() for m in s.matches], "tags": s.tags,
                          "reason": s.reason}, ensure_ascii=False)
