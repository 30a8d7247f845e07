"""``rlaif best-of-n``: rerank N samples per held-out prompt with the project's judge (or a reward model) and
compare with greedy decoding: a check of a rubric that costs less than a training run.

    rlaif best-of-n sample_data/harbor_sql/loop.yaml --n 8 --limit 40 --out runs/bon.jsonl
    rlaif best-of-n sample_data/assistant/loop.yaml --n 4 --limit 8 --eval-judge local
    rlaif best-of-n sample_data/harbor_sql/loop.yaml --reward-model runs/rm-1/model
"""

from __future__ import annotations

from rlaif.best_of_n import best_of_n, format_summary
from rlaif.cli.common import counter, positive_int, store_option
from rlaif.config import load_config
from rlaif.datasets import load_prompts
from rlaif.loop.project import Project
from rlaif.policy import configure_cpu_threads, quiet_library_progress
from store import Store


def cmd_best_of_n(args) -> int:
    cfg = load_config(args.config)
    project = Project.from_config(cfg)
    configure_cpu_threads()
    quiet_library_progress()
    split = cfg.data.eval if args.split == "eval" else cfg.data.train
    prompts = load_prompts(cfg.resolve(split), limit=args.limit)
    seed = cfg.seed if args.seed is None else args.seed
    judge_name = args.judge or cfg.judge.name
    eval_name = args.eval_judge or cfg.eval_judge.name or cfg.judge.name
    same = eval_name == judge_name and not args.reward_model  # the reranking judge also scores: build it once
    want_eval = eval_name != "none" and not same
    with Store(args.store) as store, project.open(store, judge=None if args.reward_model else judge_name,
                                                  build_judge=not args.reward_model, with_eval_judge=want_eval,
                                                  eval_judge=eval_name if want_eval else None) as parts:
        reward_model = None
        if args.reward_model:
            from rlaif.reward_model import load_reward_model  # torch and transformers load here

            reward_model = load_reward_model(args.reward_model, device=cfg.policy.device)
        eval_judge = parts.judge if same else parts.eval_judge
        report = best_of_n(project.load_policy(), prompts, n=args.n, rubric=project.rubric,
                           temperatures=cfg.sampling.temperatures,
                           max_new_tokens=args.max_new_tokens or cfg.policy.max_new_tokens, seed=seed,
                           batch_size=cfg.sampling.batch_size, top_p=cfg.sampling.top_p, judge=parts.judge,
                           ranking=args.ranking or cfg.judge.ranking, reward_model=reward_model,
                           eval_judge=eval_judge, verify=parts.verify, progress=counter(not args.no_progress))
    for line in format_summary(report.summary):
        print(line)
    if args.out:
        rows_path, summary_path = report.write_jsonl(args.out)
        print(f"rows: {rows_path}\nsummary: {summary_path}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``best-of-n`` on the main parser's subparsers."""
    p = subparsers.add_parser("best-of-n", help="rerank N samples per held-out prompt; compare with greedy")
    p.add_argument("config", help="loop YAML (policy, sampling, judge, verifier, rubric, data)")
    p.add_argument("--n", type=int, default=8, help="candidates per prompt (default 8)")
    p.add_argument("--judge", help="rerank with this judge (default: the config's judge.name)")
    p.add_argument("--reward-model", metavar="PATH", help="rerank with a reward model from `rlaif train-rm`")
    p.add_argument("--ranking", choices=("round_robin", "knockout"), help="judge ranking (default: judge.ranking)")
    p.add_argument("--eval-judge", help="judge of best-of-N vs greedy (default: eval_judge.name, else judge.name; "
                                        "'none' skips the win rate)")
    p.add_argument("--split", choices=("eval", "train"), default="eval", help="prompt set (default: held-out)")
    p.add_argument("--limit", type=positive_int, help="use only the first K prompts")
    p.add_argument("--max-new-tokens", type=int, help="overrides policy.max_new_tokens")
    p.add_argument("--seed", type=int, help="sampling seed (default: the config's seed)")
    p.add_argument("--out", help="write one JSON row per prompt here, and <stem>.summary.json beside it")
    p.add_argument("--no-progress", action="store_true")
    store_option(p)
    p.set_defaults(func=cmd_best_of_n)
