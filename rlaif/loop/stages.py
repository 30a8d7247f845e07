"""The stages of one loop iteration, each a function of its inputs: sample, verify, rank, decide pairs, blend,
train, evaluate, monitor. None of them touches the store's tables of the run or the loop's state; the pipeline
(``rlaif.loop.pipeline``) calls them in order and ``rlaif.loop.records`` turns their outputs into rows.

Why functions and not pipeline methods: each stage can then be read, tested and reused (best-of-N samples and ranks
with the same code) without a run around it, and what flows from one stage to the next is visible in the signatures.

    candidates = sample(policy, prompts, cfg, iteration=1)
    verified = verify(prompts, candidates, verifier, judge)
    rankings = rank(judge, prompts, candidates, rubric, cfg.judge)
    decisions = decide_pairs(prompts, candidates, rankings, verified, cfg.pairs, rubric)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rlaif.anchors.labelling import resolved_labels
from rlaif.config import JudgeConfig, PairConfig, RunConfig
from rlaif.datasets import PromptRecord
from rlaif.evaluation import EvalResult, evaluate_outputs, length_controlled_win_rate
from rlaif.human_blend import blend_rows
from rlaif.judges import Comparison, Judge
from rlaif.judges.ranking import RankingResult, RankingTask, rank_candidates
from rlaif.monitoring import disagreement_rate, win_rate
from rlaif.pairs import PairDecision, decide_pair
from rlaif.policy import Policy, Rendering, Sample, greedy, sample_candidates
from rlaif.rubric import Rubric
from rlaif.serving.generator import ServerGenerator
from rlaif.verifiers import Verifier, VerifierResult

Progress = Callable[[int, int], None]


def _quiet(done: int, total: int) -> None:
    """The default progress callback: report nothing."""


class RunCancelled(Exception):
    """The run's cancel event was set (between stages, or inside one); the run is recorded as cancelled."""


# ---------------------------------------------------------------------------------------------------------------------
# sample


@dataclass(frozen=True)
class Candidates:
    """N samples per prompt, and how the policy writes prompts and completions as training text."""

    samples: list[list[Sample]]
    rendering: Rendering

    def texts(self, k: int) -> list[str]:
        return [s.text for s in self.samples[k]]


def sample(policy: Policy | ServerGenerator, prompts: Sequence[PromptRecord], cfg: RunConfig, iteration: int, *,
           on_batch: Progress = _quiet, should_stop: Callable[[], bool] | None = None) -> Candidates:
    """``sampling.candidates_per_prompt`` samples per prompt over the temperature/seed ladder of this iteration,
    in process (a ``Policy``) or on inference servers (a ``ServerGenerator``: a seed per candidate)."""
    ladder = dict(n=cfg.sampling.candidates_per_prompt, temperatures=cfg.sampling.temperatures, seed=cfg.seed,
                  iteration=iteration, max_new_tokens=cfg.policy.max_new_tokens, top_p=cfg.sampling.top_p,
                  on_batch=on_batch, should_stop=should_stop)
    try:
        if isinstance(policy, ServerGenerator):
            samples = policy.sample_candidates([p.prompt for p in prompts], [p.id for p in prompts], **ladder)
        else:
            samples = sample_candidates(policy, [p.prompt for p in prompts], batch_size=cfg.sampling.batch_size,
                                        length_sorted=cfg.sampling.length_sorted, **ladder)
    except InterruptedError as err:
        raise RunCancelled(str(err)) from None
    return Candidates(samples, policy.rendering)


# ---------------------------------------------------------------------------------------------------------------------
# verify


@dataclass(frozen=True)
class Verified:
    """The verifier's result per prompt and candidate (None without a verifier or a reference)."""

    results: list[list[VerifierResult | None]]

    def checks(self, k: int) -> list[dict[str, bool] | None]:
        return [r.criteria() if r is not None else None for r in self.results[k]]


def verify(prompts: Sequence[PromptRecord], candidates: Candidates, verifier: Verifier | None, judge: Judge, *,
           on_progress: Progress = _quiet, check_cancel: Callable[[], None] = lambda: None) -> Verified:
    """Hard checks on every candidate, once per distinct (text, reference); each result is handed to the judge
    (``prime``) so a verifier judge does not verify the same candidate again."""
    results: list[list[VerifierResult | None]] = []
    seen: dict[tuple[str, str], VerifierResult] = {}
    for k, (p, group) in enumerate(zip(prompts, candidates.samples)):
        check_cancel()
        row: list[VerifierResult | None] = []
        for s in group:
            result = None
            if verifier is not None and p.reference is not None:
                key = (s.text, p.reference)
                if key not in seen:
                    seen[key] = verifier.verify(s.text, p.reference)
                result = seen[key]
                judge.prime(s.text, p.reference, result.criteria())
            row.append(result)
        results.append(row)
        if (k + 1) % 25 == 0 or k + 1 == len(prompts):
            on_progress(k + 1, len(prompts))
    return Verified(results)


# ---------------------------------------------------------------------------------------------------------------------
# rank and decide


def rank(judge: Judge, prompts: Sequence[PromptRecord], candidates: Candidates, rubric: Rubric, cfg: JudgeConfig, *,
         on_round: Progress = _quiet) -> list[RankingResult]:
    """Each prompt's candidates ranked by the judge (all prompts' comparisons of a round batched together, in
    ``judge.batch_size`` chunks; a judge answering through a batch API gets each round whole: one batch, one wait)."""
    tasks = [RankingTask(p.prompt, candidates.texts(k), p.reference, p.id) for k, p in enumerate(prompts)]
    chunk = max(1, sum(len(t.texts) ** 2 for t in tasks)) if judge.wants_whole_rounds else cfg.batch_size
    return rank_candidates(judge, tasks, rubric, cfg.ranking, confirm=False, chunk=chunk, on_round=on_round)


def decide_pairs(prompts: Sequence[PromptRecord], candidates: Candidates, rankings: Sequence[RankingResult],
                 verified: Verified, cfg: PairConfig, rubric: Rubric) -> list[PairDecision]:
    """One decision per prompt: best vs worst of its ranking, kept or dropped with the reason."""
    return [decide_pair(candidates.texts(k), rankings[k], cfg, rubric, verified.checks(k)) for k in range(len(prompts))]


# ---------------------------------------------------------------------------------------------------------------------
# blend and train


def blend(store, anchor_set_id: str | None, cfg: RunConfig, iteration: int, n_rlaif: int,
          rendering: Rendering) -> list[dict[str, Any]]:
    """Labelled anchor pairs mixed into this iteration's DPO data (``training.human_blend``), rendered exactly as
    the iteration's RLAIF pairs were; none without an anchor set or RLAIF pairs."""
    if cfg.training.human_blend <= 0 or not anchor_set_id or n_rlaif == 0:
        return []
    return blend_rows(store, anchor_set_id, cfg.calibration.annotators, fraction=cfg.training.human_blend,
                      n_rlaif=n_rlaif, seed=cfg.seed + iteration, rendering=rendering)


def train(model_path: str, rows: list[dict[str, Any]], cfg: RunConfig, out_dir: Path, iteration: int, *,
          on_step: Progress = _quiet, cancel: threading.Event | None = None):
    """DPO with a LoRA adapter on the rows (as TRL rows: conversational in chat mode); the merged model goes to
    ``out_dir/model``. ``training.launcher: accelerate`` runs it as an ``accelerate launch`` subprocess."""
    from rlaif.training import train_dpo, train_dpo_launched  # TRL loads here, not when the loop module is imported

    rendering = Rendering.of_config(cfg.policy)
    trl_rows = [rendering.trl_row(r) for r in rows]
    if cfg.training.launcher == "accelerate":
        return train_dpo_launched(model_path, trl_rows, cfg.training, out_dir, seed=cfg.seed + iteration,
                                  device=cfg.policy.device, on_step=on_step, cancel=cancel,
                                  accelerate_config=cfg.resolve(cfg.training.accelerate_config))
    return train_dpo(model_path, trl_rows, cfg.training, out_dir, seed=cfg.seed + iteration, device=cfg.policy.device,
                     on_step=on_step, cancel=cancel)


# ---------------------------------------------------------------------------------------------------------------------
# evaluate and monitor


def anchor_items(store, anchor_set_id: str | None, cfg: RunConfig) -> list[dict[str, Any]]:
    """Anchor items with a decisive label, each with its labelled-better response (for the anchor win rate)."""
    if not anchor_set_id or not cfg.monitoring.anchor_win_rate:
        return []
    labels = resolved_labels(store, anchor_set_id, annotators=cfg.calibration.annotators, split="all")
    items = []
    for item in store.anchors.items(anchor_set_id, split="all"):
        label = labels.get(item["item_id"])
        if label is not None and label.label in ("A", "B"):
            preferred = item["response_a"] if label.label == "A" else item["response_b"]
            items.append({**item, "preferred": preferred})
    return items[: cfg.monitoring.anchor_max_items]


def evaluate(policy: Policy | ServerGenerator, prompts: Sequence[PromptRecord], cfg: RunConfig, verify,
             rubric: Rubric, anchors: Sequence[dict[str, Any]] = (), *, on_batch: Progress = _quiet
             ) -> tuple[EvalResult, list[tuple[dict[str, Any], str]]]:
    """Greedy answers to the held-out prompts, scored per cohort; and the policy's answers to the anchor prompts
    (in process, or on inference servers at temperature 0)."""
    def decode(texts: list[str], progress: Progress | None = None) -> list[tuple[str, int]]:
        if isinstance(policy, ServerGenerator):
            return policy.greedy(texts, max_new_tokens=cfg.policy.max_new_tokens, on_batch=progress)
        return greedy(policy, texts, batch_size=cfg.eval.batch_size, max_new_tokens=cfg.policy.max_new_tokens,
                      on_batch=progress, length_sorted=cfg.sampling.length_sorted)

    outputs = decode([p.prompt for p in prompts], on_batch)
    anchor_outputs = []
    if anchors:
        texts = decode([a["prompt"] for a in anchors])
        anchor_outputs = [(a, text) for a, (text, _) in zip(anchors, texts)]
    return evaluate_outputs(outputs, prompts, verify=verify, rubric=rubric), anchor_outputs


def judged_win_rate(winners: Sequence[str], comparisons: Sequence[Comparison], seed: int) -> dict[str, Any]:
    """The raw win rate of side a (with its CI) and, beside it, the length-controlled one (same verdicts)."""
    lengths = [(len(c.a.strip()), len(c.b.strip())) for c in comparisons]
    return {**win_rate(winners, seed=seed),
            **length_controlled_win_rate(winners, [a for a, _ in lengths], [b for _, b in lengths])}


def monitor(iteration: int, prompts: Sequence[PromptRecord], outputs: Callable[[int], dict[str, str]], judge: Judge,
            eval_judge: Judge | None, rubric: Rubric, cfg: RunConfig,
            anchor_outputs: Sequence[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """Anchor win rate, and the eval judge's win rates vs the previous iteration and the base (with the training
    judge's disagreement on the same comparisons). ``outputs(k)`` gives iteration k's eval outputs by prompt id."""
    out: dict[str, Any] = {"metrics": {}}
    scorer = eval_judge or judge
    if anchor_outputs:
        comps = [Comparison(a["prompt"], text, a["preferred"], a.get("reference"), a["item_id"])
                 for a, text in anchor_outputs]
        wr = judged_win_rate([v.winner for v in scorer.compare(comps, rubric)], comps, cfg.seed)
        out["anchor_win_rate"] = {**wr, "judge": scorer.judge_id}
        if wr["win_rate"] is not None:
            out["metrics"]["anchor_win_rate"] = wr["win_rate"]
        if wr["lc_win_rate"] is not None:
            out["metrics"]["anchor_lc_win_rate"] = wr["lc_win_rate"]
    if eval_judge is not None and iteration == 0:
        out["metrics"]["eval_win_rate_vs_base"] = 0.5  # the base against itself: the judge-based baseline
        out["metrics"]["eval_lc_win_rate_vs_base"] = 0.5
    if eval_judge is None or iteration == 0:
        return out
    prompts = list(prompts)[: cfg.eval_judge.max_prompts] if cfg.eval_judge.max_prompts else list(prompts)
    current = outputs(iteration)
    for label, other in (("previous", iteration - 1), ("base", 0)):
        if label == "base" and iteration == 1:
            out["eval_vs_base"] = out["eval_vs_previous"]
            out["metrics"]["eval_win_rate_vs_base"] = out["metrics"].get("eval_win_rate_vs_previous")
            out["metrics"]["eval_lc_win_rate_vs_base"] = out["metrics"].get("eval_lc_win_rate_vs_previous")
            continue
        before = outputs(other)
        comps = [Comparison(p.prompt, current[p.id], before[p.id], p.reference, p.id)
                 for p in prompts if p.id in current and p.id in before]
        verdicts = [v.winner for v in eval_judge.compare(comps, rubric)]
        wr = judged_win_rate(verdicts, comps, cfg.seed)
        out[f"eval_vs_{label}"] = {**wr, "judge": eval_judge.judge_id}
        if wr["win_rate"] is not None:
            out["metrics"][f"eval_win_rate_vs_{label}"] = wr["win_rate"]
        if wr["lc_win_rate"] is not None:
            out["metrics"][f"eval_lc_win_rate_vs_{label}"] = wr["lc_win_rate"]
        if label == "previous":
            training = [v.winner for v in judge.compare(comps, rubric)]
            rate = disagreement_rate(verdicts, training)
            out["judge_disagreement_rate"] = rate
            if rate is not None:
                out["metrics"]["judge_disagreement_rate"] = rate
    out["metrics"] = {k: v for k, v in out["metrics"].items() if v is not None}
    return out
