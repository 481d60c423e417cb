"""Digest -> terminal (rich), text, Markdown, HTML (self-contained, autoescaped), JSON, Atom."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from .build import Digest, Source, Story, highlight, safe_url

TEMPLATES = Environment(loader=PackageLoader("monitor.digest", "templates"),
                   autoescape=select_autoescape(["html", "xml", "j2"], default=True),
                   trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters["safe_url"] = safe_url  # every href in the templates goes through it


def _tags(story: Story) -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in story.tags.items() if v)


def source_label(story: Story, src: Source) -> str:
    """The feed, and the copy's own headline when it differs from the story's."""
    return src.feed if src.title == story.title else f"{src.feed}: {src.title}"


def _sources(story: Story) -> list[str]:
    return [f"{source_label(story, s)} · {s.published or 'undated'} · "
            f"{safe_url(s.url) or '(no link)'}" for s in story.sources]


def _header(d: Digest) -> str:
    tags = ", ".join(f"{t} ({n})" for t, n in d.top_tags)
    return (f"{len(d.stories)} stories from {d.articles} flagged articles" +
            (f"; top tags: {tags}" if tags else ""))


def _health_lines(d: Digest) -> list[str]:
    lines = [f"failing: {f['name'] or f['url']} — {f.get('last_error') or 'gone'} "
             f"({f.get('consecutive_failures') or 0} in a row)" for f in d.health.failing]
    lines += [f"stale: {f['name'] or f['url']} — last success "
              f"{f.get('last_success_at') or 'never'}" for f in d.health.stale]
    lines = lines or ["all feeds healthy"]
    if d.pages_waiting:
        lines.append(f"{d.pages_waiting} pages waiting for a retry (scored on their feed "
                     "summary until their text arrives)")
    return lines


def render_text(d: Digest) -> str:
    lines = [f"Digest for {d.date} ({d.timezone})", _header(d), ""]
    for i, s in enumerate(d.stories, 1):
        lines += [f"{i}. {s.title}", f"   score {s.score:.1f} · matched: {', '.join(s.terms[:6])}"]
        if s.learned_why:
            lines.append(f"   {s.learned_why}")
        if _tags(s):
            lines.append(f"   tags: {_tags(s)}")
        if s.excerpt:
            lines.append(f"   {s.excerpt}")
        lines += [f"   - {line}" for line in _sources(s)]
        lines.append("")
    lines += ["Feed health:"] + [f"  {line}" for line in _health_lines(d)]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in text)


def render_md(d: Digest) -> str:
    lines = [f"# Digest for {d.date}", "", f"{_md_escape(_header(d))} ({d.timezone}).", ""]
    for s in d.stories:
        title, url = _md_escape(s.title), safe_url(s.url)
        lines.append(f"## [{title}](<{url}>)" if url else f"## {title}")
        lines += ["", f"score {s.score:.1f} · **matched:** {_md_escape(', '.join(s.terms[:6]))}"]
        if s.learned_why:
            lines += ["", _md_escape(s.learned_why)]
        if _tags(s):
            lines += ["", f"**tags:** {_md_escape(_tags(s))}"]
        if s.excerpt:
            marked = "".join(f"**{_md_escape(t)}**" if hit else _md_escape(t)
                             for t, hit in highlight(s.excerpt, s.terms))
            lines += ["", f"> {marked}"]
        lines.append("")
        for src in s.sources:
            url, label = safe_url(src.url), _md_escape(source_label(s, src))
            link = f"[{label}](<{url}>)" if url else label
            lines.append(f"- {link} · {src.published or 'undated'}")
        lines.append("")
    lines += ["## Feed health", ""] + [f"- {_md_escape(x)}" for x in _health_lines(d)]
    return "\n".join(lines) + "\n"


def _marked_html(story: Story) -> Markup:
    return Markup("").join(Markup("<mark>{}</mark>").format(t) if hit else escape(t)
                           for t, hit in highlight(story.excerpt, story.terms))


def render_html(d: Digest) -> str:
    return TEMPLATES.get_template("digest.html.j2").render(
        d=d, header=_header(d), health=_health_lines(d), marked=_marked_html, tags=_tags,
        label=source_label)


def render_atom(d: Digest) -> str:
    now = d.generated or datetime.now(UTC).isoformat(timespec="seconds")
    return TEMPLATES.get_template("digest.atom.j2").render(d=d, updated=now, tags=_tags)


def _json(d: Digest) -> dict[str, object]:
    return {"date": d.date, "timezone": d.timezone, "articles": d.articles,
            "top_tags": [{"tag": t, "stories": n} for t, n in d.top_tags],
            "stories": [{"title": s.title, "url": s.url, "feed": s.feed,
                         "published": s.published, "score": s.score, "matches": s.matches,
                         "tags": s.tags, "excerpt": s.excerpt, "learned": s.learned,
                         "sources": [src.__dict__ for src in s.sources]} for s in d.stories],
            "feed_health": {"failing": [f["url"] for f in d.health.failing],
                            "stale": [f["url"] for f in d.health.stale],
                            "pages_waiting": d.pages_waiting}}


def render_json(d: Digest) -> str:
    return json.dumps(_json(d), ensure_ascii=False, indent=2)


def render_term(d: Digest, width: int = 100) -> str:
    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=width,
                      highlight=False)
    console.print(Text(f"Digest for {d.date} ({d.timezone})", style="bold"))
    console.print(Text(_header(d), style="dim"))
    for i, s in enumerate(d.stories, 1):
        body = Text()
        body.append(f"score {s.score:.1f} · ", style="dim")
        body.append(", ".join(s.terms[:6]), style="cyan")
        if s.learned_why:
            body.append(f"\n{s.learned_why}", style="green")
        if _tags(s):
            body.append(f"\n{_tags(s)}", style="magenta")
        if s.excerpt:
            body.append("\n")
            for piece, hit in highlight(s.excerpt, s.terms):
                body.append(piece, style="bold yellow" if hit else None)
        for line in _sources(s):
            body.append(f"\n• {line}", style="dim")
        console.print(Panel(body, title=Text(f"{i}. {s.title}", style="bold"),
                            title_align="left"))
    console.print(Text("Feed health: " + "; ".join(_health_lines(d)), style="dim"))
    return out.getvalue()


FORMATS: dict[str, Callable[[Digest], str]] = {
    "term": render_term, "text": render_text, "md": render_md, "html": render_html,
    "json": render_json, "atom": render_atom}


def render(d: Digest, fmt: str) -> str:
    return FORMATS[fmt](d)
