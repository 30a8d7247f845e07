"""Iterations you can trust: a separate eval judge, monitoring and the human blend land in the store, the
manifest and the CLI summary."""

import pytest

from rlaif.cli.run import print_iteration
from rlaif.datasets import load_prompts
from rlaif.human_blend import blend_count
from rlaif.judges.fake import FakeJudge
from rlaif.monitoring import disagreement_rate, is_refusal, refusal_rate, win_rate
from rlaif.pipeline import RLAIFPipeline, pairs_hash
from store import Store
from tests.test_pipeline import SAMPLE, make_config, tiny  # noqa: F401  (fixture)

ANCHORS = {"anchor_set": str(SAMPLE / "anchors.jsonl"), "annotators": "oracle", "override": True,
           "override_reason": "tests: the stub judge would be blocked"}


def run(cfg, store, **kw):
    pipe = RLAIFPipeline(cfg, store=store, **kw)
    return pipe, list(pipe.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))


def test_monitoring_helpers():
    assert is_refusal("I'm sorry, but I can't help with that.") and is_refusal("As an AI, I cannot answer")
    assert not is_refusal("SELECT region FROM v_revenue_by_region;")
    assert refusal_rate(["I cannot assist with that request.", "SELECT 1;", "ok", "fine"]) == 0.25
    a = win_rate(["a", "b", "tie", "a", "invalid"], seed=1)
    assert a == win_rate(["a", "b", "tie", "a", "invalid"], seed=1)  # seeded CI
    assert a["win_rate"] == pytest.approx(2.5 / 4) and a["n"] == 4 and a["invalid"] == 1
    assert a["ci_low"] <= a["win_rate"] <= a["ci_high"]
    assert disagreement_rate(["a", "b", "invalid", "tie"], ["a", "a", "b", "tie"]) == pytest.approx(1 / 3)
    assert blend_count(0.25, 30) == 10 and blend_count(0, 30) == 0


def test_eval_judge_and_monitoring_reach_store_manifest_and_cli(tiny, tmp_path, capsys):
    # the training judge always prefers side A, the separate eval judge always side B: they disagree every time
    cfg = make_config(tiny, tmp_path, calibration=ANCHORS, loop={"iterations": 2, "regression_tolerance": 1.0})
    training, evaluating = FakeJudge("fake-train", default="a"), FakeJudge("fake-eval", default="b")
    with Store(":memory:") as store:
        pipe, results = run(cfg, store, judge=training, eval_judge=evaluating)
        assert [r.iteration for r in results] == [0, 1, 2]
        stored = {(e["iteration"], e["metric"]): e["value"] for e in store.evals.for_run(pipe.run_id)
                  if e["cohort"] == "all"}
        for k in (1, 2):
            mon = results[k].manifest["monitoring"]
            assert mon["eval_vs_previous"]["judge"] == "fake-eval" and mon["eval_vs_base"]["n"] == 6
            assert mon["eval_vs_previous"]["win_rate"] == 0.0  # side A is the newer policy: B always wins
            assert mon["eval_vs_previous"]["ci_low"] <= mon["eval_vs_previous"]["win_rate"]
            assert stored[(k, "eval_win_rate_vs_previous")] == pytest.approx(mon["eval_vs_previous"]["win_rate"])
            assert stored[(k, "eval_win_rate_vs_base")] == pytest.approx(mon["eval_vs_base"]["win_rate"])
            assert mon["judge_disagreement_rate"] == pytest.approx(stored[(k, "judge_disagreement_rate")])
            assert mon["judge_disagreement_rate"] == 1.0
        for k in (0, 1, 2):
            assert (k, "refusal_rate") in stored and (k, "mean_length") in stored
            assert (k, "anchor_win_rate") in stored
            assert results[k].manifest["monitoring"]["anchor_win_rate"]["n"] > 0
        assert results[2].manifest["deltas"]["vs_base"]["all"]["mean_length"] == pytest.approx(
            stored[(2, "mean_length")] - stored[(0, "mean_length")])
        assert results[0].manifest["calibration_gate"]["decision"] == "overridden"
        print_iteration(results[2], "execution_accuracy")
        out = capsys.readouterr().out
        assert "eval judge win rate vs previous" in out and "training/eval judge disagreement" in out
        assert "anchor win rate" in out and "execution_accuracy vs base" in out


def test_human_blend_mixes_tagged_non_holdout_anchor_pairs(tiny, tmp_path):
    cfg = make_config(tiny, tmp_path, calibration=ANCHORS, training={"epochs": 1, "batch_size": 4,
                                                                     "human_blend": 0.5},
                      loop={"iterations": 1})
    with Store(":memory:") as store:
        pipe, results = run(cfg, store)
        it = results[1]
        rows = store.pairs.page(run_id=pipe.run_id, iteration=1, kept=True, limit=1000)
        blended = [r for r in rows if r["source"] == "oracle"]
        rlaif = [r for r in rows if r["source"] == "rlaif"]
        assert len(blended) == it.blended == blend_count(0.5, len(rlaif)) > 0
        assert it.manifest["pairs"]["sources"] == {"rlaif": len(rlaif), "oracle": len(blended)}
        assert it.manifest["pairs"]["kept"] == len(rows)
        holdout = {i["item_id"] for i in store.anchors.items(pipe.anchor_set_id, split="holdout")}
        assert holdout and not holdout & {r["prompt_id"] for r in blended}  # never the locked holdout
        # the manifest's dataset hash covers the blended rows too: what DPO trained on
        assert it.manifest["dataset_hash"] != pairs_hash(sorted(rlaif, key=lambda r: r["prompt_id"]))
        assert all(r["prompt"].startswith("Question: ") and r["chosen"] != r["rejected"] for r in blended)
