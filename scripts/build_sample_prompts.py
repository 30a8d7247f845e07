#!/usr/bin/env python
"""Regenerate sample_data/harbor_sql/train.jsonl and eval.jsonl (deterministic for a given --seed)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlaif.sample_prompts import SAMPLE_DIR, read_jsonl, write_prompt_sets  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(SAMPLE_DIR), help="output directory (default: the bundled sample)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    train_path, eval_path = write_prompt_sets(args.out, seed=args.seed)
    for path in (train_path, eval_path):
        rows = read_jsonl(path)
        cohorts = Counter(r["cohort"] for r in rows)
        print(f"{path}: {len(rows)} prompts; cohorts: {dict(sorted(cohorts.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
