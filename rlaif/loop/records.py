"""Stage outputs turned into store rows, and the ids that tie the rows together: the one place for both.

Why ids derived from content and position, not random: a resumed or replayed iteration writes the same candidate,
judgement and pair ids as the interrupted one, and a pair names its chosen and rejected candidates by the very ids
their candidate rows got. Each id is computed once (``IterationIds``) and passed along, never re-derived.

    ids = IterationIds(run_id, iteration, prompts)
    store.candidates.add_many(candidate_rows(ids, prompts, candidates, verified, rubric))
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from rlaif.config import RunConfig
from rlaif.datasets import PromptRecord
from rlaif.evaluation import EvalResult
from rlaif.judges import Comparison, Judge
from rlaif.judges.bias import bias_figures, ordered_from_verdict
from rlaif.judges.ranking import RankingResult
from rlaif.pairs import PairDecision
from rlaif.rubric import Rubric
from store.content_hash import content_hash
from store.pairs import MODEL_OUTPUT_COLUMNS as PAIR_OUTPUT_COLUMNS
from store.secrets_guard import redact_rows


def short_id(*parts: Any) -> str:
    """16 hex characters of sha256 over the parts."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def new_run_id(cfg: RunConfig, train_id: str, eval_id: str, rubric_version: str, judge_id: str,
               base_hash: str) -> str:
    """A run's id: its inputs plus the clock, so two runs of the same config are two runs."""
    return "run-" + short_id(cfg.config_hash(), train_id, eval_id, rubric_version, judge_id, base_hash,
                             time.time_ns())


@dataclass
class IterationIds:
    """The ids of one iteration's rows; candidate ids are computed once per (prompt, sample slot)."""

    run_id: str
    iteration: int
    _candidates: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)

    def candidate(self, prompt_id: str, index: int) -> str:
        key = (prompt_id, index)
        if key not in self._candidates:
            self._candidates[key] = short_id(self.run_id, self.iteration, prompt_id, index)
        return self._candidates[key]

    def judgement(self, prompt_id: str, i: int, j: int) -> str:
        return short_id(self.run_id, self.iteration, prompt_id, i, j)

    def pair(self, prompt_id: str) -> str:
        return short_id(self.run_id, self.iteration, prompt_id, "pair")

    def anchor_pair(self, item_id: str) -> str:
        return short_id(self.run_id, self.iteration, item_id, "anchor")


def candidate_rows(ids: IterationIds, prompts: Sequence[PromptRecord], candidates, verified,
                   rubric: Rubric) -> list[dict[str, Any]]:
    rows = []
    for k, (p, group) in enumerate(zip(prompts, candidates.samples)):
        for s, result in zip(group, verified.results[k]):
            rows.append({
                "candidate_id": ids.candidate(p.id, s.sample_index), "run_id": ids.run_id,
                "iteration": ids.iteration, "prompt_id": p.id, "text": s.text, "temperature": s.temperature,
                "seed": s.seed, "sample_index": s.sample_index, "n_tokens": s.n_tokens,
                "verification": result.to_dict() if result is not None else None,
                "score": rubric.score(result.criteria()) if result is not None else None})
    return rows


def judgement_rows(ids: IterationIds, prompts: Sequence[PromptRecord], candidates,
                   rankings: Sequence[RankingResult], judge: Judge, rubric: Rubric) -> list[dict[str, Any]]:
    rows = []
    for k, (p, ranking) in enumerate(zip(prompts, rankings)):
        texts = candidates.texts(k)
        for m in ranking.matches:
            v = m.verdict
            comparison = Comparison(p.prompt, texts[m.i], texts[m.j], p.reference, p.id)
            rows.append({
                "judgement_id": ids.judgement(p.id, m.i, m.j), "run_id": ids.run_id, "iteration": ids.iteration,
                "prompt_id": p.id, "candidate_a": ids.candidate(p.id, m.i), "candidate_b": ids.candidate(p.id, m.j),
                "judge_id": v.judge_id or judge.judge_id, "winner": v.winner, "confidence": v.confidence,
                "rationale": v.rationale, "criteria": v.criteria, "raw_reply": v.raw_reply,
                "tokens_in": v.tokens_in, "tokens_out": v.tokens_out, "cost_usd": v.cost_usd,
                "latency_ms": v.latency_ms, "cache_key": judge.cache_key(comparison, rubric)})
    return rows


def judge_bias(candidates, rankings: Sequence[RankingResult]) -> dict[str, Any]:
    """The training judge's bias figures on this iteration's judgements (``rlaif.judges.bias``), for the manifest:
    first-shown and longer-answer shares and the invalid rate from every match; the position-flip rate where the
    judge asked both orders (``debias``), else None (ranking asks each pair once)."""
    return bias_figures([ordered_from_verdict(candidates.texts(k)[m.i], candidates.texts(k)[m.j], m.verdict.winner,
                                              m.verdict.rationale, m.verdict.criteria)
                         for k, ranking in enumerate(rankings) for m in ranking.matches]).to_dict()


def pair_rows(ids: IterationIds, prompts: Sequence[PromptRecord], candidates, decisions: Sequence[PairDecision],
              rubric: Rubric, judge_id: str) -> list[dict[str, Any]]:
    """One row per prompt, kept or dropped; prompt and completions written as the policy sees them in training."""
    rows = []
    for k, (p, d) in enumerate(zip(prompts, decisions)):
        texts, r = candidates.texts(k), candidates.rendering
        rows.append({
            "pair_id": ids.pair(p.id), "run_id": ids.run_id, "iteration": ids.iteration, "prompt_id": p.id,
            "prompt": r.pair_prompt(p.prompt),
            "chosen": r.completion(texts[d.chosen]) if d.chosen is not None else None,
            "rejected": r.completion(texts[d.rejected]) if d.rejected is not None else None,
            "chosen_candidate": ids.candidate(p.id, d.chosen) if d.chosen is not None else None,
            "rejected_candidate": ids.candidate(p.id, d.rejected) if d.rejected is not None else None,
            "chosen_score": d.scores[d.chosen] if d.chosen is not None else None,
            "rejected_score": d.scores[d.rejected] if d.rejected is not None else None,
            "kept": d.kept, "drop_reason": d.drop_reason, "source": "rlaif",
            "rubric_version": rubric.version, "judge_id": judge_id, "confidence": d.confidence})
    return rows


def redact_pair_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Pair rows with key-shaped text in chosen/rejected replaced by ``[redacted]``, and how many were replaced.

    Done before the rows are stored *and* trained on, so DPO sees exactly what the store keeps (the manifest's
    dataset hash stays recomputable from the stored pairs) and the policy is not taught to print key-like strings.
    """
    return redact_rows(rows, PAIR_OUTPUT_COLUMNS)


def blend_pair_rows(ids: IterationIds, blended: Sequence[dict[str, Any]], rubric: Rubric) -> list[dict[str, Any]]:
    """Labelled anchor pairs as kept pairs of the iteration, tagged with their source (human or oracle)."""
    return [{"pair_id": ids.anchor_pair(r["anchor_item_id"]), "run_id": ids.run_id, "iteration": ids.iteration,
             "prompt_id": r["anchor_item_id"], "prompt": r["prompt"], "chosen": r["chosen"],
             "rejected": r["rejected"], "kept": True, "drop_reason": None, "source": r["source"],
             "rubric_version": rubric.version, "judge_id": None, "confidence": 1.0} for r in blended]


def eval_output_rows(run_id: str, iteration: int, result: EvalResult) -> list[dict[str, Any]]:
    return [{"run_id": run_id, "iteration": iteration, "prompt_id": r["prompt_id"], "cohort": r["cohort"],
             "output": r["output"], "n_tokens": r["n_tokens"], "checks": r.get("checks")} for r in result.rows]


def dropped_counts(decisions: Sequence[PairDecision]) -> dict[str, int]:
    """Dropped pairs per reason, in the order the reasons first occur."""
    counts: dict[str, int] = {}
    for d in decisions:
        if not d.kept:
            counts[d.drop_reason] = counts.get(d.drop_reason, 0) + 1  # type: ignore[index]
    return counts


def source_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("source") or "rlaif"] = counts.get(r.get("source") or "rlaif", 0) + 1
    return counts


def pairs_hash(rows: Sequence[dict[str, Any]]) -> str:
    """Dataset hash of the training pairs: exactly what DPO saw, in order."""
    return content_hash([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])


def throughput(timings: dict[str, float], new_tokens: dict[str, int]) -> dict[str, dict[str, float]]:
    """New tokens per second of each generating stage (sample, eval): the figure that batching and the device move,
    recorded beside the timings so a slower run can be told apart from a run that simply generated more."""
    out: dict[str, dict[str, float]] = {}
    for stage, n in new_tokens.items():
        seconds = timings.get(stage)
        if seconds is not None:
            out[stage] = {"new_tokens": int(n), "seconds": round(seconds, 3),
                          "tokens_per_s": round(n / seconds, 1) if seconds > 0 else 0.0}
    return out
