"""The SQL verifier: result matching, the four criteria, graded scores under the sample rubric, concurrent
verification."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from rlaif.rubric import load_rubric
from rlaif.verifiers import CRITERIA, VerifierOptionError, VerifierResult, verify_many
from rlaif.verifiers.sql import SqlOptions, SqlVerifier, extract_sql, is_well_formatted, results_match
from rlaif.verifiers.sql_sandbox import ExecResult, SqlSandbox
from tests.test_sql_sandbox import ALLOW, WAREHOUSE

SQL = CRITERIA["sql"]  # (executes, matches, allowlisted, well_formatted)
RUBRIC = load_rubric(Path(__file__).resolve().parents[1] / "sample_data" / "harbor_sql" / "rubric.yaml")

REFERENCE = "SELECT region, revenue FROM v_revenue_by_region WHERE region = 'EU'"
ORDERED_REFERENCE = "SELECT order_id, amount FROM v_revenue_orders ORDER BY amount DESC"

CANDIDATES = {
    "correct": "SELECT region AS r, revenue AS total FROM v_revenue_by_region WHERE region = 'EU';\n-- EU revenue",
    "correct_other_view": "SELECT region, sum(amount) FROM v_revenue_orders WHERE region = 'EU' GROUP BY region;",
    "wrong_filter": "SELECT region, revenue FROM v_revenue_by_region WHERE region = 'US';",
    "raw_tables": (
        "SELECT c.region, sum(o.amount) FROM raw_orders o JOIN customers c USING (customer_id) "
        "WHERE o.status = 'paid' AND c.region = 'EU' GROUP BY c.region;"
    ),
    "syntax_error": "SELEC region, revenue FROM v_revenue_by_region WHERE region = 'EU';",
    "prose_after": (
        "SELECT region, revenue FROM v_revenue_by_region WHERE region = 'EU';\n"
        "This query returns the EU revenue from the approved view."
    ),
    "invented_table": "SELECT region, revenue FROM revenue_summary WHERE region = 'EU';",
    "file_read": "SELECT * FROM read_csv('/etc/passwd');",
    "extra_column": "SELECT region, revenue, orders FROM v_revenue_by_region WHERE region = 'EU';",
}

# (executes, matches, allowlisted, well_formatted)
EXPECTED = {
    "correct": (True, True, True, True),
    "correct_other_view": (True, True, True, True),
    "wrong_filter": (True, False, True, True),
    "raw_tables": (True, False, False, True),
    "syntax_error": (False, False, False, False),
    "prose_after": (True, True, True, False),
    "invented_table": (False, False, False, True),
    "file_read": (False, False, False, True),
    "extra_column": (True, False, True, True),
}


@pytest.fixture(scope="module")
def sandbox():
    with SqlSandbox(WAREHOUSE, ALLOW, timeout_s=1.0) as sb:
        yield sb


@pytest.fixture(scope="module")
def verifier(sandbox):
    return SqlVerifier(sandbox)


def _res(rows, columns=None) -> ExecResult:
    width = len(rows[0]) if rows else 1
    return ExecResult(
        ok=True,
        columns=columns or [f"c{i}" for i in range(width)],
        rows=list(rows),
        error=None,
        error_kind=None,
        elapsed_ms=0.0,
    )


# ------------------------------------------------------------------------------------------------ results_match


def test_row_order_ignored_unless_ordered():
    a = _res([(1, "x"), (2, "y"), (3, "z")])
    b = _res([(3, "z"), (1, "x"), (2, "y")])
    assert results_match(a, b, ordered=False)
    assert not results_match(a, b, ordered=True)
    assert results_match(a, a, ordered=True)


def test_column_names_are_ignored_but_count_is_not():
    assert results_match(_res([(1, 2)], ["a", "b"]), _res([(1, 2)], ["total", "n"]), ordered=False)
    assert not results_match(_res([(1, 2)]), _res([(1,)]), ordered=False)
    # also with no rows: the column count still decides
    empty2 = ExecResult(True, ["a", "b"], [], None, None, 0.0)
    empty1 = ExecResult(True, ["a"], [], None, None, 0.0)
    assert not results_match(empty2, empty1, ordered=False)
    assert results_match(empty2, ExecResult(True, ["x", "y"], [], None, None, 0.0), ordered=False)


def test_numeric_normalisation_and_tolerance():
    assert results_match(_res([(Decimal("175.50"),)]), _res([(175.5,)]), ordered=False)
    assert results_match(_res([(1.0,)]), _res([(1.0 + 1e-9,)]), ordered=False)
    assert results_match(_res([(1e12,)]), _res([(1e12 + 1.0,)]), ordered=False)  # relative, not absolute
    assert results_match(_res([(3,)]), _res([(3.0,)]), ordered=False)
    assert not results_match(_res([(1.0,)]), _res([(1.001,)]), ordered=False)
    assert not results_match(_res([(10**18,)]), _res([(10**18 + 1,)]), ordered=False)  # ints exact
    assert not results_match(_res([(None,)]), _res([(0,)]), ordered=False)
    assert results_match(_res([(None,)]), _res([(None,)]), ordered=False)
    assert not results_match(_res([("1",)]), _res([(1,)]), ordered=False)


def test_multiset_semantics_and_rounding_boundaries():
    assert not results_match(_res([(1,), (1,), (2,)]), _res([(1,), (2,), (2,)]), ordered=False)
    assert not results_match(_res([(1,), (2,)]), _res([(1,), (2,), (2,)]), ordered=False)
    # values within tolerance that round to different 6-digit keys, with ties broken by the second column
    lo, hi = 0.12345649999, 0.12345650001  # equal within tolerance, but round to 0.123456 / 0.123457
    cand = _res([(lo, "b"), (hi, "a")])
    gold = _res([(hi, "b"), (lo, "a")])
    assert results_match(cand, gold, ordered=False)
    assert not results_match(cand, _res([(hi, "b"), (lo, "c")]), ordered=False)


def test_failed_results_never_match():
    failed = ExecResult(False, [], [], "boom", "runtime", 0.0)
    assert not results_match(failed, _res([(1,)]), ordered=False)
    assert not results_match(_res([(1,)]), failed, ordered=False)


def test_results_from_the_sandbox(sandbox):
    gold = sandbox.golden(ORDERED_REFERENCE)
    assert sandbox.analyze(ORDERED_REFERENCE).ordered
    same_order = sandbox.execute("SELECT order_id AS id, amount FROM v_revenue_orders ORDER BY amount DESC")
    asc = sandbox.execute("SELECT order_id, amount FROM v_revenue_orders ORDER BY amount")
    assert results_match(same_order, gold, ordered=True)
    assert not results_match(asc, gold, ordered=True)
    assert results_match(asc, gold, ordered=False)
    # DOUBLE vs DECIMAL arithmetic on the same data
    as_double = sandbox.execute("SELECT order_id, CAST(amount AS DOUBLE) * 1.0000000001 FROM v_revenue_orders")
    assert results_match(as_double, gold, ordered=False)


# ------------------------------------------------------------------------------------------------ text handling


def test_extract_sql_and_format():
    assert extract_sql("SELECT 1;\n-- note") == "SELECT 1;"
    assert extract_sql("  SELECT ';' AS s; -- c") == "SELECT ';' AS s;"
    assert extract_sql('SELECT "a;b" FROM t; x') == 'SELECT "a;b" FROM t;'
    assert extract_sql("SELECT 1 -- not; the end\n;") == "SELECT 1 -- not; the end\n;"
    assert extract_sql("SELECT 'é€' AS s; trailing") == "SELECT 'é€' AS s;"
    assert extract_sql("SELECT 1") == "SELECT 1"
    assert is_well_formatted("SELECT 1;")
    assert is_well_formatted("SELECT 1; -- why\n-- more\n\n")
    assert is_well_formatted("-- leading comment\nSELECT 1;")
    assert not is_well_formatted("SELECT 1")  # no terminator
    assert not is_well_formatted("SELECT 1;\nIt returns one.")
    assert not is_well_formatted("Here is the query: SELECT 1;")
    assert not is_well_formatted("SELECT 1; SELECT 2;")
    assert not is_well_formatted("```sql\nSELECT 1;\n```")
    assert not is_well_formatted(";")
    assert not is_well_formatted("")


# ------------------------------------------------------------------------------------------------ verifier


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_verifier_criteria(verifier, name):
    v = verifier.verify(CANDIDATES[name], REFERENCE)
    assert isinstance(v, VerifierResult) and v.kind == "sql"
    assert v.criteria() == dict(zip(SQL, EXPECTED[name])), v.to_dict()
    assert list(v.criteria()) == list(SQL)
    assert v.passed == all(EXPECTED[name])
    json.dumps(v.to_dict())


def test_raw_table_candidate_has_the_right_result_but_no_credit(verifier, sandbox):
    raw = sandbox.execute(extract_sql(CANDIDATES["raw_tables"]), enforce_allowlist=False)
    assert results_match(raw, sandbox.golden(REFERENCE), ordered=False)  # same rows ...
    v = verifier.verify(CANDIDATES["raw_tables"], REFERENCE).criteria()
    assert v["sql_executes"] and not v["sql_allowlisted_views"] and not v["sql_result_matches"]  # ... yet no credit
    assert verifier.verify(CANDIDATES["raw_tables"], REFERENCE).details["relations"] == ["customers", "raw_orders"]


def test_verifier_errors_are_reported(verifier):
    syntax = verifier.verify(CANDIDATES["syntax_error"], REFERENCE)
    assert syntax.error_kind == "syntax" and syntax.error
    forbidden = verifier.verify(CANDIDATES["file_read"], REFERENCE)
    assert forbidden.error_kind == "forbidden"
    ok = verifier.verify(CANDIDATES["correct"], REFERENCE)
    assert ok.error is None and ok.error_kind is None and ok.details["relations"] == ["v_revenue_by_region"]
    assert ok.details["sql"] == "SELECT region AS r, revenue AS total FROM v_revenue_by_region WHERE region = 'EU';"


def test_ordered_reference_requires_order(verifier):
    good = verifier.verify("SELECT order_id, amount FROM v_revenue_orders ORDER BY amount DESC;", ORDERED_REFERENCE)
    wrong = verifier.verify("SELECT order_id, amount FROM v_revenue_orders ORDER BY amount ASC;", ORDERED_REFERENCE)
    assert good.criteria()["sql_result_matches"] and not wrong.criteria()["sql_result_matches"]
    # an unordered reference accepts any order
    any_order = verifier.verify(
        "SELECT order_id, amount FROM v_revenue_orders ORDER BY amount ASC;",
        "SELECT order_id, amount FROM v_revenue_orders",
    )
    assert any_order.criteria()["sql_result_matches"]


def test_broken_reference_gives_no_match(verifier):
    v = verifier.verify(CANDIDATES["correct"], "SELECT nope FROM v_revenue_by_region")
    c = v.criteria()
    assert c["sql_executes"] and c["sql_allowlisted_views"] and not c["sql_result_matches"]
    assert v.reference_error


def test_timeout_candidate(verifier):
    v = verifier.verify("SELECT count(*) FROM range(10000000000) WHERE range % 7 = 3;", REFERENCE)
    c = v.criteria()
    assert not c["sql_executes"] and v.error_kind == "timeout" and c["sql_allowlisted_views"]
    assert not c["sql_result_matches"]


# ------------------------------------------------------------------------------------------------ score


def test_rubric_score_ranks_candidates(verifier):
    """The sample rubric (weights 1, 3, 1 hard; 0.5 soft) grades the verifier's criteria: 0.5 + 0.5 * soft share when
    every hard check passes, 0.5 * share of all weight otherwise."""
    s = {name: RUBRIC.score(verifier.verify(text, REFERENCE).criteria()) for name, text in CANDIDATES.items()}
    assert s["correct"] == s["correct_other_view"] == 1.0
    assert s["prose_after"] == pytest.approx(0.5 + 0.5 * 5.0 / 5.5)  # hard checks pass, the soft format check fails
    assert s["wrong_filter"] == pytest.approx(0.5 * 2.5 / 5.5)  # executes, allowlisted, formatted; wrong rows
    assert s["raw_tables"] == pytest.approx(0.5 * 1.5 / 5.5)
    assert s["invented_table"] == pytest.approx(0.5 * 0.5 / 5.5)
    assert s["syntax_error"] == 0.0
    # every candidate that passes all hard checks outranks every one that does not
    passing = [k for k, e in EXPECTED.items() if e[0] and e[1] and e[2]]
    failing = [k for k in EXPECTED if k not in passing]
    assert min(s[k] for k in passing) > max(s[k] for k in failing)


# ------------------------------------------------------------------------------------------------ verify_many


def test_verify_many_matches_sequential_and_keeps_order(verifier):
    references = [REFERENCE, ORDERED_REFERENCE, "SELECT count(*) FROM v_revenue_orders"]
    pairs = [(text, ref) for _ in range(4) for ref in references for text in CANDIDATES.values()]
    pairs += [("SELECT order_id, amount FROM v_revenue_orders ORDER BY amount DESC;", ORDERED_REFERENCE)] * 5
    pairs += [("SELECT count(*) FROM v_revenue_orders;", references[2])] * 5

    def strip(v: VerifierResult) -> dict:
        d = v.to_dict()
        d.pop("elapsed_ms")
        return d

    sequential = [strip(verifier.verify(c, r)) for c, r in pairs]
    concurrent = [strip(v) for v in verify_many(verifier, pairs, max_workers=6)]
    assert concurrent == sequential
    # the dedicated matches plus the correct ones
    assert sum(d["criteria"]["sql_result_matches"] for d in concurrent) >= 10 + 4 * 2
    assert verify_many(verifier, []) == []


def test_fresh_verifier_many_concurrent_goldens():
    # many threads asking for goldens that are not cached yet share a single execution per reference
    with SqlSandbox(WAREHOUSE, ALLOW) as sb:
        v = SqlVerifier(sb)
        pairs = [(CANDIDATES["correct"], REFERENCE), (CANDIDATES["wrong_filter"], REFERENCE)] * 20
        out = verify_many(v, pairs, max_workers=8)
        assert [x.criteria()["sql_result_matches"] for x in out] == [True, False] * 20
        assert len(sb._golden) == 1


# ------------------------------------------------------------------------------------------------ options


def test_sql_options_check_the_worker_limits():
    base = {"warehouse": "w.sql", "allowed_relations": ["v_*"]}
    with pytest.raises(VerifierOptionError, match="verifier.options.memory_limit: .*3/4 of memory_mb"):
        SqlOptions(**base, memory_mb=512, memory_limit="1GB")
    with pytest.raises(VerifierOptionError, match="verifier.options.memory_mb"):
        SqlOptions(**base, memory_mb=128)
    with pytest.raises(VerifierOptionError, match="verifier.options.workers"):
        SqlOptions(**base, workers=0)
    with pytest.raises(VerifierOptionError, match="verifier.options.max_query_chars"):
        SqlOptions(**base, max_query_chars=0)
    assert SqlOptions(**base, memory_mb=512, memory_limit="300MB").memory_limit == "300MB"


def test_options_reach_the_sandbox(tmp_path):
    (tmp_path / "w.sql").write_text(WAREHOUSE)
    options = SqlOptions(warehouse="w.sql", allowed_relations=list(ALLOW), memory_mb=512, workers=1,
                         max_query_chars=80, timeout_s=1.0)
    with SqlVerifier.open(options, tmp_path) as verifier:
        sb = verifier.sandbox
        assert (sb.memory_mb, sb.max_query_chars, len(sb.worker_pids)) == (512, 80, 1)
        assert verifier.verify("SELECT count(*) FROM v_revenue_orders;", "SELECT 3").passed
        long = verifier.verify("SELECT count(*) FROM v_revenue_orders WHERE region <> '" + "x" * 80 + "';", "SELECT 3")
        assert long.error_kind == "too_large" and not any(long.criteria().values())
    assert sb.closed and sb.worker_pids == []
