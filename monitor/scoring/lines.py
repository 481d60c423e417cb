"""`monitor score`: JSON lines in, a score per line out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from .match import score
from .rules import Rules


def json_objects(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the object) for each line that is not blank, or (line number, why it is
    not a JSON object)."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            yield n, f"not JSON: {exc}"
            continue
        yield n, row if isinstance(row, dict) else f"not a JSON object: {type(row).__name__}"


def score_lines(rules: Rules, lines: Iterable[str]) -> Iterator[str]:
    """JSON lines {id, title, text} -> JSON lines {id, score, flagged, matches}, same order.
    A bad line gets an error object in its place, so output stays aligned with input."""
    for n, row in json_objects(lines):
        if isinstance(row, str):
            yield json.dumps({"line": n, "error": row})
            continue
        s = score(rules, str(row.get("title") or ""), str(row.get("text") or ""))
        out = {"id": row.get("id"), "score": s.score, "flagged": s.flagged,
               "matches": [m.as_dict() for m in s.matches], "tags": s.tags,
               "reason": s.reason}
        if s.learned is not None:
            out.update(rules_flagged=s.rules_flagged, learned=s.learned)
        yield json.dumps(out, ensure_ascii=False)
