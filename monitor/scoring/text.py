"""Text normalisation and term compilation shared by rules and matching. Pure."""

from __future__ import annotations

import re
import unicodedata

# plain str.replace per character: much faster than str.translate with a dict or a regex
_REPLACE = [("’", "'"), ("‘", "'"), ("`", "'"), ("“", '"'), ("”", '"'), ("\u00ad", "")] + [
    (c, " ") for c in "-‐‑‒–—―_/·•"]
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def normalize(text: str) -> str:
    """NFKC, case-folded, dashes and slashes as spaces, one space between words.

    'Face-Recognition' and 'face recognition' become the same string; so do full-width forms.
    """
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    for old, new in _REPLACE:
        if old in text:
            text = text.replace(old, new)
    return " ".join(text.split())


def is_cjk(term: str) -> bool:
    return bool(CJK.search(term))


def inflections(term: str) -> set[str]:
    """'camera' -> {'camera', 'cameras'}; 'city' -> {'city', 'cities'}; last word only.
    A trailing '*' is kept as a prefix wildcard for the caller."""
    if term.endswith("*") or is_cjk(term):
        return {term}
    head, _, last = term.rpartition(" ")
    prefix = head + " " if head else ""
    forms = {last}
    if last.isalpha() and len(last) > 2:
        if last.endswith("y") and last[-2] not in "aeiou":
            forms.add(last[:-1] + "ies")
        elif last.endswith(("s", "x", "ch", "sh")):
            forms.add(last + "es")
        else:
            forms.add(last + "s")
    return {prefix + f for f in forms}
