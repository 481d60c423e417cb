"""`monitor serve`: the reading room. Server-rendered pages (Starlette, Jinja2 with
autoescape, one packaged stylesheet, no JavaScript, no external assets) over the Monitor
facade: the day's digest with tag facets, a story with its explanation and copies, full-text
search, feed health, labels, and rolling Atom and JSON feeds. Pages read the database on a
read-only connection of their own per request; only a label writes. Every POST carries a
CSRF token (asgi-csrf); a strict Content-Security-Policy; any address but loopback needs
MONITOR_WEB_PASSWORD (HTTP Basic): see security.py."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from asgi_csrf import asgi_csrf
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..core import SEARCH_LIMIT, Monitor
from ..digest import render
from ..digest.build import Story, highlight, safe_url
from ..digest.rolling import render_rolling
from ..errors import StorageError
from ..scoring.explain import in_plain_words
from .security import BasicAuth, FormsOnly, Headers, allowed_hosts, signing_secret

log = logging.getLogger("monitor.web")
PER_PAGE = 20
LABELS = {"relevant": "relevant", "not_relevant": "not relevant"}
_ENV = Environment(loader=PackageLoader("monitor.web", "templates"),
                   autoescape=select_autoescape(default=True), trim_blocks=True,
                   lstrip_blocks=True)
_ENV.filters["safe_url"] = safe_url  # every href to feed content goes through it


def make_app(monitor: Monitor, password: str | None = None, host: str = "127.0.0.1"
             ) -> ASGIApp:
    """The ASGI app over *monitor*'s database and configuration, listening on *host*."""
    room = ReadingRoom(monitor)
    app = Starlette(routes=[
        Route("/", room.home),
        Route("/feed.atom", room.rolling_feed),
        Route("/feed.json", room.rolling_feed),
        Route("/day/{day}.atom", room.day_feed, name="atom"),
        Route("/day/{day}.json", room.day_feed, name="json"),
        Route("/day/{day}", room.day),
        Route("/story/{id:int}", room.story),
        Route("/label", room.label, methods=["POST"]),
        Route("/star", room.star, methods=["POST"]),
        Route("/saved", room.saved),
        Route("/search", room.search),
        Route("/feeds", room.feeds),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
    ], exception_handlers={HTTPException: room.error})
    # asgi-csrf lets a POST without cookies through unless its path is always protected: a
    # browser sends HTTP Basic credentials by itself, so every POST path is
    guarded: ASGIApp = FormsOnly(asgi_csrf(app, signing_secret=signing_secret(
        monitor.database), always_protect={"/label", "/star"}))
    guarded = TrustedHostMiddleware(guarded, allowed_hosts=allowed_hosts(
        host, list(monitor.settings.web_allowed_hosts)))
    return Headers(BasicAuth(guarded, password) if password else guarded,
                   private=password is not None)


class ReadingRoom:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def _page(self, name: str, request: Request, status: int = 200, **context: Any
              ) -> HTMLResponse:
        token = request.scope.get("csrftoken")
        html = _ENV.get_template(name).render(
            csrftoken=token() if token else "", path=request.url.path, labels=LABELS,
            marked=_marked, **context)
        return HTMLResponse(html, status_code=status)

    async def error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self._page("error.html.j2", request, status=exc.status_code,
                          message=exc.detail or "Something went wrong")

    @contextmanager
    def _reading(self) -> Iterator[Monitor]:
        """A read-only connection for one page; 503 when the database cannot be read."""
        try:
            reading = self.monitor.reading()
            monitor = reading.__enter__()
        except StorageError as exc:
            raise HTTPException(503, f"The archive cannot be read now: {exc}") from None
        try:
            yield monitor
        except StorageError as exc:
            raise HTTPException(503, f"The archive cannot be read now: {exc}") from None
        finally:
            reading.__exit__(None, None, None)

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"/day/{self.monitor.today()}", status_code=302)

    def day(self, request: Request) -> Response:
        day = _day(request.path_params["day"])
        wanted = request.query_params.get("tag")
        with self._reading() as monitor:
            digest = monitor.digest(day)
            labels = monitor.labels([s.id for s in digest.stories])
            starred = {r["id"] for r in monitor.starred([s.id for s in digest.stories])}
        facets: dict[str, Counter[str]] = {}
        for s in digest.stories:
            for kind, values in s.tags.items():
                facets.setdefault(kind, Counter()).update(values)
        stories = [s for s in digest.stories if not wanted or _tagged(s, wanted)]
        seen, marks = _visit(request, self.monitor.clock())
        page = self._page("day.html.j2", request, d=digest, day=day, stories=stories,
                          facets={k: c.most_common() for k, c in sorted(facets.items())},
                          wanted=wanted, prev=day - timedelta(days=1),
                          next=day + timedelta(days=1), today=self.monitor.today(),
                          story_labels=labels, seen=seen, stars=starred)
        for name, value in marks.items():
            page.set_cookie(name, value, max_age=VISIT_COOKIE_DAYS * 86400, httponly=True,
                            samesite="lax")
        return page

    def day_feed(self, request: Request) -> Response:
        day = _day(request.path_params["day"])
        fmt = "atom" if request.url.path.endswith(".atom") else "json"
        with self._reading() as monitor:
            text = render(monitor.digest(day), fmt)
        kind = "application/atom+xml" if fmt == "atom" else "application/json"
        return Response(text, media_type=f"{kind}; charset=utf-8")

    def rolling_feed(self, request: Request) -> Response:
        """The latest flagged stories (ROLLING_DAYS, at most ROLLING_STORIES), newest first;
        ?tag= keeps those with that tag (any kind, or kind:value)."""
        fmt = "atom" if request.url.path.endswith(".atom") else "json"
        wanted = request.query_params.get("tag")
        today = self.monitor.today()
        with self._reading() as monitor:
            digest = monitor.digest(since=today - timedelta(days=ROLLING_DAYS - 1))
        stories = sorted((s for s in digest.stories if not wanted or _tagged(s, wanted)),
                         key=lambda s: s.id, reverse=True)[:ROLLING_STORIES]
        base = f"{request.url.scheme}://{request.url.netloc}"
        text = render_rolling(
            stories, fmt, base=base, self_url=str(request.url),
            title="monitor: flagged stories" + (f" tagged {wanted}" if wanted else ""),
            updated=digest.generated or "")
        kind = "application/atom+xml" if fmt == "atom" else "application/feed+json"
        return Response(text, media_type=f"{kind}; charset=utf-8")

    def story(self, request: Request) -> Response:
        with self._reading() as monitor:
            story = monitor.story(request.path_params["id"])
            if story is None:
                raise HTTPException(404, "No such story")
            label = monitor.labels([story["article"]["id"]]).get(story["article"]["id"])
            saved = bool(monitor.starred([story["article"]["id"]]))
        article = story["article"]
        score = article["explanation"]
        terms = [m.term for m in score.matches if m.contribution > 0]
        concepts = self.monitor.rules.concepts
        return self._page("story.html.j2", request, s=story, a=article, label=label,
                          text=_mark(article["text"] or "", terms), saved=saved,
                          plain=in_plain_words(score, self.monitor.rules),
                          concept=lambda name: concepts[name].label if name in concepts
                          else name.replace("_", " "),
                          original=next((c for c in story["copies"]
                                         if c["id"] == article["id"]), None))

    async def label(self, request: Request) -> Response:
        form = await request.form()
        label, note = str(form.get("label", "")), str(form.get("note", ""))[:2000]
        story = _int(str(form.get("story", "")), 0)
        if label not in LABELS:
            raise HTTPException(400, "A label is relevant or not_relevant")

        def write() -> bool:  # the one write: in a thread, on a connection of its own
            with self.monitor.apart() as monitor:
                return monitor.label(story, label, note)
        if not story or not await asyncio.to_thread(write):
            raise HTTPException(404, "No such story")
        back = str(form.get("back", ""))
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//")
                                else f"/story/{story}", status_code=303)

    async def star(self, request: Request) -> Response:
        form = await request.form()
        story = _int(str(form.get("story", "")), 0)
        on = form.get("star") != "off"

        def write() -> bool:  # in a thread, on a connection of its own
            with self.monitor.apart() as monitor:
                return monitor.star(story, on)
        if not story or not await asyncio.to_thread(write):
            raise HTTPException(404, "No such story")
        back = str(form.get("back", ""))
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//")
                                else f"/story/{story}", status_code=303)

    def saved(self, request: Request) -> Response:
        with self._reading() as monitor:
            rows = monitor.starred()
        return self._page("saved.html.j2", request, rows=rows)

    def search(self, request: Request) -> Response:
        q = request.query_params
        query = q.get("q", "").strip()
        page = min(max(_int(q.get("page"), 1), 1), SEARCH_LIMIT // PER_PAGE + 1)
        results: list[dict[str, Any]] = []
        total, message = 0, None
        start, end = _optional_day(q.get("from")), _optional_day(q.get("to"))
        with self._reading() as monitor:
            feeds = monitor.feed_status()
            if query:
                try:
                    total, results = monitor.search(
                        query, flagged=q.get("flagged") == "1", first=start, last=end,
                        feed=q.get("feed") or None, tag=q.get("tag") or None,
                        order="best" if q.get("order") == "best" else "newest",
                        limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
                except StorageError as exc:
                    message = (f"That search could not be read ({str(exc).split(': ', 2)[-1]})."
                               ' Quote phrases ("face recognition"), use AND, OR, NOT, and '
                               "a trailing * for prefixes.")
        for r in results:
            r["snippet_html"] = _snippet(r["snippet"] or "")
        pages = (min(total, SEARCH_LIMIT) + PER_PAGE - 1) // PER_PAGE
        return self._page("search.html.j2", request, q=query, results=results, total=total,
                          page=page, pages=pages, message=message, feeds=feeds,
                          params=dict(q.items()), limit=SEARCH_LIMIT)

    def feeds(self, request: Request) -> Response:
        with self._reading() as monitor:
            rows = monitor.feed_status()
        return self._page("feeds.html.j2", request, feeds=rows,
                          waiting=sum(r["pages_waiting"] for r in rows))


ROLLING_DAYS, ROLLING_STORIES = 7, 50  # what /feed.atom and /feed.json carry
VISIT_GAP = timedelta(minutes=30)  # a page viewed after this long begins a new visit
VISIT_COOKIE_DAYS = 400
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(8999, 12, 31)  # days a page can be about


def _visit(request: Request, now: datetime) -> tuple[str | None, dict[str, str]]:
    """"New since your last visit", kept in two cookies, nothing stored: when the reader was
    last here (`monitor_last`) and when the visit before this one began (`monitor_seen`). A
    story first flagged after `monitor_seen` is new. Returns it and the cookies to set."""
    stamp = now.astimezone(UTC).isoformat(timespec="seconds")
    last = _stamp(request.cookies.get("monitor_last"))
    seen = _stamp(request.cookies.get("monitor_seen"))
    if last is not None and now - datetime.fromisoformat(last) > VISIT_GAP:
        seen = last  # a new visit: what came before the previous one is no longer new
    return seen, {"monitor_last": stamp, **({"monitor_seen": seen} if seen else {})}


def _stamp(value: str | None) -> str | None:
    try:
        when = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return when.astimezone(UTC).isoformat(timespec="seconds") if when.tzinfo else None


def _day(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise HTTPException(404, f"{text[:20]!r} is not a day (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise HTTPException(404, f"{text} is not a day the archive can hold ({FIRST_DAY} to "
                                 f"{LAST_DAY})")
    return day


def _optional_day(text: str | None) -> date | None:
    try:
        day = date.fromisoformat(text) if text else None
    except ValueError:
        return None
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        raise HTTPException(400, f"{text} is not a day the archive can hold ({FIRST_DAY} to "
                                 f"{LAST_DAY})")
    return day


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _tagged(story: Story, wanted: str) -> bool:
    """kind:value, or a bare value of any kind."""
    kind, colon, value = wanted.partition(":")
    if not colon:
        return any(wanted in values for values in story.tags.values())
    return value in story.tags.get(kind, [])


def _mark(text: str, terms: list[str]) -> Markup:
    return Markup("").join(Markup("<mark>{}</mark>").format(t) if hit else escape(t)
                           for t, hit in highlight(text, terms))


def _marked(story: Story) -> Markup:
    return _mark(story.excerpt, story.terms)


def _snippet(snippet: str) -> Markup:
    """SQLite's snippet with \\x02 and \\x03 around the matches: escaped, then marked."""
    out = escape(snippet)
    return Markup(str(out).replace("\x02", "<mark>").replace("\x03", "</mark>"))
