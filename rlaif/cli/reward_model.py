"""``rlaif train-rm``: a reward model (TRL RewardTrainer) on a run's kept pairs or an approved pair set, with its
held-out ranking accuracy: the cheap reranker for ``rlaif best-of-n --reward-model``.

    rlaif train-rm --run run-1a2b... --holdout 0.2 --out runs/rm-1
    rlaif train-rm --run run-1a2b... --out runs/rm-2 --launcher accelerate --num-processes 2
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rlaif.cli.common import counter, fmt, positive_int, store_option
from rlaif.export import approved_table, run_rendering
from rlaif.policy import Rendering, configure_cpu_threads, load_tokenizer
from rlaif.training_launch import LaunchOptions
from store import PairFilter, Store


def stored_pairs(store, run_id: str, iteration: int | None, approved: str | None) -> tuple[list[dict], str]:
    """(pairs, where they came from): kept pairs of a run, or the pairs of an approval (``approved``: an approval id,
    or "latest" for the run's newest approval, of ``iteration`` when given)."""
    if store.runs.get(run_id) is None:
        raise LookupError(f"no run {run_id!r} in {store.path}; see `rlaif runs`")
    if approved is not None:
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
    rows = store.pairs.table(PairFilter(run_id=run_id, iteration=iteration, kept=True)).to_pylist()
    where = f"kept pairs of run {run_id}" + (f" iteration {iteration}" if iteration is not None else "")
    if not rows:
        raise LookupError(f"no {where}")
    return rows, where


def rendered_for_scoring(pairs: list[dict], rendering: Rendering, base: str) -> list[dict]:
    """A chat run stores raw prompts (``Rendering.pair_prompt``): score them as the policy saw them, through the base
    model's chat template; a plain run's pairs are stored rendered already."""
    if not rendering.chat:
        return pairs
    rendering = replace(rendering, tokenizer=load_tokenizer(base))
    return [{**p, "prompt": rendering.prompt(p["prompt"])} for p in pairs]


def base_model(store, run_id: str) -> str:
    """The policy the run started from: iteration 0's model, as the run recorded it."""
    for row in store.iterations.list(run_id):
        if row["iteration"] == 0 and row.get("model_path"):
            return row["model_path"]
    raise LookupError(f"run {run_id} has no baseline model recorded; pass --base PATH")


def launch_options(args):
    """``--launcher accelerate`` and its settings as the launcher's options; None in-process. A setting given
    without ``--launcher accelerate`` would do nothing, so it is refused (one line, naming the flag)."""
    flags = {"--num-processes": args.num_processes, "--mixed-precision": args.mixed_precision,
             "--accelerate-config": args.accelerate_config}
    given = [flag for flag, value in flags.items() if value is not None]
    if args.launcher != "accelerate":
        if given:
            raise ValueError(f"{given[0]}: only used with --launcher accelerate")
        return None
    config = Path(args.accelerate_config) if args.accelerate_config else None
    options = LaunchOptions(args.num_processes, args.mixed_precision or "no", config, field="--accelerate-config")
    options.check()  # a missing or unreadable file is said before any pair is read
    return options


def cmd_train_rm(args) -> int:
    from rlaif.reward_model import (  # torch and TRL load here
        RewardConfig,
        split_holdout,
        train_reward_model,
        train_reward_model_launched,
    )

    options = launch_options(args)
    configure_cpu_threads()
    given = {"learning_rate": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
             "max_length": args.max_length, "lora": args.lora or None}
    cfg = RewardConfig(**{k: v for k, v in given.items() if v is not None})
    with Store(args.store) as store:
        pairs, source = stored_pairs(store, args.run, args.iteration, args.approved)
        base = args.base or base_model(store, args.run)
        pairs = rendered_for_scoring(pairs, run_rendering(store, args.run), base)
    train, heldout = split_holdout(pairs, args.holdout, seed=args.seed)
    if not train:
        raise ValueError(f"all {len(pairs)} pairs fell into the holdout; lower --holdout")
    where = f"accelerate launch, {options.describe()}" if options else "in-process"
    print(f"reward model on {source}: {len(train)} train, {len(heldout)} held-out pairs; base {base} ({where})")
    progress = counter(not args.no_progress, "train")
    if options is None:
        result = train_reward_model(base, train, cfg, args.out, seed=args.seed, heldout=heldout, device=args.device,
                                    on_step=progress)
    else:
        result = train_reward_model_launched(base, train, cfg, args.out, options, seed=args.seed,
                                             heldout=heldout, device=args.device, on_step=progress)
    print(f"trained {result.steps} steps on {result.n_train} pairs (loss {fmt(result.train_loss, 4)}); "
          f"held-out ranking accuracy {fmt(result.heldout_accuracy)} on {result.n_heldout} pairs")
    print(f"model: {result.model_path}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``train-rm`` on the main parser's subparsers."""
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
    p.add_argument("--launcher", choices=("inprocess", "accelerate"), default="inprocess",
                   help="inprocess (default: this process, one device) or accelerate: an `accelerate launch` "
                        "subprocess, one process per device (DDP; DeepSpeed ZeRO-1/2 through --accelerate-config); the "
                        "same model and reward_model.json come back, OUT/launch/worker.log keeps its log")
    p.add_argument("--num-processes", type=positive_int,
                   help="with --launcher accelerate: processes (ranks), usually one per GPU (default: the "
                        "--accelerate-config file's, else 1)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"),
                   help="with --launcher accelerate: accelerate's --mixed_precision (default no)")
    p.add_argument("--accelerate-config", metavar="FILE",
                   help="with --launcher accelerate: an accelerate config YAML (`accelerate config`) for "
                        "multi-GPU DDP, FSDP or DeepSpeed ZeRO")
    store_option(p)
    p.set_defaults(func=cmd_train_rm)

