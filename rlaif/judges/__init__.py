"""Judges: one batched interface (``Judge.compare``), one class per kind, combinators, ranking, and the registry.

Modules: ``base`` (the interface, verdicts, stats), ``registry`` (kinds by name, specs, the wrapper order),
``simple``/``verifier``/``llm``/``local``/``auto`` (the kinds), ``combinators``/``order_average``/``cache`` (judges
built from judges), ``prompting`` (the rubric prompt and its parser), ``pricing`` (price tables, usage, estimates),
``ranking`` (N candidates from pairwise verdicts), ``fake`` (a scriptable judge for tests).

    judge = make_judge("verifier", verify=sandbox_verifier.verify); verdicts = judge.compare(comparisons, rubric)
"""

from rlaif.judges.base import WINNERS, Comparison, Judge, JudgeStats, Verdict
from rlaif.judges.registry import JUDGE_NAMES, JudgeSpec, make_judge, parse_spec

__all__ = ["Comparison", "Judge", "JudgeSpec", "JudgeStats", "Verdict", "WINNERS", "JUDGE_NAMES", "make_judge",
           "parse_spec"]
