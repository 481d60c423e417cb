"""Digest -> text, Markdown or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

from .build import Digest, Story


def _terms(story: Story, n: int = 6) -> str:
    seen: list[str] = []
    for m in story.matches:
        if m["contribution"] > 0 and m["term"] not in seen:
            seen.append(m["term"])
    return ", ".join(seen[:n])


def _tags(story: Story) -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in story.tags.items() if v)


def render_text(d: Digest) -> str:
    lines = [f"Digest for {d.date} ({d.timezone}): {len(d.stories)} flagged stories", ""]
    for i, s in enumerate(d.stories, 1):
        lines += [f"{i}. {s.title}", f"   {s.url or '(no link)'}",
                  f"   {s.feed} · {s.published or 'undated'} · score {s.score:.1f}",
                  f"   matched: {_terms(s)}"]
        if _tags(s):
            lines.append(f"   tags: {_tags(s)}")
        if s.excerpt:
            lines.append(f"   {s.excerpt}")
        lines.append("")
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in text)


def render_md(d: Digest) -> str:
    lines = [f"# Digest for {d.date}", "", f"{len(d.stories)} flagged stories ({d.timezone}).", ""]
    for s in d.stories:
        title = _md_escape(s.title)
        url = s.url if s.url and s.url.startswith(("http://", "https://")) else None
        lines.append(f"## [{title}](<{url}>)" if url else f"## {title}")
        lines += ["", f"*{_md_escape(s.feed)}* · {s.published or 'undated'} · "
                  f"score {s.score:.1f}", "", f"**Matched:** {_md_escape(_terms(s))}"]
        if _tags(s):
            lines += ["", f"**Tags:** {_md_escape(_tags(s))}"]
        if s.excerpt:
            lines += ["", f"> {_md_escape(s.excerpt)}"]
        lines.append("")
    return "\n".join(lines)


def render_json(d: Digest) -> str:
    return json.dumps({"date": d.date, "timezone": d.timezone, "stories": [
        {"title": s.title, "url": s.url, "feed": s.feed, "published": s.published,
         "score": s.score, "matches": s.matches, "tags": s.tags, "excerpt": s.excerpt}
        for s in d.stories]}, ensure_ascii=False, indent=2)


FORMATS: dict[str, Callable[[Digest], str]] = {
    "text": render_text, "md": render_md, "json": render_json}


def render(d: Digest, fmt: str) -> str:
    return FORMATS[fmt](d)
