"""The digest by email: HTML with a plain-text alternative, over SMTP (smtplib).

Alerts go through Apprise; the digest does not. Apprise 2.3's email plugin, given the HTML
digest, makes its plain-text alternative by converting the HTML: measured on the demo's
digest through aiosmtpd, that part kept none of the 3 article links and ran the tags
together ("Safe CitySmart streetlightsCCTV..."). Here the alternative is our own text
rendering, links and "why it matched" lines included, which Apprise has no way to carry."""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ..config import EmailSettings
from ..errors import MailError

PASSWORD_ENV = "MONITOR_SMTP_PASSWORD"


def build_message(email: EmailSettings, subject: str, text: str, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = email.sender or email.user or "monitor@localhost"
    msg["To"] = ", ".join(email.to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="monitor.local")
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def send(email: EmailSettings, msg: EmailMessage, timeout: float = 30.0) -> None:
    """Send through the configured server; the password comes from $MONITOR_SMTP_PASSWORD."""
    if not email.host or not email.to:
        raise MailError("email is not configured (settings: email.host and email.to)")
    password = os.environ.get(PASSWORD_ENV)
    try:
        if email.tls == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(email.host, email.port, timeout=timeout,
                                                    context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(email.host, email.port, timeout=timeout)
        with server:
            if email.tls == "starttls":
                server.starttls(context=ssl.create_default_context())
            if email.user:
                if not password:
                    raise MailError(f"email.user is set but ${PASSWORD_ENV} is empty")
                server.login(email.user, password)
            server.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"sending the digest via {email.host}:{email.port} failed: "
                        f"{exc}") from None
