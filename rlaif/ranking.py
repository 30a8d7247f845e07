"""Ranking N candidates from pairwise verdicts.

Round-robin asks the judge about every unordered pair once (N(N-1)/2 calls) and ranks by Copeland score (wins minus
losses; ties and invalid verdicts count zero). Identical candidate texts are compared once, not against themselves:
sampling at low temperature often repeats an answer, and a judge call on two copies buys nothing.

    plan = round_robin_plan(candidate_texts); verdicts = judge.compare([...]); scores = copeland(n, results)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

from rlaif.judges.base import Verdict


@dataclass(frozen=True)
class Match:
    i: int
    j: int
    verdict: Verdict


def unique_indices(texts: Sequence[str]) -> list[int]:
    """Index of the first occurrence of each distinct (whitespace-stripped) text, in order."""
    seen: dict[str, int] = {}
    for idx, t in enumerate(texts):
        seen.setdefault(t.strip(), idx)
    return sorted(seen.values())


def round_robin_plan(texts: Sequence[str]) -> list[tuple[int, int]]:
    """The (i, j) pairs round-robin needs, over distinct texts only."""
    return list(combinations(unique_indices(texts), 2))


def copeland(texts: Sequence[str], matches: Sequence[Match]) -> list[float]:
    """Copeland score per candidate; duplicates of a text share its score."""
    score = [0.0] * len(texts)
    for m in matches:
        if m.verdict.winner == "a":
            score[m.i] += 1
            score[m.j] -= 1
        elif m.verdict.winner == "b":
            score[m.j] += 1
            score[m.i] -= 1
    first = {t.strip(): idx for idx, t in reversed(list(enumerate(texts)))}
    return [score[first[t.strip()]] for t in texts]


def best_and_worst(texts: Sequence[str], scores: Sequence[float]) -> tuple[int, int]:
    """Highest and lowest scoring distinct candidates; ties broken by sample order for determinism."""
    candidates = unique_indices(texts)
    best = max(candidates, key=lambda i: (scores[i], -i))
    worst = min(candidates, key=lambda i: (scores[i], -i))
    return best, worst
