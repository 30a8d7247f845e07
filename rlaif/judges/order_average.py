"""Both orders, decided by the label probability averaged over them: position debiasing for weak local judges.

Why not ``DebiasedJudge``: it keeps a winner only when both orders agree. SmolLM2-135M answers "A" in nearly every
order (p(A) ~ 0.8 whatever the candidates), so with it every pair becomes a position-inconsistent tie and no
preference survives. Its preference is still there, in the probabilities: p(A | good first) is a little higher than
p(B | good second) is low. Averaging p(first candidate wins) over both orders cancels the position term and keeps the
content term; measured on hand-written good/bad answer pairs of the assistant sample, the average preferred the good
answer in 14 of 17 (margins 0.005-0.03, so ``tie_margin`` defaults to 0). Verdicts without label probabilities (API
judges) fall back to agreement of the winners, as ``DebiasedJudge`` does. A failed order fails the pair.

    judge = OrderAveragedJudge(LocalJudge(model_path)); judge.stats["mean_position_bias"]
"""

from __future__ import annotations

from typing import Any

from rlaif.core.fields import ConfigError
from rlaif.judges.base import Judge, JudgeStats, Verdict, usage_sum
from rlaif.judges.combinators import BothOrdersJudge


def _p_first(v: Verdict) -> float | None:
    p = v.criteria.get("label_probability") if isinstance(v.criteria, dict) else None
    if isinstance(p, dict) and isinstance(p.get("a"), (int, float)) and isinstance(p.get("b"), (int, float)):
        total = p["a"] + p["b"]
        return p["a"] / total if total > 0 else None
    return None


class OrderAveragedJudge(BothOrdersJudge):
    def __init__(self, inner: Judge, tie_margin: float = 0.0):
        if not 0.0 <= tie_margin < 1.0:
            raise ConfigError("judge.options.average_tie_margin", f"must be in [0, 1), got {tie_margin}")
        super().__init__(inner, f"order-averaged({inner.judge_id})",
                         JudgeStats(pairs=0, both_valid=0, averaged=0, ties=0, mean_position_bias=0.0))
        self.tie_margin = float(tie_margin)
        self._bias_sum = 0.0

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "order_averaged", "tie_margin": self.tie_margin,
                "inner": self.inner.describe()}

    def _combine(self, ab: Verdict, ba: Verdict) -> Verdict:
        failed = self._failed_order(ab, ba)
        if failed is not None:
            return failed
        raw = self.both_replies(ab, ba)
        usage = usage_sum([ab, ba])
        self.stats.add(both_valid=1)
        p_ab, p_ba = _p_first(ab), _p_first(ba)
        if p_ab is None or p_ba is None:  # no probabilities: keep a winner only when both orders agree
            unflipped = ba.unflipped()
            if ab.winner == unflipped.winner:
                return Verdict(ab.winner, (ab.confidence + unflipped.confidence) / 2,
                               f"both orders agree: {ab.rationale}", ab.criteria, raw, judge_id=self.judge_id,
                               **usage)
            return self._tie(f"orders disagree: {ab.winner} in AB, {unflipped.winner} in BA", raw, usage)
        # p(A wins) in order AB, and p(A wins) in order BA, where A is the second label
        p_a = (p_ab + (1.0 - p_ba)) / 2.0
        bias = (p_ab + p_ba) / 2.0 - 0.5  # > 0: the judge favours whatever comes first
        with self._lock:
            self._bias_sum += bias
            self.stats.add(averaged=1)
            self.stats.set(mean_position_bias=self._bias_sum / self.stats["averaged"])
        criteria = {"label_probability": {"a": p_a, "b": 1.0 - p_a}, "position_bias": bias}
        rationale = f"p(A) averaged over both orders {p_a:.4f} (AB {p_ab:.3f}, BA {1.0 - p_ba:.3f})"
        if abs(2.0 * p_a - 1.0) <= self.tie_margin:
            return self._tie(rationale, raw, usage, criteria)
        winner = "a" if p_a > 0.5 else "b"
        return Verdict(winner, max(p_a, 1.0 - p_a), rationale, criteria, raw, judge_id=self.judge_id, **usage)

    def _tie(self, rationale: str, raw: str, usage: dict[str, Any], criteria: dict[str, Any] | None = None
             ) -> Verdict:
        self.stats.add(ties=1)
        return Verdict("tie", 0.0, rationale, criteria or {}, raw, judge_id=self.judge_id, **usage)
