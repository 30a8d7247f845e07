"""Best-of-N at inference time: sample N answers, keep the one the judge (or a reward model) likes best, and measure
how much better that is than greedy decoding.

Why: it is the cheapest test of a rubric before paying for training. If reranking with the judge does not beat greedy
on the held-out prompts (by the verifier's metric where there is one, by an evaluating judge's win rate otherwise),
DPO on that judge's preferences has little to learn from; if it does, the gap is roughly what training could reach.
The verifier's "any of N correct" rate (``oracle``) is the ceiling a perfect reranker would reach on these samples.

Reranking: ``judge`` ranks each prompt's N candidates (``rank_candidates``: round-robin Copeland scores, or the
cheaper knockout) and the best one wins; a ``reward_model`` scores each candidate once and the highest wins.
Evaluation: the loop's own ``evaluate_outputs`` on greedy and on best-of-N (exact match, execution accuracy, verifier
pass rate, length, refusals; per cohort), plus the win rate of best-of-N over greedy by ``eval_judge``.

    report = best_of_n(policy, prompts, n=8, judge=judge, rubric=rubric, verify=verifier.verify, max_new_tokens=64,
                       temperatures=[0.7, 1.0], seed=0)
    report.summary["metrics"]["all"]["execution_accuracy"]   # {"greedy": .., "best_of_n": .., "oracle": ..}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rlaif.datasets import PromptRecord
from rlaif.evaluation import ALL, evaluate_outputs
from rlaif.judges.base import Comparison, Judge
from rlaif.judges.ranking import RankingTask, rank_candidates
from rlaif.monitoring import win_rate
from rlaif.policy import Policy, greedy, sample_candidates
from rlaif.rubric import Rubric

# A seed-ladder slot no loop iteration uses, so best-of-N samples are not the samples iteration k trained on.
SAMPLING_ITERATION = -1


@dataclass
class BestOfNReport:
    rows: list[dict[str, Any]]  # one per prompt: greedy, candidates, scores, best, checks, verdict
    summary: dict[str, Any]  # reranker, n, metrics per cohort {metric: {greedy, best_of_n, delta[, oracle]}}
    judge_calls: int = 0
    eval_verdicts: list[str] = field(default_factory=list)

    def write_jsonl(self, path: str | Path) -> tuple[Path, Path]:
        """Rows to ``path`` (JSONL) and the summary beside it (``<stem>.summary.json``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            for row in self.rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        summary_path = path.with_name(path.stem + ".summary.json")
        summary_path.write_text(json.dumps(self.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path, summary_path


def pick_by_judge(judge: Judge, prompts: Sequence[PromptRecord], groups: Sequence[Sequence[str]], rubric: Rubric,
                  strategy: str = "round_robin",
                  on_round: Callable[[int, int], None] | None = None) -> tuple[list[int], list[list[float]], int]:
    """(best index per prompt, Copeland scores, judge calls). A prompt whose candidates are all equal keeps the first."""
    tasks = [RankingTask(p.prompt, list(texts), p.reference, p.id) for p, texts in zip(prompts, groups)]
    results = rank_candidates(judge, tasks, rubric, strategy, on_round=on_round)
    best = [r.chosen if r.chosen is not None else 0 for r in results]
    return best, [list(r.scores) for r in results], sum(r.calls for r in results)


def pick_by_reward(reward_model, tokenizer, rendered: Sequence[str], groups: Sequence[Sequence[str]], *,
                   prefix: str = "", batch_size: int = 16) -> tuple[list[int], list[list[float]]]:
    """(best index per prompt, rewards): each candidate scored once, as the reward model was trained (the rendered
    prompt, then the completion with the policy's completion prefix)."""
    from rlaif.reward_model import score_texts

    flat_prompts = [r for r, texts in zip(rendered, groups) for _ in texts]
    flat_texts = [prefix + t for texts in groups for t in texts]
    flat = score_texts(reward_model, tokenizer, flat_prompts, flat_texts, batch_size=batch_size)
    scores, k = [], 0
    for texts in groups:
        scores.append(flat[k:k + len(texts)])
        k += len(texts)
    best = [max(range(len(s)), key=lambda i: (s[i], -i)) for s in scores]  # ties: the earlier candidate
    return best, scores


def _compare_table(greedy_metrics: dict, best_metrics: dict, oracle: dict | None) -> dict[str, dict[str, dict]]:
    table: dict[str, dict[str, dict]] = {}
    for cohort, g in greedy_metrics.items():
        b = best_metrics[cohort]
        table[cohort] = {}
        for name in g:
            entry = {"greedy": g[name], "best_of_n": b[name], "delta": b[name] - g[name]}
            if oracle is not None and name in oracle.get(cohort, {}):
                entry["oracle"] = oracle[cohort][name]
            table[cohort][name] = entry
    return table


def _oracle_metrics(prompts: Sequence[PromptRecord], checks: list[list[dict[str, bool] | None]],
                    rubric: Rubric | None) -> dict[str, dict[str, float]]:
    """Share of prompts where ANY candidate passes: what a perfect reranker would reach on these samples."""
    hard = rubric.hard_verifiers if rubric else set()
    rows = []
    for p, group in zip(prompts, checks):
        scored = [c for c in group if c is not None]
        if not scored:
            continue
        rows.append((p.cohort, any(c.get("sql_result_matches", False) for c in scored),
                     any(all(c.get(v, False) for v in hard) if hard else all(c.values()) for c in scored)))
    out: dict[str, dict[str, float]] = {}
    for cohort in [ALL] + sorted({c for c, _, _ in rows}):
        sel = [r for r in rows if cohort == ALL or r[0] == cohort]
        if sel:
            out[cohort] = {"execution_accuracy": sum(r[1] for r in sel) / len(sel),
                           "verifier_pass_rate": sum(r[2] for r in sel) / len(sel)}
    return out


def best_of_n(policy: Policy, prompts: Sequence[PromptRecord], *, n: int, rubric: Rubric,
              temperatures: Sequence[float], max_new_tokens: int, seed: int = 0, batch_size: int = 16,
              top_p: float = 1.0, judge: Judge | None = None, ranking: str = "round_robin", reward_model=None,
              eval_judge: Judge | None = None, verify: Callable[[str, str], Any] | None = None,
              progress: Callable[[str, int, int], None] | None = None) -> BestOfNReport:
    """Greedy vs best-of-N on ``prompts``; rerank with ``judge`` or ``reward_model`` (a (model, tokenizer) pair).

    ``eval_judge`` (optional) scores best-of-N against greedy pairwise; give a judge other than the reranker where
    you can: a reranker grading its own picks is optimistic.
    """
    if (judge is None) == (reward_model is None):
        raise ValueError("rerank with exactly one of judge or reward_model")
    if n < 2:
        raise ValueError(f"best-of-N needs n >= 2, got {n}")
    if not prompts:
        raise ValueError("no prompts")
    emit = progress or (lambda stage, done, total: None)
    texts = [p.prompt for p in prompts]

    greedy_out = greedy(policy, texts, batch_size=batch_size, max_new_tokens=max_new_tokens,
                        on_batch=lambda d, t: emit("greedy", d, t))
    samples = sample_candidates(policy, texts, n=n, temperatures=temperatures, seed=seed,
                                iteration=SAMPLING_ITERATION, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                top_p=top_p, on_batch=lambda d, t: emit("sample", d, t))
    groups = [[s.text for s in group] for group in samples]

    calls = 0
    if judge is not None:
        best, scores, calls = pick_by_judge(judge, prompts, groups, rubric, ranking,
                                            on_round=lambda d, t: emit("rerank", d, t))
        reranker = {"kind": "judge", "judge_id": judge.judge_id, "ranking": ranking}
    else:
        model, tok = reward_model
        rendering = policy.rendering  # the same rendering sampling used (plain template or chat template)
        best, scores = pick_by_reward(model, tok, [rendering.prompt(t) for t in texts], groups,
                                      prefix=rendering.prefix, batch_size=batch_size)
        emit("rerank", len(prompts), len(prompts))
        reranker = {"kind": "reward_model", "path": str(getattr(model, "name_or_path", "") or "")}

    best_out = [(groups[k][b], samples[k][b].n_tokens) for k, b in enumerate(best)]
    greedy_eval = evaluate_outputs(greedy_out, prompts, verify=verify, rubric=rubric)
    best_eval = evaluate_outputs(best_out, prompts, verify=verify, rubric=rubric)
    checks: list[list[dict[str, bool] | None]] = []
    if verify is not None:
        for p, group in zip(prompts, groups):
            checks.append([dict(verify(t, p.reference).criteria()) if p.reference is not None else None
                           for t in group])
    oracle = _oracle_metrics(prompts, checks, rubric) if checks else None
    table = _compare_table(greedy_eval.metrics, best_eval.metrics, oracle)

    verdicts: list[str] = []
    if eval_judge is not None:
        # identical texts are a tie by definition: no call
        ask = [k for k, (p, (b, _), (g, _)) in enumerate(zip(prompts, best_out, greedy_out)) if b != g]
        comps = [Comparison(prompts[k].prompt, best_out[k][0], greedy_out[k][0], prompts[k].reference, prompts[k].id)
                 for k in ask]
        asked = dict(zip(ask, (v.winner for v in eval_judge.compare(comps, rubric)))) if comps else {}
        verdicts = [asked.get(k, "tie") for k in range(len(prompts))]
        emit("evaluate", len(prompts), len(prompts))
        for cohort in table:
            sel = [v for p, v in zip(prompts, verdicts) if cohort == ALL or p.cohort == cohort]
            wr = win_rate(sel, seed=seed)
            table[cohort]["win_rate_vs_greedy"] = {k: wr[k] for k in ("win_rate", "ci_low", "ci_high", "n",
                                                                        "invalid")}

    rows = []
    for k, p in enumerate(prompts):
        row = {"prompt_id": p.id, "cohort": p.cohort, "prompt": p.prompt, "reference": p.reference,
               "greedy": greedy_out[k][0], "candidates": groups[k], "scores": scores[k], "best_index": best[k],
               "best": best_out[k][0],
               "temperatures": [s.temperature for s in samples[k]], "seeds": [s.seed for s in samples[k]]}
        if verify is not None:
            row["greedy_checks"] = greedy_eval.rows[k].get("checks")
            row["best_checks"] = best_eval.rows[k].get("checks")
        if verdicts:
            row["verdict_best_vs_greedy"] = verdicts[k]
        rows.append(row)
    summary = {"n": n, "prompts": len(prompts), "reranker": reranker, "judge_calls": calls,
               "eval_judge": eval_judge.judge_id if eval_judge is not None else None,
               "seed": seed, "temperatures": list(temperatures), "max_new_tokens": max_new_tokens,
               "metrics": table, "counts": greedy_eval.counts}
    return BestOfNReport(rows, summary, calls, verdicts)


def format_summary(summary: dict[str, Any]) -> list[str]:
    """Lines for the CLI: one per metric overall, then the headline metric per cohort."""
    r = summary["reranker"]
    how = f"judge {r['judge_id']} ({r['ranking']})" if r["kind"] == "judge" else f"reward model {r['path']}"
    lines = [f"best-of-{summary['n']} on {summary['prompts']} prompts, reranked by {how}; "
             f"{summary['judge_calls']} judge calls"]
    metrics = summary["metrics"]

    def cell(entry: dict) -> str:
        if "win_rate" in entry:
            if entry["win_rate"] is None:
                return "n/a (no valid verdicts)"
            return (f"{entry['win_rate']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] "
                    f"(n {entry['n']}, invalid {entry['invalid']})")
        text = f"greedy {entry['greedy']:.3f} -> best-of-N {entry['best_of_n']:.3f} ({entry['delta']:+.3f})"
        return text + (f"; any-of-N {entry['oracle']:.3f}" if "oracle" in entry else "")

    for name, entry in metrics[ALL].items():
        lines.append(f"  {name:<20} {cell(entry)}")
    cohorts = [c for c in metrics if c != ALL]
    for headline in ("execution_accuracy", "win_rate_vs_greedy"):
        if headline in metrics[ALL] and cohorts:
            lines.append(f"  per cohort {headline}:")
            lines.extend(f"    {c:<18} {cell(metrics[c][headline])}" for c in cohorts if headline in metrics[c])
    if summary.get("eval_judge") and r["kind"] == "judge" and summary["eval_judge"] == r.get("judge_id"):
        lines.append("  note: the reranking judge also scored the win rate; a separate eval judge is less optimistic")
    return lines
