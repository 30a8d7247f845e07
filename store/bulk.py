"""Bulk inserts of dict rows through an Arrow table, and the JSON encoding every JSON column goes through.

Why Arrow: ``executemany`` binds row by row (minutes for a million pairs); registering a pyarrow table on the
cursor and running ``INSERT ... SELECT`` lets DuckDB append it in one vectorised pass (seconds). The insert runs
on the caller's cursor, so inside a transaction a bad row (a duplicate key, a failed CHECK) leaves nothing.

    insert_rows(cur, "evals", rows, columns=EVAL_COLUMNS)
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Iterable

import duckdb
import pyarrow as pa

from store.secrets_guard import env_secrets, refuse_secrets

_ON_CONFLICT = {"error": "INSERT", "ignore": "INSERT OR IGNORE", "replace": "INSERT OR REPLACE"}


def to_json(value: Any, field: str, env: tuple[str, ...] | None = None) -> str | None:
    """Encode a dict/list for a JSON column after checking it carries no API key (see secrets_guard); ``env``: the
    environment's secret values, when the caller encodes many values at once."""
    if value is None:
        return None
    refuse_secrets(value, field, env)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field} is not JSON-serialisable: {exc}") from exc


def new_ids(n: int) -> list[str]:
    """``n`` unique 32-hex-char ids that sort in creation order (like UUIDv7), for rows whose id is not
    content-derived. Sorting by id then follows insertion order, which keeps id-ordered pages natural to read
    and lets DuckDB's zone maps skip row groups when paging by id."""
    prefix = f"{time.time_ns():016x}{uuid.uuid4().hex[:8]}"
    return [f"{prefix}{i:08x}" for i in range(n)]


def new_id() -> str:
    return new_ids(1)[0]


def insert_rows(
    cur: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[dict[str, Any]],
    *,
    columns: Iterable[str],
    json_columns: Iterable[str] = (),
    id_column: str | None = None,
    on_conflict: str = "error",
) -> int:
    """Insert ``rows`` (dicts keyed by column name) into ``table``; return how many were given.

    A missing key or a None in a column with a SQL default (``created_at``, ``kept``) takes that default; a key
    that is not a column raises ValueError, so a typo cannot silently drop data. Rows without ``id_column``
    get a new id.
    """
    if not rows:
        return 0
    columns = list(columns)
    json_columns = set(json_columns)
    given = set().union(*(row.keys() for row in rows))
    unknown = given - set(columns)
    if unknown:
        raise ValueError(f"{table}: unknown column(s) {sorted(unknown)}; known: {columns}")
    if id_column is not None:
        ids = iter(new_ids(len(rows)))
        rows = [row if row.get(id_column) else {**row, id_column: next(ids)} for row in rows]
        given.add(id_column)
    present = [c for c in columns if c in given]
    env = env_secrets() if json_columns else ()
    arrays = {}
    for column in present:
        values = [row.get(column) for row in rows]
        if column in json_columns:
            values = [to_json(v, f"{table}.{column}", env) for v in values]
        try:
            arrays[column] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"{table}.{column}: values of mixed or unsupported types ({exc})") from exc
    defaults = _column_defaults(cur, table)
    # A missing key or None in a column with a SQL default (kept, created_at, cohort) means "the default".
    select = ", ".join(f"coalesce({c}, {defaults[c]})" if defaults.get(c) else c for c in present)
    view = f"_rows_{uuid.uuid4().hex}"
    cur.register(view, pa.table(arrays))
    try:
        cur.execute(f"{_ON_CONFLICT[on_conflict]} INTO {table} ({', '.join(present)}) SELECT {select} FROM {view}")
    finally:
        try:
            cur.unregister(view)
        except duckdb.Error:
            pass  # an aborted transaction refuses even this; the view dies with the cursor
    return len(rows)


def _column_defaults(cur: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = cur.execute(
        "SELECT column_name, column_default FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'",
        [table],
    ).fetchall()
    return {name: default for name, default in rows if default is not None}
