"""``rlaif run``, ``resume``, ``reproduce`` and ``runs``: the loop, headless.

    rlaif run sample_data/harbor_sql/loop.yaml --iterations 3
    rlaif resume run-1a2b...
    rlaif runs
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rlaif.cli.common import Bars, config_file, fmt, positive_int, store_option
from rlaif.config import load_config
from rlaif.datasets import load_prompts
from rlaif.judges import JUDGE_NAMES
from rlaif.loop import Project, RLAIFPipeline
from rlaif.loop.project import judge_options
from rlaif.loop.reproduce import reproduce_manifest
from store import Store


def print_iteration(it, primary: str) -> None:
    m = it.eval_result.metrics
    overall = m["all"]
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(it.dropped.items())) or "none"
    print(f"\n== iteration {it.iteration} " + ("(baseline: untouched policy)" if it.iteration == 0 else ""))
    if it.iteration > 0:
        print(f"   pairs kept {it.preference_count}, dropped {sum(it.dropped.values())} ({dropped}); "
              f"judge calls {it.judge_calls}; train loss {fmt(it.train_loss)}")
    print("   held-out: " + ", ".join(f"{k} {fmt(v)}" for k, v in overall.items()))
    cohorts = [c for c in m if c != "all" and primary in m[c]]
    if cohorts:
        print("   per cohort " + primary + ": " + ", ".join(f"{c} {fmt(m[c].get(primary))}" for c in cohorts))
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
    if it.redacted:
        print(f"   {it.redacted} key-shaped strings redacted from model output (stored as [redacted])")
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in it.timings.items())
    speed = ", ".join(f"{k} {v['tokens_per_s']:.0f} new tok/s" for k, v in it.throughput.items())
    print(f"   manifest {it.manifest['manifest_id']}  ({timing}{'; ' + speed if speed else ''})")


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
    print(f"calibration gate: {decision} (kappa {fmt(gate.get('kappa'))}, 95% CI [{fmt(ci[0])}, {fmt(ci[1])}], "
          f"n {gate.get('n')}, threshold {gate.get('threshold')}, annotators {gate.get('annotators')})")
    if gate.get("reason"):
        print(f"   {gate['reason']}")


def cmd_run(args) -> int:
    # everything that can be checked is checked before the store is opened: a bad config records no run
    with config_file(args.config):
        cfg = load_config(args.config)
        train_path = Path(args.dataset) if args.dataset else cfg.resolve(cfg.data.train)
        eval_path = Path(args.eval_dataset) if args.eval_dataset else cfg.resolve(cfg.data.eval)
        cfg = _with_overrides(cfg, args, train=str(Path(train_path).resolve()), eval=str(Path(eval_path).resolve()))
        project = Project.from_config(cfg)
        project.check()
    train, evals = load_prompts(train_path), load_prompts(eval_path)
    bars = Bars(enabled=not args.no_progress)
    primary = cfg.loop.primary_metric
    n_train = min(len(train), cfg.data.max_train_prompts or len(train))
    n_eval = min(len(evals), cfg.data.max_eval_prompts or len(evals))
    print(f"run {cfg.name}: {n_train} train prompts, {n_eval} eval prompts, judge {cfg.judge.name}, "
          f"{cfg.loop.iterations} iterations, loss {'+'.join(cfg.training.loss_type)}")
    cost = project.estimate_cost(len(train))
    print(f"judge cost estimate for at most {cost.judge_calls} comparisons: {cost.note}")
    with Store(args.store) as store:
        pipeline = RLAIFPipeline(cfg, store=store, rubric=project.rubric, progress=bars)
        return _drive(pipeline, pipeline.run(train, evals), store, primary, bars)


def _with_overrides(cfg, args, *, train: str, eval: str):
    """The config with the command line's overrides, validated like the file (a ConfigError names the flag's field)."""
    judge = cfg.judge
    if args.judge or args.budget is not None:
        options = judge_options(cfg, args.judge or judge.name)
        if args.budget is not None:
            options["budget_usd"] = args.budget
        judge = dataclasses.replace(judge, name=args.judge or judge.name, options=options)
    loop = dataclasses.replace(cfg.loop, iterations=args.iterations) if args.iterations is not None else cfg.loop
    data = dataclasses.replace(cfg.data, train=train, eval=eval,
                               max_train_prompts=args.max_train_prompts or cfg.data.max_train_prompts)
    return dataclasses.replace(cfg, judge=judge, loop=loop, data=data, output_dir=args.output_dir or cfg.output_dir)


def _print_results(pipeline, store, results, primary: str) -> None:
    run = store.runs.get(pipeline.run_id)
    base = results[0].eval_result.metric(primary) if results and results[0].iteration == 0 else None
    reason = f" ({run['error']})" if run.get("error") else ""
    print(f"\nrun {pipeline.run_id}: {run['status']}{reason}; recommended iteration {run['recommended_iteration']}")
    for name, counters in (pipeline.judge.all_stats() if pipeline.judge is not None else {}).items():
        print(f"judge {name}: " + ", ".join(f"{key} {fmt(v)}" for key, v in counters.items()))
    if results:
        print(f"{primary} per iteration: " + "  ".join(f"{r.iteration}:{r.eval_result.metric(primary):.3f}"
                                                      for r in results))
    redacted = sum(r.redacted for r in results)
    if redacted:
        print(f"{redacted} key-shaped strings redacted from model output")
    if base is not None:
        best = max(r.eval_result.metric(primary) for r in results)
        print(f"best {best:.3f} vs baseline {base:.3f} ({(best - base) * 100:+.1f} points)")


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
    with Store(args.store) as store:
        pipeline = RLAIFPipeline.for_run(store, args.run_id, progress=Bars(enabled=not args.no_progress))
        print(f"resuming {args.run_id} ({store.runs.get(args.run_id)['status']})")
        return _drive(pipeline, pipeline.resume(), store, pipeline.cfg.loop.primary_metric, pipeline.progress)


def cmd_reproduce(args) -> int:
    with Store(args.store) as store:
        report = reproduce_manifest(args.manifest, store, output_dir=args.output_dir)
    print(report.render())
    return 0 if report.matches else 1


def cmd_runs(args) -> int:
    with Store(args.store) as store:
        runs = store.runs.list(limit=args.limit)
        if not runs:
            print("no runs in", args.store)
            return 0
        print(f"{'run_id':<22} {'name':<18} {'status':<11} {'judge':<16} {'best':>4}  created")
        for r in runs:
            print(f"{r['run_id']:<22} {str(r['name'])[:18]:<18} {r['status']:<11} {str(r['judge_id'])[:16]:<16} "
                  f"{fmt(r['recommended_iteration']):>4}  {str(r['created_at'])[:19]}")
    return 0


def add_commands(sub) -> None:
    """Register ``run``, ``runs``, ``resume`` and ``reproduce`` on the main parser's subparsers."""
    run = sub.add_parser("run", help="run the RLAIF loop from a YAML config")
    run.add_argument("config")
    run.add_argument("--dataset", help="training prompts JSONL (overrides data.train)")
    run.add_argument("--eval-dataset", help="held-out prompts JSONL (overrides data.eval)")
    run.add_argument("--judge", choices=JUDGE_NAMES, help="judge name (overrides judge.name)")
    run.add_argument("--budget", type=float, metavar="USD", help="stop judging cleanly once this much is spent")
    run.add_argument("--iterations", type=int, help="training iterations after the baseline")
    run.add_argument("--output-dir", help="where checkpoints and manifest files go (overrides output_dir)")
    run.add_argument("--max-train-prompts", type=int, help="use only the first N training prompts")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    store_option(run)
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="list the runs in the store")
    runs.add_argument("--limit", type=positive_int, default=50, help="newest runs to list (default 50)")
    store_option(runs)
    runs.set_defaults(func=cmd_runs)

    resume = sub.add_parser("resume", help="continue a crashed or cancelled run after its last finished iteration")
    resume.add_argument("run_id")
    resume.add_argument("--no-progress", action="store_true", help="no progress bars")
    store_option(resume)
    resume.set_defaults(func=cmd_resume)

    repro = sub.add_parser("reproduce", help="re-run an iteration from its manifest and compare field by field")
    repro.add_argument("manifest", help="a manifest JSON file (runs/<run>/manifests/...)")
    repro.add_argument("--output-dir", help="where the reproduction's checkpoint goes (default: the config's)")
    store_option(repro)
    repro.set_defaults(func=cmd_reproduce)
