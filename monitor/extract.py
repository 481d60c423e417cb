"""Page bytes -> article text and metadata, with trafilatura. Pure: no network, no database.

Runs in worker processes, so everything here is a top-level function of plain arguments.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime

import trafilatura
from lxml import etree

from .errors import ExtractError
from .models import Page
from .scoring.text import is_cjk

HTML_TYPES = {"", "text/html", "application/xhtml+xml", "text/xml", "application/xml",
              "text/plain", "application/octet-stream"}
_HTML_LANG = re.compile(rb"""<html[^>]*\slang\s*=\s*["']?([a-zA-Z]{2,3})""", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
# htmldate asks dateutil about odd zone names ("EST") and dateutil warns; the date is still
# read, so the warning is noise in a long-running service's log
warnings.filterwarnings("ignore", message="tzname .* identified but not understood")
MIN_TEXT = 80  # fewer characters is a stub, not an article ...
MIN_TEXT_CJK = 25  # ... but a Chinese, Japanese or Korean character carries a word
_LATIN_FAMILY = {"cp1250", "cp1252", "cp1257", "cp775", "cp850", "cp437", "latin_1",
                 "iso8859_2", "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13",
                 "iso8859_15", "mac_latin2", "mac_roman", "mac_iceland", "mac_turkish"}


def sniff_refusal(content: bytes, content_type: str) -> str | None:
    """Why these bytes are not an HTML article, or None when they may be."""
    head = content[:1024].lstrip()
    if head.startswith(b"%PDF"):
        return "a PDF, not an article page"
    if head[:8] in (b"\x89PNG\r\n\x1a\n",) or head[:3] == b"\xff\xd8\xff" or head[:4] == b"GIF8":
        return "an image, not an article page"
    if content_type not in HTML_TYPES:
        return f"content type {content_type} is not an article page"
    if not content.strip():
        return "empty page"
    return None


def decode_html(content: bytes, declared: str | None) -> str:
    """Bytes -> text. Valid UTF-8 wins (servers often mislabel it), then the charset the page
    or the server declares, then a lenient fallback."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    m = _META_CHARSET.search(content[:4096])
    for name in (m.group(1).decode("ascii", "ignore") if m else None, declared):
        if not name or name.lower().replace("-", "") in ("utf8",):
            continue
        name = {"gb2312": "gb18030", "gbk": "gb18030", "iso88591": "cp1252",
                "latin1": "cp1252"}.get(name.lower().replace("-", "").replace("_", ""), name)
        try:
            return content.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    from charset_normalizer import from_bytes  # a trafilatura dependency

    matches = list(from_bytes(content[:200_000]))
    if not matches:
        return content.decode("cp1252", "replace")
    names = [m.encoding for m in matches]
    # Among single-byte Latin code pages the detector often ranks a rare one first (cp775,
    # mac_latin2); the page was far more likely written in windows-1252.
    if names[0] in _LATIN_FAMILY and "cp1252" in names:
        return content.decode("cp1252", "replace")
    return str(matches[0])


def extract_page(content: bytes, url: str, content_type: str = "", charset: str | None = None,
                 fast: bool = False) -> Page:
    """Extract the article of one page; raise ExtractError with the reason when there is none."""
    refusal = sniff_refusal(content, content_type)
    if refusal:
        raise ExtractError(url, refusal)
    html = decode_html(content, charset)
    try:
        doc = trafilatura.bare_extraction(
            html, url=url, fast=fast, include_comments=False, include_tables=True,
            with_metadata=True, deduplicate=False)
    except (ValueError, LookupError, UnicodeError, RecursionError, etree.LxmlError) as exc:
        # what lxml and trafilatura raise on hostile markup; anything else (a TypeError after
        # an API change) is a bug that must show, not a page without text
        raise ExtractError(url, f"extraction failed: {type(exc).__name__}") from None
    assert not isinstance(doc, dict)  # a Document unless as_dict=True
    if doc is None or not (doc.text or "").strip():
        raise ExtractError(url, "no article text found")
    text = (doc.text or "").strip()
    language = doc.language or None
    if language is None and (m := _HTML_LANG.search(content[:4096])):
        language = m.group(1).decode("ascii").lower()
    if len(text) < (MIN_TEXT_CJK if is_cjk(text[:200]) else MIN_TEXT):
        raise ExtractError(url, f"no article text found (only {len(text)} characters)")
    return Page(text=text, title=doc.title or None, author=doc.author or None,
                published=_date(doc.date), language=language)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
