"""Test helpers: a project folder with real YAML files, a real SQLite file, and a real
HTTP server on 127.0.0.1 (pytest-httpserver) for feeds and pages."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from email.utils import format_datetime
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import Paths

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
NOW = datetime.now(UTC).replace(microsecond=0)


def rss(items: list[dict[str, str]], title: str = "Test feed") -> str:
    out = ['<?xml version="1.0" encoding="utf-8"?>', '<rss version="2.0"><channel>',
           f"<title>{title}</title><link>http://example.org/</link><description>t</description>"]
    for it in items:
        out.append("<item>" + "".join(
            f"<{k}>{v}</{k}>" for k, v in it.items()) + "</item>")
    out.append("</channel></rss>")
    return "\n".join(out)


def item(n: int, base: str, path: str | None = None, title: str | None = None,
         **extra: str) -> dict[str, str]:
    return {"title": title or f"Story {n}", "link": f"{base}{path or f'/page/{n}'}",
            "guid": f"urn:test:{n}", "pubDate": format_datetime(NOW, usegmt=True),
            "description": f"Summary of story {n}.", **extra}


class Project:
    """A user's folder: feeds.yaml, config/settings.yaml, the shipped keywords.yaml."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "config").mkdir()
        self.db = root / "monitor.db"
        self.settings(allow_private_addresses=True, extract_workers=1)
        (root / "config" / "keywords.yaml").write_bytes(
            (ROOT / "config" / "keywords.yaml").read_bytes())
        self.feeds([])

    @property
    def paths(self) -> Paths:
        return Paths(self.root / "feeds.yaml", self.root / "config" / "keywords.yaml",
                     self.root / "config" / "settings.yaml", self.db)

    def settings(self, **values: object) -> None:
        lines = [f"database: {self.db}"]
        for key, value in values.items():
            lines.append(f"{key}: {str(value).lower() if isinstance(value, bool) else value}")
        (self.root / "config" / "settings.yaml").write_text("\n".join(lines) + "\n")

    def feeds(self, feeds: list[tuple[str, str]] | str) -> None:
        if isinstance(feeds, str):
            text = textwrap.dedent(feeds)
        else:
            text = "feeds:\n" + "".join(
                f"  - url: {url}\n    name: {name}\n" for name, url in feeds) if feeds \
                else "feeds: []\n"
        (self.root / "feeds.yaml").write_text(text)

    def run(self, *args: str, input: str | None = None) -> Result:
        p = self.paths
        return CliRunner().invoke(cli, ["--feeds", str(p.feeds), "--keywords", str(p.keywords),
                                        "--settings", str(p.settings), *args], input=input)
