"""Safe YAML loading that remembers where every key came from.

Config files are edited by hand, so errors must say file:line and key path. We load with
ruamel's round-trip loader (it keeps line numbers) but first walk the event stream and refuse
explicit tags (``!!python/...``) and aliases (the billion-laughs shape): a config file needs
neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent

from .errors import ConfigError

MAX_BYTES = 2_000_000
# Plain scalars that YAML 1.1 tools (and many editors' linters) read as booleans. We load
# YAML 1.2, where they are text, but a file that means different things to different tools
# is a trap: `language: NO` must be quoted.
_YAML11_BOOLS = {"y", "yes", "n", "no", "on", "off"}


def key_path(loc: tuple[Any, ...]) -> str:
    """('feeds', 3, 'url') -> 'feeds[3].url'"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) and the line of each key path (1-based)."""

    file: str
    data: Any
    lines: dict[tuple[Any, ...], int]

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """The line of the deepest part of *loc* that exists in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def error(self, loc: tuple[Any, ...], message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line_of(loc),
                           key=key_path(loc) or None)


def _plain(node: Any, loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    if isinstance(node, CommentedMap):
        out = {}
        for k, v in node.items():
            lines[loc + (k,)] = node.lc.key(k)[0] + 1
            out[k if isinstance(k, str) else str(k)] = _plain(v, loc + (k,), lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, v in enumerate(node):
            lines[loc + (i,)] = node.lc.item(i)[0] + 1
            items.append(_plain(v, loc + (i,), lines))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if type(node) is str and node.lower() in _YAML11_BOOLS:  # plain, unquoted
        raise _Ambiguous(loc, node)
    for kind in (bool, int, float, str):  # ruamel's Scalar* subclasses -> plain types
        if isinstance(node, kind):
            return kind(node)
    return node


class _Ambiguous(Exception):
    def __init__(self, loc: tuple[Any, ...], value: str) -> None:
        self.loc, self.value = loc, value


def parse_text(text: str, file: str) -> Document:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True  # quoted scalars keep their type, so plain ones can be told
    try:
        for event in yaml.parse(text):
            if isinstance(event, AliasEvent):
                raise ConfigError("aliases (*name) are not allowed in config files",
                                  file=file, line=event.start_mark.line + 1)
            tag = getattr(event, "tag", None)
            if isinstance(event, (ScalarEvent, CollectionStartEvent)) and tag:
                raise ConfigError(f"tags ({tag}) are not allowed in config files",
                                  file=file, line=event.start_mark.line + 1)
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", file=file,
                          line=line) from None
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    lines: dict[tuple[Any, ...], int] = {}
    try:
        return Document(file, _plain(data, (), lines), lines)
    except _Ambiguous as exc:
        doc = Document(file, None, lines)
        raise doc.error(exc.loc, f"{exc.value} means false or true to YAML 1.1 tools; write "
                                 f'"{exc.value}" (quoted) for the text, or true/false') from None


def load(path: str | Path) -> Document:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"file larger than {MAX_BYTES} bytes", file=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 (byte {exc.start})", file=str(path)) from None
    return parse_text(text, str(path))
