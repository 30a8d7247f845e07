"""The workbench's engine-side helpers, without Streamlit: sign-in and roles, rubric diffs and flips, charts, rows."""

from __future__ import annotations

import hashlib

import pytest

from rlaif.access import (
    AuthConfigError,
    PermissionDenied,
    User,
    check_exposure,
    hash_password,
    load_users,
    sign_in,
    verify_password,
)
from rlaif.judges.verifier import VerifierJudge
from rlaif.rubric import rubric_from_dict
from rlaif.verifiers import open_verifier
from rlaif.workbench.charts import judge_rates, length_figure, metric_figure, pairs_figure, run_chart_data
from rlaif.workbench.projects import run_config, set_dotted
from rlaif.workbench.rubric_edit import diff_rubrics, rejudge_flips, sample_comparisons
from rlaif.workbench.tables import candidate_table, code_language, manifest_chain, short_id
from store import Store
from tests.workbench_fixtures import REFERENCE, REJUDGE_PAIRS, SAMPLE, TEST_RUBRIC, seed_rejudge_run, seed_run

# ---- auth -------------------------------------------------------------------------------------------------------------


def test_passwords_are_hashed_salted_and_checked_in_constant_time():
    stored = hash_password("s3cret", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$") and "s3cret" not in stored
    assert verify_password("s3cret", stored) and not verify_password("s3cret!", stored)
    assert hash_password("s3cret", iterations=1000) != stored  # a fresh salt every time
    bare = hashlib.sha256(b"pw").hexdigest()
    assert verify_password("pw", bare) and verify_password("pw", f"sha256${bare}")
    assert not verify_password("pw", "pbkdf2_sha256$broken")


def test_users_come_from_secrets_or_the_environment():
    h = hash_password("x", iterations=1000)
    from_env = load_users({}, {"RLAIF_USERS": f"ana:admin:{h}, bo:annotator:{h}"})
    assert {u.name: u.role for u in from_env.values()} == {"ana": "admin", "bo": "annotator"}
    from_secrets = load_users({"auth": {"users": {"cy": {"role": "annotator", "password_hash": h}}}},
                              {"RLAIF_USERS": f"ana:admin:{h}"})
    assert list(from_secrets) == ["cy"]  # secrets win over the environment
    assert list(load_users({"auth": {"users": [f"dee:admin:{h}"]}}, {})) == ["dee"]
    assert "password" not in repr(from_env["ana"]) and h not in repr(from_env["ana"])
    with pytest.raises(AuthConfigError, match="never a clear-text password"):
        load_users({}, {"RLAIF_USERS": "ana:admin:hunter2"})
    with pytest.raises(AuthConfigError, match="role must be one of"):
        load_users({}, {"RLAIF_USERS": f"ana:root:{h}"})
    assert sign_in(from_env, "bo", "x") == User("bo", "annotator")
    assert sign_in(from_env, "bo", "y") is None and sign_in(from_env, "nobody", "x") is None


def test_an_annotator_may_only_label_and_the_network_needs_users():
    annotator, admin = User("bo", "annotator"), User("ana", "admin")
    assert annotator.can("label")
    for action in ("run", "edit_rubric", "export", "spend_api", "browse", "calibrate", "manage_anchors"):
        assert not annotator.can(action) and admin.can(action)
        with pytest.raises(PermissionDenied):
            annotator.require(action)
    check_exposure({}, "127.0.0.1")
    with pytest.raises(AuthConfigError, match="no users are configured"):
        check_exposure({}, "0.0.0.0")
    with pytest.raises(AuthConfigError):
        check_exposure({}, "")  # Streamlit's default: every interface
    check_exposure(load_users({}, {"RLAIF_USERS": f"ana:admin:{hash_password('x', iterations=1000)}"}), "0.0.0.0")


# ---- rubric editing ---------------------------------------------------------------------------------------------------


def test_rubric_diff_names_changed_added_and_removed_criteria():
    old = rubric_from_dict(TEST_RUBRIC)
    body = {**TEST_RUBRIC, "criteria": [dict(c) for c in TEST_RUBRIC["criteria"]][:2], "principles": ["Be brief."]}
    body["criteria"][1]["weight"] = 5.0
    body["criteria"].append({"name": "short", "description": "Short queries.", "weight": 0.5})
    diff = diff_rubrics(old, rubric_from_dict(body))
    assert {c.criterion: c.change for c in diff.criteria} == {"executes": "same", "correct": "changed",
                                                              "allowlisted": "removed", "short": "added"}
    assert diff.criteria[1].fields == {"weight": (2.0, 5.0)}
    assert diff.principles_added == ["Be brief."] and diff.principles_removed == ["Prefer the simplest correct query."]
    assert diff.changed and not diff_rubrics(old, old).changed
    assert any(tag != "equal" for _, _, tag in diff.side_by_side)


def test_rejudge_reports_which_verdicts_flip(tmp_path):
    """The verifier judge grades by the rubric's weights: a version that stops counting the allowlist (weight 0) turns
    exactly the pair that won on the allowlist into a tie, and leaves the others alone."""
    old = rubric_from_dict(TEST_RUBRIC)
    new_body = {**TEST_RUBRIC, "criteria": [dict(c) for c in TEST_RUBRIC["criteria"]]}
    new_body["criteria"][2]["weight"] = 0.0
    new = rubric_from_dict(new_body)
    with Store(tmp_path / "r.duckdb") as store, open_verifier("sql", {
            "warehouse": str(SAMPLE / "warehouse.sql"), "allowed_relations": ["v_revenue_*"]}) as verifier:
        comparisons = sample_comparisons(store, seed_rejudge_run(store), sample=5)
        assert [c.reference for _, c in comparisons] == [REFERENCE] * 3  # the golden query of each pair's prompt
        rows = rejudge_flips(VerifierJudge(verifier.verify), comparisons, old, new)
        assert [(r.winner_old, r.winner_new) for r in rows] == [("a", "tie"), ("a", "a"), ("a", "a")]
        assert [r.flipped for r in rows] == [flips for _, _, flips in REJUDGE_PAIRS]
        same = rejudge_flips(VerifierJudge(verifier.verify), comparisons, old, old)
        assert len(same) == 3 and not any(r.flipped for r in same)


# ---- charts and rows --------------------------------------------------------------------------------------------------


def test_run_charts_are_built_from_store_rows(tmp_path):
    with Store(tmp_path / "c.duckdb") as store:
        run_id = seed_run(store, pairs=10, iterations=2)
        data = run_chart_data(store, run_id)
        assert data.metric_by_iteration == pytest.approx({0: 0.3, 1: 0.4, 2: 0.5})
        assert data.gate_by_iteration == {0: "baseline", 1: "improved", 2: "improved"}
        assert data.dropped_by_iteration[1] == store.pairs.drop_reasons(run_id, 1)
        assert judge_rates(data)[1] == {"invalid": pytest.approx(1 / 3), "flip": None}
        fig = metric_figure(data)
        band = [t for t in fig.data if t.name and t.name.startswith("tolerance band")]
        assert band and list(band[0].y) == pytest.approx([0.3 - 0.05, 0.3 - 0.05, 0.4 - 0.05])
        assert {t.name for t in pairs_figure(data).data} == {"kept", "dropped: tie", "dropped: length_skew"}
        assert len(length_figure(data).data[0].y) == data.kept_by_iteration[1] + data.kept_by_iteration[2]
        chain = manifest_chain(store, run_id)
        assert [m["parents"] for m in chain] == [0, 1, 2] and all(m["verified"] and m["parents_stored"]
                                                                  for m in chain)


def test_flip_rate_per_iteration_comes_from_the_judges_cumulative_counters(tmp_path):
    from rlaif.manifest import build_manifest

    with Store(tmp_path / "f.duckdb") as store:
        run_id = seed_run(store, pairs=4, iterations=2)
        for it, (flips, valid) in ((1, (2, 10)), (2, (5, 30))):
            stats = {"0:debias(stub)": {"pairs": valid, "both_valid": valid, "flips": flips, "disagreements": flips},
                     "1:stub": {"calls": 2 * valid}}
            body = build_manifest(kind="iteration", run_id=run_id, iteration=it, judge_stats=stats, versions={})
            store.manifests.write(body["manifest_id"], run_id, it, body)
        rates = judge_rates(run_chart_data(store, run_id))
        assert rates[1]["flip"] == pytest.approx(0.2) and rates[2]["flip"] == pytest.approx(3 / 20)


def test_small_helpers():
    assert code_language("SELECT 1;") == "sql" and code_language("def f():\n    pass") == "python"
    assert code_language("The answer is 42.") is None
    assert short_id("18ea6a15bd4879724f3d28ae00000000") == "4f3d28ae"
    data: dict = {"a": 1}
    set_dotted(data, "loop.iterations", 2)
    set_dotted(data, "a.b", 3)  # a scalar in the way is replaced by a mapping
    assert data == {"a": {"b": 3}, "loop": {"iterations": 2}}
    cfg = run_config(SAMPLE / "loop.yaml", {"loop.iterations": 1, "data.max_train_prompts": None})
    assert cfg.loop.iterations == 1 and cfg.data.max_train_prompts is None


def test_candidate_rows_show_any_verifiers_criteria(tmp_path):
    """The Browse page's candidate table reads the one result shape every verifier stores (its criteria)."""
    with Store(tmp_path / "c.duckdb") as store, open_verifier("regex", {"pattern": "a+"}) as verifier:
        run_id = seed_run(store, pairs=4)
        rows = store.candidates.list(run_id)
        assert [r["checks"] for r in candidate_table(rows)] == ["sql_executes=✓, sql_format=✓",
                                                                 "sql_executes=✓, sql_format=✗"]
        regex_row = {**rows[0], "verification": verifier.verify("aaa", None).to_dict()}
        assert candidate_table([regex_row])[0]["checks"] == "regex_match=✓"
