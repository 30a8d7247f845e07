"""Per-iteration monitoring beyond the primary metric (seed 002's checklist): response length, refusal rate,
verifier pass rate, and win rate on the anchor set.

Why: a policy can please its training judge while drifting somewhere the primary metric does not look (longer
answers, more refusals); these numbers go into the store, the manifest and the CLI summary every iteration.

    refusal_rate(["I'm sorry, I can't help with that.", "SELECT 1;"])  # 0.5
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

REFUSAL = re.compile(
    r"\b(i\s*(?:am|'m)\s+(?:sorry|unable|not able)|i\s+(?:can(?:not|'t)|won'?t|will not)\s+"
    r"(?:help|assist|answer|provide|do that|comply)|as an ai\b|i must decline|i'm afraid i can)",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text or ""))


def refusal_rate(texts: Sequence[str]) -> float:
    return sum(is_refusal(t) for t in texts) / len(texts) if texts else 0.0


def win_rate(winners: Sequence[str], *, seed: int = 0, n_resamples: int = 1000) -> dict[str, float | int | None]:
    """Win rate of side "a" (ties count half, invalid verdicts are left out) with a seeded bootstrap 95% CI."""
    scores = np.array([1.0 if w == "a" else 0.0 if w == "b" else 0.5 for w in winners if w != "invalid"])
    n_invalid = sum(w == "invalid" for w in winners)
    if scores.size == 0:
        return {"win_rate": None, "ci_low": None, "ci_high": None, "n": 0, "invalid": n_invalid}
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, scores.size, size=(n_resamples, scores.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"win_rate": float(scores.mean()), "ci_low": float(low), "ci_high": float(high), "n": int(scores.size),
            "invalid": n_invalid}


def disagreement_rate(left: Sequence[str], right: Sequence[str]) -> float | None:
    """Share of comparisons both judges decided (not invalid) on which their winners differ."""
    both = [(a, b) for a, b in zip(left, right) if a != "invalid" and b != "invalid"]
    return sum(a != b for a, b in both) / len(both) if both else None
