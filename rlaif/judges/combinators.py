"""Judges built from judges: both orders, ensembles, cheap-then-expensive tiers, verifiers before opinions.

Each combinator is itself a ``Judge`` (batched ``compare``), so they nest: ``Tiered(Debiased(local), Debiased(api))``.
Invalid verdicts are handled before any un-flipping and never become winners (TRL's last API judge turned a failed
verdict on a flipped pair into an out-of-range index; distilabel never swaps order at all). ``ensemble`` and
``tiered`` are judge kinds of their own (``judge.name``); both-orders and verifier-first are wrapper options any
judge takes (``debias``, ``verifier_first``), applied by the registry.

    judge = DebiasedJudge(AnthropicJudge(settings)); verdicts = judge.compare(comparisons, rubric)
    judge.stats["flip_rate"]   # share of pairs whose verdict changed with the order
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from rlaif.core.fields import ConfigError, check, help_field
from rlaif.judges.base import BuildContext, Comparison, Judge, JudgeStats, NestedSpec, Verdict, usage_sum
from rlaif.judges.pricing import JudgeCost
from rlaif.judges.verifier import VerifierJudge, require_verifier
from rlaif.rubric import Rubric


class BothOrdersJudge(Judge):
    """Asks the inner judge every comparison in both orders, in one batch, and lets ``_combine`` decide each pair
    from (verdict in order AB, verdict on the swapped comparison). Subclasses differ only in how they combine."""

    def __init__(self, inner: Judge, judge_id: str, stats: JudgeStats):
        self.inner = inner
        self.inner_judges = (inner,)
        self.judge_id = judge_id
        self.stats = stats
        self._lock = threading.Lock()

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        n = len(comparisons)
        if n == 0:
            return []
        both = self.inner.compare(list(comparisons) + [c.swapped() for c in comparisons], rubric)
        out = [self._combine(ab, ba) for ab, ba in zip(both[:n], both[n:])]
        with self._lock:
            self.stats.add(pairs=n)
            self._after_batch(both[:n], both[n:])
        return out

    def _after_batch(self, ab: Sequence[Verdict], ba: Sequence[Verdict]) -> None:
        """Batch-level counters, under the lock."""

    def _combine(self, ab: Verdict, ba_swapped: Verdict) -> Verdict:
        raise NotImplementedError

    @staticmethod
    def both_replies(ab: Verdict, ba: Verdict) -> str:
        """The raw replies of both orders, as the pair's raw reply."""
        return json.dumps({"ab": ab.raw_reply, "ba": ba.raw_reply}, ensure_ascii=False)

    def _failed_order(self, ab: Verdict, ba: Verdict) -> Verdict | None:
        """The pair's invalid verdict when either order failed, else None. Checked before any un-flipping: a failed
        order is never turned into a win, and position consistency cannot be judged on one answer."""
        if ab.is_valid and ba.is_valid:
            return None
        reasons = [f"{name}: {v.rationale}" for name, v in (("ab", ab), ("ba", ba)) if not v.is_valid]
        return Verdict.invalid(self.judge_id, "; ".join(reasons), raw_reply=self.both_replies(ab, ba),
                               **usage_sum([ab, ba]))


class DebiasedJudge(BothOrdersJudge):
    """Asks both orders in one batch; agreement keeps the winner, disagreement becomes a tie with confidence 0.

    If either order is invalid the pair is invalid: a training signal that may be pure position bias is worse than
    none. ``stats['flip_rate']`` = order-dependent verdicts / pairs with both orders valid.
    """

    def __init__(self, inner: Judge):
        super().__init__(inner, f"debiased({inner.judge_id})",
                         JudgeStats(pairs=0, both_valid=0, flips=0, disagreements=0, flip_rate=0.0))

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "debiased", "inner": self.inner.describe()}

    def _after_batch(self, ab: Sequence[Verdict], ba: Sequence[Verdict]) -> None:
        self.stats.add(both_valid=sum(1 for x, y in zip(ab, ba) if x.is_valid and y.is_valid))
        s = self.stats
        self.stats.set(flip_rate=s["disagreements"] / s["both_valid"] if s["both_valid"] else 0.0)

    def _combine(self, ab: Verdict, ba_swapped: Verdict) -> Verdict:
        failed = self._failed_order(ab, ba_swapped)
        if failed is not None:
            return failed
        raw, usage = self.both_replies(ab, ba_swapped), usage_sum([ab, ba_swapped])
        ba = ba_swapped.unflipped()
        if ab.winner == ba.winner:
            criteria = {k: ({"a": (v["a"] + ba.criteria[k]["a"]) / 2, "b": (v["b"] + ba.criteria[k]["b"]) / 2}
                            if _numeric_ab(v) and _numeric_ab(ba.criteria.get(k)) else v)
                        for k, v in ab.criteria.items()}
            return Verdict(ab.winner, (ab.confidence + ba.confidence) / 2,
                           f"both orders agree: {ab.rationale}", criteria, raw, judge_id=self.judge_id, **usage)
        with self._lock:
            self.stats.add(disagreements=1, flips=1 if {ab.winner, ba.winner} == {"a", "b"} else 0)
        return Verdict("tie", 0.0, f"position-inconsistent: {ab.winner} in order AB, {ba.winner} in order BA",
                       ab.criteria, raw, judge_id=self.judge_id, **usage)


def _numeric_ab(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"a", "b"} and all(isinstance(x, (int, float)) and
                                                                not isinstance(x, bool) for x in v.values())


# ---------------------------------------------------------------------------------------------------------------------


def required_votes(min_agreement: Any, k: int, where: str = "ensemble.min_agreement") -> int:
    """Votes a winner needs among ``k`` judges: ``min_agreement`` as a count, or as a fraction of k."""
    need = min_agreement if isinstance(min_agreement, int) else int(-(-min_agreement * k // 1)) \
        if isinstance(min_agreement, float) else 0
    if isinstance(min_agreement, bool) or not 1 <= need <= k:
        raise ConfigError(where, f"must be 1..{k} votes or a fraction in (0, 1], got {min_agreement!r}")
    return need


@dataclass
class EnsembleOptions:
    judges: list[Any] = help_field("The member judges: names or {name, options} mappings (at least 2).",
                                   factory=list)
    min_agreement: int | float = help_field("Votes a winner needs: a count, or a fraction of the members.", 2)

    def __post_init__(self):
        check(isinstance(self.judges, list) and len(self.judges) >= 2, "judges",
              "an ensemble needs a list of at least 2 judges")
        required_votes(self.min_agreement, len(self.judges), "min_agreement")


class EnsembleJudge(Judge):
    """k judges vote; a winner needs ``min_agreement`` votes (an int, or a fraction of k), else a tie is recorded.

    Only valid votes count; all-invalid is invalid. The tie carries the vote counts in its rationale, so the pair
    filter drops it with a visible reason instead of training on a split decision.
    """

    name = "ensemble"
    Options = EnsembleOptions
    cache_by_default = True

    def __init__(self, judges: Sequence[Judge], min_agreement: int | float = 2, parallel: bool = True):
        if len(judges) < 2:
            raise ConfigError("ensemble.judges", "needs at least 2 judges")
        k = len(judges)
        need = required_votes(min_agreement, k)
        self.judges = tuple(judges)
        self.inner_judges = self.judges
        self.min_agreement = min_agreement
        self.required = need
        self.parallel = parallel
        self.judge_id = f"ensemble[{need}/{k}]({','.join(j.judge_id for j in judges)})"
        self.stats = JudgeStats(comparisons=0, agreed=0, split=0, all_invalid=0)

    @classmethod
    def nested_specs(cls, options: EnsembleOptions) -> dict[str, Any]:
        return {f"judges[{i}]": member for i, member in enumerate(options.judges)}

    @classmethod
    def build(cls, options: EnsembleOptions, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> Judge:
        return cls([spec.build(ctx) for spec in nested.values()], options.min_agreement)

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "ensemble", "min_agreement": self.min_agreement,
                "judges": [j.describe() for j in self.judges]}

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
        usage = usage_sum(votes)
        raw = json.dumps([{"judge_id": v.judge_id, "winner": v.winner, "confidence": v.confidence}
                          for v in votes])
        valid = [v for v in votes if v.is_valid]
        counts = {w: sum(1 for v in valid if v.winner == w) for w in ("a", "b", "tie")}
        self.stats.add(comparisons=1)
        if not valid:
            self.stats.add(all_invalid=1)
            return Verdict.invalid(self.judge_id, "every ensemble member was invalid: " +
                                   "; ".join(v.rationale for v in votes), raw_reply=raw, **usage)
        top = max(("a", "b", "tie"), key=lambda w: (counts[w], w != "tie"))
        tally = f"a={counts['a']} b={counts['b']} tie={counts['tie']} invalid={len(votes) - len(valid)}"
        if counts[top] >= self.required and not (top != "tie" and counts[top] == counts["b" if top == "a" else "a"]):
            agreeing = [v for v in valid if v.winner == top]
            self.stats.add(agreed=1)
            confidence = counts[top] / len(votes) * sum(v.confidence for v in agreeing) / len(agreeing)
            return Verdict(top, confidence, f"{counts[top]}/{len(votes)} agree ({tally})", agreeing[0].criteria,
                           raw, judge_id=self.judge_id, **usage)
        self.stats.add(split=1)
        return Verdict("tie", 0.0, f"no agreement: {tally}; need {self.required}", {}, raw,
                       judge_id=self.judge_id, **usage)


# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class TieredOptions:
    cheap: Any = help_field("The first judge (a name or {name, options}); required.", None)
    expensive: Any = help_field("The judge asked where the cheap verdict is unsure (a name or {name, options}); "
                                "required.", None)
    threshold: float = help_field("Cheap verdicts below this confidence (and invalid ones) are escalated.", 0.7)
    escalate_on_verifier: bool = help_field(
        "Also escalate a confident cheap verdict that the task's hard checks contradict (only the other side passes "
        "them): a distilled judge's confident mistakes go to the expensive judge too (needs a verifier).", False)

    def __post_init__(self):
        check(self.cheap is not None, "cheap", "is required: the first judge (a name or {name, options})")
        check(self.expensive is not None, "expensive", "is required: the judge hard pairs escalate to")
        check(isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0, "threshold",
              f"must be in [0, 1], got {self.threshold!r}")
        check(isinstance(self.escalate_on_verifier, bool), "escalate_on_verifier",
              f"must be true or false, got {self.escalate_on_verifier!r}")


class TieredJudge(Judge):
    """A cheap judge first; the expensive one only where the cheap verdict is unsure.

    Escalated: invalid cheap verdicts, and verdicts whose confidence is below ``threshold`` -- which includes a
    debiased cheap judge's position-inconsistent ties (confidence 0) and a reward-model judge's small margins. A
    settled tie (both orders said tie with confidence) is not escalated. With a ``verifier`` (the option
    ``escalate_on_verifier``), a confident cheap verdict is escalated too when only the side it did not pick passes the
    rubric's hard checks. The final verdict carries both tiers' cost; ``stats`` count both reasons.
    """

    name = "tiered"
    Options = TieredOptions
    cache_by_default = True

    def __init__(self, cheap: Judge, expensive: Judge, threshold: float = 0.7, verifier: VerifierJudge | None = None):
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("tiered.threshold", f"must be in [0, 1], got {threshold}")
        self.cheap, self.expensive, self.threshold, self.verifier = cheap, expensive, threshold, verifier
        self.inner_judges = (cheap, expensive)
        checked = "+verifier" if verifier is not None else ""
        self.judge_id = f"tiered({cheap.judge_id}->{expensive.judge_id}@{threshold:g}{checked})"
        self.stats = JudgeStats(comparisons=0, escalated=0, **({"verifier_escalated": 0} if verifier else {}))

    @classmethod
    def nested_specs(cls, options: TieredOptions) -> dict[str, Any]:
        return {"cheap": options.cheap, "expensive": options.expensive}

    @classmethod
    def build(cls, options: TieredOptions, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> Judge:
        verifier = VerifierJudge(require_verifier(ctx, "judge.options.escalate_on_verifier")) \
            if options.escalate_on_verifier else None
        return cls(nested["cheap"].build(ctx), nested["expensive"].build(ctx), float(options.threshold), verifier)

    @classmethod
    def estimate_cost(cls, options: TieredOptions, n: int, prompt_tokens: int, output_tokens: int | None,
                      nested: Mapping[str, NestedSpec], ctx: BuildContext) -> JudgeCost:
        """An upper bound: every comparison escalated."""
        total = super().estimate_cost(options, n, prompt_tokens, output_tokens, nested, ctx)
        return replace(total, upper_bound=True)

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "tiered", "threshold": self.threshold,
                "escalate_on_verifier": self.verifier is not None,
                "cheap": self.cheap.describe(), "expensive": self.expensive.describe()}

    def needs_escalation(self, v: Verdict) -> bool:
        return not v.is_valid or v.confidence < self.threshold

    def contradicted(self, c: Comparison, v: Verdict, rubric: Rubric) -> bool:
        """Whether only the side the cheap verdict did not pick passes the hard checks (never without a reference)."""
        hard = rubric.hard_verifiers
        if self.verifier is None or c.reference is None or not hard:
            return False
        ca, cb = self.verifier.checks(c.a, c.reference), self.verifier.checks(c.b, c.reference)
        pass_a, pass_b = all(ca.get(h, False) for h in hard), all(cb.get(h, False) for h in hard)
        if pass_a == pass_b:
            return False
        return v.winner != ("a" if pass_a else "b")

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        first = self.cheap.compare(comparisons, rubric)
        unsure = {i for i, v in enumerate(first) if self.needs_escalation(v)}
        checked = {i for i, v in enumerate(first) if i not in unsure and self.contradicted(comparisons[i], v, rubric)}
        hard = sorted(unsure | checked)
        second = self.expensive.compare([comparisons[i] for i in hard], rubric) if hard else []
        out = list(first)
        for i, v in zip(hard, second):
            cheap = first[i]
            why = "the hard checks contradict it" if i in checked else f"{cheap.confidence:.2f}"
            out[i] = replace(v, tokens_in=v.tokens_in + cheap.tokens_in, tokens_out=v.tokens_out + cheap.tokens_out,
                             cost_usd=v.cost_usd + cheap.cost_usd, latency_ms=v.latency_ms + cheap.latency_ms,
                             rationale=f"escalated (cheap: {cheap.winner} @ {why}): {v.rationale}")
        self.stats.add(comparisons=len(comparisons), escalated=len(hard),
                       **({"verifier_escalated": len(checked)} if self.verifier is not None else {}))
        return out


# ---------------------------------------------------------------------------------------------------------------------


class VerifierFirstJudge(Judge):
    """Hard checks prune before opinion: a side that alone passes every hard check wins without an LLM call.

    Both pass: the LLM judge decides among survivors. Both fail: the verifier's graded verdict stands (an LLM's
    taste between two wrong answers is not worth paying for). No reference to verify against: the LLM decides.
    """

    def __init__(self, verifier: VerifierJudge, judge: Judge):
        self.verifier, self.judge = verifier, judge
        self.inner_judges = (verifier, judge)
        self.judge_id = f"verifier-first({verifier.judge_id}->{judge.judge_id})"
        self.stats = JudgeStats(comparisons=0, pruned=0, both_failed=0, llm=0)

    def describe(self) -> dict[str, Any]:
        return {"judge_id": self.judge_id, "kind": "verifier_first", "verifier": self.verifier.describe(),
                "judge": self.judge.describe()}

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
        self.stats.add(comparisons=len(comparisons), both_failed=len(to_verifier), llm=len(to_llm),
                       pruned=len(comparisons) - len(to_verifier) - len(to_llm))
        return out  # type: ignore[return-value]
