"""One DuckDB connection shared by threads, with all-or-nothing writes.

Why this shape: DuckDB lets one *process* write a database file, and threads of that process share it through
``conn.cursor()`` (each cursor is its own connection to the same database). So the Database keeps one
connection, hands every call a fresh cursor, and remembers the cursor of an open transaction per thread so
that repository calls made inside ``with db.transaction():`` join it instead of committing on their own.

DuckDB uses optimistic concurrency: two threads updating the same row (a worker's heartbeat and a page's cancel
request) make one of them fail with "Conflict on update". ``write()`` retries such a conflict a few times,
which is safe because it owns the whole transaction and re-runs it from the start.

    db = Database("runs/workbench.duckdb")
    with db.transaction() as cur:
        cur.execute("INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?)", ["r1", 0, "exact_match", "all", 0.4, 50])
"""

from __future__ import annotations

import json
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import duckdb

from store.migrate import MIGRATIONS_DIR, applied_versions, migrate

T = TypeVar("T")
_CONFLICT_RETRIES = 8


class Database:
    """The connection, per-thread transactions, and row decoding shared by every repository."""

    def __init__(self, path: str | Path = ":memory:", migrations_dir: str | Path = MIGRATIONS_DIR):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = duckdb.connect(self.path)
        try:
            migrate(self.conn, migrations_dir, path_label=self.path)
        except BaseException:
            self.conn.close()
            raise
        self._local = threading.local()

    @property
    def schema_version(self) -> int:
        versions = applied_versions(self.cursor())
        return versions[-1] if versions else 0

    def close(self) -> None:
        self.conn.close()

    # ---- cursors and transactions

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """The cursor of this thread's open transaction, else a new cursor (safe to use from any thread)."""
        active = getattr(self._local, "cursor", None)
        return active if active is not None else self.conn.cursor()

    def in_transaction(self) -> bool:
        return getattr(self._local, "cursor", None) is not None

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT on a cursor, ROLLBACK on any exception; nested use joins the outer transaction."""
        if self.in_transaction():
            yield self._local.cursor
            return
        cur = self.conn.cursor()
        cur.execute("BEGIN TRANSACTION")
        self._local.cursor = cur
        try:
            yield cur
        except BaseException:
            self._local.cursor = None
            _rollback_quietly(cur)
            cur.close()
            raise
        self._local.cursor = None
        try:
            cur.execute("COMMIT")
        except BaseException:
            _rollback_quietly(cur)
            raise
        finally:
            cur.close()

    def write(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``work(cursor)`` atomically, retrying on DuckDB write-write conflicts; joins an open transaction."""
        if self.in_transaction():
            return work(self._local.cursor)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                with self.transaction() as cur:
                    return work(cur)
            except duckdb.TransactionException as exc:
                if "conflict" not in str(exc).lower() or attempt == _CONFLICT_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.001, 0.004) * 2**attempt)
        raise AssertionError("unreachable")

    def execute(self, sql: str, params: list | None = None) -> None:
        """One write statement, atomic and conflict-retried."""
        self.write(lambda cur: cur.execute(sql, params or []))

    # ---- reads

    def fetch_all(self, sql: str, params: list | None = None) -> list[dict[str, Any]]:
        """Rows as dicts; JSON columns come back parsed."""
        cur = self.cursor()
        return decode_rows(cur.execute(sql, params or []))

    def fetch_one(self, sql: str, params: list | None = None) -> dict[str, Any] | None:
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def fetch_value(self, sql: str, params: list | None = None) -> Any:
        row = self.cursor().execute(sql, params or []).fetchone()
        return row[0] if row else None


def decode_rows(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Turn a result into dicts, parsing every column whose DuckDB type is JSON."""
    names = [d[0] for d in result.description]
    json_at = [i for i, d in enumerate(result.description) if str(d[1]) == "JSON"]
    rows = []
    for values in result.fetchall():
        row = dict(zip(names, values))
        for i in json_at:
            if values[i] is not None:
                row[names[i]] = json.loads(values[i])
        rows.append(row)
    return rows


class Repository:
    """Base of the per-entity classes: they share the Database and nothing else."""

    def __init__(self, db: Database):
        self._db = db


def _rollback_quietly(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back (DuckDB already aborted it)
