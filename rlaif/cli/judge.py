"""``rlaif judge distill``: train the ``reward_model`` judge, a cheap first tier distilled from labelled anchors.

The reward model (TRL RewardTrainer, LoRA on a small local base) learns from the anchor set's TUNING split only
(human or oracle labels; ties carry no preference) and, with ``--from-judge``, from the verdicts another judge left
in the store. The locked holdout is never trained on: its ranking accuracy is reported, and the kappa gate measures
the distilled judge on it like any judge (``rlaif kappa --judge reward_model --include-holdout`` with the judge's
``path`` in the config). One screen of summary; bad input is one line and exit code 2.

    rlaif judge distill --anchor-set sample_data/harbor_sql/anchors.jsonl --annotators oracle --out runs/rm-judge
"""

from __future__ import annotations

from pathlib import Path

from rlaif.anchors.defaults import ANNOTATOR_MODES
from rlaif.anchors.importers import resolve_anchor_set
from rlaif.cli.common import counter, fmt, positive_int, store_option
from rlaif.config import RunConfig, load_config
from rlaif.core.fields import ConfigError
from rlaif.loop.project import policy_path
from rlaif.policy import configure_cpu_threads
from rlaif.sample_prompts import SAMPLE_DIR
from store import Store


def distill_settings(args) -> tuple[RunConfig, str, str]:
    """(config, annotators, base model folder): flags over the config's calibration section and policy, over the
    bundled sample's policy."""
    cfg = load_config(args.config) if args.config else RunConfig()
    annotators = args.annotators or (cfg.calibration.annotators if args.config else "any")
    base = Path(args.base) if args.base else (policy_path(cfg) if args.config else SAMPLE_DIR / "policy")
    if not (base / "config.json").is_file():
        raise ConfigError("--base", f"no model folder at {base} (a Hugging Face folder with config.json)")
    return cfg, annotators, str(base)


def cmd_distill(args) -> int:
    cfg, annotators, base = distill_settings(args)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ValueError(f"--out {out} is not empty; choose a new folder or pass --force")
    anchor_set = args.anchor_set or cfg.calibration.anchor_set
    if not anchor_set:
        raise ConfigError("--anchor-set", "is required (an anchor set id or file), or --config with "
                                          "calibration.anchor_set")
    from rlaif.reward_model import distill_config, distill_reward_model  # torch and TRL load here

    configure_cpu_threads()
    given = {"epochs": args.epochs, "learning_rate": args.lr, "max_length": args.max_length}
    cfg_rm = distill_config(lora=not args.full, **{k: v for k, v in given.items() if v is not None})
    with Store(args.store) as store:
        resolve = cfg.resolve if args.config and not args.anchor_set else Path
        set_id = resolve_anchor_set(store, anchor_set, resolve, cfg.calibration.holdout_fraction)
        result = distill_reward_model(store, set_id, out, base, annotators=annotators, from_judge=args.from_judge,
                                      cfg=cfg_rm, limit=args.limit, seed=args.seed, device=args.device,
                                      on_step=counter(not args.no_progress, "train"))
    m = result.metadata
    print(f"distilled judge reward_model:{m['model_hash'][:12]} from anchor set {set_id} ({annotators} labels)")
    print(f"  trained on {m['n_label_pairs']} labelled tuning pairs ({m['ties_skipped']} ties skipped)"
          + (f" + {m['n_judge_pairs']} pairs from judge {m['from_judge']} ({m['judge_skipped']} skipped)"
             if m["from_judge"] else "")
          + f"; the locked holdout ({m['holdout_items_excluded']} items) was not")
    print(f"  base {base}; {m['steps']} steps, loss {fmt(m['train_loss'], 4)}; {'LoRA' if cfg_rm.lora else 'full'}")
    print(f"  locked holdout ranking accuracy {fmt(m['holdout_rank_accuracy'])} on {m['n_holdout_pairs']} A/B "
          f"pairs (reported only)")
    print(f"model: {result.model_path}  metadata: {out / 'distill.json'}")
    print(f"next: judge {{name: reward_model, options: {{path: {out.resolve()}}}}} in a loop config, then "
          f"`rlaif kappa --judge reward_model --config LOOP.yaml --include-holdout`")
    return 0


def add_commands(subparsers) -> None:
    """Register ``judge`` (``judge distill``) on the main parser's subparsers."""
    judge = subparsers.add_parser("judge", help="judges trained here: distill a reward-model judge")
    sub = judge.add_subparsers(dest="judge_command", required=True)
    p = sub.add_parser("distill", help="train the reward_model judge on an anchor set's tuning split",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--anchor-set", help="anchor set id or anchor file (default: the config's calibration.anchor_set)")
    p.add_argument("--out", required=True, help="output folder: the judge's `path` (model in OUT/model)")
    p.add_argument("--from-judge", metavar="JUDGE_ID",
                   help="also train on this judge's stored verdicts (on the set's tuning items and in runs)")
    p.add_argument("--base", help="base model folder (default: the config's policy, else the SQL sample's policy)")
    p.add_argument("--config", help="loop YAML: its policy is the default base, its calibration section the default "
                                    "anchor set and annotators")
    p.add_argument("--annotators", choices=ANNOTATOR_MODES,
                   help="whose labels count: human, oracle, any (default: the config's, else any)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="train on the first N labelled pairs only (learning curves)")
    p.add_argument("--epochs", type=float, help="passes over the pairs (default 4)")
    p.add_argument("--lr", type=float, help="learning rate (default 2e-3)")
    p.add_argument("--max-length", type=int, help="longest prompt+response in tokens (default 128)")
    p.add_argument("--full", action="store_true", help="train every weight instead of LoRA adapters + the head")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-progress", action="store_true")
    store_option(p)
    p.set_defaults(func=cmd_distill)
