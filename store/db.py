"""One DuckDB connection shared by threads, with all-or-nothing writes.

Why this shape: DuckDB lets one *process* write a database file, and threads of that process share it through
``conn.cursor()`` (each cursor is its own connection to the same database). So the Database keeps one
connection, hands every call a fresh cursor, and remembers the cursor of an open transaction per thread so
that repository calls made inside ``with db.transaction():`` join it instead of committing on their own.

DuckDB uses optimistic concurrency: two threads updating the same row (a worker's heartbeat and a page's cancel
request) make one of them fail with "Conflict on update". ``write()`` retries such a conflict a few times,
which is safe because it owns the whole transaction and re-runs it from the start.

``Repository`` is the base every per-entity class extends: besides the Database it gives them the one way to
read rows (``_rows``, after sqlite-utils' ``rows_where``) and the one way to update a row (``_update``, which
reports a missing row), so no repository assembles WHERE lists or UPDATE statements of its own.

    db = Database("runs/workbench.duckdb")
    with db.transaction() as cur:
        cur.execute("INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?)", ["r1", 0, "exact_match", "all", 0.4, 50])
    Repository(db)._rows("evals", key={"run_id": "r1"}, where={"cohort": None}, order_by="iteration", limit=10)
"""

from __future__ import annotations

import json
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import duckdb

from store.migrate import MIGRATIONS_DIR, applied_versions, migrate
from store.query import identifier, update_statement, where_clause

T = TypeVar("T")
_CONFLICT_RETRIES = 8


class StoreUnavailableError(RuntimeError):
    """The database file cannot be opened: most often another process (a run, the workbench) holds DuckDB's
    one-writer lock on it. Says which file and what to do, in one line."""


class Database:
    """The connection, per-thread transactions, and row decoding shared by every repository."""

    def __init__(self, path: str | Path = ":memory:", migrations_dir: str | Path = MIGRATIONS_DIR):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = duckdb.connect(self.path)
        except duckdb.IOException as err:
            detail = str(err).splitlines()[0].removeprefix("IO Error: ")
            hint = ("another process has it open (DuckDB allows one writer per file): wait for it, stop it, or "
                    "pass another --store" if "lock" in detail.lower() else "check the path and its permissions")
            raise StoreUnavailableError(f"store {self.path}: cannot open it: {detail}; {hint}") from None
        try:
            migrate(self.conn, migrations_dir, path_label=self.path)
        except BaseException:
            self.conn.close()
            raise
        self._local = threading.local()
        self._columns: dict[str, frozenset[str]] = {}

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

    def columns(self, relation: str) -> frozenset[str]:
        """The column names of a table or view (cached: the schema is fixed once migrations ran)."""
        known = self._columns.get(relation)
        if known is None:
            result = self.cursor().execute(f"SELECT * FROM {identifier(relation)} LIMIT 0")
            known = self._columns[relation] = frozenset(d[0] for d in result.description)
        return known


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
    """Base of the per-entity classes: the Database, and one way to read rows and one way to update them.

    ``_rows`` is modelled on sqlite-utils' ``rows_where``; ``relation`` is a table, a view, or a join written in
    code. Column names in ``key``/``where``/``values`` are checked (see store.query), and against the relation's
    real columns when it is a plain table or view, so a typo or a name from outside fails before any SQL runs.
    """

    def __init__(self, db: Database):
        self._db = db

    def _rows(
        self,
        relation: str,
        *,
        key: Mapping[str, Any] | None = None,
        where: Mapping[str, Any] | None = None,
        where_sql: str | Sequence[str] = (),
        where_args: Sequence[Any] = (),
        select: str = "*",
        group_by: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        """Decoded dict rows; ``key`` always filters, ``where`` skips None values (see store.query.where_clause)."""
        self._check_columns(relation, [*(key or {}), *(where or {})])
        sql, params = where_clause(key, where, where_sql, where_args)
        sql = f"SELECT {select} FROM {relation} {sql}"
        if group_by:
            sql += f" GROUP BY {group_by}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        if offset is not None:
            sql += " OFFSET ?"
            params.append(offset)
        return self._db.fetch_all(sql, params)

    def _row(self, relation: str, **options: Any) -> dict[str, Any] | None:
        """The first of ``_rows(relation, **options, limit=1)``, or None."""
        rows = self._rows(relation, **options, limit=1)
        return rows[0] if rows else None

    def _update(
        self,
        table: str,
        *,
        key: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        set_sql: Sequence[str] = (),
        missing: str | None = None,
    ) -> int:
        """Set ``values`` (bound) and ``set_sql`` (raw assignments from code) on the rows matching ``key``; return
        how many. LookupError(``missing``, by default naming the key) when no row matched."""
        self._check_columns(table, [*key, *(values or {})])
        sql, params = update_statement(table, key, values, set_sql)

        def write(cur: duckdb.DuckDBPyConnection) -> int:
            updated = len(cur.execute(sql, params).fetchall())
            if not updated:
                named = ", ".join(f"{column}={value!r}" for column, value in key.items())
                raise LookupError(missing or f"no row in {table} with {named}")
            return updated

        return self._db.write(write)

    def _check_columns(self, relation: str, names: Sequence[str]) -> None:
        for name in names:
            identifier(name)
        plain = [name for name in names if "." not in name]
        if plain and " " not in relation.strip():
            unknown = set(plain) - self._db.columns(relation)
            if unknown:
                raise ValueError(f"{relation}: unknown column(s) {sorted(unknown)}")


def _rollback_quietly(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back (DuckDB already aborted it)
