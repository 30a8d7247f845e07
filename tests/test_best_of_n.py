"""Best-of-N reranking (judge or reward model) against greedy, and the best-of-n / train-rm commands, on tiny models."""

import json
from pathlib import Path

import pytest

from rlaif.best_of_n import best_of_n, format_summary, pick_by_judge, pick_by_reward
from rlaif.cli import main
from rlaif.config import config_from_dict
from rlaif.datasets import PromptRecord, load_prompts
from rlaif.judges.fake import FakeJudge
from rlaif.judges.verifier import VerifierJudge
from rlaif.loop import Project
from rlaif.policy import load_policy
from rlaif.rubric import load_rubric
from store import Store
from tests.tiny_models import build_tiny_gpt2
from tests.workbench_fixtures import seed_pair_run

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("model") / "m")


def sql_config(model, tmp_path):
    return config_from_dict({
        "name": "bon", "output_dir": str(tmp_path / "runs"), "rubric": "rubric.yaml",
        "policy": {"path": str(model), "prompt_template": "Question: {prompt}\nSQL: ", "max_new_tokens": 16},
        "data": {"train": "train.jsonl", "eval": "eval.jsonl"},
        "sampling": {"candidates_per_prompt": 3, "batch_size": 8},
        "verifier": {"kind": "sql", "warehouse": "warehouse.sql", "allowed_relations": ["v_revenue_*"]},
        "judge": {"name": "verifier"}}, base_dir=SAMPLE)


def cli(argv):
    """Run the ``rlaif`` command as a user would; ``--store`` given by the test or an in-memory store."""
    return main(argv if "--store" in argv else ["--store", ":memory:", *argv])


def test_pick_by_judge_takes_the_copeland_best():
    prompts = [PromptRecord("p1", "q1"), PromptRecord("p2", "q2")]
    groups = [["short", "the longest one", "mid one"], ["same", "same"]]
    judge = FakeJudge(default=lambda c: "a" if len(c.a) > len(c.b) else "b")  # prefers longer answers
    best, scores, calls = pick_by_judge(judge, prompts, groups, load_rubric(SAMPLE / "rubric.yaml"))
    assert best == [1, 0] and calls == 3  # identical candidates need no call and keep the first
    assert scores[0][1] == max(scores[0])


def test_pick_by_reward_scores_each_candidate_once_and_breaks_ties_early():
    class Tok:
        eos_token, pad_token_id = "", 0

        def __call__(self, text):
            return {"input_ids": [len(text) % 7 + 1]}

    import torch

    class Model(torch.nn.Module):
        config = type("C", (), {"n_positions": 64})()

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask):
            return type("O", (), {"logits": input_ids[:, -1:].float() * 0 + (input_ids[:, -1:] == 3).float()})()

    best, scores = pick_by_reward(Model(), Tok(), ["p", "q"], [["aa", "a"], ["x", "y"]], prefix="")
    # "pa" -> id 3 scores 1: the second candidate of the first prompt; the second prompt ties -> first candidate
    assert best == [1, 0] and [len(s) for s in scores] == [2, 2]


def test_best_of_n_with_verifier_judge_reports_greedy_best_and_oracle(tiny, tmp_path):
    cfg = sql_config(tiny, tmp_path)
    prompts = load_prompts(cfg.resolve(cfg.data.eval), limit=4)
    rubric = load_rubric(cfg.resolve(cfg.rubric))
    policy = load_policy(tiny, device="cpu", prompt_template=cfg.policy.prompt_template)
    with Project.from_config(cfg).open_verifier() as verifier:
        verify = verifier.verify
        judge = VerifierJudge(verify)
        stages = []
        report = best_of_n(policy, prompts, n=3, rubric=rubric, temperatures=[0.7, 1.0], max_new_tokens=12,
                           seed=0, batch_size=4, judge=judge, eval_judge=judge, verify=verify,
                           progress=lambda s, d, t: stages.append(s))
    assert {"greedy", "sample", "rerank", "evaluate"} <= set(stages)
    m = report.summary["metrics"]["all"]
    for name in ("execution_accuracy", "verifier_pass_rate", "exact_match", "mean_length"):
        e = m[name]
        assert e["delta"] == pytest.approx(e["best_of_n"] - e["greedy"])
    # a perfect reranker is the ceiling, and best-of-N by the verifier reaches it on these very samples
    assert m["execution_accuracy"]["oracle"] == m["execution_accuracy"]["best_of_n"] >= 0
    assert m["win_rate_vs_greedy"]["n"] == 4
    assert len(report.rows) == 4 and all(len(r["candidates"]) == 3 for r in report.rows)
    assert all(r["best"] == r["candidates"][r["best_index"]] for r in report.rows)
    rows_path, summary_path = report.write_jsonl(tmp_path / "out" / "bon.jsonl")
    assert len(rows_path.read_text().splitlines()) == 4
    assert json.loads(summary_path.read_text())["n"] == 3
    text = "\n".join(format_summary(report.summary))
    assert "execution_accuracy" in text and "any-of-N" in text
    # the same seed gives the same samples, whatever reranks them
    again = best_of_n(policy, prompts, n=3, rubric=rubric, temperatures=[0.7, 1.0], max_new_tokens=12, seed=0,
                      batch_size=4, judge=FakeJudge(default="a"))
    assert [r["candidates"] for r in again.rows] == [r["candidates"] for r in report.rows]


def test_best_of_n_needs_exactly_one_reranker(tiny):
    policy = load_policy(tiny, device="cpu")
    with pytest.raises(ValueError, match="exactly one"):
        best_of_n(policy, [PromptRecord("p", "q")], n=2, rubric=load_rubric(SAMPLE / "rubric.yaml"),
                  temperatures=[1.0], max_new_tokens=4)


def test_train_rm_cli_trains_on_kept_or_approved_pairs(tiny, tmp_path, capsys):
    db = str(tmp_path / "s.duckdb")
    with Store(db) as store:
        run_id = seed_pair_run(store, tiny, 24, dropped=True)
    out = tmp_path / "rm"
    assert cli(["train-rm", "--store", db, "--run", run_id, "--out", str(out), "--epochs", "2", "--lr", "3e-3",
                "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "kept pairs of run run-t" in text and "held-out ranking accuracy" in text
    info = json.loads((out / "reward_model.json").read_text())
    assert info["n_train"] + info["n_heldout"] == 24 and info["params_changed"]

    # --approved without an approval is a clear error; after approving, it trains on exactly that set
    assert cli(["train-rm", "--store", db, "--run", run_id, "--approved", "--out", str(tmp_path / "rm2")]) == 2
    assert "no approved pair set" in capsys.readouterr().err
    from rlaif.export import ExportFilters, approve

    with Store(db) as store:
        approve(store, ExportFilters(run_id=run_id, iteration=1, search="q1"), approved_by="ana")
    assert cli(["train-rm", "--store", db, "--run", run_id, "--approved", "--holdout", "0", "--epochs", "1",
                "--out", str(tmp_path / "rm2"), "--no-progress"]) == 0
    assert "approval" in capsys.readouterr().out
    info = json.loads((tmp_path / "rm2" / "reward_model.json").read_text())
    assert info["n_train"] == 11 and info["heldout_accuracy"] is None  # q1, q10..q19

    # best-of-n reranks with that reward model, through the config's policy
    cfg = tmp_path / "loop.yaml"
    cfg.write_text((SAMPLE / "loop.yaml").read_text().replace("path: policy", f"path: {tiny}")
                   .replace("warehouse: warehouse.sql", f"warehouse: {SAMPLE / 'warehouse.sql'}")
                   .replace("rubric: rubric.yaml", f"rubric: {SAMPLE / 'rubric.yaml'}")
                   .replace("train: train.jsonl", f"train: {SAMPLE / 'train.jsonl'}")
                   .replace("eval: eval.jsonl", f"eval: {SAMPLE / 'eval.jsonl'}")
                   .replace("anchor_set: anchors.jsonl", f"anchor_set: {SAMPLE / 'anchors.jsonl'}"))
    assert cli(["best-of-n", str(cfg), "--store", db, "--n", "2", "--limit", "2", "--max-new-tokens", "8",
                "--reward-model", str(out / "model"), "--out", str(tmp_path / "bon.jsonl"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "reranked by reward model" in text and "execution_accuracy" in text
    assert len((tmp_path / "bon.jsonl").read_text().splitlines()) == 2
