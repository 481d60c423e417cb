"""Text normalisation and term compilation shared by rules and matching. Pure."""

from __future__ import annotations

import re
import unicodedata

_DASHES = re.compile(r"[\-‐‑‒–—―_/·•]+")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "“": '"', "”": '"', "\u00ad": None})
_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def normalize(text: str) -> str:
    """NFKC, case-folded, dashes and slashes as spaces, one space between words.

    'Face-Recognition' and 'face recognition' become the same string; so do full-width forms.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    text = _DASHES.sub(" ", text)
    return _SPACE.sub(" ", text)


def is_cjk(term: str) -> bool:
    return bool(_CJK.search(term))


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


def trie_pattern(words: list[str]) -> str:
    """One regex alternation for many literals, shared prefixes factored out, so matching cost
    does not grow with the number of terms. A word ending in '*' matches any word ending."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict[str, dict]) -> str:
        end = "" in node
        branches = []
        # literals before the wildcard: regex alternation takes the first branch that fits,
        # and 'surveillance camera' must win over 'surveil*'
        for ch in sorted((k for k in node if k), key=lambda k: (k == "*", k)):
            piece = r"\w*" if ch == "*" else re.escape(ch)
            branches.append(piece + walk(node[ch]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            return "(?:" + body + ")?"
        return body

    return walk(trie)
