"""A sandboxed, read-only DuckDB executor for model-generated SQL.

The sample project (the Harbor Analytics text-to-SQL assistant, seed 002) scores candidates on executable
criteria: R1 "the SQL executes on the sandbox warehouse", R2 "its result matches the golden query" and R3 "it
reads only allowlisted views (``v_revenue_*``)".  This module runs untrusted SQL for those checks.

Defence in depth, outermost first:

0. **A length cap before anything parses.**  A text longer than ``max_query_chars`` is refused at once
   (``too_large``): an 800 KB expression once took 4.6 s just to be parsed and refused.
1. **A separate, bounded worker process** (``sql_worker``, started and killed by ``sql_pool``).  Candidate SQL is
   parsed, checked and executed only there; the run's own process only ever sees data (column names, rows, error
   text, capped at ``max_result_bytes``).  The worker's address space is capped (``RLIMIT_AS`` = ``memory_mb``,
   DuckDB's ``memory_limit`` below it) and the parent kills it at ``timeout_s + kill_grace_s``.  Why: DuckDB cannot
   interrupt a single scalar call and does not count every allocation against ``memory_limit``; in-process,
   ``SELECT repeat('x', 2000000000)`` ran 15.6 s and took 4.1 GB under a 2 s / 1 GB limit.  Now such a query is a
   verdict (``timeout`` or ``memory``), and the next query gets a fresh worker.  A small pool (``workers``) of
   long-lived workers is reused, so a normal query costs one pipe round trip, not a process start.
2. **Structural check before anything runs** (in the worker).  The text must parse (``extract_statements``) into
   exactly one statement of type SELECT (``WITH ... SELECT``, ``FROM x SELECT``, ``VALUES`` are SELECTs too).  Its
   parse tree (``json_serialize_sql``) is walked: every ``BASE_TABLE`` reference is resolved against the CTE names in
   scope (with DuckDB's own scoping rules, verified by experiment: a CTE body does not see itself unless it is the
   recursive arm of a recursive CTE, and qualified names never bind to CTEs), table functions (``read_csv``,
   ``read_text``, ``glob``, ``query``, ``duckdb_settings`` ...) other than the pure generators
   ``range``/``generate_series``/``unnest``, and ``SHOW``/``DESCRIBE``/``SUMMARIZE`` references are refused, calls
   of the warehouse's own scalar macros count the relations the macro body reads, and every referenced relation
   must exist in the warehouse (so replacement scans such as ``SELECT * FROM 'file.csv'`` and system-catalog
   snooping never run).  With ``enforce_allowlist=True`` every relation must also match an allowlist glob.  (The
   walk itself lives in ``sql_parse``.)
3. **A hardened, read-only connection** (in the worker).  The warehouse is materialised once into a DuckDB file in
   a private scratch folder (``rlaif.core.scratch``: named after this process, so a killed run's folder is swept
   later) by an ordinary connection that is then closed; workers open it ``read_only=True`` with
   ``enable_external_access=false`` (no file/URL reads or writes, no ATTACH, no COPY, no INSTALL/LOAD), extension
   auto-install/auto-load and community extensions off, extension repositories forbidden, Python replacement scans
   off, a memory limit (spills go to DuckDB's default ``<db>.tmp`` folder, i.e. inside the private folder), DuckDB's
   native per-query ``max_execution_time`` and finally ``lock_configuration=true`` so no SET/RESET/PRAGMA can undo
   any of it.  Each worker reads the settings back and refuses to start if any did not take (the constructor
   starts one, so a bad configuration fails there).  Even SQL that fooled the parse-tree walk could not touch a file.

   (Found by experiment on DuckDB 2.0.0: passing ``temp_directory`` together with
   ``enable_external_access=false`` in the connect config fails or not depending on the hash order of the
   option names, so the sandbox leaves ``temp_directory`` at its default.)
4. **Result limits.**  Results are fetched with ``fetchmany(max_rows + 1)`` so a huge result is never materialised;
   a reply over ``max_result_bytes`` is refused (``too_large``) by the worker, and the parent stops reading there.

Calls from several threads run concurrently, each on its own worker (at most ``workers`` at once; the others
wait), so a timeout or a kill only ever hits its own query.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import shutil
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import duckdb

from rlaif.core.scratch import scratch_dir
from rlaif.verifiers.sql_parse import (
    DB_NAME,
    SAFE_TABLE_FUNCTIONS,
    SqlAnalysis,
    WarehouseFacts,
    analyse_macros,
)
from rlaif.verifiers.sql_pool import (
    PoolClosedError,
    WorkerDied,
    WorkerPool,
    WorkerProcess,
    WorkerStartError,
    WorkerTimeout,
)
from rlaif.verifiers.sql_worker import decode_analysis, decode_value, encode_facts

__all__ = [
    "ERROR_KINDS",
    "ExecResult",
    "SqlAnalysis",
    "SqlSandbox",
    "SAFE_TABLE_FUNCTIONS",
    "SandboxClosedError",
    "hardened_config",
]

#: The values ``ExecResult.error_kind`` can take (besides ``None``).  ``memory``: the worker hit its memory limit
#: (or was killed by the kernel); ``too_large``: the query text or the result exceeded its size cap.
ERROR_KINDS = frozenset({"syntax", "forbidden", "runtime", "timeout", "too_many_rows", "memory", "too_large"})

_ANALYSIS_CACHE_SIZE = 4096
_MIB = 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class SandboxClosedError(RuntimeError):
    """Raised when a closed :class:`SqlSandbox` is used."""


@dataclass(frozen=True)
class ExecResult:
    """The outcome of running one SQL text in the sandbox.

    ``relations`` are the canonical (lower-case, unqualified when in the warehouse's main schema) base relations
    the statement references, CTE names excluded; it is filled whenever the text parsed, even when execution was
    refused, so the allowlist criterion can be scored independently of execution.  ``analysed`` is false when the
    structural check never finished (the text was too long, or its parse timed out or ran out of memory): then
    ``relations`` is empty because it is unknown, not because nothing was read.
    """

    ok: bool
    columns: list[str]
    rows: list[tuple]
    error: str | None
    error_kind: str | None
    elapsed_ms: float
    relations: frozenset[str] = field(default_factory=frozenset)
    analysed: bool = True

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


def size_bytes(text: str) -> int | None:
    """Bytes of a DuckDB size string such as ``1GB`` (10^9) or ``512MiB`` (2^20 units); None if not of that form."""
    match = _SIZE.match(str(text))
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])


def duckdb_memory_limit(memory_limit: str | None, memory_mb: int) -> str:
    """DuckDB's ``memory_limit`` inside a worker of ``memory_mb``: the given one, or half of ``memory_mb``.

    DuckDB must fail a query with its own out-of-memory error well before the address-space limit kills the worker,
    so an explicit limit must stay at or below three quarters of ``memory_mb`` (the rest is the interpreter, DuckDB's
    code and thread stacks, and allocations DuckDB does not count).
    """
    if memory_limit is None:
        return f"{max(64, memory_mb // 2)}MiB"
    wanted = size_bytes(memory_limit)
    if wanted is not None and wanted > memory_mb * _MIB * 3 // 4:
        raise ValueError(f"memory_limit {memory_limit} must stay at or below 3/4 of memory_mb ({memory_mb} MB)")
    return str(memory_limit)


class SqlSandbox:
    """Executes untrusted SQL read-only against a private copy of a warehouse, in bounded worker processes.

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
        Per-query wall-clock limit (DuckDB's ``max_execution_time``; the worker is killed ``kill_grace_s`` later).
    max_rows:
        Results with more rows fail with ``error_kind="too_many_rows"``.
    memory_limit:
        DuckDB ``memory_limit`` for queries (also caps spill size); ``None``: half of ``memory_mb``.
    threads:
        DuckDB threads per worker; ``None``: ``min(2, cpu count)`` (each thread costs address space).
    memory_mb:
        Address-space limit (``RLIMIT_AS``) of each worker process, in MiB; a query past it is ``memory``.
    workers:
        How many worker processes may run queries at once (more concurrent callers wait for one).
    max_query_chars:
        Longer SQL texts are refused unparsed (``too_large``).
    max_result_bytes:
        Largest reply (rows as JSON) a worker may send back; a bigger result is ``too_large``.
    kill_grace_s:
        How long after ``timeout_s`` a worker that has not answered is killed.
    """

    def __init__(
        self,
        warehouse: str | os.PathLike[str],
        allowed_relations: Iterable[str],
        timeout_s: float = 2.0,
        max_rows: int = 10_000,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        memory_mb: int = 2048,
        workers: int = 2,
        max_query_chars: int = 20_000,
        max_result_bytes: int = 8 * _MIB,
        kill_grace_s: float = 0.5,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if max_rows < 0:
            raise ValueError("max_rows must be >= 0")
        if memory_mb < 320:
            raise ValueError("memory_mb must be at least 320 (a worker with DuckDB loaded needs about 250 MB of "
                             "address space before any query)")
        if workers < 1 or max_query_chars < 1 or max_result_bytes < 1024 or kill_grace_s < 0:
            raise ValueError("workers and max_query_chars must be >= 1, max_result_bytes >= 1024, kill_grace_s >= 0")
        self.allowed_relations: tuple[str, ...] = tuple(p.strip().lower() for p in allowed_relations)
        self.timeout_s = float(timeout_s)
        self.max_rows = int(max_rows)
        self.memory_mb = int(memory_mb)
        self.max_query_chars = int(max_query_chars)
        self.max_result_bytes = int(max_result_bytes)
        self.kill_grace_s = float(kill_grace_s)
        self._lock = threading.Lock()
        self._golden: dict[str, Future] = {}
        self._analyses: dict[str, SqlAnalysis] = {}
        self._closed = False
        db_memory = duckdb_memory_limit(memory_limit, self.memory_mb)
        threads = threads or min(2, os.cpu_count() or 1)

        search_dir: str | None = None
        if isinstance(warehouse, os.PathLike) or (isinstance(warehouse, str) and _looks_like_path(warehouse)):
            wpath = Path(warehouse)
            sql_text = wpath.read_text(encoding="utf-8")
            search_dir = str(wpath.resolve().parent)
        else:
            sql_text = str(warehouse)

        self._tmpdir = str(scratch_dir("sql"))
        self.db_path = os.path.join(self._tmpdir, f"{DB_NAME}.duckdb")
        self._pool: WorkerPool | None = None
        self._finalizer = weakref.finalize(self, _cleanup, [None], self._tmpdir)
        try:
            self._build(sql_text, search_dir)
            self.allowlisted_relations: frozenset[str] = frozenset(
                r for r in self.known_relations if self._matches_allowlist(r)
            )
            self.facts = WarehouseFacts(self.known_relations, self.allowlisted_relations, self.macro_info)
            config = hardened_config(timeout_s=self.timeout_s, memory_limit=db_memory, threads=threads)
            setup = {
                "db": self.db_path,
                "config": config,
                "expected": self._expected_settings(),
                "facts": encode_facts(self.facts),
                "max_rows": self.max_rows,
                "max_result_bytes": self.max_result_bytes,
                "timeout_s": self.timeout_s,
            }
            self._pool = WorkerPool(_spawner(setup, self.memory_mb * _MIB, Path(self._tmpdir),
                                             self.max_result_bytes + 65536), workers)
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _cleanup, [self._pool], self._tmpdir)
            self._pool.prestart()
        except BaseException:
            self._finalizer()
            raise

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

    def _expected_settings(self) -> dict[str, str]:
        """What each worker reads back from ``duckdb_settings()`` before it serves (e.g. an option renamed in a
        future DuckDB release must stop the sandbox, not silently drop a defence)."""
        return {
            "access_mode": "read_only",
            "enable_external_access": "false",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "allow_community_extensions": "false",
            "python_enable_replacements": "false",
            "lock_configuration": "true",
            "max_execution_time": str(max(1, int(round(self.timeout_s * 1000)))),
        }

    # ------------------------------------------------------------------ helpers

    def _matches_allowlist(self, relation: str) -> bool:
        return any(fnmatch.fnmatchcase(relation.lower(), pat) for pat in self.allowed_relations)

    def is_allowlisted(self, relation: str) -> bool:
        """True when ``relation`` exists in the warehouse and matches an allowlist pattern."""
        return relation.lower() in self.allowlisted_relations

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxClosedError("the SQL sandbox is closed")

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (for tests and the bench)."""
        return self._pool.pids() if self._pool is not None else []

    @property
    def worker_restarts(self) -> int:
        """How many workers were killed or retired and so replaced."""
        return self._pool.restarts if self._pool is not None else 0

    def _too_large(self, sql: str) -> str | None:
        if len(sql) > self.max_query_chars:
            return f"the SQL text has {len(sql)} characters; at most {self.max_query_chars} are analysed"
        return None

    def _remember(self, sql: str, analysis: SqlAnalysis) -> None:
        # Deterministic for a given sandbox, and sampled candidates repeat often: cache by text (bounded).
        with self._lock:
            if len(self._analyses) >= _ANALYSIS_CACHE_SIZE:
                self._analyses.clear()
            self._analyses[sql] = analysis

    def _ask(self, request: dict[str, Any]):
        """Send one request to a pooled worker under the deadline ``timeout_s + kill_grace_s``.

        Returns ``(analysis, done, failure)``: the structural check's result when the worker got that far, the
        final reply, and ``(message, kind)`` after a timeout or a dead worker (the worker is then killed, and the
        pool starts a fresh one for the next request).  Never raises for the query's sake.

        A reused worker that dies before answering anything most likely died while idle (the kernel's OOM killer
        may pick any process), so the request is tried once more on a fresh worker before it becomes a verdict.
        """
        for attempt in range(2):
            analysis: SqlAnalysis | None = None
            try:
                with self._pool.worker() as proc:
                    deadline = time.monotonic() + self.timeout_s + self.kill_grace_s
                    try:
                        proc.send(request)
                        reply = proc.read(deadline)
                        if "analysis" in reply:
                            try:
                                analysis = decode_analysis(reply["analysis"])
                            except (KeyError, TypeError, ValueError):
                                raise WorkerDied("the SQL worker sent a malformed analysis", "runtime") from None
                            self._remember(request["sql"], analysis)
                            reply = proc.read(deadline)
                        done = reply.get("done", False)
                        if done is not None and not isinstance(done, dict):
                            raise WorkerDied("the SQL worker sent a malformed reply", "runtime")
                        if done is not None and done.get("retire"):
                            proc.kill()
                        return analysis, done, None
                    except WorkerTimeout:
                        proc.kill()
                        return analysis, None, (
                            f"timeout after {self.timeout_s:g}s: the query's worker process was killed", "timeout")
                    except WorkerDied as exc:
                        proc.kill()
                        if self._pool.closed:
                            raise SandboxClosedError("the SQL sandbox was closed during the query") from None
                        if attempt == 0 and proc.from_idle and not proc.replied:
                            continue
                        return analysis, None, (str(exc), exc.kind)
            except PoolClosedError:
                raise SandboxClosedError("the SQL sandbox is closed") from None
            except WorkerStartError as exc:  # a verdict too: the run goes on, and the next query tries a fresh start
                return None, None, (str(exc), "runtime")
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ analysis

    def analyze(self, sql: str) -> SqlAnalysis:
        """Parse ``sql`` and run the structural checks (in a worker), without executing it."""
        self._check_open()
        too_large = self._too_large(sql)
        if too_large:
            return SqlAnalysis(False, too_large, "too_large", None, frozenset(), frozenset(), False, False)
        cached = self._analyses.get(sql)
        if cached is not None:
            return cached
        analysis, _, failure = self._ask({"op": "analyze", "sql": sql})
        if analysis is None:
            message, kind = failure or ("the SQL worker did not analyse the statement", "runtime")
            return SqlAnalysis(False, message, kind, None, frozenset(), frozenset(), False, False)
        return analysis

    # ------------------------------------------------------------------ execution

    def execute(self, sql: str, enforce_allowlist: bool = True) -> ExecResult:
        """Run one SELECT read-only; never raises for bad SQL (only for a closed sandbox).

        With ``enforce_allowlist=False`` non-allowlisted warehouse relations may be read (still read-only, still
        one SELECT, still no table functions) so "executes" and "allowlisted" can be scored separately.
        """
        start = time.perf_counter()

        def done(ok, columns=None, rows=None, error=None, kind=None, relations=frozenset(), analysed=True):
            return ExecResult(
                ok=ok,
                columns=list(columns or []),
                rows=list(rows or []),
                error=error,
                error_kind=kind,
                elapsed_ms=(time.perf_counter() - start) * 1000.0,
                relations=frozenset(relations),
                analysed=analysed,
            )

        def refusal(analysis: SqlAnalysis) -> ExecResult | None:
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
            return None

        self._check_open()
        if not isinstance(sql, str):
            return done(False, error="SQL must be a string", kind="syntax", analysed=False)
        too_large = self._too_large(sql)
        if too_large:
            return done(False, error=too_large, kind="too_large", analysed=False)
        cached = self._analyses.get(sql)
        if cached is not None and (refused := refusal(cached)) is not None:
            return refused  # known refusals never reach a worker
        analysis, result, failure = self._ask({"op": "run", "sql": sql, "enforce": bool(enforce_allowlist)})
        relations = analysis.relations if analysis is not None else frozenset()
        if failure is not None:
            message, kind = failure
            return done(False, error=message, kind=kind, relations=relations, analysed=analysis is not None)
        if analysis is not None and (refused := refusal(analysis)) is not None:
            return refused
        if result is None:  # pragma: no cover - the worker skips execution only for refusals
            return done(False, error="the SQL worker did not run the statement", kind="runtime", relations=relations)
        return self._result(result, relations, done)

    def _result(self, result: dict[str, Any], relations: frozenset[str], done) -> ExecResult:
        try:
            rows = [tuple(decode_value(v) for v in row) for row in result.get("rows") or []]
            columns = [str(c) for c in result.get("columns") or []]
        except (TypeError, ValueError) as exc:
            return done(False, error=f"the SQL worker sent a malformed result: {exc}", kind="runtime",
                        relations=relations)
        return done(bool(result.get("ok")), columns, rows, error=result.get("error"), kind=result.get("kind"),
                    relations=relations)

    def _execute_unchecked(self, sql: str) -> ExecResult:
        """Run ``sql`` on a worker's hardened connection *without* the structural check.

        Only for tests of the inner defences (what if the parse-tree walk were fooled?); never for candidate SQL.
        """
        self._check_open()
        start = time.perf_counter()
        _, result, failure = self._ask({"op": "unchecked", "sql": sql})

        def done(ok, columns=None, rows=None, error=None, kind=None, relations=frozenset(), analysed=False):
            return ExecResult(ok, list(columns or []), list(rows or []), error, kind,
                              (time.perf_counter() - start) * 1000.0, frozenset(relations), analysed)

        if failure is not None:
            return done(False, error=failure[0], kind=failure[1])
        return self._result(result, frozenset(), done)

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
        """Kill the worker processes and delete the private folder (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()

    def __enter__(self) -> "SqlSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"SqlSandbox({state}, relations={len(self.known_relations)}, "
                f"allowlisted={sorted(self.allowlisted_relations)}, timeout_s={self.timeout_s:g}, "
                f"memory_mb={self.memory_mb})")


def _spawner(setup: dict[str, Any], memory_bytes: int, folder: Path, max_line_bytes: int):
    """The pool's worker factory; a plain closure over data, so the pool never keeps the sandbox alive."""
    def spawn() -> WorkerProcess:
        return WorkerProcess(setup, memory_bytes, folder, max_line_bytes=max_line_bytes)
    return spawn


def _cleanup(pool_box: list, tmpdir: str) -> None:
    """Close the pool (killing its workers), then delete the scratch folder; runs on close, GC and exit."""
    pool = pool_box[0]
    if pool is not None:
        pool.close()
    shutil.rmtree(tmpdir, ignore_errors=True)
