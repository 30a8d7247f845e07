"""Held-out evaluation: exact match, execution accuracy, verifier pass rate and mean length, overall and per cohort.

Why per cohort: an average can rise while one slice (say, value combinations never seen in training) collapses; the
regression gate can watch a chosen cohort, and the manifest keeps them all.

    result = evaluate_outputs(outputs, eval_prompts, verify=verifier.verify, rubric=rubric)
    result.metric("execution_accuracy")
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

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
