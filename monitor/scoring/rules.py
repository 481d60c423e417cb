"""keywords.yaml -> compiled Rules. Validation errors name file:line and key path.

A user's regex is checked when loaded (no nested unbounded repeats, no backreferences) and
run with a time bound, so one bad pattern cannot hang the service.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import ahocorasick_rs
import regex
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .. import yamlfile
from ..config import validate
from ..errors import ConfigError
from .learned import Learned
from .text import inflections, is_cjk, normalize

ROLES_HELP = "surveillance | context | vendor | negative | tag"
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_listify)]


class ConceptSpec(BaseModel):
    model_config = _STRICT
    role: StrList = Field(description=ROLES_HELP)
    weight: float = 1.0
    tag: str | None = Field(None, description="tag category: technology, vendor, place ...")
    label: str | None = None
    terms: dict[str, list[str]] | list[str] = []
    entities: dict[str, list[str]] = {}
    regex: list[str] = []
    note: str | None = None


class RuleSpec(BaseModel):
    model_config = _STRICT
    threshold: float = Field(gt=0)
    require: list[dict[str, float]] | dict[str, float] = Field(
        {}, description="minimum evidence per role; a list means any one set suffices")
    fields: dict[str, float] = {"title": 2.0, "lead": 1.5, "body": 1.0}
    lead_chars: int = Field(600, ge=0)
    repeat: float = Field(0.5, ge=0, lt=1)
    concepts: dict[str, ConceptSpec]


@dataclass(frozen=True, eq=False)  # identity hashing: terms are counted in hot loops
class Concept:
    name: str
    roles: frozenset[str]
    weight: float
    tag: str | None
    label: str


@dataclass(frozen=True, eq=False)
class Term:
    """A phrase of one concept; *label* is what tags show (the entity or concept label)."""

    text: str
    concept: Concept
    label: str


class Matcher:
    """Finds the terms of all concepts in one Aho-Corasick pass (ahocorasick-rs), then keeps
    the leftmost-longest matches that sit on word boundaries (Latin scripts) or anywhere (CJK).

    A form may belong to one scoring concept and one tag-only concept ('Xinjiang' is context
    and a place), so each form maps to a tuple of terms.
    """

    def __init__(self, exact: dict[str, tuple[Term, ...]]) -> None:
        self.forms = list(exact)
        self.terms = [exact[f] for f in self.forms]
        self.wild = [f.endswith("*") for f in self.forms]
        self.bounded = [not is_cjk(f) for f in self.forms]
        needles = [f.rstrip("*") for f in self.forms]
        self.automaton = ahocorasick_rs.AhoCorasick(
            needles, matchkind=ahocorasick_rs.MatchKind.Standard) if needles else None

    def find(self, text: str) -> list[tuple[Term, ...]]:
        if self.automaton is None:
            return []
        size = len(text)
        found = []
        for i, start, end in self.automaton.find_matches_as_indexes(text, overlapping=True):
            if self.bounded[i]:
                if start and (text[start - 1].isalnum() or text[start - 1] == "_"):
                    continue
                if self.wild[i]:
                    while end < size and _word(text[end]):
                        end += 1
                elif end < size and (text[end].isalnum() or text[end] == "_"):
                    continue
            found.append((start, -end, i))
        found.sort()
        out, reached = [], -1
        for start, neg_end, i in found:
            if start >= reached:  # leftmost, then longest, never overlapping
                out.append(self.terms[i])
                reached = -neg_end
        return out


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@dataclass
class Rules:
    threshold: float
    require: list[dict[str, float]]
    fields: dict[str, float]
    lead_chars: int
    repeat: float
    concepts: dict[str, Concept]
    matcher: Matcher
    user_regex: list[tuple[Any, Term]] = field(default_factory=list)
    spec: RuleSpec | None = None  # what they were compiled from: how they reach the workers
    version: str = ""  # a digest of spec: a worker compiles each version once
    learned: Learned | None = None  # what `monitor learn` learned, when it acts (Monitor)

    def __reduce__(self) -> tuple[Any, ...]:
        # The matcher (a Rust automaton) does not pickle; the spec does, and a worker keeps
        # what it compiled from it by version. The spec travels as bytes pickled once here
        # and unpickled in a worker only for a version it has not seen: pickling the spec
        # for every page's job took 0.2-0.3 ms of this process and as much of the worker's.
        if self.spec is None:
            raise TypeError("Rules compiled without their spec cannot cross processes")
        if self._packed is None:
            self._packed = pickle.dumps(self.spec, protocol=pickle.HIGHEST_PROTOCOL)
        if self.learned is None:
            return (_compiled, (self.version, self._packed))
        if self._learned_bytes is None:
            self._learned_bytes = self.learned.as_bytes()
        return (_compiled, (self.version, self._packed, self.learned.model_id,
                            self._learned_bytes))

    _packed: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _learned_bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def key(self) -> RulesKey:
        """These rules by name, for jobs to a worker that has them already."""
        return RulesKey(f"{self.version}:{self.learned.model_id if self.learned else 0}")


class RulesMissing(Exception):  # noqa: N818 - a request, not a failure: send the rules
    """A worker was given rules by name (RulesKey) that it has not compiled yet."""


@dataclass(frozen=True)
class RulesKey:
    """Rules by version and model, as a page's job carries them once a worker has them: the
    rules themselves are 20 KB a job, and 3 MB with a model of 50,000 terms."""

    name: str

    def resolve(self) -> Rules:
        """The rules this worker compiled under this name; RulesMissing if it has none."""
        rules = _COMPILED.get(self.name)
        if rules is None:
            raise RulesMissing(self.name)
        return rules


_COMPILED: dict[str, Rules] = {}  # in a worker: rules by version and model (RulesKey.name)


def _compiled(version: str, packed: bytes, model_id: int = 0, learned: bytes = b"") -> Rules:
    key = f"{version}:{model_id}"
    rules = _COMPILED.get(key)
    if rules is None:
        if len(_COMPILED) > 4:
            _COMPILED.clear()
        rules = compile_rules(pickle.loads(packed))  # our own bytes
        if learned:
            rules.learned = Learned.from_data(json.loads(learned))
        _COMPILED[key] = rules
    return rules


def load_rules(path: str | Path) -> Rules:
    doc = yamlfile.load(path)
    spec: RuleSpec = validate(doc, RuleSpec)
    return compile_rules(spec, doc)


def compile_rules(spec: RuleSpec, doc: yamlfile.Document | None = None) -> Rules:
    def fail(loc: tuple[Any, ...], message: str) -> ConfigError:
        return doc.error(loc, message) if doc else ConfigError(message, key=yamlfile.key_path(loc))

    for name in spec.fields:
        if name not in ("title", "lead", "body"):
            raise fail(("fields", name), "fields are title, lead and body")
    exact: dict[bool, dict[str, Term]] = {False: {}, True: {}}  # keyed by "tag only"
    concepts: dict[str, Concept] = {}
    user: list[tuple[Any, Term]] = []
    for cname, c in spec.concepts.items():
        concept = Concept(cname, frozenset(c.role), c.weight, c.tag,
                          c.label or cname.replace("_", " "))
        concepts[cname] = concept
        if "negative" in concept.roles and c.weight > 0:
            raise fail(("concepts", cname, "weight"), "a negative concept needs weight < 0")
        tag_only = concept.roles == {"tag"}
        groups: list[tuple[str, Iterable[str], tuple[Any, ...]]] = []
        terms = c.terms.items() if isinstance(c.terms, dict) else [("", c.terms)]
        for lang, items in terms:
            groups.append((concept.label, items, ("concepts", cname, "terms", lang)))
        for label, names in c.entities.items():
            groups.append((label, (label, *names), ("concepts", cname, "entities", label)))
        for label, members, loc in groups:
            for raw in members:
                text = normalize(raw).strip()
                if not text or text == "*":
                    raise fail(loc, f"empty term {raw!r}")
                term = Term(raw, concept, label)
                for form in inflections(text):
                    other = exact[tag_only].get(form)
                    if other is not None and other.concept is not concept:
                        raise fail(loc, f"{raw!r} is also a term of concept "
                                        f"{other.concept.name!r}")
                    exact[tag_only].setdefault(form, term)
        for i, pattern in enumerate(c.regex):
            user.append((_safe_regex(pattern, fail, ("concepts", cname, "regex", i)),
                         Term(pattern, concept, concept.label)))
    merged: dict[str, tuple[Term, ...]] = {}
    for part in (exact[False], exact[True]):
        for form, term in part.items():
            merged[form] = merged.get(form, ()) + (term,)
    return Rules(
        threshold=spec.threshold,
        require=[dict(r) for r in spec.require] if isinstance(spec.require, list)
        else [dict(spec.require)], fields=dict(spec.fields),
        lead_chars=spec.lead_chars, repeat=spec.repeat, concepts=concepts,
        matcher=Matcher(merged), user_regex=user, spec=spec,
        version=hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16])


_NESTED = regex.compile(r"\((?:[^()]|\\.)*[+*}](?:[^()]|\\.)*\)\s*[+*{]")


def _safe_regex(pattern: str, fail: Any, loc: tuple[Any, ...]) -> Any:
    """Compile a user's pattern, refusing shapes that backtrack catastrophically."""
    if _NESTED.search(pattern):
        raise fail(loc, f"regex {pattern!r} repeats a repeated group (catastrophic "
                        "backtracking); rewrite it without nested quantifiers")
    if re.search(r"\\[1-9]|\(\?P=", pattern):
        raise fail(loc, f"regex {pattern!r} uses a backreference")
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.V1)
    except regex.error as exc:
        raise fail(loc, f"invalid regex {pattern!r}: {exc}") from None
