"""The SQL text every repository shares: WHERE clauses and UPDATE statements built from dicts.

Why one builder: each repository used to assemble its own ``WHERE a = ? AND b = ?`` list and its own UPDATE, so
the rules (which None means "any", how an IN list is bound, how a missing row is reported) drifted apart. Values
are always bound as ``?`` parameters; column and table names cannot be, so every name that reaches the SQL text
is checked against a plain-identifier pattern first (``alias.column`` allowed, for joins). Other fragments a
caller passes (``select``, ``order_by``, extra conditions) are SQL written in code, never user input.

    where_clause(key={"run_id": "r-01"}, where={"iteration": None, "kept": True})
    # -> ("WHERE run_id = ? AND kept = ?", ["r-01", True])
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_IN_TYPES = (list, tuple, set, frozenset)


def identifier(name: Any) -> str:
    """``name`` if it is a plain (optionally alias-qualified) SQL identifier; ValueError otherwise."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"unsafe SQL identifier {name!r}: expected a column name like run_id or i.slice")
    return name


def where_clause(
    key: Mapping[str, Any] | None = None,
    where: Mapping[str, Any] | None = None,
    where_sql: str | Sequence[str] = (),
    where_args: Sequence[Any] = (),
) -> tuple[str, list]:
    """``("WHERE ...", params)``, or ``("", [])`` when nothing filters; conditions are ANDed in the order given.

    ``key``: column -> value that always applies (a None compares as SQL NULL, so it matches no row).
    ``where``: column -> value filters where None means "any" and is skipped.
    In both, a list/tuple/set value means ``column IN (...)`` (an empty one matches no row).
    ``where_sql`` / ``where_args``: further conditions written in code, with their ``?`` arguments.
    """
    clauses: list[str] = []
    params: list = []
    equalities = [*(key or {}).items(), *((c, v) for c, v in (where or {}).items() if v is not None)]
    for column, value in equalities:
        column = identifier(column)
        if isinstance(value, _IN_TYPES):
            values = list(value)
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})" if values else "false")
            params.extend(values)
        else:
            clauses.append(f"{column} = ?")
            params.append(value)
    extra = [where_sql] if isinstance(where_sql, str) else list(where_sql)
    clauses.extend(f"({sql})" for sql in extra)
    params.extend(where_args)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def update_statement(
    table: str, key: Mapping[str, Any], values: Mapping[str, Any] | None = None, set_sql: Sequence[str] = ()
) -> tuple[str, list]:
    """``UPDATE table SET ... WHERE <key> RETURNING 1`` and its params; ``set_sql`` adds raw assignments
    (``finished_at = current_timestamp``) after the bound ones. A key is required: no UPDATE of a whole table."""
    if not key:
        raise ValueError(f"update of {table}: a key is required")
    assignments = [f"{identifier(column)} = ?" for column in (values or {})] + list(set_sql)
    if not assignments:
        raise ValueError(f"update of {table}: nothing to set")
    where, key_params = where_clause(key=key)
    sql = f"UPDATE {identifier(table)} SET {', '.join(assignments)} {where} RETURNING 1"
    return sql, [*(values or {}).values(), *key_params]
