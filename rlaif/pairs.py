"""Pair building: turn ranked candidates into (chosen, rejected) pairs, and record why any prompt yields none.

Every prompt produces exactly one decision row, kept or dropped with a reason, so the Browse page and the manifest can
say how many pairs each filter removed (peers silently lose them). Reasons:
``identical_candidates``, ``all_invalid``, ``no_contrast``, ``undecided_ranking``, ``tie``, ``invalid_verdict``,
``conflict``,
``chosen_fails_hard_checks``, ``length_skew``, ``low_confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rlaif.config import PairConfig
from rlaif.judges.ranking import Match, RankingResult, unique_indices
from rlaif.rubric import Rubric


@dataclass(frozen=True)
class PairDecision:
    kept: bool
    drop_reason: str | None
    chosen: int | None
    rejected: int | None
    scores: tuple[float, ...]
    confidence: float
    calls: int


def _direct(matches: Sequence[Match], i: int, j: int):
    for m in matches:
        if (m.i, m.j) == (i, j):
            return m.verdict, "a"
        if (m.i, m.j) == (j, i):
            return m.verdict, "b"
    return None, None


def decide_pair(texts: Sequence[str], ranking: RankingResult, cfg: PairConfig, rubric: Rubric,
                checks: Sequence[dict[str, bool] | None] | None = None) -> PairDecision:
    """Take the ranking's best vs worst and apply the filters, in a fixed order.

    Round-robin's chosen and rejected are the Copeland extremes of all its matches; a tie between them is
    ``no_contrast``. A knockout's are its bracket winners, valid only when the brackets were decisive (else
    ``undecided_ranking``); the two need not have met: its chosen won every match it played and its rejected lost
    every one, so their order is implied and the weakest of those verdicts' confidences is the pair's.
    """
    matches, scores, calls = ranking.matches, ranking.scores, len(ranking.matches)

    def drop(reason, chosen=None, rejected=None, confidence=0.0):
        return PairDecision(False, reason, chosen, rejected, scores, confidence, calls)

    if len(unique_indices(texts)) < 2:
        return drop("identical_candidates")
    if matches and all(not m.verdict.is_valid for m in matches):
        return drop("all_invalid")
    chosen, rejected = ranking.chosen, ranking.rejected
    implied = ranking.strategy != "round_robin"
    if implied and not ranking.decisive:
        return drop("undecided_ranking")
    if not implied and scores[chosen] == scores[rejected]:
        return drop("no_contrast", chosen, rejected)
    verdict, chosen_side = _direct(matches, chosen, rejected)
    if verdict is None and implied:
        played = [m.verdict.confidence for m in matches if {m.i, m.j} & {chosen, rejected}]
        confidence = min(played) if played else 0.0
    else:
        confidence = verdict.confidence if verdict is not None else 0.0
        if verdict is None or verdict.winner == "invalid":
            return drop("invalid_verdict", chosen, rejected)
        if verdict.winner == "tie":
            return drop("tie", chosen, rejected, confidence)
        if verdict.winner != chosen_side:
            return drop("conflict", chosen, rejected, confidence)
    if cfg.require_chosen_passes_hard and checks is not None and checks[chosen] is not None:
        hard = rubric.hard_verifiers
        if any(not checks[chosen].get(v, True) for v in hard):
            return drop("chosen_fails_hard_checks", chosen, rejected, confidence)
    if cfg.max_length_ratio is not None:
        lc, lr = len(texts[chosen].strip()), len(texts[rejected].strip())
        if max(lc, lr) > cfg.max_length_ratio * max(1, min(lc, lr)):
            return drop("length_skew", chosen, rejected, confidence)
    if confidence < cfg.min_confidence:
        return drop("low_confidence", chosen, rejected, confidence)
    return PairDecision(True, None, chosen, rejected, scores, confidence, calls)
