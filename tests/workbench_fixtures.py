"""Shared set-up for the workbench tests and bench: a tiny project on the sample's data, and seeded store rows.

A *project* is a loop.yaml whose paths are absolute (sample prompts and warehouse, an in-test tiny policy), sized so a
full run (baseline + one iteration) takes seconds on one CPU thread.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from rlaif.manifest import build_manifest

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"

TEST_RUBRIC = {
    "name": "sql-test",
    "criteria": [
        {"name": "executes", "description": "The query runs.", "weight": 1.0, "hard": True,
         "verifier": "sql_executes"},
        {"name": "correct", "description": "The result matches the golden result.", "weight": 2.0, "hard": True,
         "verifier": "sql_result_matches"},
        {"name": "allowlisted", "description": "Reads only allowlisted views.", "weight": 1.0, "hard": False,
         "verifier": "sql_allowlisted_views"},
    ],
    "principles": ["Prefer the simplest correct query."],
}


def write_project(folder: Path, model_path: Path, *, iterations: int = 1, prompts: int = 4, judge: str = "stub",
                  name: str = "tiny") -> Path:
    """The project's loop config (``<name>.yaml``), its rubric and a copy of the sample's anchor file beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE / "anchors.jsonl", folder / "anchors.jsonl")
    (folder / "rubric.yaml").write_text(yaml.safe_dump(TEST_RUBRIC, sort_keys=False), encoding="utf-8")
    config = {
        "name": name, "seed": 0, "output_dir": str(folder / "runs"), "rubric": "rubric.yaml",
        "policy": {"path": str(model_path), "prompt_template": "Question: {prompt}\nSQL: ", "max_new_tokens": 16},
        "data": {"train": str(SAMPLE / "train.jsonl"), "eval": str(SAMPLE / "eval.jsonl"),
                 "max_train_prompts": prompts, "max_eval_prompts": prompts},
        "sampling": {"candidates_per_prompt": 2, "batch_size": 8},
        "verifier": {"kind": "sql", "warehouse": str(SAMPLE / "warehouse.sql"), "allowed_relations": ["v_revenue_*"]},
        "judge": {"name": judge},
        "pairs": {"require_chosen_passes_hard": False, "max_length_ratio": None},
        "training": {"epochs": 1, "batch_size": 4, "loss_type": ["sigmoid", "sft"]},
        "loop": {"iterations": iterations, "regression_tolerance": 0.05},
        "eval": {"batch_size": 8},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def pair_rows(run_id: str, iteration: int, n: int, *, kept_every: int = 2, start: int = 0) -> list[dict]:
    """``n`` pairs; every ``kept_every``-th is kept, the others dropped as ties or for length skew."""
    rows = []
    for k in range(start, start + n):
        kept = k % kept_every == 0
        rows.append({
            "pair_id": f"{run_id}-{iteration}-{k:08d}", "run_id": run_id, "iteration": iteration,
            "prompt_id": f"q{k % 1000:04d}", "prompt": f"Question: total revenue of region {k % 7} in 2023?\nSQL:",
            "chosen": f" SELECT SUM(revenue) FROM v_revenue_by_region WHERE region = 'R{k % 7}';",
            "rejected": f" SELECT revenue FROM orders WHERE id = {k};",
            "chosen_score": 1.0, "rejected_score": 0.2, "kept": kept,
            "drop_reason": None if kept else ("tie" if k % 4 == 1 else "length_skew"),
            "source": "rlaif", "rubric_version": "r" * 64, "judge_id": "stub", "confidence": 0.5 + (k % 5) / 10})
    return rows


def seed_run(store, run_id: str = "run-seed", *, pairs: int = 40, iterations: int = 1) -> str:
    """A finished run with pairs, judgements, candidates, evals and manifests, written through the store."""
    store.runs.create(run_id, "seeded", {"loop": {"primary_metric": "execution_accuracy",
                                                  "regression_tolerance": 0.05}}, "c" * 64, "stub", "r" * 64,
                      None, None)
    parents = []
    for it in range(iterations + 1):
        store.iterations.start(run_id, it)
        value = 0.3 + 0.1 * it
        store.evals.add_many([{"run_id": run_id, "iteration": it, "metric": "execution_accuracy", "cohort": c,
                               "value": value, "n": 10} for c in ("all", "count")])
        if it > 0:
            rows = pair_rows(run_id, it, pairs)
            store.pairs.add_many(rows)
            store.candidates.add_many([{"candidate_id": f"{run_id}-{it}-c{k}", "run_id": run_id, "iteration": it,
                                        "prompt_id": "q0000", "text": f"SELECT {k};", "temperature": 0.7, "seed": k,
                                        "sample_index": k, "n_tokens": 3,
                                        "verification": {"kind": "sql", "criteria": {"sql_executes": True,
                                                                                     "sql_format": k == 0}}}
                                       for k in range(2)])
            store.judgements.add_many([{"run_id": run_id, "iteration": it, "prompt_id": "q0000",
                                        "candidate_a": f"{run_id}-{it}-c0", "candidate_b": f"{run_id}-{it}-c1",
                                        "judge_id": "stub", "winner": w, "confidence": 0.9,
                                        "rationale": "shorter answer preferred", "raw_reply": "A <b>wins</b>"}
                                       for w in ("a", "b", "invalid")])
        kept = sum(1 for r in pair_rows(run_id, it, pairs) if r["kept"]) if it else 0
        store.iterations.finish(run_id, it, status="completed", model_path=None, model_hash=None, regressed=False,
                                gate_decision="baseline" if it == 0 else "improved", pairs_kept=kept,
                                pairs_dropped=(pairs - kept) if it else 0)
        manifest = build_manifest(kind="iteration", run_id=run_id, iteration=it, parents=list(parents),
                                  versions={"python": "test"})
        store.manifests.write(manifest["manifest_id"], run_id, it, manifest)
        parents.append(manifest["manifest_id"])
    store.runs.set_status(run_id, "completed")
    return run_id


REFERENCE = "SELECT SUM(revenue) FROM v_revenue_by_region WHERE region = 'East' AND year = 2025;"
#: (chosen, rejected, whether the verifier judge's verdict flips when the allowlist criterion's weight drops to 0):
#: wrong-but-allowlisted vs wrong-on-raw-tables wins only through the allowlist; a correct answer wins on hard checks;
#: broken SQL loses either way.
REJUDGE_PAIRS = (
    ("SELECT SUM(revenue) FROM v_revenue_by_region WHERE region = 'West' AND year = 2025;",
     "SELECT count(*) FROM raw_orders;", True),
    (REFERENCE, "SELECT count(*) FROM raw_orders;", False),
    ("SELECT count(*) FROM raw_orders;", "SELEC broken", False),
)


def seed_rejudge_run(store, run_id: str = "run-rejudge") -> str:
    """A run whose kept pairs are real SQL answers to a prompt with a golden query (see ``REJUDGE_PAIRS``)."""
    prompts = [{"id": f"q{k}", "prompt": "What was the total revenue in the East region in 2025?",
                "reference": REFERENCE, "cohort": "aggregate"} for k in range(len(REJUDGE_PAIRS))]
    dataset_id = store.datasets.import_prompts("rejudge", prompts, None)
    store.runs.create(run_id, "rejudge", {}, "c" * 64, "verifier", "r" * 64, dataset_id, dataset_id)
    store.iterations.start(run_id, 1)
    store.pairs.add_many([{"pair_id": f"{run_id}-p{k}", "run_id": run_id, "iteration": 1, "prompt_id": f"q{k}",
                           "prompt": "Question: ...", "chosen": chosen, "rejected": rejected, "kept": True,
                           "source": "rlaif", "rubric_version": "r" * 64, "judge_id": "verifier", "confidence": 1.0}
                          for k, (chosen, rejected, _) in enumerate(REJUDGE_PAIRS)])
    store.runs.set_status(run_id, "completed")
    return run_id


# ---- evidence (issue 14, Browse/Label/Export): a run whose pairs trace back to their candidates and verdicts --------

HOSTILE = "<script>alert(1)</script> **bold** <b>x</b>"
EVIDENCE_QUESTION = "What was the total revenue in the East region in 2025?"


def seed_evidence_run(store, run_id: str = "run-evidence", *, extra_candidates: int = 0) -> str:
    """A finished run (baseline + iteration 1) with a prompt dataset, two candidates per prompt with verifier
    results, the judge's verdicts between them in both orders (rationale and per-criterion assessment), one kept
    pair per prompt that names its candidates, held-out outputs of both iterations and manifests with metrics.

    Prompt ``e0``'s chosen answer differs from the rejected one in one word (``East`` vs ``West``), and its rejected
    answer carries hostile markup (``HOSTILE``) that must be shown as text. ``extra_candidates`` adds that many more
    candidates of prompt ``e0`` (to page past a thousand)."""
    prompts = [{"id": f"e{k}", "prompt": EVIDENCE_QUESTION if k == 0 else f"Revenue of region {k} in 2025?",
                "reference": REFERENCE, "cohort": "aggregate"} for k in range(3)]
    dataset_id = store.datasets.import_prompts("evidence", prompts, None)
    store.runs.create(run_id, "evidence", {"output_dir": "/nonexistent/runs"}, "c" * 64, "verifier", "r" * 64,
                      dataset_id, dataset_id)
    parents: list[str] = []
    for it in (0, 1):
        store.iterations.start(run_id, it)
        store.evals.add_many([{"run_id": run_id, "iteration": it, "metric": "execution_accuracy", "cohort": "all",
                               "value": 0.3 + 0.2 * it, "n": 3}])
        store.eval_outputs.add_many([{"run_id": run_id, "iteration": it, "prompt_id": p["id"], "cohort": "aggregate",
                                      "output": (REFERENCE if it else REFERENCE.replace("East", "North")),
                                      "n_tokens": 12, "checks": {"sql_executes": True, "sql_result_matches": it == 1}}
                                     for p in prompts])
        if it == 1:
            cands, verdicts, pairs = [], [], []
            for k, p in enumerate(prompts):
                good, bad = f"{run_id}-{p['id']}-good", f"{run_id}-{p['id']}-bad"
                bad_text = (REFERENCE.replace("East", "West") + " -- " + HOSTILE) if k == 0 else "SELEC broken"
                cands += [{"candidate_id": good, "run_id": run_id, "iteration": 1, "prompt_id": p["id"],
                           "text": REFERENCE, "temperature": 0.7, "seed": 1, "sample_index": 0, "n_tokens": 12,
                           "verification": {"kind": "sql", "passed": True, "error": None,
                                            "criteria": {"sql_executes": True, "sql_result_matches": True}}},
                          {"candidate_id": bad, "run_id": run_id, "iteration": 1, "prompt_id": p["id"],
                           "text": bad_text, "temperature": 0.7, "seed": 2, "sample_index": 1, "n_tokens": 14,
                           "verification": {"kind": "sql", "passed": False, "error": "wrong result",
                                            "error_kind": "mismatch",
                                            "criteria": {"sql_executes": True, "sql_result_matches": False}}}]
                for a, b, winner in ((good, bad, "a"), (bad, good, "b")):
                    verdicts.append({"run_id": run_id, "iteration": 1, "prompt_id": p["id"], "candidate_a": a,
                                     "candidate_b": b, "judge_id": "verifier", "winner": winner, "confidence": 0.875,
                                     "rationale": f"the good answer filters region East ({'A' if a == good else 'B'})",
                                     "criteria": {"correct": {"a": a == good, "b": b == good}},
                                     "raw_reply": "A <b>wins</b>"})
                pairs.append({"pair_id": f"{run_id}-pair-{k}", "run_id": run_id, "iteration": 1, "prompt_id": p["id"],
                              "prompt": p["prompt"], "chosen": REFERENCE, "rejected": bad_text,
                              "chosen_candidate": good, "rejected_candidate": bad, "chosen_score": 1.0,
                              "rejected_score": 0.4, "kept": True, "source": "rlaif", "rubric_version": "r" * 64,
                              "judge_id": "verifier", "confidence": 0.875})
            cands += [{"candidate_id": f"{run_id}-extra-{n:05d}", "run_id": run_id, "iteration": 1, "prompt_id": "e0",
                       "text": f"SELECT {n};", "temperature": 1.0, "seed": n, "sample_index": 2 + n, "n_tokens": 3,
                       "verification": None} for n in range(extra_candidates)]
            store.candidates.add_many(cands)
            store.judgements.add_many(verdicts)
            store.pairs.add_many(pairs)
        store.iterations.finish(run_id, it, status="completed", model_path=None, model_hash="m" * 64, regressed=False,
                                gate_decision="baseline" if it == 0 else "improved", pairs_kept=3 if it else 0,
                                pairs_dropped=0)
        metrics = {"all": {"execution_accuracy": 0.3 + 0.2 * it}}
        manifest = build_manifest(
            kind="baseline" if it == 0 else "iteration", run_id=run_id, iteration=it, parents=list(parents),
            versions={"python": "test"}, metrics=metrics, model_hash="m" * 64, dataset_hash="d" * 64 if it else None,
            deltas={"vs_previous": {"all": {"execution_accuracy": 0.2}},
                    "vs_base": {"all": {"execution_accuracy": 0.2}}} if it else {},
            gate={"decision": "baseline" if it == 0 else "improved", "value": 0.3 + 0.2 * it},
            pairs={"kept": 3 if it else 0, "dropped": {"no_contrast": 1} if it else {}}, judge={"judge_id": "verifier"},
            seeds={"base": 0, "training": it}, throughput={"sample": {"new_tokens": 400, "seconds": 2.0,
                                                                    "tokens_per_s": 200.0}},
            config={"output_dir": "/nonexistent/runs"})
        store.manifests.write(manifest["manifest_id"], run_id, it, manifest)
        parents.append(manifest["manifest_id"])
    store.runs.set_status(run_id, "completed")
    return run_id


def seed_pair_run(store, base: Path, n_pairs: int, *, dropped: bool = False) -> str:
    """A stored run ``run-t`` whose iteration 0 is ``base`` and whose iteration 1 has ``n_pairs`` kept pairs of
    near-identical texts (chosen ends " OK;", rejected " NO;"), plus one dropped tie when ``dropped``: what
    ``rlaif train-rm`` trains a reward model on."""
    import random

    rng = random.Random(0)
    store.runs.create("run-t", "t", {}, "h", "fake", None, None, None)
    store.iterations.start("run-t", 0)
    store.iterations.finish("run-t", 0, status="completed", model_path=str(base), model_hash="x", regressed=False,
                            gate_decision="baseline", pairs_kept=0, pairs_dropped=0)
    rows = []
    for i in range(n_pairs):
        body = " ".join(rng.choice(["revenue", "West", "total", "SELECT"]) for _ in range(3))
        rows.append({"pair_id": f"pair-{i:03d}", "run_id": "run-t", "iteration": 1, "prompt_id": f"p{i}",
                     "prompt": f"Question: q{i}\nSQL:", "chosen": f" {body} OK;", "rejected": f" {body} NO;",
                     "kept": True, "drop_reason": None, "source": "rlaif", "judge_id": "fake", "confidence": 1.0})
    if dropped:
        rows.append(dict(rows[0], pair_id="pair-dropped", kept=False, drop_reason="tie"))
    store.pairs.add_many(rows)
    return "run-t"
