"""DuckDB connections shared by threads, opened on demand so processes can share one file, with atomic writes.

Why this shape: DuckDB lets one *process* open a database file at a time (even a read-only open fails while another
holds it), and threads of that process share it through ``conn.cursor()``. A run that kept the file open for its
whole life locked everyone else out for hours: ``rlaif runs`` could not list runs while a run worked, and no CLI
command could open the store while the workbench was up. So a file store is **opened on demand**: every read, write
and transaction holds the connection (threads share it, counted), and the connection is closed once nobody has used
it for ``linger_s`` (a fraction of a second, so a burst of calls pays for one open). Between bursts, while a run
samples or trains for minutes, the file is free for the other process. An open that finds the file locked **waits**:
it says once, on stderr, "waiting for the store F held by pid N", retries with backoff, and after ``wait_s``
(``RLAIF_STORE_WAIT_S``, default 60) fails with ``StoreUnavailableError`` (one line naming the file and the pid).
Measured: one open of a 10 MB store costs ~30 ms, and ``bench/bench_store_sharing.py`` prints what it costs a run.
``:memory:`` stores have no file to share and keep one connection for their life.

Within a connection, the Database hands every call a fresh cursor and remembers the cursor of an open transaction
per thread so that repository calls made inside ``with db.transaction():`` join it instead of committing on their
own. DuckDB uses optimistic concurrency: two threads updating the same row (a worker's heartbeat and a page's cancel
request) make one of them fail with "Conflict on update". ``write()`` retries such a conflict a few times, which is
safe because it owns the whole transaction and re-runs it from the start.

``Repository`` is the base every per-entity class extends: besides the Database it gives them the one way to
read rows (``_rows``, after sqlite-utils' ``rows_where``) and the one way to update a row (``_update``, which
reports a missing row), so no repository assembles WHERE lists or UPDATE statements of its own.

    db = Database("runs/workbench.duckdb")
    with db.transaction() as cur:
        cur.execute("INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?)", ["r1", 0, "exact_match", "all", 0.4, 50])
    Repository(db)._rows("evals", key={"run_id": "r1"}, where={"cohort": None}, order_by="iteration", limit=10)
"""

from __future__ import annotations

import atexit
import json
import os
import random
import re
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import duckdb

from store.migrate import MIGRATIONS_DIR, applied_versions, migrate
from store.query import identifier, update_statement, where_clause

T = TypeVar("T")
_CONFLICT_RETRIES = 8
DEFAULT_WAIT_S = 60.0
DEFAULT_LINGER_S = 0.3


class StoreUnavailableError(RuntimeError):
    """The database file cannot be opened: most often another process (a run, the workbench) held DuckDB's
    one-writer lock on it for longer than we wait. Says which file and what to do, in one line."""


def _default_wait_s() -> float:
    raw = os.environ.get("RLAIF_STORE_WAIT_S", "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_WAIT_S
    except ValueError:
        return DEFAULT_WAIT_S


def _say_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_OPEN_FILES: "weakref.WeakSet[Database]" = weakref.WeakSet()


@atexit.register
def _close_open_files() -> None:
    """Close idle-pending connections before the interpreter ends: a daemon closer thread stopped in the middle of
    DuckDB's close at shutdown aborts the process ("FATAL: exception not rethrown")."""
    for db in list(_OPEN_FILES):
        db.close()


class Database:
    """The connection (opened on demand for a file), per-thread transactions, and row decoding for repositories."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        migrations_dir: str | Path = MIGRATIONS_DIR,
        *,
        wait_s: float | None = None,
        linger_s: float = DEFAULT_LINGER_S,
        on_wait: Callable[[str], None] = _say_waiting,
    ):
        self.path = str(path)
        self.shared = self.path != ":memory:"
        self.wait_s = _default_wait_s() if wait_s is None else wait_s
        self.linger_s = linger_s
        self._on_wait = on_wait
        self._migrations_dir = migrations_dir
        self._local = threading.local()
        self._columns: dict[str, frozenset[str]] = {}
        self._state = threading.Condition()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._users = 0
        self._last_used = 0.0
        self._closer: threading.Thread | None = None
        self._closed = False
        self._opening = False
        self._migrated = False  # migrations run on this object's first open only
        if self.shared:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _OPEN_FILES.add(self)
        # Open once now: a bad path, a newer schema or a held file fails here, at construction, as before.
        with self.connected():
            pass

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        """The open connection (opened if needed; for a file store it closes again once idle)."""
        with self.connected() as conn:
            return conn

    @property
    def schema_version(self) -> int:
        with self.connected() as conn:
            versions = applied_versions(conn.cursor())
        return versions[-1] if versions else 0

    def close(self) -> None:
        with self._state:
            self._closed = True
            self._close_locked()
            self._state.notify_all()

    # ---- opening on demand

    @contextmanager
    def connected(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold the connection open for the block (opening it, waiting for another process if need be)."""
        with self._state:
            while self._opening:  # another thread is opening (maybe waiting for another process): join it
                self._state.wait()
            if self._closed:
                raise StoreUnavailableError(f"store {self.path}: this Store was closed")
            if self._conn is None:
                self._opening = True
                try:
                    self._conn = self._open()
                finally:
                    self._opening = False
                    self._state.notify_all()
            self._users += 1
        try:
            yield self._conn
        finally:
            with self._state:
                self._users -= 1
                self._last_used = time.monotonic()
                if self._users == 0 and self.shared:
                    self._schedule_close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Connect (called with the state lock held; waiting releases it), migrating on this object's first open."""
        deadline = time.monotonic() + self.wait_s
        delay, said = 0.005, False
        while True:
            try:
                conn = duckdb.connect(self.path)
                break
            except duckdb.IOException as err:
                detail = str(err).splitlines()[0].removeprefix("IO Error: ")
                if "lock" not in detail.lower():
                    raise StoreUnavailableError(f"store {self.path}: cannot open it: {detail}; "
                                                "check the path and its permissions") from None
                holder = re.search(r"\(PID (\d+)\)", detail)
                who = f"pid {holder.group(1)}" if holder else "another process"
                if time.monotonic() >= deadline:
                    raise StoreUnavailableError(
                        f"store {self.path}: held by {who} for more than {self.wait_s:g} s; wait for it to finish, "
                        f"raise RLAIF_STORE_WAIT_S, or pass another --store") from None
                if not said:
                    self._on_wait(f"waiting for the store {self.path} held by {who} "
                                  f"(up to {self.wait_s:g} s; RLAIF_STORE_WAIT_S)")
                    said = True
                # Without the state lock: other threads of this process must not queue behind a sleeping opener.
                self._state.wait(timeout=delay * random.uniform(0.5, 1.5))
                delay = min(delay * 1.6, 0.2)
        if not self._migrated:
            try:
                migrate(conn, self._migrations_dir, path_label=self.path)
            except BaseException:
                conn.close()
                raise
            self._migrated = True
        return conn

    def _schedule_close(self) -> None:
        """Start (once) the thread that closes the connection after ``linger_s`` without users."""
        if self._closer is None or not self._closer.is_alive():
            self._closer = threading.Thread(target=self._close_when_idle, name=f"store-closer:{self.path}",
                                            daemon=True)
            self._closer.start()

    def _close_when_idle(self) -> None:
        with self._state:
            while self._conn is not None and not self._closed:
                idle_for = time.monotonic() - self._last_used
                if self._users == 0 and idle_for >= self.linger_s:
                    self._close_locked()
                    return
                self._state.wait(timeout=max(self.linger_s - idle_for, 0.01))

    def _close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # ---- cursors and transactions

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """The cursor of this thread's open transaction, else a new cursor (safe to use from any thread).

        Outside a transaction or ``connected()`` block, a file store's cursor stays valid only until the connection
        is closed as idle (``linger_s`` after the last call): fine for one statement, not for keeping."""
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
        with self.connected() as conn:
            cur = conn.cursor()
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
        with self.connected():
            return decode_rows(self.cursor().execute(sql, params or []))

    def columns(self, relation: str) -> frozenset[str]:
        """The column names of a table or view (cached: the schema is fixed once migrations ran)."""
        known = self._columns.get(relation)
        if known is None:
            with self.connected():
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
