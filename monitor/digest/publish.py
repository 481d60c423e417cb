"""The daily digest written to its folder in every format, and sent by email once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..atomic import write_text
from ..config import EmailSettings
from ..store import Store
from .build import Digest
from .mail import build_message, send
from .render import render

FILES = (("md", "md"), ("html", "html"), ("json", "json"), ("text", "txt"), ("atom", "atom"))


def write_digest(store: Store, digest: Digest, folder: Path, now: datetime) -> tuple[
        list[Path], bool]:
    """Every file format, each whole or not at all (a temporary file, then a rename), and the
    day recorded. Returns the files and whether the day's digest was emailed before."""
    written = []
    for fmt, suffix in FILES:
        path = folder / f"{digest.date}.{suffix}"
        write_text(path, render(digest, fmt))
        written.append(path)
    record = store.digest_record(digest.date)
    store.record_digest(digest.date, len(digest.stories), digest.articles, now)
    return written, bool(record and record.get("sent_at"))


def email_digest(store: Store, digest: Digest, email: EmailSettings, now: datetime) -> str:
    """Email the digest now (HTML with our text rendering as its alternative) and record it;
    returns the recipients."""
    subject = f"monitor digest {digest.date}: {len(digest.stories)} stories"
    send(email, build_message(email, subject, render(digest, "text"), render(digest, "html")))
    to = ", ".join(email.to)
    store.record_digest(digest.date, len(digest.stories), digest.articles, now,
                        sent_at=now, sent_to=to)
    return to
