"""Editing feeds.yaml in place (the user's comments and order kept) and OPML in and out."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from lxml import etree
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from .atomic import write_text
from .config import FeedConfig, load_feeds
from .errors import ConfigError


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True  # a quoted "on" or "No" stays a string when the file is edited
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def _load(path: Path) -> tuple[YAML, CommentedMap]:
    load_feeds(path) if path.exists() else None  # refuse to edit a file that is already invalid
    yaml = _yaml()
    data = yaml.load(path.read_text(encoding="utf-8")) if path.exists() else None
    if data is None:
        data = CommentedMap()
    if data.get("feeds") is None:
        data["feeds"] = CommentedSeq()
    return yaml, data


def _save(path: Path, yaml: YAML, data: CommentedMap) -> None:
    out = io.StringIO()
    yaml.dump(data, out)
    tmp = path.with_name(f".{path.name}.check")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    try:
        load_feeds(tmp)  # never write a file the service would reject
    except ConfigError as exc:  # said of the file the user knows, not of the check's copy
        raise ConfigError(str(exc).replace(str(tmp), str(path)) + " (not written)") from None
    finally:
        tmp.unlink(missing_ok=True)
    write_text(path, out.getvalue())


def add(path: Path, feeds: list[FeedConfig]) -> list[FeedConfig]:
    """Append feeds whose URL is not listed yet; returns those added."""
    yaml, data = _load(path)
    known = {str(f.get("url")) for f in data["feeds"]}
    added = []
    for feed in feeds:
        if feed.url in known:
            continue
        # quoted: a name such as No, on, 1.0 or null is read back as a string, never as what
        # YAML 1.1 makes of it
        entry = CommentedMap(url=feed.url, name=DoubleQuotedScalarString(feed.name))
        if feed.tags:
            entry["tags"] = [DoubleQuotedScalarString(t) for t in feed.tags]
        data["feeds"].append(entry)
        known.add(feed.url)
        added.append(feed)
    if added:
        _save(path, yaml, data)
    return added


def remove(path: Path, url: str) -> bool:
    yaml, data = _load(path)
    for i, entry in enumerate(data["feeds"]):
        if str(entry.get("url")) == url:
            del data["feeds"][i]
            _save(path, yaml, data)
            return True
    return False


def read_opml(path: Path) -> list[FeedConfig]:
    """Feeds from an OPML file (any nesting); entities and network access are off."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ConfigError(f"not a readable OPML file: {exc}", file=str(path)) from None
    feeds = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if urlsplit(url).scheme not in ("http", "https"):
            continue
        name = (outline.get("title") or outline.get("text") or urlsplit(url).hostname or url)
        parent = outline.getparent()
        tag = parent.get("text") if parent is not None and parent.tag == "outline" else None
        feeds.append(FeedConfig(url=url, name=name.strip()[:200], tags=[tag] if tag else []))
    return feeds


def write_opml(feeds: list[FeedConfig]) -> str:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', '<opml version="2.0">',
             "  <head><title>monitor feeds</title></head>", "  <body>"]
    for f in feeds:
        lines.append(f'    <outline type="rss" text={quoteattr(f.name)} title={quoteattr(f.name)}'
                     f" xmlUrl={quoteattr(f.url)}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)
