"""``rlaif best-of-n`` and ``rlaif train-rm``: checks of a rubric that cost less than a training run.

    rlaif best-of-n sample_data/harbor_sql/loop.yaml --n 8 --limit 40 --out runs/bon.jsonl
    rlaif best-of-n sample_data/assistant/loop.yaml --n 4 --limit 8 --eval-judge local
    rlaif train-rm --run run-1a2b... --holdout 0.2 --out runs/rm-1
    rlaif best-of-n sample_data/harbor_sql/loop.yaml --reward-model runs/rm-1/model

``add_commands(subparsers)`` registers both on the main parser; each reads the store path from the parent's
``--store``. Input problems are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
from contextlib import ExitStack


def _friendly_errors(command):
    @functools.wraps(command)
    def run(args) -> int:
        try:
            return command(args)
        except (ValueError, KeyError, LookupError, FileNotFoundError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            print(f"error: {message}", file=sys.stderr)
            return 2

    return run


def build_judge(name: str, options: dict, *, verify=None, store=None):
    """A judge by config name; ``auto`` works whether or not the registry knows it yet."""
    if name == "auto":
        from rlaif.judges.auto import make_auto_judge

        return make_auto_judge(options, store, verify=verify)
    from rlaif.judges.registry import make_judge

    return make_judge(name, options=options, verify=verify, store=store)


def _open_verifier(cfg, stack: ExitStack):
    """The loop's verifier for this config (same code path as a run), or None."""
    from rlaif.pipeline import RLAIFPipeline

    verifier = RLAIFPipeline(cfg, store=None)._open_verifier(stack)
    return verifier.verify if verifier is not None else None


def _progress(enabled: bool):
    def emit(stage: str, done: int, total: int) -> None:
        if enabled:
            print(f"\r{stage:<8} {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)

    return emit


# ---------------------------------------------------------------------------------------------------------------------
# best-of-n


@_friendly_errors
def cmd_best_of_n(args) -> int:
    from rlaif.best_of_n import best_of_n, format_summary
    from rlaif.config import load_config
    from rlaif.datasets import load_prompts
    from rlaif.policy import configure_cpu_threads, load_policy, quiet_library_progress
    from rlaif.rubric import DEFAULT_RUBRIC, load_rubric
    from rlaif.smollm2 import resolve_model_path
    from store import Store

    cfg = load_config(args.config)
    configure_cpu_threads()
    quiet_library_progress()
    rubric = load_rubric(cfg.resolve(cfg.rubric)) if cfg.rubric else DEFAULT_RUBRIC
    split = cfg.data.eval if args.split == "eval" else cfg.data.train
    prompts = load_prompts(cfg.resolve(split), limit=args.limit)
    seed = cfg.seed if args.seed is None else args.seed
    with ExitStack() as stack:
        store = stack.enter_context(Store(args.store))
        verify = _open_verifier(cfg, stack)
        judge = reward_model = None
        if args.reward_model:
            from rlaif.reward_model import load_reward_model

            reward_model = load_reward_model(args.reward_model, device=cfg.policy.device)
        else:
            name = args.judge or cfg.judge.name
            judge = build_judge(name, cfg.judge.options if name == cfg.judge.name else {}, verify=verify,
                                store=store)
        eval_judge = None
        eval_name = args.eval_judge or cfg.eval_judge.name or cfg.judge.name
        if eval_name != "none":
            if judge is not None and eval_name == (args.judge or cfg.judge.name):
                eval_judge = judge
            else:
                options = (cfg.eval_judge.options if eval_name == cfg.eval_judge.name
                           else cfg.judge.options if eval_name == cfg.judge.name else {})
                eval_judge = build_judge(eval_name, options, verify=verify, store=store)
        policy = load_policy(resolve_model_path(cfg.policy.path, cfg.resolve), device=cfg.policy.device,
                             prompt_template=cfg.policy.prompt_template, gguf_file=cfg.policy.gguf_file)
        report = best_of_n(policy, prompts, n=args.n, rubric=rubric, temperatures=cfg.sampling.temperatures,
                           max_new_tokens=args.max_new_tokens or cfg.policy.max_new_tokens, seed=seed,
                           batch_size=cfg.sampling.batch_size, top_p=cfg.sampling.top_p, judge=judge,
                           ranking=args.ranking or cfg.judge.ranking, reward_model=reward_model,
                           eval_judge=eval_judge, verify=verify, progress=_progress(not args.no_progress))
    for line in format_summary(report.summary):
        print(line)
    if args.out:
        rows_path, summary_path = report.write_jsonl(args.out)
        print(f"rows: {rows_path}\nsummary: {summary_path}")
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# train-rm


def stored_pairs(store, run_id: str, iteration: int | None, approved: str | None) -> tuple[list[dict], str]:
    """(pairs, where they came from): kept pairs of a run, or the pairs of an approval (``approved``: an approval id,
    or "latest" for the run's newest approval, of ``iteration`` when given)."""
    if store.runs.get(run_id) is None:
        raise LookupError(f"no run {run_id!r} in {store.path}; see `rlaif runs`")
    if approved is not None:
        from rlaif.export import approved_table

        if approved == "latest":
            approvals = [a for a in store.approvals.list(run_id)
                         if iteration is None or a["iteration"] == iteration]
            if not approvals:
                raise LookupError(f"no approved pair set for run {run_id}"
                                  + (f" iteration {iteration}" if iteration is not None else "")
                                  + "; approve one in the workbench, or train on kept pairs (drop --approved)")
            approved = approvals[0]["approval_id"]
        approval, table = approved_table(store, approved)  # refuses a selection that changed since approval
        return table.to_pylist(), f"approval {approved} by {approval['approved_by']}"
    from store import PairFilter

    rows = store.pairs.table(PairFilter(run_id=run_id, iteration=iteration, kept=True)).to_pylist()
    where = f"kept pairs of run {run_id}" + (f" iteration {iteration}" if iteration is not None else "")
    if not rows:
        raise LookupError(f"no {where}")
    return rows, where


def _base_model(store, run_id: str) -> str:
    """The policy the run started from: iteration 0's model."""
    for row in store.iterations.list(run_id):
        if row["iteration"] == 0 and row.get("model_path"):
            return row["model_path"]
    raise LookupError(f"run {run_id} has no baseline model recorded; pass --base PATH")


@_friendly_errors
def cmd_train_rm(args) -> int:
    from rlaif.policy import configure_cpu_threads
    from rlaif.reward_model import RewardConfig, split_holdout, train_reward_model
    from store import Store

    configure_cpu_threads()
    given = {"learning_rate": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
             "max_length": args.max_length, "lora": args.lora or None}
    cfg = RewardConfig(**{k: v for k, v in given.items() if v is not None})
    with Store(args.store) as store:
        pairs, source = stored_pairs(store, args.run, args.iteration, args.approved)
        base = args.base or _base_model(store, args.run)
    train, heldout = split_holdout(pairs, args.holdout, seed=args.seed)
    if not train:
        raise ValueError(f"all {len(pairs)} pairs fell into the holdout; lower --holdout")
    print(f"reward model on {source}: {len(train)} train, {len(heldout)} held-out pairs; base {base}")
    result = train_reward_model(base, train, cfg, args.out, seed=args.seed, heldout=heldout, device=args.device,
                                on_step=_step_printer(not args.no_progress))
    acc = "-" if result.heldout_accuracy is None else f"{result.heldout_accuracy:.3f}"
    loss = "-" if result.train_loss is None else f"{result.train_loss:.4f}"
    print(f"trained {result.steps} steps on {result.n_train} pairs (loss {loss}); "
          f"held-out ranking accuracy {acc} on {result.n_heldout} pairs")
    print(f"model: {result.model_path}")
    return 0


def _step_printer(enabled: bool):
    def on_step(step: int, total: int) -> None:
        if enabled:
            print(f"\rtrain {step}/{total}", end="\n" if step >= total else "", file=sys.stderr, flush=True)

    return on_step


# ---------------------------------------------------------------------------------------------------------------------


def add_commands(subparsers) -> None:
    """Register ``best-of-n`` and ``train-rm`` on the main parser's subparsers."""
    store_opt = {"default": argparse.SUPPRESS, "help": "DuckDB store file"}

    p = subparsers.add_parser("best-of-n", help="rerank N samples per held-out prompt; compare with greedy")
    p.add_argument("config", help="loop YAML (policy, sampling, judge, verifier, rubric, data)")
    p.add_argument("--n", type=int, default=8, help="candidates per prompt (default 8)")
    p.add_argument("--judge", help="rerank with this judge (default: the config's judge.name)")
    p.add_argument("--reward-model", metavar="PATH", help="rerank with a reward model from `rlaif train-rm`")
    p.add_argument("--ranking", choices=("round_robin", "knockout"), help="judge ranking (default: judge.ranking)")
    p.add_argument("--eval-judge", help="judge of best-of-N vs greedy (default: eval_judge.name, else judge.name; "
                                        "'none' skips the win rate)")
    p.add_argument("--split", choices=("eval", "train"), default="eval", help="prompt set (default: held-out)")
    p.add_argument("--limit", type=int, help="use only the first K prompts")
    p.add_argument("--max-new-tokens", type=int, help="overrides policy.max_new_tokens")
    p.add_argument("--seed", type=int, help="sampling seed (default: the config's seed)")
    p.add_argument("--out", help="write one JSON row per prompt here, and <stem>.summary.json beside it")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_best_of_n)

    p = subparsers.add_parser("train-rm", help="train a reward model (TRL RewardTrainer) on a run's pairs")
    p.add_argument("--run", required=True, help="run id")
    p.add_argument("--iteration", type=int, help="only this iteration's pairs")
    p.add_argument("--approved", nargs="?", const="latest", metavar="APPROVAL_ID",
                   help="train on an approved pair set (default: the run's newest approval)")
    p.add_argument("--holdout", type=float, default=0.2, help="held-out share, split by prompt (default 0.2)")
    p.add_argument("--out", required=True, help="output folder (the model goes to OUT/model)")
    p.add_argument("--base", help="base model folder (default: the run's baseline policy)")
    p.add_argument("--epochs", type=float, help="passes over the pairs (default: RewardConfig's)")
    p.add_argument("--lr", type=float, help="learning rate (default: RewardConfig's)")
    p.add_argument("--batch-size", type=int, help="pairs per step (default: RewardConfig's)")
    p.add_argument("--max-length", type=int, help="longest prompt+completion in tokens (default: RewardConfig's)")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters + the head (big bases)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_train_rm)

