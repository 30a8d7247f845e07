"""The SQL verifier: executable hard checks for text-to-SQL candidates (seed 002, Harbor Analytics rubric).

Its options (``SqlOptions``) are the only place the SQL settings are defined; the loop config's ``verifier.warehouse``,
``allowed_relations`` and ``timeout_s`` are shorthands that land here.

Criteria, keyed as the rubric attaches them:

* ``sql_executes`` (R1) — the candidate's SQL runs on the sandbox warehouse without error.  The allowlist is
  *not* enforced for this criterion (non-allowlisted warehouse relations may be read, read-only), so R1 and R3
  are scored separately; statements other than one SELECT, table functions and files are refused regardless.
* ``sql_result_matches`` (R2) — it executes, it is allowlisted, and its result equals the golden query's result
  (see :func:`results_match`).  A query that reads raw tables never counts as matching: a policy must not get
  credit for bypassing the approved views.
* ``sql_allowlisted_views`` (R3) — every relation it references (CTE names excluded, macro bodies included)
  exists in the warehouse and matches the sandbox's allowlist globs (``v_revenue_*``).
* ``sql_format`` — exactly one statement terminated by ``;``; after it only ``--`` comment lines; no prose.

A candidate text longer than ``max_query_chars`` fails every criterion unread (``too_large``); SQL that runs out of
time or memory in the sandbox's worker process fails with ``timeout`` / ``memory`` (see ``sql_sandbox``).

The candidate text is the policy's completion: SQL, then optionally ``-- comment`` lines.  The SQL that is run is
everything up to and including the first ``;`` that is a real statement terminator (found with DuckDB's own
tokenizer, so ``;`` inside strings, quoted identifiers and comments is skipped), stripped.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import duckdb

from rlaif.verifiers.base import CRITERIA, Verifier, VerifierOptionError, VerifierResult, check_number, resolve_path
from rlaif.verifiers.sql_sandbox import ExecResult, SqlSandbox, duckdb_memory_limit

REL_TOL = 1e-6
ABS_TOL = 1e-9
_GREEDY_LIMIT = 500  # rows up to which a tolerant one-to-one matching is tried when the sorted comparison fails


# ---------------------------------------------------------------------------------------------- text handling

_local = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    """A per-thread in-memory connection used only to split statements (never shares duckdb's default one)."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = duckdb.connect(":memory:", config={"enable_external_access": False})
        _local.conn = conn
    return conn


def _first_terminator(text: str) -> int | None:
    """Character index of the first ``;`` that ends a statement, or ``None``.

    DuckDB's tokenizer reports byte offsets; a ``;`` inside a string, quoted identifier or comment is part of a
    non-operator token and is skipped.
    """
    data = text.encode("utf-8")
    try:
        tokens = duckdb.tokenize(text)
    except Exception:  # pragma: no cover - the tokenizer is lenient; fall back to a plain search
        pos = text.find(";")
        return pos if pos >= 0 else None
    for i, (offset, kind) in enumerate(tokens):
        if kind != duckdb.token_type.operator:
            continue
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(data)
        chunk = data[offset:end]
        j = chunk.find(b";")
        if j >= 0:
            return len(data[: offset + j].decode("utf-8", errors="ignore"))
    return None


def extract_sql(candidate_text: str) -> str:
    """The SQL part of a candidate: up to and including the first statement-ending ``;``, stripped.

    Without any ``;`` the whole text (stripped) is returned, so such a candidate may still execute (it fails
    ``sql_format``).
    """
    text = candidate_text or ""
    pos = _first_terminator(text)
    if pos is None:
        return text.strip()
    return text[: pos + 1].strip()


def is_well_formatted(candidate_text: str) -> bool:
    """``sql_format``: exactly one statement terminated by ``;``, then only ``--`` comment lines (or blanks).

    Leading ``--`` comments before the statement are allowed (they are SQL); prose before or after the statement,
    markdown fences, a second statement or a missing ``;`` fail.
    """
    text = candidate_text or ""
    pos = _first_terminator(text)
    if pos is None:
        return False
    head, tail = text[: pos + 1], text[pos + 1 :]
    try:
        statements = _parser().extract_statements(head)
    except duckdb.Error:
        return False
    if len(statements) != 1:
        return False
    for line in tail.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            return False
    return True


# ---------------------------------------------------------------------------------------------- result matching


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _norm(v: Any) -> Any:
    """Normalise a fetched value: Decimal -> float, -0.0 -> 0.0, containers -> tuples; None stays None."""
    if v is None or isinstance(v, (bool, str, int)):
        return v
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float):
        return 0.0 if v == 0 else v
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return ("__struct__",) + tuple((str(k), _norm(x)) for k, x in v.items())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    return v


def _round_sig(x: float, digits: int = 6) -> float:
    if not math.isfinite(x) or x == 0:
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def _key(v: Any) -> tuple:
    """A total, type-safe sort key consistent with the tolerant equality (numbers rounded to 6 digits)."""
    if v is None:
        return (0,)
    if isinstance(v, bool):
        return (1, int(v))
    if _is_number(v):
        f = float(v)
        if math.isnan(f):
            return (2, math.inf, 1)
        return (2, _round_sig(f), 0)
    if isinstance(v, str):
        return (3, v)
    if isinstance(v, bytes):
        return (4, v)
    if isinstance(v, tuple):
        return (5, tuple(_key(x) for x in v))
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time, _dt.timedelta)):
        return (6, type(v).__name__, str(v))
    return (7, type(v).__name__, repr(v))


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return a == b


def _rows_eq(r1: tuple, r2: tuple) -> bool:
    return len(r1) == len(r2) and all(_eq(a, b) for a, b in zip(r1, r2))


def results_match(candidate: ExecResult, golden: ExecResult, ordered: bool) -> bool:
    """True when two successful results are the same result set.

    * the number of columns must agree; column *names* are ignored (aliases may differ);
    * rows are compared as multisets unless ``ordered`` (the golden query has a top-level ``ORDER BY``);
    * values are normalised: ``Decimal`` -> ``float``, numbers compared with a relative tolerance of 1e-6
      (integers exactly), ``None`` only equals ``None``, lists/structs element-wise.

    Multiset comparison sorts both sides by a key that rounds numbers to 6 significant digits and then compares
    row by row with the tolerance; if that fails on a small result, a tolerant one-to-one matching is tried, so
    near-equal values straddling a rounding boundary cannot cause a false mismatch.
    """
    if not (candidate.ok and golden.ok):
        return False
    if len(candidate.columns) != len(golden.columns):
        return False
    if len(candidate.rows) != len(golden.rows):
        return False
    width = len(golden.columns)
    cand = [tuple(_norm(v) for v in row) for row in candidate.rows]
    gold = [tuple(_norm(v) for v in row) for row in golden.rows]
    if any(len(r) != width for r in cand) or any(len(r) != width for r in gold):
        return False
    if ordered:
        return all(_rows_eq(a, b) for a, b in zip(cand, gold))
    cand_sorted = sorted(cand, key=lambda r: tuple(_key(v) for v in r))
    gold_sorted = sorted(gold, key=lambda r: tuple(_key(v) for v in r))
    if all(_rows_eq(a, b) for a, b in zip(cand_sorted, gold_sorted)):
        return True
    if len(gold) > _GREEDY_LIMIT:
        return False
    remaining = list(gold_sorted)
    for row in cand_sorted:
        for i, other in enumerate(remaining):
            if _rows_eq(row, other):
                del remaining[i]
                break
        else:
            return False
    return not remaining


# ---------------------------------------------------------------------------------------------- verification


@dataclass
class SqlOptions:
    warehouse: str | None = field(default=None, metadata={
        "help": "SQL file that defines the sandbox warehouse, relative to the config file's folder."})
    allowed_relations: list[str] = field(default_factory=list, metadata={
        "help": "Glob patterns of the relations candidate SQL may read (e.g. v_revenue_*)."})
    timeout_s: float = field(default=2.0, metadata={
        "help": "Per-query time limit; a worker that has not answered shortly after it is killed (timeout)."})
    max_rows: int = field(default=10_000, metadata={"help": "Results with more rows fail (too_many_rows)."})
    memory_limit: str | None = field(default=None, metadata={
        "help": "DuckDB memory_limit for queries (e.g. 1GB); default half of memory_mb, at most 3/4 of it."})
    memory_mb: int = field(default=2048, metadata={
        "help": "Address-space limit (MiB, at least 320) of each SQL worker process; a query past it fails (memory)."})
    workers: int = field(default=2, metadata={
        "help": "SQL worker processes that may run queries at once (concurrent verifies beyond it wait)."})
    max_query_chars: int = field(default=20_000, metadata={
        "help": "Longer candidate texts are refused unparsed (too_large); parsing cost grows with length."})

    def __post_init__(self):
        if not isinstance(self.warehouse, str) or not self.warehouse:
            raise VerifierOptionError("warehouse", "is required for the sql verifier (a .sql file)")
        if not isinstance(self.allowed_relations, list) or not self.allowed_relations \
                or not all(isinstance(p, str) and p for p in self.allowed_relations):
            raise VerifierOptionError("allowed_relations", "must list at least one glob pattern")
        check_number("timeout_s", self.timeout_s)
        check_number("max_rows", self.max_rows, -1, integer=True)
        check_number("memory_mb", self.memory_mb, 319, integer=True)
        check_number("workers", self.workers, 0, integer=True)
        check_number("max_query_chars", self.max_query_chars, 0, integer=True)
        if self.memory_limit is not None and not isinstance(self.memory_limit, str):
            raise VerifierOptionError("memory_limit", f"must be a size such as 1GB, got {self.memory_limit!r}")
        try:
            duckdb_memory_limit(self.memory_limit, self.memory_mb)
        except ValueError as err:
            raise VerifierOptionError("memory_limit", str(err)) from None


class SqlVerifier(Verifier):
    """Scores candidate SQL against golden SQL on a :class:`~rlaif.verifiers.sql_sandbox.SqlSandbox`.

    Thread-safe: :meth:`verify` may be called from several threads; golden results and their orderedness are
    cached per reference text.
    """

    kind = "sql"
    Options = SqlOptions

    def __init__(self, sandbox: SqlSandbox):
        self.sandbox = sandbox
        self._ordered: dict[str, bool] = {}

    @classmethod
    @contextmanager
    def open(cls, options: SqlOptions, base_dir: Path) -> Iterator["SqlVerifier"]:
        """A private sandbox copy of the warehouse, deleted on exit."""
        warehouse = resolve_path(options.warehouse, base_dir)
        if not warehouse.is_file():
            raise VerifierOptionError("warehouse", f"file not found: {warehouse}")
        with SqlSandbox(warehouse, allowed_relations=list(options.allowed_relations), timeout_s=options.timeout_s,
                        max_rows=options.max_rows, memory_limit=options.memory_limit, memory_mb=options.memory_mb,
                        workers=options.workers, max_query_chars=options.max_query_chars) as sandbox:
            yield cls(sandbox)

    def _reference_ordered(self, reference_sql: str) -> bool:
        ordered = self._ordered.get(reference_sql)
        if ordered is None:
            ordered = self.sandbox.analyze(reference_sql).ordered
            self._ordered[reference_sql] = ordered
        return ordered

    def verify(self, candidate_text: str, reference_sql: str | None) -> VerifierResult:
        limit = self.sandbox.max_query_chars
        if len(candidate_text or "") > limit:
            # Refused before even the tokenizer sees it: parsing an 800 KB expression took seconds in this process.
            checks = dict.fromkeys(CRITERIA["sql"], False)
            return VerifierResult("sql", checks, f"the candidate has {len(candidate_text)} characters; at most "
                                  f"{limit} are analysed", "too_large", 0.0, None, {"sql": None, "relations": []})
        sql = extract_sql(candidate_text)
        well_formatted = is_well_formatted(candidate_text)
        res = self.sandbox.execute(sql, enforce_allowlist=False)
        executes = res.ok
        # Structural refusals (syntax, several statements, table functions, files) are never "allowlisted";
        # otherwise allowlisted means every referenced relation is an allowlisted warehouse relation.
        # (An invented table name is not allowlisted either: allowlisted relations must exist in the warehouse.)
        # A text whose check never finished (too large, or its parse timed out) has unknown relations: not allowlisted.
        parsed_ok = res.analysed and res.error_kind not in ("syntax", "forbidden")
        allowlisted = parsed_ok and all(self.sandbox.is_allowlisted(r) for r in res.relations)
        matches = False
        reference_error = None
        if reference_sql is None:
            reference_error = "no golden query: the prompt's reference must hold the SQL"
        elif executes and allowlisted:
            golden = self.sandbox.golden(reference_sql)
            if golden.ok:
                matches = results_match(res, golden, self._reference_ordered(reference_sql))
            else:
                reference_error = golden.error or "the golden query failed"
        checks = dict(zip(CRITERIA["sql"], (executes, matches, allowlisted, well_formatted)))
        return VerifierResult("sql", checks, res.error, res.error_kind, res.elapsed_ms, reference_error,
                              {"sql": sql, "relations": sorted(res.relations)})
