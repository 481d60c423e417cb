"""The storage layer: the only package that writes SQL. SQLite through sqlite-utils, in WAL
mode so readers (Datasette, sqlite3, `monitor status`) never block the writer. One module per
domain, each a mixin of Store: feeds, articles (and stories), search, labels, alerts; base
holds the transaction helper."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlite_utils import Database

from ..errors import StorageError
from . import base
from .alerts import AlertsMixin
from .articles import ArticlesMixin
from .base import iso
from .feeds import FeedsMixin
from .labels import LabelsMixin
from .schema import migrations
from .search import SEARCH_LIMIT, SearchMixin, plain_query

__all__ = ["SEARCH_LIMIT", "Store", "iso", "plain_query"]


class Store(FeedsMixin, ArticlesMixin, SearchMixin, LabelsMixin, AlertsMixin):
    """One connection to the archive, used only in the thread that opened it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=base.BUSY_TIMEOUT_MS / 1000)
            self.db = Database(conn)
            self.db.execute(f"PRAGMA busy_timeout = {base.BUSY_TIMEOUT_MS}")
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            migrations.apply(self.db)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from None

    @classmethod
    def readonly(cls, path: str | Path) -> Store:
        """A connection that cannot write (the web pages): no migrations, no WAL switch."""
        store = cls.__new__(cls)
        store.path = Path(path)
        if not store.path.exists():
            raise StorageError(f"{store.path}: no such database (run `monitor poll --once`)")
        try:
            uri = f"file:{quote(str(store.path.resolve()))}?mode=ro"  # '?', '#', '%' in names
            conn = sqlite3.connect(uri, uri=True,
                                   timeout=base.BUSY_TIMEOUT_MS / 1000)
            store.db = Database(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"{store.path}: {exc}") from None
        return store
