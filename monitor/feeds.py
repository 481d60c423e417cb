"""Feed bytes -> entries. Pure: no network, no database.

feedparser is only ever given bytes, never a URL, so it cannot fetch anything itself.
Titles and summaries come out as plain text, links only when http(s), lengths capped.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser

from .errors import ParseError
from .models import Entry, ParsedFeed

MAX_TITLE = 1000
MAX_SUMMARY = 20_000
OLDEST = datetime(1990, 1, 1, tzinfo=UTC)  # earlier dates are placeholders (0 -> 1970)
_TRACKING = re.compile(r"^(utm_\w*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|_hsenc|"
                       r"_hsmi|mkt_tok|ref_src|cmpid|ncid|oly_\w+|rss|ito)$", re.I)
_TAG = re.compile(r"<[^>]*>")
# A DOCTYPE's internal subset is where entity bombs and external entities live; feeds never
# need one, so it is cut out before parsing (nothing is expanded, nothing is fetched).
_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[.*?\]\s*>", re.S | re.I)
_SPACE = re.compile(r"[ \t\r\f\v]+")
_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));?")


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """An http(s) URL without tracking parameters, fragment or default port; else None.
    Whether a request can be made for it is the fetcher's question (an invalid host becomes
    the entry's extract_error there); what comes out here can always be stored."""
    if not url or not isinstance(url, str):
        return None
    url = clean(url.strip())
    try:
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _TRACKING.match(k)]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))


def clean(text: str) -> str:
    """Text that SQLite's UTF-8 can carry: lone surrogates (from JSON escapes or character
    references) replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _charref(m: re.Match[bytes]) -> bytes:
    hexa, dec = m.group(1), m.group(2)
    if len(hexa or dec) > 8:
        return b"&#xFFFD;"
    value = int(hexa, 16) if hexa else int(dec)
    if value == 0 or value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        return b"&#xFFFD;"  # feedparser raises on these, sinking the whole feed
    return m.group(0)


def _repair(content: bytes) -> bytes:
    """Fix in the bytes what makes feedparser raise instead of reading on: numeric character
    references outside Unicode (&#99999999;), and NULs in a feed that is not UTF-16/32."""
    if b"&#" in content:
        content = _CHARREF.sub(_charref, content)
    if b"\x00" in content and not content.startswith((b"\xff\xfe", b"\xfe\xff")) \
            and content[:4] not in (b"<\x00?\x00", b"\x00<\x00?", b"\x00\x00\x00<",
                                    b"<\x00\x00\x00"):
        content = content.replace(b"\x00", b"")
    return content


def to_text(markup: str | None, limit: int) -> str:
    """Markup -> one plain-text string (scripts and tags dropped, entities decoded)."""
    if not markup:
        return ""
    text = re.sub(r"(?is)<(script|style)\b.*?(</\1\s*>|$)", " ", markup[: limit * 4])
    text = html.unescape(_TAG.sub(" ", text))
    text = "\n".join(_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return clean(re.sub(r"\n{3,}", "\n\n", text.replace("\x00", "")).strip()[:limit])


def _date(entry: Any, fetched: datetime) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                when = datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, TypeError):
                continue
            if when < OLDEST:
                return None
            return min(when, fetched)  # a date in the future is clamped to the fetch time
    return None


def parse_feed(content: bytes, url: str, *, content_type: str | None = None,
               fetched: datetime | None = None, max_entries: int = 10_000) -> ParsedFeed:
    """Parse feed bytes. Raises ParseError when the bytes are not a feed at all."""
    fetched = fetched or datetime.now(UTC)
    if not content.strip():
        raise ParseError(url, "not a feed: empty body")
    if content.lstrip()[:1] == b"{" or (content_type or "").endswith("json"):
        return parse_json_feed(content, url, fetched=fetched, max_entries=max_entries)
    stripped = content.lstrip()
    if stripped[:5] == b"<?xml":
        content = stripped  # a newline before the XML declaration makes expat give up
    content, entities = _DOCTYPE_SUBSET.subn(b"", content, count=1)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    try:
        parsed = feedparser.parse(_repair(content), response_headers=headers,
                                  sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # noqa: BLE001 - feedparser raises anything on hostile bytes
        raise ParseError(url, f"not a feed (the parser failed: {type(exc).__name__}: "
                              f"{_short(exc)})") from None
    if not parsed.get("version") and not parsed.entries:
        why = parsed.get("bozo_exception")
        raise ParseError(url, "not a feed" + (f" ({_short(why)})" if why else ""))
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if isinstance(problem, feedparser.NonXMLContentType):
        problem = None  # feeds served as text/plain are common and harmless
    warning = f"malformed feed, read what could be read: {_short(problem)}" if problem else None
    if entities:
        warning = "entity declarations in the DOCTYPE ignored" + (f"; {warning}" if warning else "")
    base = parsed.feed.get("link")
    entries, skipped = _entries(parsed.entries[:max_entries], url,
                                base if isinstance(base, str) else url, fetched)
    if skipped:
        warning = skipped + (f"; {warning}" if warning else "")
    title = parsed.feed.get("title")
    title = to_text(title if isinstance(title, str) else "", MAX_TITLE) or None
    return ParsedFeed(title=title, entries=entries, warning=warning)


def _entries(raws: list[Any], url: str, base: str, fetched: datetime
             ) -> tuple[tuple[Entry, ...], str | None]:
    """The entries that can be read; a malformed one is skipped, not the feed."""
    entries: dict[str, Entry] = {}
    errors: list[str] = []
    for raw in raws:
        try:
            entry = _entry(raw, url, base, fetched)
        except Exception as exc:  # noqa: BLE001 - whatever the parser left in an entry
            errors.append(f"{type(exc).__name__}: {_short(exc)}")
            continue
        entries.setdefault(entry.guid, entry)  # duplicate guids inside one feed: first wins
    skipped = f"{len(errors)} malformed entries skipped ({errors[0]})" if errors else None
    return tuple(entries.values()), skipped


def parse_json_feed(content: bytes, url: str, *, fetched: datetime,
                    max_entries: int = 10_000) -> ParsedFeed:
    """JSON Feed 1.0 / 1.1 (jsonfeed.org), which feedparser 6 does not read."""
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(url, f"not a feed (invalid JSON: {_short(exc)})") from None
    if not isinstance(data, dict) or "jsonfeed.org" not in str(data.get("version", "")) \
            or not isinstance(data.get("items", []), list):
        raise ParseError(url, "not a feed (JSON without a jsonfeed.org version)")
    home = data.get("home_page_url")
    base = home if isinstance(home, str) else url
    raws = []
    for item in data.get("items", [])[:max_entries]:
        if not isinstance(item, dict):
            continue
        authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
        raws.append({
            "id": str(item.get("id") or ""), "link": _text(item.get("url"))
            or _text(item.get("external_url")),
            "title": _text(item.get("title")),
            "summary": _text(item.get("content_html")) or _text(item.get("content_text"))
            or _text(item.get("summary")),
            "author": ", ".join(_text(a.get("name")) for a in authors if isinstance(a, dict))
            if isinstance(authors, list) else "",
            "published_parsed": _iso_struct(item.get("date_published")),
            "updated_parsed": _iso_struct(item.get("date_modified")),
        })
    entries, skipped = _entries(raws, url, base, fetched)
    title = to_text(_text(data.get("title")), MAX_TITLE)
    return ParsedFeed(title=title or None, entries=entries, warning=skipped)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _iso_struct(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).timetuple()


def _entry(raw: Any, feed_url: str, base: str, fetched: datetime) -> Entry:
    link = canonical_url(raw.get("link"), base)
    if link is None:
        for alt in raw.get("links", []):
            if alt.get("rel", "alternate") == "alternate":
                link = canonical_url(alt.get("href"), base)
                if link:
                    break
    title = to_text(raw.get("title") if isinstance(raw.get("title"), str) else "", MAX_TITLE)
    summary_html = _text(raw.get("summary"))
    if not summary_html and raw.get("content"):
        summary_html = _text(raw["content"][0].get("value"))
    summary = to_text(summary_html, MAX_SUMMARY)
    guid = clean(_text(raw.get("id")).strip()[:2000]) or link or "sha1:" + hashlib.sha1(
        f"{feed_url}\n{title}\n{summary}".encode()).hexdigest()
    author = to_text(_text(raw.get("author")), 300) or None
    return Entry(feed_url=feed_url, guid=guid, url=link, title=title or (link or "(untitled)"),
                 summary=summary, author=author, published=_date(raw, fetched))


def _short(exc: object) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/feed+json",
              "application/json", "application/rdf+xml", "text/xml", "application/xml"}


def discover_feeds(content: bytes, base: str) -> list[str]:
    """The feeds a web page announces (`<link rel="alternate" type="application/rss+xml"
    href=...>` and its Atom and JSON Feed kin), as absolute http(s) URLs, in page order."""
    from lxml import etree
    from lxml import html as lxml_html

    try:
        doc = lxml_html.fromstring(content[:2_000_000])
    except (etree.ParserError, ValueError):
        return []
    found: list[str] = []
    for link in doc.iter("link"):
        rel = str(link.get("rel") or "").lower().split()
        kind = str(link.get("type") or "").lower().split(";")[0].strip()
        href = str(link.get("href") or "").strip()
        if "alternate" in rel and kind in FEED_TYPES and href:
            url = urljoin(base, href)
            if urlsplit(url).scheme in ("http", "https") and url not in found:
                found.append(url)
    return found
