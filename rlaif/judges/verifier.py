"""The verifier judge: compares two candidates by hard, executable checks instead of opinion.

For tasks with an oracle (SQL execution, unit tests) this is the most trustworthy judge: a candidate that passes more
(weighted) rubric checks wins, a candidate passing every hard check always beats one that fails any. Equal scores are
a tie, never a coin flip. Verification results are cached per (candidate, reference), so ranking N candidates
round-robin verifies each candidate once.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping, Sequence

from rlaif.core.fields import ConfigError
from rlaif.judges.base import BuildContext, Comparison, Judge, NestedSpec, NoOptions, Verdict
from rlaif.rubric import Rubric

VerifyFn = Callable[[str, str], Any]  # returns an object with .criteria() -> dict[str, bool]


class VerifierJudge(Judge):
    name = "verifier"
    reads_rubric_text = False
    rubric_reads = "only the criteria's weights, hard flags and verifiers (executed checks), never their wording"

    def __init__(self, verify: VerifyFn, judge_id: str = "verifier"):
        self.verify = verify
        self.judge_id = judge_id
        self._cache: dict[tuple[str, str], dict[str, bool]] = {}
        self._lock = threading.Lock()

    @classmethod
    def build(cls, options: NoOptions, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> "VerifierJudge":
        return cls(require_verifier(ctx, "judge 'verifier'"))

    def checks(self, candidate: str, reference: str) -> dict[str, bool]:
        key = (candidate, reference)
        with self._lock:
            hit = self._cache.get(key)
        if hit is None:
            hit = dict(self.verify(candidate, reference).criteria())
            with self._lock:
                self._cache[key] = hit
        return hit

    def prime(self, candidate: str, reference: str, checks: dict[str, bool]) -> None:
        """Reuse a verification already computed in the verify stage."""
        with self._lock:
            self._cache[(candidate, reference)] = dict(checks)

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        verdicts = []
        for c in comparisons:
            if c.reference is None:
                verdicts.append(Verdict.invalid(self.judge_id, "no reference answer to verify against"))
                continue
            ca, cb = self.checks(c.a, c.reference), self.checks(c.b, c.reference)
            sa, sb = rubric.score(ca), rubric.score(cb)
            criteria = {name: {"a": ca.get(name), "b": cb.get(name)} for name in sorted(set(ca) | set(cb))}
            if sa == sb:
                verdicts.append(Verdict("tie", 1.0, f"equal verifier score {sa:.3f}", criteria, judge_id=self.judge_id))
                continue
            winner = "a" if sa > sb else "b"
            failed = [n for n, v in criteria.items() if v["b" if winner == "a" else "a"] is False
                      and v[winner] is True]
            rationale = f"score {max(sa, sb):.3f} vs {min(sa, sb):.3f}; loser fails {', '.join(failed) or 'soft checks'}"
            verdicts.append(Verdict(winner, 1.0, rationale, criteria, judge_id=self.judge_id))
        return verdicts


def require_verifier(ctx: BuildContext, who: str) -> VerifyFn:
    """The task's verifier, or the error that says where to configure one."""
    if ctx.verify is None:
        raise ConfigError("verifier.kind", f"{who} needs a verifier: set verifier.kind in the config (e.g. sql)")
    return ctx.verify
