"""Judges built from judges: both orders, ensembles, cheap-then-expensive tiers, verifiers before opinions.

Each combinator is itself a ``Judge`` (batched ``compare``), so they nest: ``Tiered(Debiased(local), Debiased(api))``.
Invalid verdicts are handled before any un-flipping and never become winners (TRL's last API judge turned a failed
verdict on a flipped pair into an out-of-range index; distilabel never swaps order at all).

    judge = DebiasedJudge(AnthropicJudge(settings)); verdicts = judge.compare(comparisons, rubric)
    judge.stats["flip_rate"]   # share of pairs whose verdict changed with the order
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Sequence

from rlaif.judges.base import Comparison, Judge, Verdict
from rlaif.judges.verifier import VerifierJudge
from rlaif.rubric import Rubric


def _usage_sum(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    return {"tokens_in": sum(v.tokens_in for v in verdicts), "tokens_out": sum(v.tokens_out for v in verdicts),
            "cost_usd": sum(v.cost_usd for v in verdicts), "latency_ms": max((v.latency_ms for v in verdicts),
                                                                            default=0.0)}


def _cost_estimate(judges: Sequence[Judge], n: int, prompt_tokens: int, output_tokens: int | None) -> float | None:
    from rlaif.judges.pricing import cost_of_judge

    costs = [cost_of_judge(j, n, prompt_tokens, output_tokens) for j in judges]
    return None if any(c is None for c in costs) else sum(costs)


class _Wrapper(Judge):
    """Shared plumbing: forwards the verify stage's ``prime`` to every inner judge that takes it."""

    inner_judges: tuple[Judge, ...] = ()

    def prime(self, candidate: str, reference: str, checks: dict[str, bool]) -> None:
        for j in self.inner_judges:
            if hasattr(j, "prime"):
                j.prime(candidate, reference, checks)


# ---------------------------------------------------------------------------------------------------------------------


class BothOrdersJudge(_Wrapper):
    """Asks the inner judge every comparison in both orders, in one batch, and lets ``_combine`` decide each pair
    from (verdict in order AB, verdict on the swapped comparison). Subclasses differ only in how they combine."""

    def __init__(self, inner: Judge, judge_id: str, stats: dict[str, Any]):
        self.inner = inner
        self.inner_judges = (inner,)
        self.judge_id = judge_id
        self.stats = stats
        self._lock = threading.Lock()

    def estimate_cost(self, n: int, prompt_tokens: int, output_tokens: int | None = None) -> float | None:
        return _cost_estimate([self.inner], 2 * n, prompt_tokens, output_tokens)

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        n = len(comparisons)
        if n == 0:
            return []
        both = self.inner.compare(list(comparisons) + [c.swapped() for c in comparisons], rubric)
        out = [self._combine(ab, ba) for ab, ba in zip(both[:n], both[n:])]
        with self._lock:
            self.stats["pairs"] += n
            self._after_batch(both[:n], both[n:])
        return out

    def _after_batch(self, ab: Sequence[Verdict], ba: Sequence[Verdict]) -> None:
        """Batch-level counters, under the lock."""

    def _combine(self, ab: Verdict, ba_swapped: Verdict) -> Verdict:
        raise NotImplementedError


class DebiasedJudge(BothOrdersJudge):
    """Asks both orders in one batch; agreement keeps the winner, disagreement becomes a tie with confidence 0.

    If either order is invalid the pair is invalid: position consistency cannot be checked on one answer, and a
    training signal that may be pure position bias is worse than none. ``stats['flip_rate']`` = order-dependent
    verdicts / pairs with both orders valid.
    """

    def __init__(self, inner: Judge):
        super().__init__(inner, f"debiased({inner.judge_id})",
                         {"pairs": 0, "both_valid": 0, "flips": 0, "disagreements": 0, "flip_rate": 0.0})

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "debiased", "inner": self.inner.describe()}

    def _after_batch(self, ab: Sequence[Verdict], ba: Sequence[Verdict]) -> None:
        s = self.stats
        s["both_valid"] += sum(1 for x, y in zip(ab, ba) if x.is_valid and y.is_valid)
        s["flip_rate"] = s["disagreements"] / s["both_valid"] if s["both_valid"] else 0.0

    def _combine(self, ab: Verdict, ba_swapped: Verdict) -> Verdict:
        raw = json.dumps({"ab": ab.raw_reply, "ba": ba_swapped.raw_reply}, ensure_ascii=False)
        usage = _usage_sum([ab, ba_swapped])
        # invalid first: a failed answer is never un-flipped, and one failed order fails the pair
        if not ab.is_valid or not ba_swapped.is_valid:
            reasons = [f"{name}: {v.rationale}" for name, v in (("ab", ab), ("ba", ba_swapped)) if not v.is_valid]
            return Verdict.invalid(self.judge_id, "; ".join(reasons), raw_reply=raw, **usage)
        ba = ba_swapped.unflipped()
        if ab.winner == ba.winner:
            criteria = {k: ({"a": (v["a"] + ba.criteria[k]["a"]) / 2, "b": (v["b"] + ba.criteria[k]["b"]) / 2}
                            if _numeric_ab(v) and _numeric_ab(ba.criteria.get(k)) else v)
                        for k, v in ab.criteria.items()}
            return Verdict(ab.winner, (ab.confidence + ba.confidence) / 2,
                           f"both orders agree: {ab.rationale}", criteria, raw, judge_id=self.judge_id, **usage)
        with self._lock:
            self.stats["disagreements"] += 1
            if {ab.winner, ba.winner} == {"a", "b"}:
                self.stats["flips"] += 1
        return Verdict("tie", 0.0, f"position-inconsistent: {ab.winner} in order AB, {ba.winner} in order BA",
                       ab.criteria, raw, judge_id=self.judge_id, **usage)


def _numeric_ab(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"a", "b"} and all(isinstance(x, (int, float)) and
                                                                not isinstance(x, bool) for x in v.values())


# ---------------------------------------------------------------------------------------------------------------------


class EnsembleJudge(_Wrapper):
    """k judges vote; a winner needs ``min_agreement`` votes (an int, or a fraction of k), else a tie is recorded.

    Only valid votes count; all-invalid is invalid. The tie carries the vote counts in its rationale, so the pair
    filter drops it with a visible reason instead of training on a split decision.
    """

    def __init__(self, judges: Sequence[Judge], min_agreement: int | float = 2, parallel: bool = True):
        if len(judges) < 2:
            raise ValueError("ensemble: needs at least 2 judges")
        k = len(judges)
        need = min_agreement if isinstance(min_agreement, int) else int(-(-min_agreement * k // 1))
        if isinstance(min_agreement, bool) or not 1 <= need <= k:
            raise ValueError(f"ensemble.min_agreement: must be 1..{k} votes or a fraction in (0, 1], "
                             f"got {min_agreement!r}")
        self.judges = tuple(judges)
        self.inner_judges = self.judges
        self.min_agreement = min_agreement
        self.required = need
        self.parallel = parallel
        self.judge_id = f"ensemble[{need}/{k}]({','.join(j.judge_id for j in judges)})"
        self.stats = {"comparisons": 0, "agreed": 0, "split": 0, "all_invalid": 0}
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "ensemble", "min_agreement": self.min_agreement,
                "judges": [j.describe() for j in self.judges]}

    def estimate_cost(self, n: int, prompt_tokens: int, output_tokens: int | None = None) -> float | None:
        return _cost_estimate(self.judges, n, prompt_tokens, output_tokens)

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        if not comparisons:
            return []
        if self.parallel:  # API judges wait on the network: ask them all at once
            with ThreadPoolExecutor(max_workers=len(self.judges), thread_name_prefix="ensemble") as pool:
                per_judge = list(pool.map(lambda j: j.compare(comparisons, rubric), self.judges))
        else:
            per_judge = [j.compare(comparisons, rubric) for j in self.judges]
        return [self._vote([vs[i] for vs in per_judge]) for i in range(len(comparisons))]

    def _vote(self, votes: list[Verdict]) -> Verdict:
        usage = _usage_sum(votes)
        raw = json.dumps([{"judge_id": v.judge_id, "winner": v.winner, "confidence": v.confidence}
                          for v in votes])
        valid = [v for v in votes if v.is_valid]
        counts = {w: sum(1 for v in valid if v.winner == w) for w in ("a", "b", "tie")}
        with self._lock:
            self.stats["comparisons"] += 1
        if not valid:
            with self._lock:
                self.stats["all_invalid"] += 1
            return Verdict.invalid(self.judge_id, "every ensemble member was invalid: " +
                                   "; ".join(v.rationale for v in votes), raw_reply=raw, **usage)
        top = max(("a", "b", "tie"), key=lambda w: (counts[w], w != "tie"))
        tally = f"a={counts['a']} b={counts['b']} tie={counts['tie']} invalid={len(votes) - len(valid)}"
        if counts[top] >= self.required and not (top != "tie" and counts[top] == counts["b" if top == "a" else "a"]):
            agreeing = [v for v in valid if v.winner == top]
            with self._lock:
                self.stats["agreed"] += 1
            confidence = counts[top] / len(votes) * sum(v.confidence for v in agreeing) / len(agreeing)
            return Verdict(top, confidence, f"{counts[top]}/{len(votes)} agree ({tally})", agreeing[0].criteria,
                           raw, judge_id=self.judge_id, **usage)
        with self._lock:
            self.stats["split"] += 1
        return Verdict("tie", 0.0, f"no agreement: {tally}; need {self.required}", {}, raw,
                       judge_id=self.judge_id, **usage)


# ---------------------------------------------------------------------------------------------------------------------


class TieredJudge(_Wrapper):
    """A cheap judge first; the expensive one only where the cheap verdict is unsure.

    Escalated: invalid cheap verdicts, and verdicts whose confidence is below ``threshold`` -- which includes a
    debiased cheap judge's position-inconsistent ties (confidence 0). A settled tie (both orders said tie with
    confidence) is not escalated. The final verdict carries both tiers' cost.
    """

    def __init__(self, cheap: Judge, expensive: Judge, threshold: float = 0.7):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"tiered.threshold: must be in [0, 1], got {threshold}")
        self.cheap, self.expensive, self.threshold = cheap, expensive, threshold
        self.inner_judges = (cheap, expensive)
        self.judge_id = f"tiered({cheap.judge_id}->{expensive.judge_id}@{threshold:g})"
        self.stats = {"comparisons": 0, "escalated": 0}
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "tiered", "threshold": self.threshold,
                "cheap": self.cheap.describe(), "expensive": self.expensive.describe()}

    def estimate_cost(self, n: int, prompt_tokens: int, output_tokens: int | None = None) -> float | None:
        """An upper bound: every comparison escalated."""
        return _cost_estimate([self.cheap, self.expensive], n, prompt_tokens, output_tokens)

    def needs_escalation(self, v: Verdict) -> bool:
        return not v.is_valid or v.confidence < self.threshold

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        first = self.cheap.compare(comparisons, rubric)
        hard = [i for i, v in enumerate(first) if self.needs_escalation(v)]
        second = self.expensive.compare([comparisons[i] for i in hard], rubric) if hard else []
        out = list(first)
        for i, v in zip(hard, second):
            cheap = first[i]
            out[i] = replace(v, tokens_in=v.tokens_in + cheap.tokens_in, tokens_out=v.tokens_out + cheap.tokens_out,
                             cost_usd=v.cost_usd + cheap.cost_usd, latency_ms=v.latency_ms + cheap.latency_ms,
                             rationale=f"escalated (cheap: {cheap.winner} @ {cheap.confidence:.2f}): {v.rationale}")
        with self._lock:
            self.stats["comparisons"] += len(comparisons)
            self.stats["escalated"] += len(hard)
        return out


# ---------------------------------------------------------------------------------------------------------------------


class VerifierFirstJudge(_Wrapper):
    """Hard checks prune before opinion: a side that alone passes every hard check wins without an LLM call.

    Both pass: the LLM judge decides among survivors. Both fail: the verifier's graded verdict stands (an LLM's
    taste between two wrong answers is not worth paying for). No reference to verify against: the LLM decides.
    """

    def __init__(self, verifier: VerifierJudge, judge: Judge):
        self.verifier, self.judge = verifier, judge
        self.inner_judges = (verifier, judge)
        self.judge_id = f"verifier-first({verifier.judge_id}->{judge.judge_id})"
        self.stats = {"comparisons": 0, "pruned": 0, "both_failed": 0, "llm": 0}
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "verifier_first", "verifier": self.verifier.describe(),
                "judge": self.judge.describe()}

    def estimate_cost(self, n: int, prompt_tokens: int, output_tokens: int | None = None) -> float | None:
        return _cost_estimate([self.judge], n, prompt_tokens, output_tokens)  # upper bound: nothing pruned

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        hard = rubric.hard_verifiers
        out: list[Verdict | None] = [None] * len(comparisons)
        to_llm, to_verifier = [], []
        for i, c in enumerate(comparisons):
            if c.reference is None:
                to_llm.append(i)
                continue
            ca, cb = self.verifier.checks(c.a, c.reference), self.verifier.checks(c.b, c.reference)
            pass_a = all(ca.get(v, False) for v in hard)
            pass_b = all(cb.get(v, False) for v in hard)
            if pass_a and pass_b:
                to_llm.append(i)
            elif pass_a != pass_b:
                winner, loser_checks = ("a", cb) if pass_a else ("b", ca)
                failed = sorted(v for v in hard if not loser_checks.get(v, False))
                criteria = {v: {"a": ca.get(v), "b": cb.get(v)} for v in sorted(hard)}
                out[i] = Verdict(winner, 1.0, f"only {winner.upper()} passes the hard checks; the other fails "
                                 f"{', '.join(failed)}", criteria, judge_id=self.verifier.judge_id)
            else:
                to_verifier.append(i)
        for idx, v in zip(to_verifier, self.verifier.compare([comparisons[i] for i in to_verifier], rubric)):
            out[idx] = v
        for idx, v in zip(to_llm, self.judge.compare([comparisons[i] for i in to_llm], rubric) if to_llm else []):
            out[idx] = v
        with self._lock:
            s = self.stats
            s["comparisons"] += len(comparisons)
            s["both_failed"] += len(to_verifier)
            s["llm"] += len(to_llm)
            s["pruned"] += len(comparisons) - len(to_verifier) - len(to_llm)
        return out  # type: ignore[return-value]
