"""The structural check of model-written SQL, before anything runs: one SELECT, no table functions, only warehouse
relations, every relation found (CTE names resolved with DuckDB's own scoping rules, macro bodies included).

Why a parse-tree walk and not a regular expression: DuckDB's ``json_serialize_sql`` gives the statement's real tree,
so a relation hidden in a subquery, a CTE, a lateral join or a macro call is found exactly as DuckDB would bind it.
The walk fails closed: an unknown query node or table-reference type is refused. The sandbox (``sql_sandbox``) runs
this check on every text first; these functions only read the tree.

    analysis = analyse_statement(cursor, "SELECT * FROM v_revenue_orders", facts)   # facts: WarehouseFacts
    analysis.ok, analysis.relations, analysis.allowlisted
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import duckdb

DB_NAME = "warehouse"  # the file stem, hence the DuckDB catalog name of the materialised warehouse

# Table-reference types of DuckDB's parse tree (TableReferenceType).  Only the first set may appear.
_ALLOWED_TABLE_REFS = frozenset({"BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "PIVOT"})
_ALL_TABLE_REFS = _ALLOWED_TABLE_REFS | frozenset(
    {"TABLE_FUNCTION", "SHOW_REF", "COLUMN_DATA", "DELIM_GET", "CTE", "BOUND_TABLE_REF", "INVALID"}
)
# Query-node types (QueryNodeType); anything else ending in _NODE is refused (fail closed).
_KNOWN_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
#: Table functions that only generate values from their arguments (no files, settings, catalog or SQL text).
SAFE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})


@dataclass(frozen=True)
class SqlAnalysis:
    """What the structural check found out about a SQL text, without running it.

    ``ok`` means the text is one SELECT statement with no table functions and no reference that could never be
    allowed (unknown relations, files, foreign schemas); the allowlist is *not* part of ``ok`` — see
    ``allowlisted``.  ``ordered`` is true when the top-level query has an ``ORDER BY``.
    """

    ok: bool
    error: str | None
    error_kind: str | None
    statement_type: str | None
    relations: frozenset[str]
    table_functions: frozenset[str]
    ordered: bool
    allowlisted: bool


class TreeWalk:
    """Collects base relations, table functions and refusals from a ``json_serialize_sql`` tree."""

    def __init__(self, macro_info: dict[str, tuple[frozenset[str], str | None]]):
        self.macro_info = macro_info
        self.relations: set[tuple[str, str, str]] = set()  # (catalog, schema, table), lower-case
        self.table_functions: set[str] = set()
        self.problems: list[str] = []
        self.macro_relations: set[str] = set()

    def walk(self, obj: Any, scope: frozenset[str]) -> None:
        if isinstance(obj, list):
            for item in obj:
                self.walk(item, scope)
            return
        if not isinstance(obj, dict):
            return
        typ = obj.get("type")
        is_expression = "class" in obj
        if isinstance(typ, str) and not is_expression:
            if typ == "TABLE_FUNCTION" or (typ in _ALL_TABLE_REFS and typ not in _ALLOWED_TABLE_REFS):
                if typ == "TABLE_FUNCTION":
                    fn = obj.get("function") or {}
                    name = str(fn.get("function_name", "?")).lower()
                    qualified = fn.get("schema") or fn.get("catalog")
                    if name in SAFE_TABLE_FUNCTIONS and not qualified and fn.get("class") == "FUNCTION":
                        self.walk(fn.get("arguments"), scope)  # arguments may hold subqueries
                        return
                    self.table_functions.add(name)
                else:
                    self.problems.append(f"{typ} references are not allowed")
                return
            if typ.endswith("_NODE") and typ not in _KNOWN_QUERY_NODES:
                self.problems.append(f"unsupported query node {typ}")
                return
            if typ == "BASE_TABLE":
                self._base_table(obj, scope)
                # fall through: walk at_clause/sample expressions too
        if obj.get("class") == "FUNCTION":
            self._function(obj)
        cte_map = obj.get("cte_map")
        if isinstance(cte_map, dict):
            inner = set(scope)
            for entry in cte_map.get("map") or []:
                name = str(entry.get("key", "")).lower()
                # A CTE body sees the CTEs defined before it, never itself (the recursive arm of a recursive CTE
                # is handled by RECURSIVE_CTE_NODE below).  DuckDB binds a non-recursive self-reference to the
                # base table of the same name, so treating it as a base table here is exact.
                self.walk(entry.get("value"), frozenset(inner))
                inner.add(name)
            scope = frozenset(inner)
        if typ == "RECURSIVE_CTE_NODE" and not is_expression:
            rec_scope = scope | {str(obj.get("cte_name", "")).lower()}
            for key, value in obj.items():
                if key == "cte_map":
                    continue
                # the anchor ("left") binds the CTE's own name to the base table; only the recursive arm sees it
                self.walk(value, rec_scope if key == "right" else scope)
            return
        for key, value in obj.items():
            if key == "cte_map":
                continue
            if isinstance(value, (dict, list)):
                self.walk(value, scope)

    def _base_table(self, obj: dict, scope: frozenset[str]) -> None:
        catalog = str(obj.get("catalog_name") or "").lower()
        schema = str(obj.get("schema_name") or "").lower()
        table = str(obj.get("table_name") or "").lower()
        if not catalog and not schema and table in scope:
            return  # a CTE reference
        self.relations.add((catalog, schema, table))

    def _function(self, obj: dict) -> None:
        name = str(obj.get("function_name") or "").lower()
        schema = str(obj.get("schema") or "").lower()
        catalog = str(obj.get("catalog") or "").lower()
        if name in self.macro_info and schema in ("", "main") and catalog in ("", DB_NAME):
            rels, problem = self.macro_info[name]
            self.macro_relations.update(rels)
            if problem:
                self.problems.append(f"macro {name}: {problem}")


@dataclass(frozen=True)
class WarehouseFacts:
    """What the check needs to know of the warehouse: its relations, the allowlisted ones, and what macros read."""

    known_relations: frozenset[str]
    allowlisted_relations: frozenset[str]
    macro_info: dict[str, tuple[frozenset[str], str | None]]


def canonical(catalog: str, schema: str, table: str) -> str:
    """A relation's name as the allowlist sees it: bare when it lives in the warehouse's main schema."""
    if catalog:
        in_main = catalog == DB_NAME and schema in ("", "main")
    elif schema:
        in_main = schema in ("main", DB_NAME)
    else:
        in_main = True
    return table if in_main else ".".join(p for p in (catalog, schema, table) if p)


def analyse_macros(conn, macros) -> dict[str, tuple[frozenset[str], str | None]]:
    """Relations read by each scalar macro of the warehouse (transitively), so calling one counts."""
    direct: dict[str, tuple[set[str], set[str], str | None]] = {}
    names = {m[0] for m in macros if m[1] == "macro"}
    for name, ftype, definition in macros:
        if ftype != "macro":
            continue  # table macros are table functions, refused anyway
        tree = json.loads(conn.execute("SELECT json_serialize_sql(?)", [f"SELECT {definition}"]).fetchone()[0])
        if tree.get("error"):
            direct[name] = (set(), set(), "macro body could not be analysed")
            continue
        w = TreeWalk({})
        w.walk(tree.get("statements"), frozenset())
        calls: set[str] = set()
        collect_calls(tree, names, calls)
        problem = "; ".join(w.problems) or (
            "uses table functions " + ", ".join(sorted(w.table_functions)) if w.table_functions else None
        )
        direct[name] = ({canonical(*r) for r in w.relations}, calls - {name}, problem)
    out: dict[str, tuple[frozenset[str], str | None]] = {}
    for name in direct:
        seen, stack, rels, problem = set(), [name], set(), None
        while stack:
            cur = stack.pop()
            if cur in seen or cur not in direct:
                continue
            seen.add(cur)
            r, calls, p = direct[cur]
            rels |= r
            problem = problem or p
            stack.extend(calls)
        out[name] = (frozenset(rels), problem)
    return out


def analyse_statement(cur, sql: str, facts: WarehouseFacts) -> SqlAnalysis:
    """Parse ``sql`` on ``cur`` and run the structural checks, without executing it."""
    def refuse(kind: str, msg: str, stype=None, rels=frozenset(), tfs=frozenset(), ordered=False):
        return SqlAnalysis(False, msg, kind, stype, frozenset(rels), frozenset(tfs), ordered, False)

    try:
        statements = cur.extract_statements(sql)
    except duckdb.Error as exc:
        return refuse("syntax", str(exc))
    if not statements:
        return refuse("syntax", "no SQL statement found")
    if len(statements) != 1:
        return refuse("forbidden", f"exactly one statement is allowed, found {len(statements)}")
    stype = statements[0].type.name
    if stype != "SELECT":
        return refuse("forbidden", f"only SELECT statements are allowed, not {stype}", stype)
    try:
        tree = json.loads(cur.execute("SELECT json_serialize_sql(?)", [statements[0].query]).fetchone()[0])
    except duckdb.Error as exc:  # pragma: no cover - serialisation of a parsed SELECT does not fail
        return refuse("forbidden", f"could not analyse the statement: {exc}", stype)
    if tree.get("error"):
        kind = "syntax" if "pars" in str(tree.get("error_type", "")).lower() else "forbidden"
        return refuse(kind, str(tree.get("error_message") or "could not analyse the statement"), stype)
    stmts = tree.get("statements") or []
    if len(stmts) != 1:
        return refuse("forbidden", "exactly one statement is allowed", stype)
    node = stmts[0].get("node") or {}
    ordered = any(
        m.get("type") == "ORDER_MODIFIER" and m.get("orders") for m in (node.get("modifiers") or [])
    )
    w = TreeWalk(facts.macro_info)
    w.walk(stmts, frozenset())
    relations = {canonical(*r) for r in w.relations} | w.macro_relations
    if w.table_functions:
        return refuse(
            "forbidden",
            "table functions are not allowed: " + ", ".join(sorted(w.table_functions)),
            stype, relations, w.table_functions, ordered,
        )
    if w.problems:
        return refuse("forbidden", "; ".join(w.problems), stype, relations, (), ordered)
    unknown = sorted(r for r in relations if r not in facts.known_relations)
    outside = [r for r in unknown if not _PLAIN_NAME.match(r)]
    if outside:
        return refuse(
            "forbidden",
            "only warehouse relations may be read (files, URLs and other schemas are refused): "
            + ", ".join(outside),
            stype, relations, (), ordered,
        )
    if unknown:
        return refuse(
            "runtime",
            "Catalog Error: relation(s) not in the warehouse: " + ", ".join(unknown),
            stype, relations, (), ordered,
        )
    allowlisted = all(r in facts.allowlisted_relations for r in relations)
    return SqlAnalysis(True, None, None, stype, frozenset(relations), frozenset(), ordered, allowlisted)


def collect_calls(obj: Any, names: set[str], out: set[str]) -> None:
    if isinstance(obj, list):
        for x in obj:
            collect_calls(x, names, out)
    elif isinstance(obj, dict):
        if obj.get("class") == "FUNCTION":
            n = str(obj.get("function_name") or "").lower()
            if n in names:
                out.add(n)
        for v in obj.values():
            if isinstance(v, (dict, list)):
                collect_calls(v, names, out)
