"""Judges: one batched interface (`Judge.compare`) and its implementations.

    judge = make_judge("verifier", verify=sandbox_verifier.verify); verdicts = judge.compare(comparisons, rubric)
"""

from rlaif.judges.base import Comparison, Judge, Verdict, WINNERS
from rlaif.judges.registry import JUDGE_NAMES, make_judge

__all__ = ["Comparison", "Judge", "Verdict", "WINNERS", "JUDGE_NAMES", "make_judge"]
