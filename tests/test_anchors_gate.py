"""The calibration gate: blocks and permits as configured, records overrides, reuses verdicts; and the SQL sample's
anchor set, on which the verifier judge passes and the verbosity-biased judge is blocked."""

import json
from pathlib import Path

import pytest

from rlaif.anchors.gate import kappa_gate, kappa_table, run_calibration_gate
from rlaif.anchors.gate_config import CalibrationConfig
from rlaif.anchors.importers import import_anchor_file
from rlaif.config import ConfigError
from rlaif.judges import Verdict, make_judge
from rlaif.judges.fake import FakeJudge
from rlaif.rubric import DEFAULT_RUBRIC, load_rubric
from store import Store, canonical_json
from tests.anchor_helpers import labelled_set

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "harbor_sql"
WINNER = {"A": "a", "B": "b", "tie": "tie"}


@pytest.fixture
def store():
    with Store(":memory:") as s:
        yield s


def judge_with_accuracy(store, set_id, truth, wrong_every=None, judge_id="fake"):
    """A fake judge that agrees with the labels except on every ``wrong_every``-th item (by position)."""
    position = {i["item_id"]: i["position"] for i in store.anchors.items(set_id)}

    def decide(c):
        p = position[c.prompt_id]
        label = truth[p]
        if wrong_every and p % wrong_every == 0:
            return "b" if label == "A" else "a"
        return WINNER[label]

    return FakeJudge(judge_id, default=decide)


def test_gate_permits_an_agreeing_judge_and_blocks_a_disagreeing_one(store):
    set_id, truth = labelled_set(store, 60)
    good = kappa_gate(store, judge_with_accuracy(store, set_id, truth), DEFAULT_RUBRIC, set_id)
    assert good.passed and good.decision == "passed" and good.kappa == 1.0 and good.n == 48
    assert good.ci == (1.0, 1.0) and good.raw_agreement == 1.0 and not good.override
    assert good.reason == ("the 95% CI's lower bound 1.000 >= threshold 0.72 (kappa 1.000, 95% CI [1.000, 1.000]) "
                           "on 48 non-holdout human-labelled items (rule: lower_bound)")
    assert set(good.slices) == {"count", "ranking"} and good.holdout["n"] == 12

    bad = kappa_gate(store, judge_with_accuracy(store, set_id, truth, wrong_every=2, judge_id="half"),
                     DEFAULT_RUBRIC, set_id)
    assert not bad.passed and bad.decision == "blocked" and bad.kappa < 0.72
    assert bad.reason.startswith(f"the 95% CI's lower bound {bad.ci[0]:.3f} < threshold 0.72 (kappa {bad.kappa:.3f}")
    assert bad.ci[0] <= bad.kappa <= bad.ci[1]


def test_threshold_and_min_items_are_configurable(store):
    set_id, truth = labelled_set(store, 60)
    judge = judge_with_accuracy(store, set_id, truth, wrong_every=5)  # 80% raw agreement
    strict = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.9, gate_on="point")
    lenient = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.5, gate_on="point")
    assert strict.kappa == lenient.kappa and 0.5 < strict.kappa < 0.9
    assert not strict.passed and lenient.passed
    assert lenient.reason.startswith(f"kappa {lenient.kappa:.3f} >= threshold 0.50") and "point estimate" in \
        lenient.reason
    few = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.5, min_items=49)
    assert not few.passed and few.reason == ("too few labelled items: 48 non-holdout human-labelled items, "
                                             "the gate needs at least 49")
    with pytest.raises(ValueError):
        kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=1.5)


def test_the_lower_bound_gate_blocks_a_point_estimate_that_passes_by_luck(store):
    """kappa 0.633 on 48 items clears a 0.5 threshold, but its 95% CI reaches down to 0.455: the anchors do not show
    agreement above 0.5. The default rule (lower bound) blocks and says why; the point rule passes."""
    set_id, truth = labelled_set(store, 60)
    judge = judge_with_accuracy(store, set_id, truth, wrong_every=5)
    point = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.5, gate_on="point")
    bound = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.5)
    assert point.passed and point.kappa > 0.5 and bound.kappa == point.kappa
    assert not bound.passed and bound.ci[0] < 0.5 and bound.rule["gate_on"] == "lower_bound"
    assert bound.reason.startswith(f"the 95% CI's lower bound {bound.ci[0]:.3f} < threshold 0.50")
    assert bound.to_dict()["rule"] == {"threshold": 0.5, "min_items": 30, "gate_on": "lower_bound",
                                       "per_slice": False, "min_items_per_slice": 10}


def test_per_slice_gating_needs_every_slice_to_pass(store):
    """Overall agreement can hide a slice where the judge is wrong: with per_slice that slice blocks, by name."""
    set_id, truth = labelled_set(store, 60)  # slices "count" and "ranking", alternating
    position = {i["item_id"]: (i["position"], i["slice"]) for i in store.anchors.items(set_id)}

    def decide(c):  # right on every "count" item, wrong on every other "ranking" item
        p, name = position[c.prompt_id]
        label = truth[p]
        wrong = name == "ranking" and p % 4 == 1
        return ("b" if label == "A" else "a") if wrong else WINNER[label]

    judge = FakeJudge("slice-weak", default=decide)
    overall = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.5, gate_on="point")
    gated = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.5, gate_on="point", per_slice=True,
                       min_items_per_slice=10)
    weak = gated.slices["ranking"]["kappa"]
    assert overall.passed and not gated.passed and weak < 0.5 < gated.slices["count"]["kappa"]
    assert gated.reason.startswith("slice 'ranking' fails (every gated slice must pass): kappa")
    few = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, threshold=0.0, gate_on="point", per_slice=True,
                     min_items_per_slice=25)
    assert not few.passed and "too few labelled items: 24 non-holdout human-labelled items of slice" in few.reason


def test_degenerate_verdicts_are_said_in_words_not_as_kappa_zero(store):
    set_id, truth = labelled_set(store, 60)
    invalid = kappa_gate(store, FakeJudge("broken", default="invalid"), DEFAULT_RUBRIC, set_id)
    assert not invalid.passed and invalid.degenerate == "all_invalid" and "kappa 0.000" not in invalid.reason
    assert invalid.reason.startswith("every verdict was invalid (48 of 48 non-holdout human-labelled items)")
    one = kappa_gate(store, FakeJudge("always-a", default="a"), DEFAULT_RUBRIC, set_id)
    assert not one.passed and one.degenerate == "judge_one_class"
    assert one.reason.startswith("the judge gave the same answer (A) to all 48")


def test_a_limit_judges_a_seeded_stratified_sample_first(store):
    set_id, truth = labelled_set(store, 60)
    judge = judge_with_accuracy(store, set_id, truth)
    result = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, limit=20, min_items=10, report_holdout=False,
                        n_resamples=200)
    assert result.n == 20 and result.n_labelled == 48 and len(judge.history) == 20  # only the sample was judged
    assert {name: s["n"] for name, s in result.slices.items()} == {"count": 10, "ranking": 10}
    assert "a stratified sample of 48" in result.reason
    kappa_gate(store, judge_with_accuracy(store, set_id, truth, judge_id="other"), DEFAULT_RUBRIC, set_id, limit=20,
               min_items=10, report_holdout=False, n_resamples=200)
    # the same seed draws the same items, whatever the judge; no holdout item is ever in the sample
    judged = {v["item_id"] for v in store.anchors.verdicts(set_id, judge_id="other")}
    assert judged == {v["item_id"] for v in store.anchors.verdicts(set_id, judge_id="fake")} and len(judged) == 20
    assert not judged & {i["item_id"] for i in store.anchors.items(set_id, split="holdout")}


def test_only_the_requested_annotators_count(store):
    set_id, truth = labelled_set(store, 60, kind="oracle", annotators=("oracle:sql-execution",))
    judge = judge_with_accuracy(store, set_id, truth)
    human = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, annotators="human")
    assert not human.passed and human.n == 0 and "too few labelled items: 0" in human.reason
    assert kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, annotators="oracle").passed
    assert kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, annotators="any").passed


def test_override_is_explicit_needs_a_reason_and_is_recorded(store):
    set_id, truth = labelled_set(store, 60)
    judge = judge_with_accuracy(store, set_id, truth, wrong_every=2)
    with pytest.raises(ValueError, match="override_reason"):
        kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, override=True)
    result = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, override=True,
                        override_reason="demo run; labels being redone")
    assert result.passed and result.override and result.decision == "overridden"
    assert result.reason.startswith("OVERRIDDEN (demo run; labels being redone); the gate would have blocked: the 95% "
                                    "CI's lower bound")
    row = store.anchors.kappa_reports(set_id)[0]
    assert row["report_id"] == result.report_id
    assert row["override"] and row["passed"] and row["override_reason"] == "demo run; labels being redone"
    assert row["body"] == result.to_dict()
    # an override that is not needed changes nothing and is not recorded as one
    fine = kappa_gate(store, judge_with_accuracy(store, set_id, truth, judge_id="good"), DEFAULT_RUBRIC, set_id,
                      override=True, override_reason="just in case")
    assert fine.passed and not fine.override and fine.decision == "passed" and "not needed" in fine.reason


def test_result_is_manifest_ready(store):
    set_id, truth = labelled_set(store, 20)
    result = kappa_gate(store, judge_with_accuracy(store, set_id, truth), DEFAULT_RUBRIC, set_id, min_items=100)
    body = result.to_dict()
    canonical_json(body)  # JSON without NaN: content-addressed manifests can hash it
    assert body["passed"] is False and body["n"] == 16 and body["min_items"] == 100
    assert body["confusion"]["labels"] == ["A", "B", "tie", "invalid"]
    assert body["rubric_version"] == DEFAULT_RUBRIC.version and body["judge_id"] == "fake"
    assert "report_id" not in body  # a fresh id per call would make equal decisions hash apart


def test_stored_verdicts_are_reused_and_invalid_ones_asked_again(store):
    set_id, truth = labelled_set(store, 20, slices=("s",))
    judge = FakeJudge("flaky", default="a").enqueue(Verdict.invalid("flaky", "timeout"))
    kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, min_items=1, report_holdout=False)
    assert len(judge.history) == 16
    kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, min_items=1, report_holdout=False)
    assert len(judge.history) == 17  # only the invalid verdict was asked again
    kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, min_items=1, report_holdout=False, reuse_verdicts=False)
    assert len(judge.history) == 33
    table = kappa_table(store, set_id)
    assert [(r["judge_id"], r["slice"], r["n"]) for r in table] == [("flaky", "all", 16), ("flaky", "s", 16)]


def test_calibration_config_validates_and_runs_from_a_file(store, tmp_path):
    with pytest.raises(ConfigError, match="calibration.override_reason"):
        CalibrationConfig(anchor_set="x.jsonl", override=True)
    with pytest.raises(ConfigError, match="calibration.annotators"):
        CalibrationConfig(annotators="people")
    assert run_calibration_gate(store, CalibrationConfig(), FakeJudge(), DEFAULT_RUBRIC) is None
    records = [{"prompt": f"q{i}", "response_a": "a", "response_b": "b", "label_ana": "A"} for i in range(40)]
    (tmp_path / "anchors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = CalibrationConfig(anchor_set="anchors.jsonl", min_items=10, bootstrap_resamples=200)
    result = run_calibration_gate(store, cfg, FakeJudge(default="a"), DEFAULT_RUBRIC,
                                  resolve=lambda p: tmp_path / p)
    # every label is A and so is every verdict: kappa is undefined, which blocks
    assert not result.passed and "undefined" in result.reason and result.n == 32
    again = run_calibration_gate(store, cfg, FakeJudge(default="a"), DEFAULT_RUBRIC, resolve=lambda p: tmp_path / p)
    assert again.anchor_set_id == result.anchor_set_id and len(store.anchors.list_sets()) == 1


# ---- the SQL sample


@pytest.fixture(scope="module")
def sample_gate():
    """The shipped anchor set and the two judges the demo contrasts, on one store."""
    from rlaif.verifiers.sql import SqlVerifier
    from rlaif.verifiers.sql_sandbox import SqlSandbox

    with Store(":memory:") as store, SqlSandbox(SAMPLE / "warehouse.sql", ["v_revenue_*"]) as sandbox:
        imported = import_anchor_file(store, SAMPLE / "anchors.jsonl", name="harbor-sql")
        verifier = make_judge("verifier", verify=SqlVerifier(sandbox).verify)
        yield store, imported, verifier


def test_sample_anchor_set_is_oracle_labelled_and_balanced(sample_gate):
    store, imported, _ = sample_gate
    assert 60 <= imported.n_items <= 120 and imported.annotators == ["oracle:sql-execution"]
    labels = [r["label"] for r in store.labels.latest(imported.anchor_set_id)]
    assert all(r["annotator_kind"] == "oracle" for r in store.labels.latest(imported.anchor_set_id))
    assert {"A", "B", "tie"} == set(labels) and min(labels.count("A"), labels.count("B")) >= 20
    assert all(i["reference"] for i in store.anchors.items(imported.anchor_set_id))


def test_verifier_judge_passes_and_biased_judge_is_blocked_on_the_sample(sample_gate):
    store, imported, verifier = sample_gate
    rubric = load_rubric(SAMPLE / "rubric.yaml")  # the sample's own rubric: R1-R3 hard SQL checks, R4 format
    passed = kappa_gate(store, verifier, rubric, imported.anchor_set_id, annotators="oracle")
    assert passed.passed and passed.kappa >= 0.95 and passed.n >= 50
    biased = kappa_gate(store, make_judge("biased"), rubric, imported.anchor_set_id, annotators="oracle")
    assert not biased.passed and biased.kappa < 0.3
    assert biased.holdout is not None and biased.holdout["n"] == imported.n_holdout
    # no human has labelled the sample yet: asking for human labels blocks for lack of them
    human = kappa_gate(store, verifier, rubric, imported.anchor_set_id, annotators="human")
    assert not human.passed and human.n == 0


def test_sample_builder_is_deterministic(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "anchors.jsonl"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "scripts" / "build_sample_anchors.py"), "--out", str(out)],
                   check=True, capture_output=True, cwd=root)
    assert out.read_bytes() == (SAMPLE / "anchors.jsonl").read_bytes()
