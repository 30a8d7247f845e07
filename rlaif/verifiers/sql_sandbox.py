"""A sandboxed, read-only DuckDB executor for model-generated SQL.

The sample project (the Harbor Analytics text-to-SQL assistant, seed 002) scores candidates on executable
criteria: R1 "the SQL executes on the sandbox warehouse", R2 "its result matches the golden query" and R3 "it
reads only allowlisted views (``v_revenue_*``)".  This module runs untrusted SQL for those checks.

Defence in depth, outermost first:

1. **Structural check before anything runs.**  The text must parse (``extract_statements``) into exactly one
   statement of type SELECT (``WITH ... SELECT``, ``FROM x SELECT``, ``VALUES`` are SELECTs too).  Its parse tree
   (``json_serialize_sql``) is walked: every ``BASE_TABLE`` reference is resolved against the CTE names in scope
   (with DuckDB's own scoping rules, verified by experiment: a CTE body does not see itself unless it is the
   recursive arm of a recursive CTE, and qualified names never bind to CTEs), table functions (``read_csv``,
   ``read_text``, ``glob``, ``query``, ``duckdb_settings`` ...) other than the pure generators
   ``range``/``generate_series``/``unnest``, and ``SHOW``/``DESCRIBE``/``SUMMARIZE`` references are refused, calls of the warehouse's own scalar macros count the relations the macro body reads,
   and every referenced relation must exist in the warehouse (so replacement scans such as
   ``SELECT * FROM 'file.csv'`` and system-catalog snooping never run).  With ``enforce_allowlist=True`` every
   relation must also match an allowlist glob.  (The walk itself lives in ``sql_parse``.)
2. **A hardened, read-only connection.**  The warehouse is materialised once into a DuckDB file in a private
   temporary directory by an ordinary connection that is then closed; queries run on a ``read_only=True``
   connection opened with ``enable_external_access=false`` (no file/URL reads or writes, no ATTACH, no COPY, no
   INSTALL/LOAD), extension auto-install/auto-load and community extensions off, extension repositories
   forbidden, Python replacement scans off, a memory limit (spills go to DuckDB's default ``<db>.tmp`` folder,
   i.e. inside the private directory), DuckDB's native per-query ``max_execution_time`` and finally
   ``lock_configuration=true`` so no SET/RESET/PRAGMA can undo any of it.  The constructor reads the settings
   back and refuses to run if any did not take.  Even SQL that fooled the parse-tree walk could not touch a file.

   (Found by experiment on DuckDB 2.0.0: passing ``temp_directory`` together with
   ``enable_external_access=false`` in the connect config fails or not depending on the hash order of the
   option names, so the sandbox leaves ``temp_directory`` at its default.)
3. **Resource limits.**  ``max_execution_time`` interrupts long queries inside DuckDB; a watchdog timer that
   interrupts the call's own cursor backs it up.  Results are fetched with ``fetchmany(max_rows + 1)`` so a huge
   result is never materialised.

Every call gets its own cursor (a separate DuckDB client context on the shared database instance), so calls
from several threads run concurrently and an interrupt only ever hits its own query.
"""

from __future__ import annotations

import fnmatch
import math
import os
import shutil
import tempfile
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import duckdb

from rlaif.verifiers.sql_parse import (
    DB_NAME,
    SAFE_TABLE_FUNCTIONS,
    SqlAnalysis,
    WarehouseFacts,
    analyse_macros,
    analyse_statement,
)

__all__ = [
    "ERROR_KINDS",
    "ExecResult",
    "SqlAnalysis",
    "SqlSandbox",
    "SAFE_TABLE_FUNCTIONS",
    "SandboxClosedError",
    "hardened_config",
]

#: The values ``ExecResult.error_kind`` can take (besides ``None``).
ERROR_KINDS = frozenset({"syntax", "forbidden", "runtime", "timeout", "too_many_rows"})

_ANALYSIS_CACHE_SIZE = 4096


class SandboxClosedError(RuntimeError):
    """Raised when a closed :class:`SqlSandbox` is used."""


@dataclass(frozen=True)
class ExecResult:
    """The outcome of running one SQL text in the sandbox.

    ``relations`` are the canonical (lower-case, unqualified when in the warehouse's main schema) base relations
    the statement references, CTE names excluded; it is filled whenever the text parsed, even when execution was
    refused, so the allowlist criterion can be scored independently of execution.
    """

    ok: bool
    columns: list[str]
    rows: list[tuple]
    error: str | None
    error_kind: str | None
    elapsed_ms: float
    relations: frozenset[str] = field(default_factory=frozenset)

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "columns": list(self.columns),
            "rows": [[_jsonable(v) for v in row] for row in self.rows],
            "error": self.error,
            "error_kind": self.error_kind,
            "elapsed_ms": self.elapsed_ms,
            "relations": sorted(self.relations),
        }


def hardened_config(
    *,
    timeout_s: float,
    memory_limit: str | None = "1GB",
    threads: int | None = None,
) -> dict[str, Any]:
    """The DuckDB 2.0 connect-time configuration of the sandbox's read-only connection.

    All keys were checked against ``duckdb_settings()`` of DuckDB 2.0.0.  ``lock_configuration`` is applied at
    start-up together with the rest, so its position in the dict does not matter; after it no ``SET``/``RESET``
    (or ``PRAGMA`` that changes a setting) succeeds.
    """
    cfg: dict[str, Any] = {
        "enable_external_access": False,  # no read_csv/read_parquet/read_text/glob/COPY/ATTACH/INSTALL/httpfs
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "allow_extension_repositories": "forbidden",
        "allow_persistent_secrets": False,
        "python_enable_replacements": False,  # SELECT * FROM some_python_variable must not read caller frames
        "max_execution_time": max(1, int(round(timeout_s * 1000))),  # milliseconds, DuckDB-native query timeout
    }
    if memory_limit:
        cfg["memory_limit"] = memory_limit
        cfg["max_temp_directory_size"] = memory_limit
    if threads:
        cfg["threads"] = int(threads)
    cfg["lock_configuration"] = True
    return cfg


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and ";" not in text and text.strip().lower().endswith(".sql")


class SqlSandbox:
    """Executes untrusted SQL read-only against a private copy of a warehouse.

    Parameters
    ----------
    warehouse:
        The warehouse SQL text (``CREATE TABLE``/``INSERT``/``CREATE VIEW`` ...), or a path to a ``.sql`` file.
        It is trusted and run once on an ordinary connection (relative file names resolve against the file's
        folder when a path is given).
    allowed_relations:
        Glob patterns (``fnmatch``, case-insensitive) of the relations model SQL may read, e.g. ``["v_revenue_*"]``.
        A relation is allowlisted only if it also exists in the warehouse.
    timeout_s:
        Per-query wall-clock limit.
    max_rows:
        Results with more rows fail with ``error_kind="too_many_rows"``.
    memory_limit:
        DuckDB ``memory_limit`` for queries (also caps spill size); ``None`` leaves DuckDB's default.
    threads:
        DuckDB worker threads; ``None`` leaves DuckDB's default.
    """

    def __init__(
        self,
        warehouse: str | os.PathLike[str],
        allowed_relations: Iterable[str],
        timeout_s: float = 2.0,
        max_rows: int = 10_000,
        *,
        memory_limit: str | None = "1GB",
        threads: int | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if max_rows < 0:
            raise ValueError("max_rows must be >= 0")
        self.allowed_relations: tuple[str, ...] = tuple(p.strip().lower() for p in allowed_relations)
        self.timeout_s = float(timeout_s)
        self.max_rows = int(max_rows)
        self._lock = threading.Lock()
        self._golden: dict[str, Future] = {}
        self._analyses: dict[str, SqlAnalysis] = {}
        self._closed = False

        search_dir: str | None = None
        if isinstance(warehouse, os.PathLike) or (isinstance(warehouse, str) and _looks_like_path(warehouse)):
            wpath = Path(warehouse)
            sql_text = wpath.read_text(encoding="utf-8")
            search_dir = str(wpath.resolve().parent)
        else:
            sql_text = str(warehouse)

        self._tmpdir = tempfile.mkdtemp(prefix="rlaif_sql_sandbox_")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
        self.db_path = os.path.join(self._tmpdir, f"{DB_NAME}.duckdb")
        try:
            self._build(sql_text, search_dir)
            self._conn = duckdb.connect(
                self.db_path,
                read_only=True,
                config=hardened_config(
                    timeout_s=self.timeout_s,
                    memory_limit=memory_limit,
                    threads=threads,
                ),
            )
            self._verify_hardening()
        except BaseException:
            if getattr(self, "_conn", None) is not None:
                self._conn.close()
            self._finalizer()
            raise
        self.allowlisted_relations: frozenset[str] = frozenset(
            r for r in self.known_relations if self._matches_allowlist(r)
        )
        self.facts = WarehouseFacts(self.known_relations, self.allowlisted_relations, self.macro_info)

    # ------------------------------------------------------------------ construction

    def _build(self, sql_text: str, search_dir: str | None) -> None:
        config: dict[str, Any] = {"autoinstall_known_extensions": False}
        if search_dir:
            config["file_search_path"] = search_dir
        build = duckdb.connect(self.db_path, config=config)
        try:
            if sql_text.strip():
                build.execute(sql_text)
            tables = build.execute(
                "SELECT lower(table_name) FROM duckdb_tables() "
                "WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary"
            ).fetchall()
            views = build.execute(
                "SELECT lower(view_name) FROM duckdb_views() "
                "WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal AND NOT temporary"
            ).fetchall()
            macros = build.execute(
                "SELECT lower(function_name), function_type, macro_definition FROM duckdb_functions() "
                "WHERE database_name = current_database() AND NOT internal AND function_type IN ('macro', 'table_macro')"
            ).fetchall()
            self.known_relations: frozenset[str] = frozenset(r[0] for r in tables) | frozenset(r[0] for r in views)
            self.macro_info = analyse_macros(build, macros)
            build.execute("CHECKPOINT")
        finally:
            build.close()

    def _verify_hardening(self) -> None:
        """Refuse to run if DuckDB did not apply the hardening (e.g. an option renamed in a future release)."""
        expected = {
            "access_mode": "read_only",
            "enable_external_access": "false",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "allow_community_extensions": "false",
            "python_enable_replacements": "false",
            "lock_configuration": "true",
            "max_execution_time": str(max(1, int(round(self.timeout_s * 1000)))),
        }
        actual = dict(
            self._conn.execute(
                "SELECT name, lower(CAST(value AS VARCHAR)) FROM duckdb_settings() WHERE list_contains(?, name)",
                [list(expected)],
            ).fetchall()
        )
        wrong = {k: actual.get(k) for k, v in expected.items() if actual.get(k) != v}
        if wrong:
            raise RuntimeError(f"DuckDB did not apply the sandbox hardening settings: {wrong}")

    # ------------------------------------------------------------------ helpers

    def _matches_allowlist(self, relation: str) -> bool:
        return any(fnmatch.fnmatchcase(relation.lower(), pat) for pat in self.allowed_relations)

    def is_allowlisted(self, relation: str) -> bool:
        """True when ``relation`` exists in the warehouse and matches an allowlist pattern."""
        return relation.lower() in self.allowlisted_relations

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxClosedError("the SQL sandbox is closed")

    def _cursor(self):
        with self._lock:
            self._check_open()
            return self._conn.cursor()

    def _release(self, cur) -> None:
        with self._lock:
            try:
                cur.close()
            except duckdb.Error:  # pragma: no cover - already closed with the connection
                pass

    # ------------------------------------------------------------------ analysis

    def analyze(self, sql: str) -> SqlAnalysis:
        """Parse ``sql`` and run the structural checks, without executing it."""
        cur = self._cursor()
        try:
            return self._analyze(cur, sql)
        finally:
            self._release(cur)

    def _analyze(self, cur, sql: str) -> SqlAnalysis:
        # Deterministic for a given sandbox, and sampled candidates repeat often: cache by text (bounded).
        cached = self._analyses.get(sql)
        if cached is None:
            try:
                cached = analyse_statement(cur, sql, self.facts)
            except RecursionError:
                cached = SqlAnalysis(
                    False, "the statement is nested too deeply to be analysed", "forbidden", "SELECT",
                    frozenset(), frozenset(), False, False,
                )
            if len(self._analyses) >= _ANALYSIS_CACHE_SIZE:
                self._analyses.clear()
            self._analyses[sql] = cached
        return cached

    # ------------------------------------------------------------------ execution

    def execute(self, sql: str, enforce_allowlist: bool = True) -> ExecResult:
        """Run one SELECT read-only; never raises for bad SQL (only for a closed sandbox).

        With ``enforce_allowlist=False`` non-allowlisted warehouse relations may be read (still read-only, still
        one SELECT, still no table functions) so "executes" and "allowlisted" can be scored separately.
        """
        start = time.perf_counter()

        def done(ok, columns=None, rows=None, error=None, kind=None, relations=frozenset()):
            return ExecResult(
                ok=ok,
                columns=list(columns or []),
                rows=list(rows or []),
                error=error,
                error_kind=kind,
                elapsed_ms=(time.perf_counter() - start) * 1000.0,
                relations=frozenset(relations),
            )

        if not isinstance(sql, str):
            return done(False, error="SQL must be a string", kind="syntax")
        cur = self._cursor()
        try:
            analysis = self._analyze(cur, sql)
            if not analysis.ok:
                return done(False, error=analysis.error, kind=analysis.error_kind, relations=analysis.relations)
            if enforce_allowlist and not analysis.allowlisted:
                bad = sorted(r for r in analysis.relations if r not in self.allowlisted_relations)
                return done(
                    False,
                    error="relations outside the allowlist ("
                    + ", ".join(self.allowed_relations) + "): " + ", ".join(bad),
                    kind="forbidden",
                    relations=analysis.relations,
                )
            # Backstop for DuckDB's max_execution_time: interrupt this call's own cursor a little later.
            watchdog = threading.Timer(self.timeout_s + 0.25, _safe_interrupt, args=(cur,))
            watchdog.daemon = True
            watchdog.start()
            try:
                cur.execute(sql)
                columns = [d[0] for d in (cur.description or [])]
                rows = cur.fetchmany(self.max_rows + 1) if cur.description is not None else []
            except duckdb.InterruptException as exc:
                return done(False, error=f"timeout after {self.timeout_s:g}s: {exc}", kind="timeout",
                            relations=analysis.relations)
            except duckdb.PermissionException as exc:
                return done(False, error=str(exc), kind="forbidden", relations=analysis.relations)
            except duckdb.ParserException as exc:  # pragma: no cover - it parsed above
                return done(False, error=str(exc), kind="syntax", relations=analysis.relations)
            except duckdb.Error as exc:
                return done(False, error=str(exc), kind="runtime", relations=analysis.relations)
            finally:
                watchdog.cancel()
            if len(rows) > self.max_rows:
                return done(
                    False, columns, rows[: self.max_rows],
                    error=f"result has more than {self.max_rows} rows", kind="too_many_rows",
                    relations=analysis.relations,
                )
            return done(True, columns, [tuple(r) for r in rows], relations=analysis.relations)
        finally:
            self._release(cur)

    def golden(self, sql: str) -> ExecResult:
        """Run a trusted golden query (read-only, allowlist not enforced), cached per SQL text.

        Concurrent callers asking for the same text share one execution.
        """
        with self._lock:
            self._check_open()
            fut = self._golden.get(sql)
            owner = fut is None
            if owner:
                fut = Future()
                self._golden[sql] = fut
        if owner:
            try:
                fut.set_result(self.execute(sql, enforce_allowlist=False))
            except BaseException as exc:
                fut.set_exception(exc)
                with self._lock:
                    self._golden.pop(sql, None)
        return fut.result()

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection and delete the private directory (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.close()
            except duckdb.Error:  # pragma: no cover
                pass
        self._finalizer()

    def __enter__(self) -> "SqlSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"SqlSandbox({state}, relations={len(self.known_relations)}, "
                f"allowlisted={sorted(self.allowlisted_relations)}, timeout_s={self.timeout_s:g})")


def _safe_interrupt(cur) -> None:
    try:
        cur.interrupt()
    except Exception:  # the cursor may already be closed
        pass
