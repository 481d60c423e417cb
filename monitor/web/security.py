"""The reading room's guards: which addresses it may listen on and which Host names it
answers, HTTP Basic auth, the CSRF signing secret kept beside the database, forms only as
url-encoded posts, and the security headers on every answer."""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError

log = logging.getLogger("monitor.web")
PASSWORD_ENV = "MONITOR_WEB_PASSWORD"
SECRET_ENV = "MONITOR_WEB_SECRET"
# one first-party script (keyboard navigation), nothing inline; every page works without it
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


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

