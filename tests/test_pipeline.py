"""The loop end to end on the sample's data with a tiny in-test policy: real sampling, sandboxed verification, judging,
pairs, TRL DPO, evaluation, gate and manifests, all recorded in a DuckDB store."""

import json
from pathlib import Path

import pytest

from rlaif.config import config_from_dict
from rlaif.datasets import load_prompts
from rlaif.judges.fake import FakeJudge
from rlaif.manifest import verify_manifest
from rlaif.pipeline import RLAIFPipeline, RunCancelled, pairs_hash
from store import Store
from tests.tiny_models import build_tiny_gpt2

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"


def make_config(model, tmp_path, **over):
    data = {"name": "t", "output_dir": str(tmp_path / "runs"), "rubric": "rubric.yaml",
            "policy": {"path": str(model), "prompt_template": "Question: {prompt}\nSQL: ", "max_new_tokens": 20},
            "data": {"train": "train.jsonl", "eval": "eval.jsonl", "max_train_prompts": 8, "max_eval_prompts": 6},
            "sampling": {"candidates_per_prompt": 3, "batch_size": 8},
            "verifier": {"kind": "sql", "warehouse": "warehouse.sql", "allowed_relations": ["v_revenue_*"]},
            "judge": {"name": "stub"}, "pairs": {"require_chosen_passes_hard": False, "max_length_ratio": None},
            "training": {"epochs": 1, "batch_size": 4}, "loop": {"iterations": 2}}
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return config_from_dict(data, base_dir=SAMPLE)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("model") / "m")


def run_all(cfg, store, **kw):
    pipe = RLAIFPipeline(cfg, store=store, **kw)
    results = list(pipe.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
    return pipe, results


def test_loop_records_everything_and_chains_manifests(tiny, tmp_path):
    cfg = make_config(tiny, tmp_path)
    events = []
    with Store(":memory:") as store:
        pipe, results = run_all(cfg, store, progress=events.append)
        run = store.runs.get(pipe.run_id)
        assert run["status"] == "completed" and [r.iteration for r in results] == [0, 1, 2]
        assert {e.stage for e in events} >= {"sample", "verify", "judge", "pairs", "train", "eval", "gate"}

        # every prompt has one pair decision per iteration; kept pairs are what the manifest hashed
        for r in results[1:]:
            rows = store.pairs.page(run_id=pipe.run_id, iteration=r.iteration, limit=100)
            assert len(rows) == 8
            kept = [x for x in rows if x["kept"]]
            assert len(kept) == r.preference_count
            order = [p.id for p in load_prompts(cfg.resolve(cfg.data.train))]
            assert r.manifest["dataset_hash"] == pairs_hash(sorted(kept, key=lambda x: order.index(x["prompt_id"])))
            assert all(x["drop_reason"] for x in rows if not x["kept"])
            # 3 candidates per prompt -> at most 3 round-robin judgements per prompt
            assert len(store.candidates.list(pipe.run_id, iteration=r.iteration)) == 24
            assert r.judge_calls <= 24

        # stored metrics equal a recomputation from the iteration's results
        stored = {(e["iteration"], e["metric"], e["cohort"]): e["value"] for e in store.evals.for_run(pipe.run_id)}
        for r in results:
            for cohort, metrics in r.eval_result.metrics.items():
                for metric, value in metrics.items():
                    assert stored[(r.iteration, metric, cohort)] == pytest.approx(value)
            rows = r.eval_result.rows
            assert r.eval_result.metric("execution_accuracy") == pytest.approx(
                sum(x["execution_accuracy"] for x in rows) / len(rows))

        # the provenance chain: each manifest names all earlier ones; files on disk verify against their ids
        ids = [r.manifest["manifest_id"] for r in results]
        for k, r in enumerate(results):
            assert r.manifest["parents"] == ids[:k] and verify_manifest(r.manifest)
            assert store.manifests.get(ids[k])["body"] == r.manifest
        files = sorted((tmp_path / "runs" / pipe.run_id / "manifests").glob("*.json"))
        assert len(files) == 3 and all(verify_manifest(json.loads(f.read_text())) for f in files)
        assert results[1].manifest["parent_model_hash"] == results[0].manifest["model_hash"]
        assert results[2].manifest["model_hash"] != results[1].manifest["model_hash"]
        assert store.rubrics.get(results[1].manifest["rubric_version"])["body"] == pipe.rubric.to_dict()


def test_regression_gate_stops_the_loop_and_recommends_best(tiny, tmp_path):
    """A judge-based primary metric drives the gate: the eval judge (a scripted fake, through the public
    ``eval_judge=``) says iteration 1 beats the base on 5 of 6 prompts and iteration 2 on 1 of 6, a drop of 0.67."""
    cfg = make_config(tiny, tmp_path, loop={"iterations": 3, "regression_tolerance": 0.05,
                                            "primary_metric": "eval_win_rate_vs_base"}, eval_judge={"name": "stub"})
    verdicts = ["a"] * 5 + ["b"]  # iteration 1 vs iteration 0 (which is also the base)
    verdicts += ["a"] * 6 + ["a"] + ["b"] * 5  # iteration 2 vs iteration 1, then vs the base
    eval_judge = FakeJudge("scripted-eval").enqueue(*verdicts)
    with Store(":memory:") as store:
        pipe, results = run_all(cfg, store, eval_judge=eval_judge)
        assert [r.iteration for r in results] == [0, 1, 2]  # iteration 3 never ran
        values = [r.manifest["gate"]["value"] for r in results]
        assert values == pytest.approx([0.5, 5 / 6, 1 / 6])
        assert results[-1].regressed and results[-1].manifest["gate"]["decision"] == "regressed"
        run = store.runs.get(pipe.run_id)
        assert run["status"] == "stopped" and run["recommended_iteration"] == 1
        assert [i["regressed"] for i in store.iterations.list(pipe.run_id)] == [False, False, True]
        assert len(eval_judge.history) == len(verdicts) and not eval_judge.queue


def test_invalid_verdicts_never_become_pairs(tiny, tmp_path):
    cfg = make_config(tiny, tmp_path, loop={"iterations": 1})
    with Store(":memory:") as store:
        pipe, results = run_all(cfg, store, judge=FakeJudge(default="invalid"))
        assert [r.iteration for r in results] == [0]  # the baseline is evaluated; iteration 1 has nothing to train
        assert [i["status"] for i in store.iterations.list(pipe.run_id)] == ["completed", "no_pairs"]
        run = store.runs.get(pipe.run_id)
        assert run["status"] == "stopped" and "no preference pairs" in run["error"]
        reasons = store.pairs.drop_reasons(pipe.run_id)
        assert set(reasons) <= {"all_invalid", "identical_candidates"} and sum(reasons.values()) == 8
        assert store.judgements.count_by_winner(pipe.run_id)["invalid"] > 0


def test_cancel_marks_run_cancelled(tiny, tmp_path):
    import threading

    cfg = make_config(tiny, tmp_path)
    cancel = threading.Event()

    def on_progress(event):
        if event.stage == "judge":
            cancel.set()

    with Store(":memory:") as store:
        pipe = RLAIFPipeline(cfg, store=store, progress=on_progress, cancel=cancel)
        with pytest.raises(RunCancelled):
            list(pipe.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
        assert store.runs.get(pipe.run_id)["status"] == "cancelled"


def test_knockout_ranking_uses_fewer_judge_calls(tiny, tmp_path):
    calls = {}
    for ranking in ("round_robin", "knockout"):
        cfg = make_config(tiny, tmp_path / ranking, sampling={"candidates_per_prompt": 4}, loop={"iterations": 1},
                          judge={"name": "stub", "ranking": ranking})
        with Store(":memory:") as store:
            pipe, results = run_all(cfg, store)
            calls[ranking] = results[1].judge_calls
            assert len(store.judgements.list(run_id=pipe.run_id, limit=1000)) == results[1].judge_calls
            kept = store.pairs.page(run_id=pipe.run_id, kept=True, limit=100)
            # the stub prefers the shorter answer: every kept pair's chosen is no longer than its rejected
            assert kept and all(len(p["chosen"]) <= len(p["rejected"]) for p in kept)
    assert calls["knockout"] < calls["round_robin"]
