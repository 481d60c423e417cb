"""Labelled examples as JSON lines, the format `monitor labels export` writes and
`monitor labels import` reads: {id, title, text, label, url?}, label 1 or 0, or "relevant" or
"not_relevant". Pure: lines in, examples and one message per bad line out."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..models import Example
from .lines import json_objects

LABELS = {1: True, 0: False, "1": True, "0": False, "relevant": True, "not_relevant": False}
MAX_TEXT = 200_000  # characters of an example's text that are kept


def read_examples(lines: Iterable[str], source: str) -> tuple[list[Example], list[str]]:
    """The examples of *lines*, and "source:line: why" for each line that is not one; a key
    given twice keeps its last line."""
    found: dict[str, Example] = {}
    errors: list[str] = []
    for n, row in json_objects(lines):
        if isinstance(row, str):
            errors.append(f"{source}:{n}: {row}")
            continue
        label = row.get("label")
        if not isinstance(label, (int, str)) or label not in LABELS:
            errors.append(f"{source}:{n}: label must be 1, 0, \"relevant\" or "
                          f"\"not_relevant\", not {json.dumps(label)[:40]}")
            continue
        title, text = row.get("title") or "", row.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str) or not (title or text):
            errors.append(f"{source}:{n}: title and text must be text, and not both empty")
            continue
        key = row.get("id")
        if key is None or isinstance(key, (dict, list)):
            errors.append(f"{source}:{n}: an id (text or number) is needed")
            continue
        url = row.get("url")
        found[str(key)] = Example(key=str(key), title=title[:2000], text=text[:MAX_TEXT],
                                  relevant=LABELS[label], url=url if isinstance(url, str)
                                  else None)
    return list(found.values()), errors
