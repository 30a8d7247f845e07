"""The child side of the SQL sandbox: a process that parses, checks and runs candidate SQL, and what crosses its pipe.

Why a process: inside DuckDB a single scalar call such as ``repeat('x', 2000000000)`` or ``len(range(10 ** 9))``
cannot be interrupted and allocates outside ``memory_limit``; run in the verifier's own process it took 15 s and
4 GB. A process can be given a hard address-space limit (``RLIMIT_AS``, set by the bootstrap in ``sql_pool`` before
this module or DuckDB is even imported) and can be killed. The parent (``sql_pool``) kills it at the deadline.

Protocol, one JSON object per line. The parent's first line is the setup (warehouse file, DuckDB config, the
warehouse facts the structural check needs, limits); the worker answers ``{"ready": ...}`` or ``{"fatal": ...}``.
Then each request ``{"op": "run" | "analyze" | "unchecked", "sql": ..., "enforce": bool}`` is answered with
``{"analysis": ...}`` (not for ``unchecked``) and a final ``{"done": result-or-null}``. The analysis goes first so
the parent knows the relations even when execution then kills the worker. Only data crosses: column names, rows
(values tagged by ``encode_value`` so ``Decimal``, dates, bytes ... survive JSON), error text. A reply larger than
``max_result_bytes`` is replaced by a ``too_large`` error here, and the parent refuses to read more than that anyway.

The worker exits when its stdin closes, when its parent dies (a thread polls ``getppid``: ``PR_SET_PDEATHSIG`` would
fire when the *thread* that started it exits, and pool workers are started from short-lived verify threads), and
after any error that may leave DuckDB unusable (out of memory, internal/fatal errors): ``"retire": true`` tells the
parent to start a fresh one.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sys
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

if "rlaif_sql_parse" in sys.modules:  # inside the worker: the bootstrap loaded the sibling file by path
    _parse = sys.modules["rlaif_sql_parse"]
else:
    from rlaif.verifiers import sql_parse as _parse

SqlAnalysis = _parse.SqlAnalysis
WarehouseFacts = _parse.WarehouseFacts

_ANALYSIS_CACHE_SIZE = 4096
_PARENT_POLL_S = 0.5

# ---------------------------------------------------------------------------------------------- values on the wire
# Every JSON object on the wire is a one-key tag, so a struct value can never be mistaken for a tag.


_PLAIN = frozenset({type(None), bool, int, str, float})  # JSON as they are; skipping the call keeps big lists cheap


def encode_value(v: Any) -> Any:
    """A fetched DuckDB value as JSON that ``decode_value`` turns back into an equal Python value."""
    if v is None or isinstance(v, (bool, int, str, float)):
        return v  # NaN/inf travel as JSON's NaN/Infinity (Python's json reads them back)
    if isinstance(v, Decimal):
        return {"dec": str(v)}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"bin": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, dt.datetime):
        return {"ts": v.isoformat()}
    if isinstance(v, dt.date):
        return {"date": v.isoformat()}
    if isinstance(v, dt.time):
        return {"time": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"td": [v.days, v.seconds, v.microseconds]}
    if isinstance(v, uuid.UUID):
        return {"uuid": str(v)}
    if isinstance(v, list):
        return [x if type(x) in _PLAIN else encode_value(x) for x in v]
    if isinstance(v, tuple):
        return {"tup": [encode_value(x) for x in v]}
    if isinstance(v, dict):
        return {"map": [[encode_value(k), encode_value(x)] for k, x in v.items()]}
    return {"str": str(v)}


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


_DECODERS = {
    "dec": Decimal,
    "bin": lambda s: base64.b64decode(s),
    "ts": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "td": lambda p: dt.timedelta(days=p[0], seconds=p[1], microseconds=p[2]),
    "uuid": uuid.UUID,
    "tup": lambda items: tuple(decode_value(x) for x in items),
    "map": lambda pairs: {_hashable(decode_value(k)): decode_value(x) for k, x in pairs},
    "str": str,
}


def decode_value(v: Any) -> Any:
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    if isinstance(v, dict):
        if len(v) != 1:
            raise ValueError("malformed value from the SQL worker")
        (tag, payload), = v.items()
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise ValueError(f"unknown value tag {tag!r} from the SQL worker")
        return decoder(payload)
    return v


def encode_analysis(a: SqlAnalysis) -> dict[str, Any]:
    return {"ok": a.ok, "error": a.error, "error_kind": a.error_kind, "statement_type": a.statement_type,
            "relations": sorted(a.relations), "table_functions": sorted(a.table_functions),
            "ordered": a.ordered, "allowlisted": a.allowlisted}


def decode_analysis(d: dict[str, Any]) -> SqlAnalysis:
    return SqlAnalysis(bool(d["ok"]), d["error"], d["error_kind"], d["statement_type"],
                       frozenset(map(str, d["relations"])), frozenset(map(str, d["table_functions"])),
                       bool(d["ordered"]), bool(d["allowlisted"]))


def encode_facts(facts: WarehouseFacts) -> dict[str, Any]:
    return {"known": sorted(facts.known_relations), "allowlisted": sorted(facts.allowlisted_relations),
            "macros": {name: [sorted(rels), problem] for name, (rels, problem) in facts.macro_info.items()}}


def decode_facts(d: dict[str, Any]) -> WarehouseFacts:
    return WarehouseFacts(frozenset(d["known"]), frozenset(d["allowlisted"]),
                          {name: (frozenset(rels), problem) for name, (rels, problem) in d["macros"].items()})


# ---------------------------------------------------------------------------------------------- the worker


def _watch_parent(ppid: int) -> None:
    while True:
        if os.getppid() != ppid:
            os._exit(70)
        time.sleep(_PARENT_POLL_S)


class _Worker:
    def __init__(self, setup: dict[str, Any], out):
        import duckdb

        self.duckdb = duckdb
        self.out = out
        self.max_rows = int(setup["max_rows"])
        self.max_result_bytes = int(setup["max_result_bytes"])
        self.timeout_s = float(setup["timeout_s"])
        self.facts = decode_facts(setup["facts"])
        self.analyses: dict[str, SqlAnalysis] = {}
        self.conn = duckdb.connect(setup["db"], read_only=True, config=setup["config"])
        expected: dict[str, str] = setup["expected"]
        actual = dict(self.conn.execute(
            "SELECT name, lower(CAST(value AS VARCHAR)) FROM duckdb_settings() WHERE list_contains(?, name)",
            [list(expected)]).fetchall())
        wrong = {k: actual.get(k) for k, v in expected.items() if actual.get(k) != v}
        if wrong:
            raise RuntimeError(f"DuckDB did not apply the sandbox hardening settings: {wrong}")

    def send(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj).encode("utf-8") + b"\n")
        self.out.flush()

    def analyse(self, sql: str) -> SqlAnalysis:
        cached = self.analyses.get(sql)
        if cached is None:
            try:
                cached = _parse.analyse_statement(self.conn, sql, self.facts)
            except RecursionError:
                cached = SqlAnalysis(False, "the statement is nested too deeply to be analysed", "forbidden",
                                     "SELECT", frozenset(), frozenset(), False, False)
            if len(self.analyses) >= _ANALYSIS_CACHE_SIZE:
                self.analyses.clear()
            self.analyses[sql] = cached
        return cached

    def handle(self, req: dict[str, Any]) -> bool:
        """Answer one request; False when this worker should exit afterwards."""
        op, sql = req.get("op"), req.get("sql")
        if not isinstance(sql, str):
            self.send({"done": _error("SQL must be a string", "syntax")})
            return True
        if op in ("run", "analyze"):
            analysis = self.analyse(sql)
            self.send({"analysis": encode_analysis(analysis)})
            if op == "analyze" or not analysis.ok or (req.get("enforce") and not analysis.allowlisted):
                self.send({"done": None})
                return True
        elif op != "unchecked":
            self.send({"done": _error(f"unknown request {op!r}", "runtime")})
            return True
        result = self.execute(sql)
        line = json.dumps({"done": result}).encode("utf-8")
        if len(line) > self.max_result_bytes:
            del line
            result = _error(f"the result is larger than {self.max_result_bytes} bytes", "too_large")
            line = json.dumps({"done": result}).encode("utf-8")
        self.out.write(line + b"\n")
        self.out.flush()
        return not result.get("retire")

    def execute(self, sql: str) -> dict[str, Any]:
        duckdb = self.duckdb
        try:
            self.conn.execute(sql)
            description = self.conn.description
            columns = [str(d[0]) for d in (description or [])]
            rows = self.conn.fetchmany(self.max_rows + 1) if description is not None else []
        except duckdb.InterruptException as exc:
            return _error(f"timeout after {self.timeout_s:g}s: {exc}", "timeout")
        except duckdb.OutOfMemoryException as exc:
            return _error(str(exc), "memory", retire=True)
        except duckdb.PermissionException as exc:
            return _error(str(exc), "forbidden")
        except duckdb.ParserException as exc:
            return _error(str(exc), "syntax")
        except (duckdb.FatalException, duckdb.InternalException) as exc:
            kind = "memory" if _mentions_memory(str(exc)) else "runtime"
            return _error(str(exc), kind, retire=True)  # DuckDB may have invalidated the database
        except duckdb.Error as exc:
            if _mentions_memory(str(exc)):
                return _error(str(exc), "memory", retire=True)
            return _error(str(exc), "runtime")
        too_many = len(rows) > self.max_rows
        encoded = [[v if type(v) in _PLAIN else encode_value(v) for v in row] for row in rows[: self.max_rows]]
        del rows
        if too_many:
            return {"ok": False, "columns": columns, "rows": encoded,
                    "error": f"result has more than {self.max_rows} rows", "kind": "too_many_rows"}
        return {"ok": True, "columns": columns, "rows": encoded, "error": None, "kind": None}


def _mentions_memory(message: str) -> bool:
    low = message.lower()
    return "out of memory" in low or "bad_alloc" in low or "failed to allocate" in low


def _error(message: str, kind: str, retire: bool = False) -> dict[str, Any]:
    out = {"ok": False, "columns": [], "rows": [], "error": message[:4000], "kind": kind}
    if retire:
        out["retire"] = True
    return out


def main() -> None:
    """Serve requests on stdin until it closes. Protocol replies go to a private copy of stdout; fd 1 itself is
    pointed at /dev/null so nothing DuckDB or Python might print can corrupt the protocol."""
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    stdin = sys.stdin.buffer
    worker: _Worker | None = None
    try:
        setup = json.loads(stdin.readline())
        worker = _Worker(setup, out)
        worker.send({"ready": True, "pid": os.getpid()})
    except BaseException as exc:  # report why, then exit: the parent raises it at construction
        out.write(json.dumps({"fatal": f"{type(exc).__name__}: {exc}"[:4000]}).encode() + b"\n")
        out.flush()
        os._exit(2)
    for line in stdin:
        try:
            keep = worker.handle(json.loads(line))
        except MemoryError:
            try:
                worker.send({"done": _error("the query ran out of memory in the worker", "memory", retire=True)})
            finally:
                os._exit(3)
        if not keep:
            break
    out.flush()
    os._exit(0)  # skip interpreter teardown: nothing to save, and a wedged DuckDB thread must not hold the exit
