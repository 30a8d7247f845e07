"""Numbered SQL migrations, applied in order, each one all-or-nothing.

Why files and not code: the schema is then readable in one place (``store/migrations/NNN_name.sql``) and a
reviewer sees exactly what a release changes. Each migration runs with its ``schema_migrations`` row in ONE
transaction (sqlite-utils' ``apply()``), so a failed migration leaves neither half its tables nor a row that
claims it ran. A database written by a newer schema is refused (SQLMesh's rule): old code must not write
rows that a newer schema would misread.

    applied = migrate(conn, path_label="runs.duckdb")   # -> [1, 2] the versions applied now
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer release than this code."""


class MigrationError(RuntimeError):
    """A migration failed (and was rolled back) or the migrations directory is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover_migrations(migrations_dir: Path | str = MIGRATIONS_DIR) -> list[Migration]:
    """The ``NNN_name.sql`` files of a directory, sorted by version; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(Path(migrations_dir).glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def applied_versions(conn: duckdb.DuckDBPyConnection) -> list[int]:
    _ensure_bookkeeping(conn)
    return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]


def migrate(
    conn: duckdb.DuckDBPyConnection,
    migrations_dir: Path | str = MIGRATIONS_DIR,
    *,
    path_label: str = ":memory:",
) -> list[int]:
    """Apply every pending migration in version order; return the versions applied by this call.

    Raises SchemaTooNewError before touching anything when the database knows a version this code does not,
    and MigrationError (chained to the DuckDB error) when a migration fails; that migration is rolled back
    and the ones before it stay applied.
    """
    migrations = discover_migrations(migrations_dir)
    known = migrations[-1].version if migrations else 0
    done = applied_versions(conn)
    if done and done[-1] > known:
        raise SchemaTooNewError(
            f"database {path_label} was written by schema version {done[-1]}; "
            f"this code knows up to {known}; upgrade rlaif-workbench"
        )
    applied_now = []
    for migration in migrations:
        if migration.version in done:
            continue
        _apply_one(conn, migration)
        applied_now.append(migration.version)
    return applied_now


# ---- internals


def _ensure_bookkeeping(conn: duckdb.DuckDBPyConnection) -> None:
    # The bookkeeping table lives outside the numbered migrations: it must exist before we can ask
    # which of them ran.
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )


def _apply_one(conn: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    sql = migration.sql()
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(sql)
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [migration.version, migration.name]
        )
        conn.execute("COMMIT")
    except duckdb.Error as exc:
        conn.execute("ROLLBACK")
        raise MigrationError(f"migration {migration.path.name} failed and was rolled back: {exc}") from exc
