#!/usr/bin/env python
"""Build the tiny, deliberately under-trained GPT-2 policy of the Harbor sample from train.jsonl.

    OMP_NUM_THREADS=1 python scripts/build_sample_policy.py            # the committed sample policy
    OMP_NUM_THREADS=1 python scripts/build_sample_policy.py --small --out /tmp/p   # tiny build (tests)
    ... --measure   # also print greedy eval execution accuracy and the mixed-candidate fraction
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlaif.config import load_config  # noqa: E402
from rlaif.loop.project import Project  # noqa: E402
from rlaif.sample_policy import SMALL, build_policy, measure_policy  # noqa: E402
from rlaif.sample_prompts import SAMPLE_DIR  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default=str(SAMPLE_DIR / "train.jsonl"), help="training prompts (JSONL)")
    ap.add_argument("--eval", default=str(SAMPLE_DIR / "eval.jsonl"), help="held-out prompts, only for --measure")
    ap.add_argument("--out", default=str(SAMPLE_DIR / "policy"), help="output directory")
    ap.add_argument("--small", action="store_true", help="reduced model and step count (for tests)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--measure", action="store_true", help="measure execution accuracy after the build")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    kwargs = dict(SMALL) if args.small else {}
    for name in ("seed", "steps", "lr", "batch_size"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)

    def progress(step: int, loss: float) -> None:
        if not args.quiet:
            print(f"step {step:5d}  loss {loss:.4f}", flush=True)

    t0 = time.perf_counter()
    info = build_policy(args.train, args.out, progress=progress, log_every=50, **kwargs)
    summary = {
        "out": str(args.out),
        "params": info["model"]["params"],
        "steps": info["steps"],
        "loss_first": info["loss"]["first"],
        "loss_last": info["loss"]["last"],
        "weights_sha256": info["weights_sha256"],
        "train_seconds": info["elapsed_s"],
        "total_seconds": round(time.perf_counter() - t0, 2),
    }
    if args.measure:  # with the sample project's own verifier, opened as the loop opens it
        with Project.from_config(load_config(SAMPLE_DIR / "loop.yaml")).open_verifier() as verifier:
            summary["measure"] = measure_policy(args.out, args.train, args.eval, verifier)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
