"""The ``rlaif`` command: headless access to everything the workbench does.

    rlaif run sample_data/harbor_sql/loop.yaml --iterations 3
    rlaif runs
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_STORE = os.environ.get("RLAIF_STORE", "rlaif.duckdb")


class _Bars:
    """One tqdm bar per (iteration, stage); progress events come from the pipeline's callback."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.key = None

    def __call__(self, event) -> None:
        if not self.enabled or event.stage == "gate":
            return
        from tqdm import tqdm

        key = (event.iteration, event.stage)
        if key != self.key:
            self.close()
            self.key = key
            self.bar = tqdm(total=event.total, desc=f"iter {event.iteration} {event.stage:<6}", leave=False,
                            file=sys.stderr, dynamic_ncols=True)
        if self.bar is not None:
            self.bar.total = event.total
            self.bar.n = event.step
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def print_iteration(it, primary: str) -> None:
    m = it.eval_result.metrics
    overall = m["all"]
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(it.dropped.items())) or "none"
    print(f"\n== iteration {it.iteration} " + ("(baseline: untouched policy)" if it.iteration == 0 else ""))
    if it.iteration > 0:
        print(f"   pairs kept {it.preference_count}, dropped {sum(it.dropped.values())} ({dropped}); "
              f"judge calls {it.judge_calls}; train loss {_fmt(it.train_loss)}")
    print("   held-out: " + ", ".join(f"{k} {_fmt(v)}" for k, v in overall.items()))
    cohorts = [c for c in m if c != "all" and primary in m[c]]
    if cohorts:
        print("   per cohort " + primary + ": " + ", ".join(f"{c} {_fmt(m[c].get(primary))}" for c in cohorts))
    g = it.gate
    print(f"   gate: {g.decision} ({primary} {g.value:.3f}; best {g.best_value:.3f} at iteration {g.best_iteration}; "
          f"tolerance {g.tolerance})")
    mon = it.monitoring or {}
    extra = []
    if it.blended:
        extra.append(f"blended anchor pairs {it.blended} ({it.manifest['pairs'].get('sources')})")
    if mon.get("anchor_win_rate"):
        extra.append("anchor win rate " + _rate(mon["anchor_win_rate"]))
    for label in ("previous", "base"):
        if mon.get(f"eval_vs_{label}"):
            extra.append(f"eval judge win rate vs {label} " + _rate(mon[f"eval_vs_{label}"]))
    if mon.get("judge_disagreement_rate") is not None:
        extra.append(f"training/eval judge disagreement {mon['judge_disagreement_rate']:.3f}")
    if extra:
        print("   monitoring: " + "; ".join(extra))
    deltas = (it.manifest.get("deltas") or {}).get("vs_base")
    if deltas:
        print(f"   {primary} vs base: " + ", ".join(f"{c} {v[primary]:+.3f}" for c, v in deltas.items()
                                                     if primary in v))
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in it.timings.items())
    print(f"   manifest {it.manifest['manifest_id']}  ({timing})")


def _rate(wr: dict) -> str:
    if wr.get("win_rate") is None:
        return "-"
    return f"{wr['win_rate']:.3f} [{wr['ci_low']:.3f}, {wr['ci_high']:.3f}] (n {wr['n']})"


def print_calibration(gate: dict) -> None:
    decision = gate.get("decision", "not_configured")
    if decision == "not_configured":
        print("calibration gate: not configured (no anchor set)")
        return
    ci = gate.get("ci") or [None, None]
    print(f"calibration gate: {decision} (kappa {_fmt(gate.get('kappa'))}, 95% CI [{_fmt(ci[0])}, {_fmt(ci[1])}], "
          f"n {gate.get('n')}, threshold {gate.get('threshold')}, annotators {gate.get('annotators')})")
    if gate.get("reason"):
        print(f"   {gate['reason']}")


def cmd_run(args) -> int:
    from rlaif.config import load_config
    from rlaif.datasets import load_prompts
    from rlaif.judges.pricing import estimate_judge_cost
    from rlaif.pipeline import RLAIFPipeline
    from store import Store

    cfg = load_config(args.config)
    if args.iterations is not None:
        cfg.loop.iterations = args.iterations
        cfg.loop.__post_init__()
    if args.judge:
        cfg.judge.name = args.judge
    if args.budget is not None:
        cfg.judge.options["budget_usd"] = args.budget
    if args.output_dir:
        cfg.output_dir = args.output_dir
    if args.max_train_prompts:
        cfg.data.max_train_prompts = args.max_train_prompts
    train_path = Path(args.dataset) if args.dataset else cfg.resolve(cfg.data.train)
    eval_path = Path(args.eval_dataset) if args.eval_dataset else cfg.resolve(cfg.data.eval)
    cfg.data.train, cfg.data.eval = str(Path(train_path).resolve()), str(Path(eval_path).resolve())
    train, evals = load_prompts(train_path), load_prompts(eval_path)
    bars = _Bars(enabled=not args.no_progress)
    primary = cfg.loop.primary_metric
    n_train = min(len(train), cfg.data.max_train_prompts or len(train))
    n_eval = min(len(evals), cfg.data.max_eval_prompts or len(evals))
    print(f"run {cfg.name}: {n_train} train prompts, {n_eval} eval prompts, judge {cfg.judge.name}, "
          f"{cfg.loop.iterations} iterations, loss {'+'.join(cfg.training.loss_type)}")
    k = cfg.sampling.candidates_per_prompt
    comparisons = cfg.loop.iterations * n_train * k * (k - 1) // 2
    _, note = estimate_judge_cost(cfg, comparisons)
    print(f"judge cost estimate for at most {comparisons} comparisons: {note}")
    with Store(args.store) as store:
        pipeline = RLAIFPipeline(cfg, store=store, progress=bars)
        return _drive(pipeline, pipeline.run(train, evals), store, primary, bars)


def _print_results(pipeline, store, results, primary: str) -> None:
    run = store.runs.get(pipeline.run_id)
    base = results[0].eval_result.metric(primary) if results and results[0].iteration == 0 else None
    reason = f" ({run['error']})" if run.get("error") else ""
    print(f"\nrun {pipeline.run_id}: {run['status']}{reason}; recommended iteration {run['recommended_iteration']}")
    for name, counters in judge_stats_of(pipeline).items():
        print(f"judge {name}: " + ", ".join(f"{key} {_fmt(v)}" for key, v in counters.items()))
    if results:
        print(f"{primary} per iteration: " + "  ".join(f"{r.iteration}:{r.eval_result.metric(primary):.3f}"
                                                      for r in results))
    if base is not None:
        best = max(r.eval_result.metric(primary) for r in results)
        print(f"best {best:.3f} vs baseline {base:.3f} ({(best - base) * 100:+.1f} points)")


def judge_stats_of(pipeline) -> dict:
    from rlaif.judges.registry import judge_stats

    return judge_stats(pipeline.judge) if getattr(pipeline, "judge", None) is not None else {}


def _drive(pipeline, iterator, store, primary: str, bars) -> int:
    """Print each iteration as it finishes, then the run's summary."""
    results = []
    try:
        for it in iterator:
            bars.close()
            if not results:
                print_calibration(pipeline.context.get("calibration_gate", {}))
            print_iteration(it, primary)
            results.append(it)
    finally:
        bars.close()
    _print_results(pipeline, store, results, primary)
    return 0


def cmd_resume(args) -> int:
    from rlaif.pipeline import NothingToResume, RLAIFPipeline
    from store import Store

    with Store(args.store) as store:
        try:
            pipeline = RLAIFPipeline.for_run(store, args.run_id, progress=_Bars(enabled=not args.no_progress))
            print(f"resuming {args.run_id} ({store.runs.get(args.run_id)['status']})")
            return _drive(pipeline, pipeline.resume(), store, pipeline.cfg.loop.primary_metric, pipeline.progress)
        except NothingToResume as err:
            print(f"error: {err}", file=sys.stderr)
            return 2


def cmd_reproduce(args) -> int:
    from rlaif.reproduce import reproduce_manifest
    from store import Store

    with Store(args.store) as store:
        report = reproduce_manifest(args.manifest, store, output_dir=args.output_dir)
    print(report.render())
    return 0 if report.matches else 1


def cmd_runs(args) -> int:
    from store import Store

    with Store(args.store) as store:
        runs = store.runs.list(limit=args.limit)
        if not runs:
            print("no runs in", args.store)
            return 0
        print(f"{'run_id':<22} {'name':<18} {'status':<11} {'judge':<16} {'best':>4}  created")
        for r in runs:
            print(f"{r['run_id']:<22} {str(r['name'])[:18]:<18} {r['status']:<11} {str(r['judge_id'])[:16]:<16} "
                  f"{_fmt(r['recommended_iteration']):>4}  {str(r['created_at'])[:19]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rlaif.judges.registry import JUDGE_NAMES

    parser = argparse.ArgumentParser(prog="rlaif", description="RLAIF Workbench: the loop, headless.")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"DuckDB store file (default {DEFAULT_STORE})")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the RLAIF loop from a YAML config")
    run.add_argument("config")
    run.add_argument("--dataset", help="training prompts JSONL (overrides data.train)")
    run.add_argument("--eval-dataset", help="held-out prompts JSONL (overrides data.eval)")
    run.add_argument("--judge", choices=JUDGE_NAMES, help="judge name (overrides judge.name)")
    run.add_argument("--budget", type=float, metavar="USD", help="stop judging cleanly once this much is spent")
    run.add_argument("--iterations", type=int, help="training iterations after the baseline")
    run.add_argument("--output-dir", help="where checkpoints and manifest files go (overrides output_dir)")
    run.add_argument("--max-train-prompts", type=int, help="use only the first N training prompts")
    run.add_argument("--store", default=argparse.SUPPRESS, help="DuckDB store file")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="list the runs in the store")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--store", default=argparse.SUPPRESS, help="DuckDB store file")
    runs.set_defaults(func=cmd_runs)

    resume = sub.add_parser("resume", help="continue a crashed or cancelled run after its last finished iteration")
    resume.add_argument("run_id")
    resume.add_argument("--store", default=argparse.SUPPRESS, help="DuckDB store file")
    resume.add_argument("--no-progress", action="store_true", help="no progress bars")
    resume.set_defaults(func=cmd_resume)

    repro = sub.add_parser("reproduce", help="re-run an iteration from its manifest and compare field by field")
    repro.add_argument("manifest", help="a manifest JSON file (runs/<run>/manifests/...)")
    repro.add_argument("--output-dir", help="where the reproduction's checkpoint goes (default: the config's)")
    repro.add_argument("--store", default=argparse.SUPPRESS, help="DuckDB store file")
    repro.set_defaults(func=cmd_reproduce)

    from rlaif.cli_anchors import add_commands
    from rlaif.cli_extras import add_commands as add_extra_commands

    add_commands(sub)
    add_extra_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rlaif.config import ConfigError
    from rlaif.datasets import DatasetError
    from rlaif.rubric import RubricError

    import warnings

    # transformers 5 deprecation notices about TRL's argument names say nothing a user can act on
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DatasetError, RubricError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
