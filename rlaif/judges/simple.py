"""Deterministic judges that need no model: a length stub for CI and a verbosity-biased judge for gate demos.

The biased judge is deliberately wrong in a way real LLM judges often are (it prefers the longer answer); the
calibration gate and the regression gate exist to catch judges like it.
"""

from __future__ import annotations

from typing import Sequence

from rlaif.judges.base import Comparison, Judge, Verdict
from rlaif.rubric import Rubric


class LengthJudge(Judge):
    """Prefers the shorter (``prefer='shorter'``) or longer (``prefer='longer'``) candidate; equal length is a tie."""

    def __init__(self, prefer: str = "shorter", judge_id: str | None = None):
        if prefer not in ("shorter", "longer"):
            raise ValueError(f"prefer must be 'shorter' or 'longer', got {prefer!r}")
        self.prefer = prefer
        self.judge_id = judge_id or f"length-{prefer}"

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        verdicts = []
        for c in comparisons:
            la, lb = len(c.a.strip()), len(c.b.strip())
            if la == lb:
                verdicts.append(Verdict("tie", 0.5, "equal length", judge_id=self.judge_id))
                continue
            a_wins = (la < lb) if self.prefer == "shorter" else (la > lb)
            confidence = min(1.0, abs(la - lb) / max(la, lb, 1))
            verdicts.append(Verdict("a" if a_wins else "b", confidence,
                                    f"{self.prefer} answer preferred ({la} vs {lb} chars)", judge_id=self.judge_id))
        return verdicts


class StubJudge(LengthJudge):
    """The deterministic stub: free, instant, reproducible; for CI and smoke tests, not for real preferences."""

    name = "stub"
    reads_rubric_text = False
    rubric_reads = "nothing of the rubric: it prefers the shorter answer"

    def __init__(self):
        super().__init__(prefer="shorter", judge_id="stub")


class BiasedJudge(LengthJudge):
    """A verbosity-biased judge: always prefers the longer candidate, whatever its correctness."""

    name = "biased"
    reads_rubric_text = False
    rubric_reads = "nothing of the rubric: it prefers the longer answer"

    def __init__(self):
        super().__init__(prefer="longer", judge_id="biased-verbose")
