"""In-process sampling throughput: one prompt at a time vs batched vs batched with prompts sorted by token length.

Same policy, prompts, candidates per prompt, temperatures, seeds and max_new_tokens for every mode, in one run, on
this machine's device (CPU here). Reports candidates/s and new tokens/s per mode and the ratios to one-at-a-time.
Greedy decoding is also compared sorted vs unsorted: the answers must be the same (only padding changes).

    .venv/bin/python bench/bench_sampling.py [--prompts 48] [--n 2] [--batch-size 16] [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlaif.policy import _batches, configure_cpu_threads, greedy, load_policy, quiet_library_progress, sample_candidates  # noqa: E402
from rlaif.sample_prompts import SAMPLE_DIR, read_jsonl  # noqa: E402

PROMPT_TEMPLATE = "Question: {prompt}\nSQL: "


def measure(policy, prompts, *, n: int, batch_size: int, max_new_tokens: int, length_sorted: bool) -> dict:
    started = time.perf_counter()
    out = sample_candidates(policy, prompts, n=n, temperatures=[0.7, 1.0], seed=0, iteration=1,
                            batch_size=batch_size, max_new_tokens=max_new_tokens, length_sorted=length_sorted)
    seconds = time.perf_counter() - started
    tokens = sum(s.n_tokens for row in out for s in row)
    return {"seconds": seconds, "candidates_s": n * len(prompts) / seconds, "tokens_s": tokens / seconds,
            "tokens": tokens}


def padding(policy, prompts, batch_size: int, length_sorted: bool) -> int:
    lengths = [len(policy.tokenizer(policy.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    batches = _batches(policy, prompts, batch_size, length_sorted)
    return sum(max(lengths[j] for j in b) - lengths[k] for b in batches for k in b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(SAMPLE_DIR / "policy"))
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--n", type=int, default=2, help="candidates per prompt")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    configure_cpu_threads()
    quiet_library_progress()
    policy = load_policy(args.policy, prompt_template=PROMPT_TEMPLATE)
    prompts = [r["prompt"] for r in read_jsonl(SAMPLE_DIR / "train.jsonl")[:args.prompts]]
    print(f"policy {args.policy} on {policy.device.name}; {len(prompts)} prompts x {args.n} candidates, "
          f"max_new_tokens {args.max_new_tokens}, batch size {args.batch_size}")
    sample_candidates(policy, prompts[:2], n=1, temperatures=[1.0], seed=0, iteration=0, batch_size=2,
                      max_new_tokens=4)  # warm-up: first-call allocations are not throughput
    kw = dict(n=args.n, max_new_tokens=args.max_new_tokens)
    modes = {
        "one prompt at a time": measure(policy, prompts, batch_size=1, length_sorted=False, **kw),
        "batched (prompt order)": measure(policy, prompts, batch_size=args.batch_size, length_sorted=False, **kw),
        "batched (length-sorted)": measure(policy, prompts, batch_size=args.batch_size, length_sorted=True, **kw),
    }
    base = modes["one prompt at a time"]
    print(f"{'mode':26} {'seconds':>8} {'cand/s':>8} {'new tok/s':>10} {'new tok':>8} {'x cand/s':>9} {'x tok/s':>8}")
    for name, m in modes.items():
        print(f"{name:26} {m['seconds']:8.2f} {m['candidates_s']:8.1f} {m['tokens_s']:10.1f} {m['tokens']:8d} "
              f"{m['candidates_s'] / base['candidates_s']:9.2f} {m['tokens_s'] / base['tokens_s']:8.2f}")
    sorted_m, plain_m = modes["batched (length-sorted)"], modes["batched (prompt order)"]
    print(f"length-sorted vs prompt order: {sorted_m['tokens_s'] / plain_m['tokens_s']:.2f}x new tok/s; prompt "
          f"padding tokens {padding(policy, prompts, args.batch_size, False)} -> "
          f"{padding(policy, prompts, args.batch_size, True)}")
    a = greedy(policy, prompts, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    b = greedy(policy, prompts, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, length_sorted=True)
    print(f"greedy answers identical sorted vs prompt order: {sum(x == y for x, y in zip(a, b))}/{len(a)}")


if __name__ == "__main__":
    main()
