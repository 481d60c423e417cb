"""`monitor serve`: the reading room. Server-rendered pages (Starlette, Jinja2 with
autoescape, one packaged stylesheet, no JavaScript, no external assets) over the Monitor
facade: the day's digest with tag facets, a story with its explanation and copies, full-text
search, feed health, and labels. Pages read the database on a read-only connection of their
own per request; only a label writes. Every POST carries a CSRF token (asgi-csrf); a strict
Content-Security-Policy; any address but loopback needs MONITOR_WEB_PASSWORD (HTTP Basic)."""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import logging
import os
import secrets
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
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
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core import SEARCH_LIMIT, Monitor
from ..digest import render
from ..digest.build import Story, highlight, safe_url
from ..errors import ConfigError, StorageError

log = logging.getLogger("monitor.web")
PASSWORD_ENV = "MONITOR_WEB_PASSWORD"
SECRET_ENV = "MONITOR_WEB_SECRET"
PER_PAGE = 20
LABELS = {"relevant": "relevant", "not_relevant": "not relevant"}
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
_ENV = Environment(loader=PackageLoader("monitor.web", "templates"),
                   autoescape=select_autoescape(default=True), trim_blocks=True,
                   lstrip_blocks=True)
_ENV.filters["safe_url"] = safe_url  # every href to feed content goes through it


def needs_password(host: str) -> bool:
    """Anything but the loopback interface is reachable by others."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def check_bind(host: str) -> str | None:
    """The password for *host*, or None when none is needed; ConfigError when it is needed
    and missing: the server does not start."""
    if not needs_password(host):
        return None
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise ConfigError(f"serving on {host} makes the pages reachable from other machines: "
                          f"set a password in the environment variable {PASSWORD_ENV}, or "
                          "serve on 127.0.0.1")
    return password


def allowed_hosts(host: str, extra: list[str]) -> list[str]:
    """The Host headers the pages answer to: the address listened on (and the loopback names
    when it is loopback), plus `web_allowed_hosts` (a reverse proxy's public name). Any
    other is refused: a page on another site whose name is made to resolve to 127.0.0.1 (DNS
    rebinding) would otherwise read the archive and post labels as a same-origin page. On
    0.0.0.0 or :: with no names given, any Host (the password guards those)."""
    names = {host.strip("[]"), *extra}
    if not needs_password(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    elif host in ("0.0.0.0", "::") and not extra:
        return ["*"]
    return sorted(f"[{n}]" if ":" in n else n for n in names)


def signing_secret(database: Path) -> str:
    """The CSRF signing secret: MONITOR_WEB_SECRET, else one kept beside the database
    (`<database>.web-secret`, readable by its owner only), so that a form loaded before a
    restart still posts after it."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    path = Path(f"{database}.web-secret")
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("web secret not read; forms break at the next restart", extra={
            "outcome": f"{path}: {exc}"})
        return secrets.token_hex(32)
    secret = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
    except FileExistsError:  # another process wrote it first: use that one
        return path.read_text().strip()
    except OSError as exc:
        log.warning("web secret not kept; forms break at the next restart", extra={
            "outcome": f"{path}: {exc}"})
    return secret


def make_app(monitor: Monitor, password: str | None = None, host: str = "127.0.0.1"
             ) -> ASGIApp:
    """The ASGI app over *monitor*'s database and configuration, listening on *host*."""
    room = ReadingRoom(monitor)
    app = Starlette(routes=[
        Route("/", room.home),
        Route("/day/{day}.atom", room.day_feed, name="atom"),
        Route("/day/{day}.json", room.day_feed, name="json"),
        Route("/day/{day}", room.day),
        Route("/story/{id:int}", room.story),
        Route("/label", room.label, methods=["POST"]),
        Route("/search", room.search),
        Route("/feeds", room.feeds),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
    ], exception_handlers={HTTPException: room.error})
    # asgi-csrf lets a POST without cookies through unless its path is always protected: a
    # browser sends HTTP Basic credentials by itself, so every POST path is
    guarded: ASGIApp = FormsOnly(asgi_csrf(app, signing_secret=signing_secret(
        monitor.database), always_protect={"/label"}))
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
        facets: dict[str, Counter[str]] = {}
        for s in digest.stories:
            for kind, values in s.tags.items():
                facets.setdefault(kind, Counter()).update(values)
        stories = [s for s in digest.stories if not wanted or _tagged(s, wanted)]
        return self._page("day.html.j2", request, d=digest, day=day, stories=stories,
                          facets={k: c.most_common() for k, c in sorted(facets.items())},
                          wanted=wanted, prev=day - timedelta(days=1),
                          next=day + timedelta(days=1), today=self.monitor.today(),
                          story_labels=labels)

    def day_feed(self, request: Request) -> Response:
        day = _day(request.path_params["day"])
        fmt = "atom" if request.url.path.endswith(".atom") else "json"
        with self._reading() as monitor:
            text = render(monitor.digest(day), fmt)
        kind = "application/atom+xml" if fmt == "atom" else "application/json"
        return Response(text, media_type=f"{kind}; charset=utf-8")

    def story(self, request: Request) -> Response:
        with self._reading() as monitor:
            story = monitor.story(request.path_params["id"])
            if story is None:
                raise HTTPException(404, "No such story")
            label = monitor.labels([story["article"]["id"]]).get(story["article"]["id"])
        article = story["article"]
        terms = [m.term for m in article["explanation"].matches if m.contribution > 0]
        return self._page("story.html.j2", request, s=story, a=article, label=label,
                          text=_mark(article["text"] or "", terms))

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


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(8999, 12, 31)  # days a page can be about


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
    kind, _, value = wanted.partition(":")
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


class Headers:
    """Security headers on every answer; behind a password, nothing kept by caches."""

    def __init__(self, app: ASGIApp, private: bool = False) -> None:
        self.app = app
        self.extra = [(b"cache-control", b"no-store")] if private else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")] + self.extra
            await send(message)
        await self.app(scope, receive, with_headers)


class FormsOnly:
    """Our forms post application/x-www-form-urlencoded. Any other body is refused before
    asgi-csrf reads it: asgi-csrf 0.11 hands multipart bodies to python-multipart with an
    argument python-multipart 0.0.34 no longer takes (a 500 for any multipart POST)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            ctype = dict(scope.get("headers", [])).get(b"content-type", b"")
            if not ctype.lower().startswith(b"application/x-www-form-urlencoded"):
                await Response("A form is posted as application/x-www-form-urlencoded",
                               status_code=415)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BasicAuth:
    """HTTP Basic authentication, any user name, the password from MONITOR_WEB_PASSWORD."""

    def __init__(self, app: ASGIApp, password: str) -> None:
        self.app, self.password = app, password.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            await Response("Password required", status_code=401, headers={
                "WWW-Authenticate": 'Basic realm="monitor", charset="UTF-8"'})(
                scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:6].lower() == b"basic ":
                try:
                    _, _, given = base64.b64decode(value[6:]).partition(b":")
                except ValueError:
                    return False
                return hmac.compare_digest(given, self.password)
        return False
