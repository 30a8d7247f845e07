"""Held-out evaluation: exact match, execution accuracy, verifier pass rate and mean length, overall and per cohort;
and the length-controlled win rate that stands beside every judge-based win rate.

Why per cohort: an average can rise while one slice (say, value combinations never seen in training) collapses; the
regression gate can watch a chosen cohort, and the manifest keeps them all. Why length-controlled: LLM judges prefer
longer answers, so a policy can "win" by growing verbose; the AlpacaEval-2 correction asks what the win rate would be
at equal length (:func:`length_controlled_win_rate`).

    result = evaluate_outputs(outputs, eval_prompts, verify=verifier.verify, rubric=rubric)
    result.metric("execution_accuracy")
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from rlaif.datasets import PromptRecord
from rlaif.monitoring import refusal_rate
from rlaif.rubric import Rubric
from rlaif.verifiers import task_success

ALL = "all"


def normalize_answer(text: str) -> str:
    """Whitespace-insensitive form for exact match: first statement, collapsed spaces, no trailing semicolon."""
    head = text.strip().split(";", 1)[0]
    return re.sub(r"\s+", " ", head).strip()


@dataclass
class EvalResult:
    metrics: dict[str, dict[str, float]]  # cohort -> metric -> value
    counts: dict[str, int]  # cohort -> n
    rows: list[dict[str, Any]] = field(default_factory=list)

    def metric(self, name: str, cohort: str = ALL) -> float:
        try:
            return self.metrics[cohort][name]
        except KeyError:
            known = sorted(self.metrics.get(cohort, {})) if cohort in self.metrics else sorted(self.metrics)
            raise KeyError(f"no metric {name!r} for cohort {cohort!r}; known: {known}") from None

    def to_store_rows(self, run_id: str, iteration: int) -> list[dict[str, Any]]:
        return [{"run_id": run_id, "iteration": iteration, "metric": m, "cohort": c, "value": v, "n": self.counts[c]}
                for c, ms in self.metrics.items() for m, v in ms.items()]

    def summary(self) -> dict[str, dict[str, float]]:
        return {c: dict(ms) for c, ms in self.metrics.items()}


def evaluate_outputs(outputs: Sequence[tuple[str, int]], prompts: Sequence[PromptRecord], *,
                     verify: Callable[[str, str], Any] | None = None, rubric: Rubric | None = None) -> EvalResult:
    """Score greedy outputs (text, n_tokens) against the prompts' references."""
    if len(outputs) != len(prompts):
        raise ValueError(f"{len(outputs)} outputs for {len(prompts)} prompts")
    rows = []
    hard = rubric.hard_verifiers if rubric else set()
    for (text, n_tokens), p in zip(outputs, prompts):
        row: dict[str, Any] = {"prompt_id": p.id, "cohort": p.cohort, "output": text, "n_tokens": n_tokens,
                               "exact_match": p.reference is not None
                               and normalize_answer(text) == normalize_answer(p.reference)}
        if verify is not None and p.reference is not None:
            checks = dict(verify(text, p.reference).criteria())
            row["checks"] = checks
            # the task's success criterion: SQL result match, unit tests passing, JSON equal to the reference, ...
            row["execution_accuracy"] = bool(task_success(checks))
            row["verifier_pass_rate"] = all(checks.get(v, False) for v in hard) if hard else all(checks.values())
        rows.append(row)

    cohorts = [ALL] + sorted({p.cohort for p in prompts})
    metrics: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for cohort in cohorts:
        sel = [r for r in rows if cohort == ALL or r["cohort"] == cohort]
        counts[cohort] = len(sel)
        m = {"exact_match": sum(r["exact_match"] for r in sel) / len(sel),
             "mean_length": sum(r["n_tokens"] for r in sel) / len(sel),
             "refusal_rate": refusal_rate([r["output"] for r in sel])}
        for name in ("execution_accuracy", "verifier_pass_rate"):
            scored = [r[name] for r in sel if name in r]
            if scored:
                m[name] = sum(scored) / len(scored)
        metrics[cohort] = m
    return EvalResult(metrics, counts, rows)


# ---------------------------------------------------------------------------------------------------------------------
# Length-controlled win rate

#: Inverse L2 strength on the length term. Weak, so length explains all it can: with a strong penalty a judge that
#: only rewards length would keep part of its bias in the intercept, i.e. in the "length-controlled" number.
LC_REGULARISATION_C = 100.0


def length_controlled_win_rate(winners: Sequence[str], len_a: Sequence[float], len_b: Sequence[float], *,
                               C: float = LC_REGULARISATION_C) -> dict[str, float | int | None]:
    """Win rate of side "a" at equal length, AlpacaEval-2 style (Dubois et al. 2024).

    A logistic regression of the win indicator on ``tanh((len_a - len_b) / std)`` (scikit-learn; ties enter as half a
    win and half a loss, invalid verdicts are left out), read at zero length difference: ``sigmoid(intercept)``.
    ``length_coef`` > 0 means longer answers win more. The estimate needs comparisons near equal length to say
    anything there; ``None`` when the verdicts hold one outcome only (all wins, say: nothing to regress).
    """
    if not len(winners) == len(len_a) == len(len_b):
        raise ValueError(f"{len(winners)} verdicts for {len(len_a)} / {len(len_b)} lengths")
    kept = [(w, float(a) - float(b)) for w, a, b in zip(winners, len_a, len_b) if w in ("a", "b", "tie")]
    win = np.array([1.0 if w == "a" else 0.0 if w == "b" else 0.5 for w, _ in kept])
    out: dict[str, float | int | None] = {"lc_win_rate": None, "length_coef": None, "n": len(kept)}
    if not kept or (win == win[0]).all() and win[0] != 0.5:
        return out
    diff = np.array([d for _, d in kept])
    scale = float(diff.std()) or 1.0
    x = np.tanh(diff / scale)
    # each verdict as a weighted win row and a weighted loss row: a tie is half of each
    features = np.concatenate([x, x])[:, None]
    target = np.concatenate([np.ones_like(win), np.zeros_like(win)])
    weight = np.concatenate([win, 1.0 - win])
    keep = weight > 0
    from sklearn.linear_model import LogisticRegression  # seconds to import: only where a win rate is computed

    model = LogisticRegression(C=C).fit(features[keep], target[keep], sample_weight=weight[keep])
    out["lc_win_rate"] = float(1.0 / (1.0 + np.exp(-model.intercept_[0])))
    out["length_coef"] = float(model.coef_[0, 0])
    return out
