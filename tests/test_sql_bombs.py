"""Resource bombs and escape tricks against the SQL sandbox: every one is a verdict with its reason, within its limit,
without the run's own process growing, without touching a file, and the next ordinary query still works.

Why these: an earlier audit found the allowlist held but the limits did not; table-free queries such as
``SELECT repeat('x', 2000000000)`` (15.6 s, 4.1 GB under 2 s / 1 GB) ran in the run's own process. The limits here
are small on purpose (1.5 s, 512 MB workers) so a bomb that hits the timeout costs little.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rlaif.verifiers.sql import SqlVerifier
from rlaif.verifiers.sql_sandbox import SqlSandbox
from tests.test_sql_sandbox import ALLOW, WAREHOUSE

TIMEOUT_S = 1.5
MEMORY_MB = 512
MARGIN_S = 3.0  # wall-time slack over the limit: a worker kill, a busy 2-core machine
RSS_GROWTH_MB = 200
RESOURCE = {"timeout", "memory"}
RESULT = {"too_large", "too_many_rows", "memory", "timeout"}
REFUSED = {"forbidden", "syntax"}


def _exp_cte(levels: int) -> str:
    """Each CTE joins the previous one with itself: 2 ** (2 ** levels) rows at the end."""
    parts = ["a0 AS (SELECT range AS x FROM range(2))"]
    parts += [f"a{i} AS (SELECT p.x FROM a{i - 1} p, a{i - 1} q)" for i in range(1, levels + 1)]
    return "WITH " + ", ".join(parts) + f" SELECT count(*) FROM a{levels}"


# (id, SQL, kinds the verdict may have). Table-free: none of them needs the allowlist to be reached.
BOMBS = [
    # huge strings
    ("repeat_2g", "SELECT repeat('x', 2000000000)", RESOURCE),
    ("repeat_length", "SELECT length(repeat('x', 400000000))", RESOURCE),
    ("lpad_2g", "SELECT lpad('x', 2000000000, 'y')", RESOURCE),
    ("printf_width", "SELECT printf('%0*d', 2000000000, 1)", RESOURCE),
    ("format_width", "SELECT format('{:>2000000000}', 'x')", RESOURCE),
    ("blob_repeat", "SELECT octet_length(repeat('x'::BLOB, 1000000000))", RESOURCE),
    ("md5_of_1g", "SELECT md5(repeat('a', 1000000000))", RESOURCE),
    ("upper_900m", "SELECT upper(repeat('abc', 300000000))", RESOURCE),
    ("translate_900m", "SELECT translate(repeat('abc', 300000000), 'a', 'b')", RESOURCE),
    ("string_split", "SELECT string_split(repeat('a ', 300000000), ' ')", RESOURCE),
    ("levenshtein_quadratic", "SELECT levenshtein(repeat('a', 200000), repeat('b', 200000))", RESOURCE),
    # huge lists
    ("len_range_1g", "SELECT len(range(1000000000))", RESOURCE),
    ("list_sum_range", "SELECT list_sum(range(1000000000))", RESOURCE),
    ("list_concat", "SELECT length(list_concat(range(300000000), range(300000000)))", RESOURCE),
    ("list_sort", "SELECT list_sort(range(500000000))", RESOURCE),
    ("list_transform", "SELECT list_transform(range(100000000), lambda x: x::VARCHAR)", RESOURCE),
    ("list_comprehension", "SELECT [x for x in range(500000000) if x % 2 = 0]", RESOURCE),
    ("list_resize", "SELECT list_resize([1], 1000000000)", RESOURCE),
    ("list_repeat", "SELECT repeat([1, 2, 3], 500000000)", RESOURCE),
    ("to_json_range", "SELECT to_json(range(200000000))", RESOURCE),
    ("triangular_lists", "SELECT max(len(x)) FROM (SELECT range(range) x FROM range(1000000))", RESOURCE),
    # unnest bombs
    ("unnest_1g", "SELECT count(*) FROM (SELECT unnest(range(1000000000)))", RESOURCE),
    ("unnest_series", "SELECT sum(x) FROM (SELECT unnest(generate_series(1, 2000000000)) x)", RESOURCE),
    ("unnest_cross", "SELECT count(*) FROM (SELECT unnest(range(100000)) a) x, (SELECT unnest(range(100000)) b) y "
                     "WHERE a + b = 3", RESOURCE),
    # billions of rows
    ("range_10g_filter", "SELECT count(*) FROM range(10000000000) WHERE range % 7 = 3", RESOURCE),
    ("series_5g_filter", "SELECT count(*) FROM generate_series(1, 5000000000) t(x) WHERE x % 3 = 1", RESOURCE),
    ("timestamp_series", "SELECT count(*) FROM generate_series(TIMESTAMP '0001-01-01', TIMESTAMP '9999-12-31', "
                         "INTERVAL 1 SECOND)", RESOURCE),
    ("group_by_3g", "SELECT range % 1000, count(*) FROM range(3000000000) GROUP BY 1", RESOURCE),
    ("count_distinct_2g", "SELECT count(DISTINCT range) FROM range(2000000000)", RESOURCE),
    ("median_2g", "SELECT median(range) FROM range(2000000000)", RESOURCE),
    ("mode_1g", "SELECT mode(range) FROM range(1000000000)", RESOURCE),
    ("array_agg_1g", "SELECT array_agg(range) FROM range(1000000000)", RESOURCE),
    ("exists_3g", "SELECT count(*) FROM range(3000000000) t1 WHERE EXISTS "
                  "(SELECT 1 FROM range(10) t2 WHERE t2.range = t1.range % 11)", RESOURCE),
    # cross joins
    ("cross_join_10g", "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = 7", RESOURCE),
    ("cross_join_sum", "SELECT sum(a.range * b.range) FROM range(1000000) a CROSS JOIN range(1000000) b", RESOURCE),
    ("triple_cross", "SELECT max(a.range + b.range + c.range) FROM range(10000) a, range(10000) b, range(10000) c",
     RESOURCE),
    ("skewed_join", "SELECT count(*) FROM range(1000000) a JOIN range(1000000) b ON a.range % 10 = b.range % 10",
     RESOURCE),
    ("exponential_ctes", _exp_cte(7), RESOURCE),
    # recursive CTEs
    ("recursive_forever", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
     RESOURCE),
    ("recursive_doubling", "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r) "
                           "SELECT max(length(s)) FROM r", RESOURCE),
    ("recursive_doubling_40", "WITH RECURSIVE r(s, i) AS (SELECT 'ab', 0 UNION ALL SELECT s || s, i + 1 FROM r "
                              "WHERE i < 40) SELECT length(max(s)) FROM r", RESOURCE),
    # aggregates of huge sets
    ("string_agg_1g", "SELECT length(string_agg(range::VARCHAR, ',')) FROM range(1000000000)", RESOURCE),
    ("string_agg_wide", "SELECT length(string_agg(repeat('y', 1000), '')) FROM range(10000000)", RESOURCE),
    # regular expressions
    ("regexp_rows", "SELECT count(*) FROM range(100000000) WHERE regexp_matches(range::VARCHAR || repeat('a', 200), "
                    "'(a|aa)*(b|c)+$')", RESOURCE),
    ("regexp_replace_200m", "SELECT regexp_replace(repeat('a', 200000000), 'a', 'bb', 'g')", RESOURCE),
    # sorting and windows over billions
    ("sort_1g", "SELECT * FROM range(1000000000) ORDER BY random() LIMIT 1", RESOURCE),
    ("row_number_3g", "SELECT max(rn) FROM (SELECT row_number() OVER (ORDER BY range DESC) AS rn "
                      "FROM range(3000000000))", RESOURCE),
    ("running_sum_2g", "SELECT sum(s) FROM (SELECT sum(range) OVER (ORDER BY range ROWS BETWEEN UNBOUNDED PRECEDING "
                       "AND CURRENT ROW) s FROM range(2000000000))", RESOURCE),
    # huge results
    ("wide_rows", "SELECT repeat('z', 10000) FROM range(5000)", RESULT),
    ("one_huge_list_row", "SELECT list(range) FROM range(1500000)", RESULT),
    ("ten_million_rows", "SELECT range::VARCHAR FROM range(10000000)", RESULT),
    ("hundred_mb_value", "SELECT repeat('z', 100000000) AS big", RESULT | RESOURCE),
    # text size and nesting
    ("expression_800kb", "SELECT " + "+".join(["1"] * 400000), {"too_large"}),
    ("plus_chain_24k", "SELECT 1 + " + " + ".join(["1"] * 6000), {"too_large"}),
    ("deep_parens", "SELECT " + "(" * 5000 + "1" + ")" * 5000, REFUSED | {"too_large"}),
    ("deep_subqueries", "SELECT * FROM " + "(SELECT * FROM " * 1200 + "v_revenue_orders" + ")" * 1200,
     REFUSED | {"too_large"}),
    ("deep_case", "SELECT " + "CASE WHEN 1 THEN " * 1100 + "1" + " END" * 1100, REFUSED | {"too_large"}),
    ("deep_functions", "SELECT " + "abs(" * 3000 + "1" + ")" * 3000, REFUSED | {"too_large"}),
]

# Escape tricks: files, settings, extensions, catalogs, several statements. ``{d}`` is the canary folder.
TRICKS = [
    ("read_csv", "SELECT * FROM read_csv('{d}/secret.csv')"),
    ("read_text", "SELECT * FROM read_text('{d}/secret.csv')"),
    ("read_json", "SELECT * FROM read_json_auto('{d}/secret.json')"),
    ("glob", "SELECT * FROM glob('{d}/*')"),
    ("replacement_scan", "SELECT * FROM '{d}/secret.csv'"),
    ("replacement_scan_quoted", "SELECT * FROM \"{d}/secret.csv\""),
    ("subquery_file", "SELECT * FROM v_revenue_orders WHERE region IN (SELECT column0 FROM read_csv('{d}/secret.csv'))"),
    ("query_function", "SELECT * FROM query('SELECT * FROM read_csv(''{d}/secret.csv'')')"),
    ("copy_out", "COPY (SELECT 1) TO '{d}/out.csv'"),
    ("copy_view_out", "COPY v_revenue_orders TO '{d}/out.parquet' (FORMAT parquet)"),
    ("export", "EXPORT DATABASE '{d}/export'"),
    ("attach", "ATTACH '{d}/evil.db' AS evil"),
    ("set_external", "SET enable_external_access = true"),
    ("set_memory", "SET memory_limit = '100GB'"),
    ("reset_timeout", "RESET max_execution_time"),
    ("pragma_memory", "PRAGMA memory_limit = '100GB'"),
    ("install", "INSTALL httpfs"),
    ("load", "LOAD httpfs"),
    ("settings", "SELECT * FROM duckdb_settings()"),
    ("catalog_tables", "SELECT * FROM duckdb_tables()"),
    ("information_schema", "SELECT * FROM information_schema.tables"),
    ("two_statements", "SELECT 1; COPY (SELECT 1) TO '{d}/two.csv'"),
    ("comment_hides_statement", "SELECT 1 /* harmless */; DROP VIEW v_revenue_orders -- done"),
    ("line_comment_then_copy", "SELECT 1 -- first\n; COPY (SELECT 2) TO '{d}/three.csv'"),
]


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover - Linux only


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) so the peak *during* one bomb can be read; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:  # pragma: no cover - some kernels/containers refuse
        return False


def _peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("canary")
    (folder / "secret.csv").write_text("column0\ntop-secret\n")
    (folder / "secret.json").write_text('{"pin": "top-secret"}\n')
    return folder


@pytest.fixture(scope="module")
def bomb_sb():
    with SqlSandbox(WAREHOUSE, ALLOW, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB) as sandbox:
        yield sandbox


def _contained(sandbox: SqlSandbox, sql: str, kinds: set[str], canary: Path, enforce: bool = False):
    before_files = _snapshot(canary)
    rss_before = _rss_mb()
    peaked = _reset_peak()
    start = time.perf_counter()
    res = sandbox.execute(sql, enforce_allowlist=enforce)
    wall = time.perf_counter() - start
    growth = (_peak_mb() if peaked else _rss_mb()) - rss_before
    assert not res.ok and res.error_kind in kinds, (res.error_kind, res.error)
    assert res.error, "a failed verdict says why"
    assert wall < TIMEOUT_S + MARGIN_S, f"took {wall:.1f}s"
    assert growth < RSS_GROWTH_MB, f"the run's own process grew by {growth:.0f} MB"
    assert _snapshot(canary) == before_files
    assert "top-secret" not in repr(res)
    # the run continues: the next ordinary query on the same sandbox gets the right answer
    after = sandbox.execute("SELECT region, orders FROM v_revenue_by_region ORDER BY region")
    assert after.ok and after.rows == [("EU", 2), ("US", 1)], after.error
    return res


def test_there_are_at_least_forty_distinct_attacks():
    sqls = [sql for _, sql, _ in BOMBS] + [sql for _, sql in TRICKS]
    assert len(set(sqls)) == len(sqls) >= 40 + len(TRICKS)


@pytest.mark.parametrize("sql,kinds", [(sql, kinds) for _, sql, kinds in BOMBS], ids=[b[0] for b in BOMBS])
def test_bomb_is_a_verdict_within_its_limits(bomb_sb, canary, sql, kinds):
    _contained(bomb_sb, sql, kinds, canary)


@pytest.mark.parametrize("template", [sql for _, sql in TRICKS], ids=[t[0] for t in TRICKS])
def test_escape_trick_is_refused(bomb_sb, canary, template):
    res = _contained(bomb_sb, template.format(d=canary), REFUSED, canary)
    assert res.rows == []


def test_uninterruptible_call_kills_and_replaces_the_worker(bomb_sb, canary):
    """``lpad`` to 2 GB does not answer DuckDB's interrupt: the parent kills the worker at the deadline."""
    restarts, pids = bomb_sb.worker_restarts, set(bomb_sb.worker_pids)
    res = _contained(bomb_sb, "SELECT lpad('x', 2000000000, 'y')", {"timeout", "memory"}, canary)
    assert bomb_sb.worker_restarts > restarts
    assert pids - set(bomb_sb.worker_pids), "the killed worker is gone"
    for pid in pids - set(bomb_sb.worker_pids):
        assert not _running(pid)
    assert "killed" in res.error or res.error_kind == "memory"


def test_memory_verdict_names_the_limit(bomb_sb, canary):
    res = _contained(bomb_sb, "SELECT repeat('x', 2000000000)", {"memory"}, canary)
    assert "memory" in res.error.lower()


def test_bombs_in_parallel_do_not_stall_ordinary_queries(bomb_sb):
    out = []
    bomber = threading.Thread(target=lambda: out.append(bomb_sb.execute(
        "SELECT count(*) FROM range(10000000000) WHERE range % 7 = 3", enforce_allowlist=False)))
    bomber.start()
    quick = []
    while bomber.is_alive():
        quick.append(bomb_sb.execute("SELECT count(*) FROM v_revenue_orders"))
    bomber.join()
    assert out[0].error_kind == "timeout"
    assert quick and all(r.ok and r.rows == [(3,)] for r in quick)


def test_verifier_refuses_an_800kb_candidate_fast():
    with SqlSandbox(WAREHOUSE, ALLOW, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB) as sandbox:
        verifier = SqlVerifier(sandbox)
        text = "SELECT " + "+".join(["1"] * 400000) + ";"
        start = time.perf_counter()
        v = verifier.verify(text, "SELECT 1")
        assert time.perf_counter() - start < 0.5
        assert v.error_kind == "too_large" and not any(v.criteria().values())
        bomb = verifier.verify("SELECT repeat('x', 2000000000);", "SELECT 1")
        assert bomb.error_kind == "memory"
        c = bomb.criteria()
        assert not c["sql_executes"] and not c["sql_result_matches"] and c["sql_allowlisted_views"]
        assert verifier.verify("SELECT 1;", "SELECT 1").passed


# ------------------------------------------------------------------------------------------------ process lifecycle


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait as a zombie for a container's init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pids, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_running(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_close_kills_the_workers():
    sandbox = SqlSandbox(WAREHOUSE, ALLOW, memory_mb=MEMORY_MB, workers=2)
    threads_done = []

    def query():
        threads_done.append(sandbox.execute("SELECT count(*) FROM v_revenue_orders").rows)

    ts = [threading.Thread(target=query) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    pids = sandbox.worker_pids
    assert 1 <= len(pids) <= 2 and threads_done == [[(3,)], [(3,)]]
    sandbox.close()
    assert sandbox.worker_pids == [] and _wait_gone(pids, 2.0)


_ORPHAN = textwrap.dedent("""
    import os, sys, threading, time
    sys.path.insert(0, {root!r})
    from rlaif.verifiers.sql_sandbox import SqlSandbox
    from tests.test_sql_sandbox import ALLOW, WAREHOUSE
    sb = SqlSandbox(WAREHOUSE, ALLOW, memory_mb=512, timeout_s=60)
    assert sb.execute("SELECT 1").ok
    if sys.argv[1] == "crash_busy":  # the worker is inside a 60 s query, not reading its stdin
        threading.Thread(target=sb.execute, args=("SELECT count(*) FROM range(10000000000) WHERE range % 7 = 3",),
                         daemon=True).start()
        time.sleep(0.5)
    print(" ".join(map(str, sb.worker_pids)), sb._tmpdir, flush=True)
    if sys.argv[1].startswith("crash"):
        os._exit(0)  # no close, no atexit: the worker must notice its parent is gone
    # "exit": a normal interpreter exit without close(); the finalizer must clean up
""")


@pytest.mark.parametrize("mode", ["exit", "crash", "crash_busy"])
def test_no_orphan_workers_when_the_parent_goes(mode, tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN.format(root=root))
    proc = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    *pids, folder = proc.stdout.split()
    assert pids
    try:
        assert _wait_gone([int(p) for p in pids], 10.0), "a worker outlived its parent"
        if mode == "exit":
            assert not os.path.exists(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # what sweep_dead_scratch does at the next run's start
