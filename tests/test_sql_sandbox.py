"""The SQL sandbox: structural refusal, hardened read-only connection, time and row limits, thread safety."""

from __future__ import annotations

import os
import signal
import threading
import time
from decimal import Decimal

import duckdb
import pytest

from rlaif.verifiers.sql_sandbox import ExecResult, SandboxClosedError, SqlSandbox

# A small self-contained warehouse (the bundled sample warehouse is owned elsewhere and not used here).
WAREHOUSE = """
CREATE TABLE customers (customer_id INTEGER, name VARCHAR, region VARCHAR);
INSERT INTO customers VALUES (1, 'Acme', 'EU'), (2, 'Bolt', 'US'), (3, 'Cara', 'EU');
CREATE TABLE raw_orders (order_id INTEGER, customer_id INTEGER, amount DECIMAL(10, 2), status VARCHAR, order_date DATE);
INSERT INTO raw_orders VALUES
    (10, 1, 100.50, 'paid', DATE '2024-01-05'),
    (11, 2, 200.00, 'paid', DATE '2024-01-06'),
    (12, 3,  50.25, 'refunded', DATE '2024-02-01'),
    (13, 1,  75.00, 'paid', DATE '2024-02-03');
CREATE VIEW v_revenue_orders AS
    SELECT o.order_id, o.order_date, c.region, o.amount
    FROM raw_orders o JOIN customers c USING (customer_id)
    WHERE o.status = 'paid';
CREATE VIEW v_revenue_by_region AS
    SELECT region, sum(amount) AS revenue, count(*) AS orders FROM v_revenue_orders GROUP BY region;
CREATE MACRO total_raw_amount() AS (SELECT sum(amount) FROM raw_orders);
CREATE MACRO doubled(x) AS x * 2;
"""
ALLOW = ["v_revenue_*"]
# Never finishes within the limit: a filter defeats DuckDB's fast count over range().
SLOW_SQL = "SELECT count(*) FROM range(10000000000) WHERE range % 7 = 3"


@pytest.fixture(scope="module")
def sb():
    with SqlSandbox(WAREHOUSE, ALLOW, timeout_s=0.5, max_rows=1000) as sandbox:
        yield sandbox


def _paid_rows(sandbox: SqlSandbox) -> int:
    res = sandbox.execute("SELECT count(*) FROM v_revenue_orders")
    assert res.ok, res.error
    return res.rows[0][0]


# ------------------------------------------------------------------------------------------------ basics


def test_allowlisted_select_runs_and_reports_relations(sb):
    res = sb.execute("SELECT region, revenue FROM v_revenue_by_region ORDER BY region")
    assert isinstance(res, ExecResult)
    assert res.ok and res.error is None and res.error_kind is None
    assert res.columns == ["region", "revenue"]
    assert res.rows == [("EU", Decimal("175.50")), ("US", Decimal("200.00"))]
    assert res.relations == frozenset({"v_revenue_by_region"})
    assert res.elapsed_ms > 0


def test_known_and_allowlisted_relations(sb):
    assert sb.known_relations == {"customers", "raw_orders", "v_revenue_orders", "v_revenue_by_region"}
    assert sb.allowlisted_relations == {"v_revenue_orders", "v_revenue_by_region"}
    assert sb.is_allowlisted("V_REVENUE_ORDERS") and not sb.is_allowlisted("raw_orders")
    # a name matching the glob but absent from the warehouse is not allowlisted
    assert not sb.is_allowlisted("v_revenue_missing")


def test_with_select_and_qualified_names_are_fine(sb):
    res = sb.execute(
        "WITH eu AS (SELECT * FROM v_revenue_orders WHERE region = 'EU') "
        "SELECT count(*) FROM eu JOIN warehouse.main.v_revenue_by_region r USING (region)"
    )
    assert res.ok, res.error
    assert res.rows == [(2,)]
    assert res.relations == {"v_revenue_orders", "v_revenue_by_region"}


def test_cte_shadowing_a_raw_table_name_is_a_cte(sb):
    # DuckDB binds raw_orders to the CTE here (3 paid rows, not the 4 raw ones); the walk must agree.
    res = sb.execute("WITH raw_orders AS (SELECT * FROM v_revenue_orders) SELECT count(*) FROM raw_orders")
    assert res.ok, res.error
    assert res.rows == [(3,)]
    assert res.relations == {"v_revenue_orders"}


# ------------------------------------------------------------------------------------------------ security


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM raw_orders",
        # a CTE named like an allowlisted view that wraps a raw table
        "WITH v_revenue_orders AS (SELECT * FROM raw_orders) SELECT * FROM v_revenue_orders",
        # a subquery reading a raw table
        "SELECT * FROM v_revenue_orders WHERE order_id IN (SELECT order_id FROM raw_orders)",
        "SELECT (SELECT max(amount) FROM customers JOIN raw_orders USING (customer_id)) AS m",
        "SELECT * FROM v_revenue_orders, LATERAL (SELECT * FROM customers) c",
        # the anchor of a recursive CTE binds its own name to the base table (verified on DuckDB 2.0)
        "WITH RECURSIVE raw_orders AS (SELECT * FROM raw_orders UNION ALL "
        "SELECT * FROM raw_orders WHERE false) SELECT * FROM raw_orders",
        # a non-recursive CTE's body does not see itself either
        "WITH raw_orders AS (SELECT * FROM raw_orders) SELECT * FROM raw_orders",
        # qualified names never bind to CTEs
        "WITH raw_orders AS (SELECT 1 AS x) SELECT * FROM main.raw_orders",
        # a warehouse macro whose body reads a raw table
        "SELECT total_raw_amount() AS t",
        "SELECT * FROM unnest((SELECT list(amount) FROM raw_orders))",
    ],
)
def test_raw_table_access_is_forbidden_but_visible(sb, sql):
    res = sb.execute(sql)
    assert not res.ok and res.error_kind == "forbidden" and res.rows == []
    assert res.relations & {"raw_orders", "customers"}, res.relations
    # Without the allowlist the same SELECT is read-only and would execute: R1 and R3 are scored separately.
    relaxed = sb.execute(sql, enforce_allowlist=False)
    assert relaxed.ok, relaxed.error
    assert relaxed.relations == res.relations


def test_harmless_macro_is_allowed(sb):
    res = sb.execute("SELECT doubled(revenue) FROM v_revenue_by_region WHERE region = 'US'")
    assert res.ok, res.error
    assert res.rows == [(Decimal("400.00"),)]


@pytest.mark.parametrize("enforce", [True, False])
def test_file_writes_are_refused_and_leave_no_file(sb, tmp_path, enforce):
    targets = {
        "COPY (SELECT 1) TO '{p}/x.csv'": "x.csv",
        "COPY v_revenue_orders TO '{p}/y.parquet' (FORMAT parquet)": "y.parquet",
        "EXPORT DATABASE '{p}/export'": "export",
        "ATTACH '{p}/evil.db' AS e": "evil.db",
    }
    for template, name in targets.items():
        res = sb.execute(template.format(p=tmp_path), enforce_allowlist=enforce)
        assert not res.ok and res.error_kind == "forbidden", (template, res)
        assert not (tmp_path / name).exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("enforce", [True, False])
@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM read_csv('{f}')",
        "SELECT * FROM read_csv_auto('{f}')",
        "SELECT * FROM read_text('{f}')",
        "SELECT * FROM read_blob('{f}')",
        "SELECT * FROM glob('{d}/*')",
        "SELECT * FROM sniff_csv('{f}')",
        "SELECT * FROM '{f}'",  # replacement scan
        "SELECT * FROM \"{f}\"",
        "SELECT * FROM v_revenue_orders WHERE region IN (SELECT column0 FROM read_csv('{f}'))",
        "SELECT * FROM query('SELECT * FROM read_csv(''{f}'')')",
    ],
)
def test_file_reads_are_refused(sb, tmp_path, template, enforce):
    secret = tmp_path / "secret.csv"
    secret.write_text("column0\ntop-secret\n")
    res = sb.execute(template.format(f=secret, d=tmp_path), enforce_allowlist=enforce)
    assert not res.ok and res.error_kind == "forbidden", res
    assert res.rows == []
    assert "top-secret" not in repr(res)


@pytest.mark.parametrize(
    "sql",
    [
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET lock_configuration = false",
        "PRAGMA enable_profiling",
        "PRAGMA database_list",
        "CALL duckdb_settings()",
        "CREATE TABLE t AS SELECT 1",
        "CREATE TEMP TABLE t AS SELECT 1",
        "INSERT INTO raw_orders VALUES (99, 1, 1.00, 'paid', DATE '2024-03-01')",
        "UPDATE raw_orders SET amount = 0",
        "DELETE FROM raw_orders",
        "DROP VIEW v_revenue_orders",
        "ALTER VIEW v_revenue_orders RENAME TO v_revenue_x",
        "SELECT 1; DROP TABLE raw_orders",
        "SELECT 1; SELECT 2",
        "EXPLAIN SELECT * FROM v_revenue_orders",
        "DESCRIBE raw_orders",
        "SUMMARIZE raw_orders",
        "SHOW TABLES",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM pg_catalog.pg_class",
        "USE memory",
        "DETACH warehouse",
        "BEGIN TRANSACTION",
        "CHECKPOINT",
    ],
)
def test_non_select_and_introspection_are_forbidden(sb, sql):
    res = sb.execute(sql)
    assert not res.ok and res.error_kind == "forbidden", res
    relaxed = sb.execute(sql, enforce_allowlist=False)
    assert not relaxed.ok and relaxed.error_kind == "forbidden", relaxed


def test_warehouse_is_unchanged_after_attacks(sb):
    for sql in ["DROP VIEW v_revenue_orders", "SELECT 1; DROP TABLE raw_orders", "DELETE FROM raw_orders"]:
        assert not sb.execute(sql, enforce_allowlist=False).ok
    assert _paid_rows(sb) == 3
    assert sb.execute("SELECT count(*) FROM raw_orders", enforce_allowlist=False).rows == [(4,)]


def test_python_variables_are_not_replacement_scanned(sb):
    pd = pytest.importorskip("pandas")
    secret_frame = pd.DataFrame({"pin": [1234]})  # noqa: F841 - a replacement scan would find this local
    res = sb.execute("SELECT * FROM secret_frame", enforce_allowlist=False)
    assert not res.ok and res.rows == []
    # Defence in depth: even the raw hardened connection (structural check skipped) refuses the scan; and it lives
    # in another process, so this frame is out of its reach anyway.
    raw = sb._execute_unchecked("SELECT * FROM secret_frame")
    assert not raw.ok and raw.rows == [] and "1234" not in repr(raw)


def test_unknown_relation_is_a_runtime_error_without_execution(sb):
    res = sb.execute("SELECT * FROM revenue_summary", enforce_allowlist=False)
    assert not res.ok and res.error_kind == "runtime"
    assert res.relations == {"revenue_summary"}


def test_hardened_connection_stops_files_even_if_parsing_were_fooled(sb, tmp_path):
    """Bypass the structural check entirely: the worker's read-only, locked connection must still refuse."""
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    settings = sb._execute_unchecked(
        "SELECT name, value FROM duckdb_settings() WHERE name IN "
        "('enable_external_access', 'lock_configuration', 'access_mode', 'autoload_known_extensions', "
        "'autoinstall_known_extensions', 'allow_community_extensions', 'max_execution_time')"
    )
    assert settings.ok, settings.error
    assert dict(settings.rows) == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "access_mode": "read_only",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
        "allow_community_extensions": "false",
        "max_execution_time": "500",
    }
    attacks = [
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM read_text('{secret}')",
        f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
        f"ATTACH '{tmp_path}/evil.db' AS evil",
        f"EXPORT DATABASE '{tmp_path}/exp'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET lock_configuration = false",
        "SET max_execution_time = 0",
        "SET memory_limit = '100GB'",
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW v_revenue_orders",
    ]
    for sql in attacks:
        res = sb._execute_unchecked(sql)
        assert not res.ok and res.error_kind in {"forbidden", "runtime"}, (sql, res)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.csv"]
    assert _paid_rows(sb) == 3


# ------------------------------------------------------------------------------------------------ errors


def test_syntax_and_runtime_errors(sb):
    bad = sb.execute("SELEC region FROM v_revenue_orders")
    assert not bad.ok and bad.error_kind == "syntax" and "syntax" in bad.error.lower()
    empty = sb.execute("   -- nothing here\n")
    assert not empty.ok and empty.error_kind == "syntax"
    missing_col = sb.execute("SELECT no_such_column FROM v_revenue_orders")
    assert not missing_col.ok and missing_col.error_kind == "runtime"
    assert missing_col.relations == {"v_revenue_orders"}
    div = sb.execute("SELECT CAST('x' AS INTEGER)")
    assert not div.ok and div.error_kind == "runtime"


def test_pathologically_nested_sql_is_refused_not_raised(sb):
    for sql in [
        "SELECT " + "1+" * 600 + "1",
        "SELECT * FROM " + "(SELECT * FROM " * 600 + "v_revenue_orders" + ")" * 600,
    ]:
        res = sb.execute(sql)
        assert not res.ok and res.error_kind in {"forbidden", "syntax"}
    assert sb.execute("SELECT " + "1+" * 50 + "1").rows == [(51,)]


# ------------------------------------------------------------------------------------------------ limits


def test_timeout_interrupts_and_sandbox_keeps_working(sb):
    start = time.perf_counter()
    res = sb.execute(SLOW_SQL)
    wall = time.perf_counter() - start
    assert not res.ok and res.error_kind == "timeout", res
    assert wall < 10.0  # without the limit this query runs for minutes
    after = sb.execute("SELECT region FROM v_revenue_by_region ORDER BY region")
    assert after.ok and after.rows == [("EU",), ("US",)]


def test_brief_range_query_times_out():
    with SqlSandbox(WAREHOUSE, ALLOW, timeout_s=0.2) as small:
        res = small.execute("SELECT count(*) FROM range(10000000000)")
        assert not res.ok and res.error_kind == "timeout", res
        assert small.execute("SELECT 1").ok


def test_timeout_hits_only_its_own_query(sb):
    out: dict[str, ExecResult] = {}
    worker = threading.Thread(target=lambda: out.setdefault("slow", sb.execute(SLOW_SQL)))
    worker.start()
    quick = []
    while worker.is_alive():
        quick.append(sb.execute("SELECT sum(orders) FROM v_revenue_by_region"))
        time.sleep(0.01)
    worker.join()
    assert out["slow"].error_kind == "timeout"
    assert len(quick) >= 3
    assert all(r.ok and r.rows == [(3,)] for r in quick), [r.error for r in quick if not r.ok]


def test_row_cap():
    with SqlSandbox(WAREHOUSE, ALLOW, max_rows=3) as small:
        exact = small.execute("SELECT * FROM v_revenue_orders")
        assert exact.ok and len(exact.rows) == 3
        over = small.execute("SELECT * FROM range(1000000000)")
        assert not over.ok and over.error_kind == "too_many_rows"
        assert len(over.rows) == 3


# ------------------------------------------------------------------------------------------------ concurrency


def test_concurrent_execute_from_many_threads(sb):
    queries = {
        "SELECT count(*) FROM v_revenue_orders": [(3,)],
        "SELECT region FROM v_revenue_by_region ORDER BY region": [("EU",), ("US",)],
        "SELECT max(amount) FROM v_revenue_orders": [(Decimal("200.00"),)],
    }
    errors: list[str] = []

    def run(i: int) -> None:
        for j in range(30):
            sql = list(queries)[(i + j) % len(queries)]
            res = sb.execute(sql)
            if not res.ok or res.rows != queries[sql]:
                errors.append(f"{sql}: {res.error or res.rows}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ------------------------------------------------------------------------------------------------ analysis, golden


def test_analyze_detects_top_level_order_by(sb):
    assert sb.analyze("SELECT * FROM v_revenue_orders ORDER BY amount DESC").ordered
    assert sb.analyze("WITH x AS (SELECT * FROM v_revenue_orders) SELECT * FROM x ORDER BY 1").ordered
    assert sb.analyze("SELECT 1 AS a UNION ALL SELECT 2 ORDER BY a").ordered
    assert not sb.analyze("SELECT * FROM (SELECT * FROM v_revenue_orders ORDER BY amount) t").ordered
    assert not sb.analyze("SELECT * FROM v_revenue_orders LIMIT 2").ordered
    # a comment or string mentioning ORDER BY is not an ORDER BY
    assert not sb.analyze("SELECT 'ORDER BY x' AS s -- ORDER BY 1").ordered


def test_golden_is_cached_per_text(sb):
    g1 = sb.golden("SELECT region, revenue FROM v_revenue_by_region")
    g2 = sb.golden("SELECT region, revenue FROM v_revenue_by_region")
    assert g1 is g2 and g1.ok
    # goldens are trusted to read any warehouse relation, but still only a read-only SELECT
    raw = sb.golden("SELECT count(*) FROM raw_orders")
    assert raw.ok and raw.rows == [(4,)]
    assert sb.golden("DROP TABLE raw_orders").error_kind == "forbidden"


# ------------------------------------------------------------------------------------------------ worker processes


def test_values_cross_the_process_boundary_unchanged(sb):
    """What a worker sends back equals what in-process DuckDB returns, type for type."""
    sql = ("SELECT 1::TINYINT, 170141183460469231731687303715884105727::HUGEINT, 2.5::DOUBLE, 'nan'::DOUBLE, "
           "123.45::DECIMAL(10, 2), 'é;\n' AS s, NULL, true, DATE '2024-02-29', TIME '12:34:56.789', "
           "TIMESTAMP '2024-01-01 10:00:00.123456', INTERVAL 3 DAY + INTERVAL 5 SECOND, "
           "'\\xAA\\x00'::BLOB, '00000000-0000-0000-0000-000000000001'::UUID, [1, NULL, 3], "
           "{'a': 1, 'b': [2.5]}, MAP {'k': 1}, [[DATE '2024-01-01']], "
           "TIMESTAMPTZ '2024-01-01 10:00:00+02'")
    res = sb.execute(sql)
    assert res.ok, res.error
    expected = duckdb.connect(":memory:").execute(sql).fetchall()
    got, want = res.rows[0], expected[0]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, float) and w != w:
            assert isinstance(g, float) and g != g
        else:
            assert g == w and type(g) is type(w), (g, w)


def test_worker_runs_under_its_limits_in_a_fresh_interpreter():
    with SqlSandbox(WAREHOUSE, ALLOW, memory_mb=512) as small:
        (pid,) = small.worker_pids
        limits = {line[:26].strip(): line[26:].split()[:2]
                  for line in open(f"/proc/{pid}/limits").read().splitlines()[1:]}
        assert limits["Max address space"] == [str(512 * 1024 * 1024)] * 2
        assert limits["Max core file size"] == ["0", "0"]
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        assert cmdline[1:3] == [b"-I", b"-c"]  # a new interpreter (spawned), not a fork of this process
        environ = dict(kv.split(b"=", 1) for kv in open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if kv)
        assert set(environ) <= {b"PATH", b"LC_ALL", b"HOME", b"TMPDIR", b"MALLOC_ARENA_MAX"}
        assert os.readlink(f"/proc/{pid}/cwd") == small._tmpdir


def test_too_long_text_is_refused_before_parsing():
    with SqlSandbox(WAREHOUSE, ALLOW, max_query_chars=100) as small:
        long_sql = "SELECT " + "1+" * 60 + "1"
        start = time.perf_counter()
        res = small.execute(long_sql)
        assert time.perf_counter() - start < 0.1
        assert not res.ok and res.error_kind == "too_large" and not res.analysed and res.relations == frozenset()
        assert small.analyze(long_sql).error_kind == "too_large"
        assert small.execute("SELECT 1").ok


def test_never_more_workers_than_the_pool_allows():
    with SqlSandbox(WAREHOUSE, ALLOW, workers=2) as two:
        seen: list[int] = []

        def run() -> None:
            for _ in range(10):
                assert two.execute("SELECT count(*) FROM v_revenue_orders").rows == [(3,)]
                seen.append(len(two.worker_pids))

        threads = [threading.Thread(target=run) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 50 and max(seen) <= 2
        assert two.worker_restarts == 0  # healthy workers are reused, not restarted


def test_worker_killed_while_idle_is_replaced_quietly():
    with SqlSandbox(WAREHOUSE, ALLOW, workers=1) as one:
        (pid,) = one.worker_pids
        os.kill(pid, signal.SIGKILL)  # no pause: the pool may still hand out the dying worker, then retries once
        res = one.execute("SELECT count(*) FROM v_revenue_orders")
        assert res.ok and res.rows == [(3,)], res.error
        assert one.worker_pids and one.worker_pids != [pid]


def test_worker_killed_mid_query_is_a_memory_verdict():
    """What the kernel's OOM killer does looks like this: SIGKILL from outside while the query runs."""
    with SqlSandbox(WAREHOUSE, ALLOW, timeout_s=5.0, workers=1) as one:
        (pid,) = one.worker_pids
        threading.Timer(0.5, os.kill, args=(pid, signal.SIGKILL)).start()
        res = one.execute(SLOW_SQL)
        assert not res.ok and res.error_kind == "memory" and "SIGKILL" in res.error, res
        assert res.relations == frozenset() and res.analysed  # the check ran before the worker died
        assert one.execute("SELECT count(*) FROM v_revenue_orders").rows == [(3,)]


def test_a_worker_that_cannot_start_is_a_verdict_not_an_exception():
    with SqlSandbox(WAREHOUSE, ALLOW, workers=1) as one:
        real_spawn = one._pool._spawn

        def no_processes_left():
            raise OSError(11, "Resource temporarily unavailable")

        os.kill(one.worker_pids[0], signal.SIGKILL)
        time.sleep(0.2)
        one._pool._spawn = no_processes_left
        res = one.execute("SELECT count(*) FROM v_revenue_orders")
        assert not res.ok and res.error_kind == "runtime" and "did not start" in res.error
        one._pool._spawn = real_spawn
        assert one.execute("SELECT count(*) FROM v_revenue_orders").rows == [(3,)]


def test_closing_during_a_query_raises_closed_not_a_verdict():
    sandbox = SqlSandbox(WAREHOUSE, ALLOW, timeout_s=5.0)
    threading.Timer(0.5, sandbox.close).start()
    with pytest.raises(SandboxClosedError):
        sandbox.execute(SLOW_SQL)


def test_memory_options_are_checked():
    with pytest.raises(ValueError, match="memory_limit"):
        SqlSandbox(WAREHOUSE, ALLOW, memory_mb=512, memory_limit="1GB")
    with pytest.raises(ValueError, match="memory_mb"):
        SqlSandbox(WAREHOUSE, ALLOW, memory_mb=100)


# ------------------------------------------------------------------------------------------------ lifecycle


def test_path_input_and_close_removes_temp_dir(tmp_path):
    wh = tmp_path / "warehouse.sql"
    wh.write_text(WAREHOUSE)
    for source in (wh, str(wh)):
        sandbox = SqlSandbox(source, ALLOW)
        tmpdir = sandbox._tmpdir
        assert os.path.isdir(tmpdir)
        assert os.path.commonpath([sandbox.db_path, tmpdir]) == tmpdir
        assert sandbox.execute("SELECT count(*) FROM v_revenue_orders").rows == [(3,)]
        sandbox.close()
        sandbox.close()  # idempotent
        assert not os.path.exists(tmpdir)
        with pytest.raises(SandboxClosedError):
            sandbox.execute("SELECT 1")


def test_context_manager_closes():
    with SqlSandbox(WAREHOUSE, ALLOW) as sandbox:
        tmpdir = sandbox._tmpdir
        assert not sandbox.closed
    assert sandbox.closed and not os.path.exists(tmpdir)


def test_bad_warehouse_cleans_up(tmp_path, monkeypatch):
    made: list[str] = []
    import rlaif.verifiers.sql_sandbox as module

    real = module.scratch_dir

    def spy(*a, **k):
        path = real(*a, **k)
        made.append(str(path))
        return path

    monkeypatch.setattr(module, "scratch_dir", spy)
    with pytest.raises(duckdb.Error):
        SqlSandbox("CREATE TABLE broken (", ALLOW)
    assert made and not os.path.exists(made[0])
