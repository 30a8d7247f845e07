"""The bundled Harbor sample: the warehouse loads, every golden SQL runs and only uses allowlisted views,
train/eval are disjoint and the eval set has an unseen-combination cohort."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from rlaif.sample_prompts import (
    SAMPLE_DIR,
    UNSEEN_COHORT,
    UNSEEN_PRODUCT_YEARS,
    UNSEEN_REGION_YEARS,
    build_prompt_sets,
    connect_warehouse,
    read_jsonl,
)

TRAIN = SAMPLE_DIR / "train.jsonl"
EVAL = SAMPLE_DIR / "eval.jsonl"
BASE_TABLES = {"regions", "products", "customers", "raw_orders"}


@pytest.fixture(scope="module")
def con():
    c = connect_warehouse()
    yield c
    c.close()


@pytest.fixture(scope="module")
def train():
    return read_jsonl(TRAIN)


@pytest.fixture(scope="module")
def evalset():
    return read_jsonl(EVAL)


def _allowlist() -> list[str]:
    lines = (SAMPLE_DIR / "allowlist.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _relations(sql: str) -> list[str]:
    return re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z_0-9]*)", sql, flags=re.IGNORECASE)


def _slots(row: dict) -> dict:
    ref = row["reference"]
    out = {}
    for key in ("region", "product", "category"):
        m = re.search(rf"{key} = '([^']+)'", ref)
        if m:
            out[key] = m.group(1)
    m = re.search(r"year = (\d{4})", ref)
    if m:
        out["year"] = int(m.group(1))
    return out


def test_warehouse_objects(con):
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert BASE_TABLES <= tables
    assert {"v_revenue_by_region", "v_revenue_by_product", "v_revenue_monthly"} <= views
    assert all(fnmatch.fnmatch(v, "v_revenue_*") for v in views)
    n_orders = con.execute("SELECT count(*) FROM raw_orders").fetchone()[0]
    assert 1000 <= n_orders <= 10000
    regions = [r[0] for r in con.execute("SELECT DISTINCT region FROM v_revenue_by_region ORDER BY 1").fetchall()]
    assert regions == sorted(["North", "South", "East", "West", "Central"])
    years = [r[0] for r in con.execute("SELECT DISTINCT year FROM v_revenue_by_region ORDER BY 1").fetchall()]
    assert years == [2021, 2022, 2023, 2024, 2025]
    # every region×year×quarter and product×year cell is populated
    assert con.execute("SELECT count(*) FROM v_revenue_by_region").fetchone()[0] == 5 * 5 * 4
    assert con.execute("SELECT count(*) FROM v_revenue_by_product").fetchone()[0] == 8 * 5
    assert con.execute("SELECT count(*) FROM v_revenue_monthly").fetchone()[0] == 5 * 5 * 12


def test_warehouse_is_deterministic(con):
    q = "SELECT sum(amount), sum(quantity), count(DISTINCT customer_id) FROM raw_orders"
    other = connect_warehouse()
    try:
        assert con.execute(q).fetchall() == other.execute(q).fetchall()
    finally:
        other.close()
    code = [ln.split("--")[0] for ln in (SAMPLE_DIR / "warehouse.sql").read_text(encoding="utf-8").splitlines()]
    assert "random(" not in " ".join(code).lower()


def test_allowlist_file():
    assert _allowlist() == ["v_revenue_*"]


@pytest.mark.parametrize("path", [TRAIN, EVAL], ids=["train", "eval"])
def test_references_execute_and_use_only_allowlisted_views(con, path):
    rows = read_jsonl(path)
    patterns = _allowlist()
    for r in rows:
        ref = r["reference"]
        assert ref.endswith(";") and ref.count(";") == 1, r
        assert ref.startswith("SELECT "), r
        rels = _relations(ref)
        assert rels, r
        for rel in rels:
            assert any(fnmatch.fnmatch(rel, p) for p in patterns), (rel, r)
            assert rel not in BASE_TABLES
        result = con.execute(ref).fetchall()
        assert result, f"golden SQL returns no rows: {r}"
        assert all(v is not None for row in result for v in row), r


def test_rankings_have_no_ties(con, train, evalset):
    """A top-k / best-region golden is only a fair target when the k-th and (k+1)-th values differ."""
    n = 0
    for r in train + evalset:
        m = re.search(r"^SELECT .+? FROM (.+) ORDER BY (.+) (ASC|DESC) LIMIT (\d+);$", r["reference"])
        if not m:
            continue
        rest, key, direction, k = m.group(1), m.group(2), m.group(3), int(m.group(4))
        keys = [row[0] for row in con.execute(f"SELECT {key} FROM {rest} ORDER BY 1 {direction}").fetchall()]
        assert len(keys) > k, r
        assert keys[k - 1] != keys[k], r
        n += 1
    assert n > 0


def test_rows_have_required_fields(train, evalset):
    for r in train + evalset:
        assert set(r) >= {"id", "prompt", "reference", "cohort"}
        assert isinstance(r["prompt"], str) and r["prompt"].strip()
        assert r["prompt"] == r["prompt"].strip()


def test_sizes_and_cohorts(train, evalset):
    assert 200 <= len(train) <= 300
    assert 80 <= len(evalset) <= 120
    train_cohorts = {r["cohort"] for r in train}
    eval_cohorts = {r["cohort"] for r in evalset}
    assert UNSEEN_COHORT not in train_cohorts
    assert UNSEEN_COHORT in eval_cohorts
    assert train_cohorts == eval_cohorts - {UNSEEN_COHORT}
    for c in eval_cohorts:
        assert sum(r["cohort"] == c for r in evalset) >= 10


def test_ids_unique(train, evalset):
    ids = [r["id"] for r in train + evalset]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("train-") for i in (r["id"] for r in train))
    assert all(i.startswith("eval-") for i in (r["id"] for r in evalset))


def test_no_prompt_in_both_sets(train, evalset):
    train_prompts = {r["prompt"].strip().lower() for r in train}
    assert not [r["prompt"] for r in evalset if r["prompt"].strip().lower() in train_prompts]
    assert len({r["prompt"] for r in train}) == len(train)
    assert len({r["prompt"] for r in evalset}) == len(evalset)


def test_eval_items_are_disjoint_from_train(train, evalset):
    """No eval question is a paraphrase of a train question: their golden SQL never coincides."""
    train_refs = {r["reference"] for r in train}
    assert not [r for r in evalset if r["reference"] in train_refs]


def test_unseen_combos_absent_from_train(train, evalset):
    train_pairs = set()
    for r in train:
        s = _slots(r)
        for key in ("region", "product"):
            if key in s:
                train_pairs.add((s[key], s["year"]))
    unseen = [r for r in evalset if r["cohort"] == UNSEEN_COHORT]
    assert len(unseen) >= 10
    for r in unseen:
        s = _slots(r)
        pair = (s.get("region") or s.get("product"), s["year"])
        assert pair in set(UNSEEN_REGION_YEARS) | set(UNSEEN_PRODUCT_YEARS), r
        assert pair not in train_pairs, r
    for pair in UNSEEN_REGION_YEARS + UNSEEN_PRODUCT_YEARS:
        assert pair not in train_pairs


def test_committed_files_match_generator(train, evalset):
    """train.jsonl / eval.jsonl are exactly what scripts/build_sample_prompts.py writes (seed 0)."""
    gen_train, gen_eval = build_prompt_sets(0)
    assert gen_train == train
    assert gen_eval == evalset
    again = build_prompt_sets(0)
    assert again == (gen_train, gen_eval)


def test_reference_spelling_is_canonical(train, evalset):
    for r in train + evalset:
        ref = r["reference"]
        assert "  " not in ref and "\n" not in ref
        for kw in ("select ", " from ", " where ", " and ", " order by ", " group by ", " limit "):
            assert kw not in ref, (kw, ref)


def test_rubric_declares_the_four_criteria():
    yaml = pytest.importorskip("yaml")
    rubric = yaml.safe_load((SAMPLE_DIR / "rubric.yaml").read_text(encoding="utf-8"))
    assert rubric["name"] == "harbor-sql"
    crit = rubric["criteria"]
    assert [c["verifier"] for c in crit] == ["sql_executes", "sql_result_matches", "sql_allowlisted_views", "sql_format"]
    assert [c["hard"] for c in crit] == [True, True, True, False]
    for c in crit:
        assert set(c) >= {"name", "description", "weight", "hard", "verifier"}
        assert c["weight"] > 0
    assert all(isinstance(p, str) for p in rubric.get("principles", []))


def test_jsonl_is_one_object_per_line():
    for path in (TRAIN, EVAL):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            assert isinstance(json.loads(line), dict)
