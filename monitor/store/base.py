"""The store's plumbing: the connection's settings, the write transaction, the conversions
every table shares. Only the store writes SQL; only this module opens transactions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlite_utils import Database

from ..errors import StorageError

BUSY_TIMEOUT_MS = 15_000


def iso(when: datetime | None) -> str | None:
    """UTC ISO-8601 to the second, so that string order is time order. Naive means UTC."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A cursor's rows as dicts by column name."""
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur]


class StoreBase:
    """What every table's methods need: the database, its path and the write transaction."""

    path: Path
    db: Database

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> Transaction:
        """Several writes as one: `with store.transaction():` (takes the write lock now)."""
        return Transaction(self.db)

    def _write(self) -> Transaction:
        return Transaction(self.db)

    def compact(self) -> None:
        """Give the space of dropped text back to the file system (VACUUM rewrites the file:
        run it while nothing else writes)."""
        try:
            self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.conn.execute("VACUUM")
        except sqlite3.Error as exc:
            raise StorageError(f"compacting {self.path}: {exc}") from None

    def count_articles(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM articles").fetchone()[0])


class Transaction:
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so a busy
    database is waited for (busy_timeout) instead of failing when a read would turn into a
    write; SQLite failures (disk full, lock timeouts) become StorageError."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> None:
        conn = self.db.conn
        self.outer = not conn.in_transaction
        if self.outer:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise StorageError(f"database write failed: {err}") from None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.outer:
            return
        conn = self.db.conn
        try:
            if exc is None:
                conn.commit()
            else:
                conn.rollback()
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.rollback()
            raise StorageError(f"database write failed: {err}") from None
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"database write failed: {exc}") from None



def decode(row: dict[str, Any]) -> dict[str, Any]:
    for key, empty in (("matches", "[]"), ("tags", "{}"), ("learned", "null")):
        if key in row:
            row[key] = json.loads(row[key] or empty)
    return row



def marks(values: Iterable[Any]) -> str:
    """As many SQL parameters as values: '?,?,?'."""
    return ",".join("?" for _ in values)
