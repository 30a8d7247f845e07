"""Benchmark: the distilled reward-model judge on the SQL sample -- its learning curve on the locked holdout, and what
it saves as the cheap tier in front of the verifier-backed judge.

Why this shape: a distilled judge is worth having only if (1) its agreement with the labels on pairs it never saw
grows with the labelled pairs it is given, and (2) as the first tier it sends only a minority of comparisons to the
expensive judge while the tiered verdicts stay close to the expensive judge's alone. Both are measured here in one
run, on the locked holdout (never trained on) with the execution oracle's labels.

The bundled ``anchors.jsonl`` has 92 pairs (about 64 A/B tuning pairs): too few for a curve up to 100. By default the
bench rebuilds the anchor set with the sample's own builder (``scripts/build_sample_anchors.py``: the same recipes
and the same oracle) over every training question, about 270 pairs; ``--bundled`` uses the 92-pair file as shipped.
CPU, one thread, a few minutes.

    .venv/bin/python bench/bench_distilled_judge.py [--bundled] [--sizes 25 50 100 0] [--epochs 4]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from rlaif.anchors.gate import measure_agreement  # noqa: E402
from rlaif.anchors.importers import import_anchor_file  # noqa: E402
from rlaif.config import load_config  # noqa: E402
from rlaif.judges.base import Comparison  # noqa: E402
from rlaif.judges.combinators import TieredJudge  # noqa: E402
from rlaif.judges.reward_model import RewardModelJudge  # noqa: E402
from rlaif.judges.verifier import VerifierJudge  # noqa: E402
from rlaif.loop.project import Project  # noqa: E402
from rlaif.policy import configure_cpu_threads  # noqa: E402
from rlaif.reward_model import distill_config, distill_reward_model, labelled_pairs  # noqa: E402
from store import Store  # noqa: E402

SAMPLE = ROOT / "sample_data" / "harbor_sql"


def expanded_anchors(out: Path) -> Path:
    """The sample's anchor builder over every training question (its PER_TEMPLATE raised), written to ``out``."""
    spec = importlib.util.spec_from_file_location("build_sample_anchors", ROOT / "scripts" / "build_sample_anchors.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    builder.PER_TEMPLATE = 10_000
    with contextlib.redirect_stderr(io.StringIO()):  # the builder names each question it could not pair
        records = builder.build(SAMPLE / "train.jsonl", SAMPLE / "loop.yaml")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return out


def fmt(x) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundled", action="store_true", help="use the bundled 92-pair anchors.jsonl as shipped")
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 0],
                        help="tuning pairs per point of the curve (0: all)")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.55, 0.6, 0.7, 0.8, 0.9])
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    configure_cpu_threads()
    project = Project.from_config(load_config(SAMPLE / "loop.yaml"))
    rubric, base = project.rubric, project.policy_path()

    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp, Store(":memory:") as store, \
            project.open_verifier() as verifier:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        anchors = SAMPLE / "anchors.jsonl" if args.bundled else expanded_anchors(tmp / "anchors.jsonl")
        set_id = import_anchor_file(store, anchors, name="harbor-sql-bench").anchor_set_id
        tuning, _, tuning_ties = labelled_pairs(store, set_id, "oracle", "tuning")
        held_items = store.anchors.items(set_id, split="holdout")
        print(f"anchor set {set_id} from {anchors.name}: {len(tuning)} A/B tuning pairs ({tuning_ties} ties), "
              f"locked holdout {len(held_items)} items; built in {time.perf_counter() - t0:.1f}s")
        print(f"base {base}; LoRA reward model, {args.epochs:g} epochs; oracle labels; CPU, 1 thread\n")

        print("learning curve: the distilled judge on the LOCKED HOLDOUT (never trained on)")
        print(f"  {'pairs':>5}  {'kappa':>6}  {'95% CI':>15}  {'2-class':>7}  {'rank acc':>8}  {'train s':>7}")
        judges = {}
        for size in args.sizes:
            n = len(tuning) if size == 0 or size >= len(tuning) else size
            if n in judges:
                continue
            t0 = time.perf_counter()
            result = distill_reward_model(store, set_id, tmp / f"rm-{n}", base, annotators="oracle", limit=n,
                                          cfg=distill_config(epochs=args.epochs), device="cpu")
            seconds = time.perf_counter() - t0
            judge = judges[n] = RewardModelJudge(str(tmp / f"rm-{n}"))
            a = measure_agreement(store, judge, rubric, set_id, split="holdout", annotators="oracle",
                                  n_resamples=1000)["all"]
            ci = f"[{a.ci[0]:.2f}, {a.ci[1]:.2f}]" if a.ci[0] is not None else "-"
            label = f"{n}" + ("*" if size and size > n else "")
            print(f"  {label:>5}  {fmt(a.kappa)}  {ci:>15}  {fmt(a.two_class.kappa)}   "
                  f"{fmt(result.metadata['holdout_rank_accuracy'])}  {seconds:7.1f}")
        if any(s and s > len(tuning) for s in args.sizes):
            print(f"  (* only {len(tuning)} A/B tuning pairs exist: the point uses all of them)")

        verifier_judge = VerifierJudge(verifier.verify)
        comparisons = [Comparison(i["prompt"], i["response_a"], i["response_b"], i["reference"], i["item_id"])
                       for i in held_items]
        alone = VerifierJudge(verifier.verify).compare(comparisons, rubric)
        cheap = judges[max(judges)]
        print(f"\ntiered on the {len(comparisons)} holdout pairs: cheap = {cheap.judge_id} (trained on "
              f"{max(judges)} pairs), expensive = the verifier judge")
        print(f"  {'threshold':>9}  {'verifier check':>14}  {'escalated':>9}  {'agree w/ expensive':>18}  "
              f"{'cheap-only agree':>16}")
        first = cheap.compare(comparisons, rubric)
        base_agree = sum(f.winner == e.winner for f, e in zip(first, alone)) / len(alone)
        for check in (False, True):
            for t in args.thresholds:
                tiered = TieredJudge(cheap, verifier_judge, t, verifier_judge if check else None)
                out = tiered.compare(comparisons, rubric)
                agree = sum(o.winner == e.winner for o, e in zip(out, alone)) / len(alone)
                share = tiered.stats["escalated"] / len(comparisons)
                print(f"  {t:>9.2f}  {'on' if check else 'off':>14}  {share:>8.0%}  {agree:>18.0%}  "
                      f"{base_agree:>16.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
