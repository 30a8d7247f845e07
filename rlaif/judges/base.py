"""The one judge interface: compare (prompt, A, B) under a rubric, in batches, and return verdicts.

Why an explicit ``invalid`` winner: TRL's last API judges returned -1 for a failed reply and then "un-flipped" it into
an out-of-range index. Here a verdict that could not be obtained or parsed is ``invalid``; it is never turned into a
winner, and code that swaps A/B must call :meth:`Verdict.unflipped`, which leaves ``invalid`` and ``tie`` alone.

Why the whole interface lives on the base class: the loop, the cache, the cost estimate and the workbench must be
able to ask any judge the same questions (its options, its cost, whether it spends money, its counters, its nested
judges, whether its budget ran out) without probing for attributes or switching on names. A judge *kind* (what the
config's ``judge.name`` picks) is a subclass with ``name`` and an ``Options`` dataclass; the class methods answer
from options alone, before anything is built (no API key, no model load).

    judge = make_judge("verifier", verify=verifier.verify); verdicts = judge.compare(comparisons, rubric)
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol, Sequence

from rlaif.core.fields import check, help_field
from rlaif.judges.pricing import JudgeCost, PriceTable
from rlaif.rubric import Rubric

WINNERS = ("a", "b", "tie", "invalid")


@dataclass(frozen=True)
class Comparison:
    """One pairwise question. ``reference`` is the golden answer when the task has one (verifiers use it)."""

    prompt: str
    a: str
    b: str
    reference: str | None = None
    prompt_id: str | None = None

    def swapped(self) -> "Comparison":
        return replace(self, a=self.b, b=self.a)


@dataclass(frozen=True)
class Verdict:
    winner: str
    confidence: float = 0.0
    rationale: str = ""
    criteria: dict[str, Any] = field(default_factory=dict)
    raw_reply: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    judge_id: str = ""

    def __post_init__(self):
        if self.winner not in WINNERS:
            raise ValueError(f"Verdict.winner must be one of {WINNERS}, got {self.winner!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Verdict.confidence must be in [0, 1], got {self.confidence}")

    @property
    def is_valid(self) -> bool:
        return self.winner != "invalid"

    def unflipped(self) -> "Verdict":
        """Map a verdict on a swapped comparison back to the original order; invalid and tie stay as they are."""
        if self.winner in ("tie", "invalid"):
            return self
        criteria = {k: ({"a": v.get("b"), "b": v.get("a")} if isinstance(v, dict) and set(v) <= {"a", "b"} else v)
                    for k, v in self.criteria.items()}
        return replace(self, winner="b" if self.winner == "a" else "a", criteria=criteria)

    @classmethod
    def invalid(cls, judge_id: str, reason: str, raw_reply: str = "", **usage: Any) -> "Verdict":
        return cls(winner="invalid", confidence=0.0, rationale=reason, raw_reply=raw_reply, judge_id=judge_id, **usage)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def usage_sum(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Tokens and cost of several verdicts that became one (both orders, ensemble votes); latency is the slowest."""
    return {"tokens_in": sum(v.tokens_in for v in verdicts), "tokens_out": sum(v.tokens_out for v in verdicts),
            "cost_usd": sum(v.cost_usd for v in verdicts),
            "latency_ms": max((v.latency_ms for v in verdicts), default=0.0)}


class JudgeStats:
    """Counters of one judge's lifetime (calls, retries, flips, cache hits ...): thread-safe, read by key or name.

    The one stats type of every judge: manifests, the CLI summary and the charts read ``to_dict()``.

        stats = JudgeStats(hits=0, misses=0); stats.add(hits=1); stats["hits"] == stats.hits == 1
    """

    def __init__(self, **counters: float):
        object.__setattr__(self, "_values", dict(counters))
        object.__setattr__(self, "_lock", threading.Lock())

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                self._values[name] = self._values.get(name, 0) + value

    def set(self, **values: float) -> None:
        with self._lock:
            self._values.update(values)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("JudgeStats counters change through add() or set()")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JudgeStats):
            return self.to_dict() == other.to_dict()
        return isinstance(other, Mapping) and self.to_dict() == dict(other)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"JudgeStats({self.to_dict()})"


@dataclass(frozen=True)
class NoOptions:
    """This judge kind takes no options (besides the wrapper options every judge takes)."""


@dataclass
class WrapperOptions:
    """Options every judge takes besides its own; the registry wraps the judge in this order (innermost first)."""

    debias: bool | str = help_field(
        "Ask both orders. true: keep a winner only when both orders agree (else a tie); average: decide by the label "
        "probability averaged over both orders (for position-biased local models).", False)
    average_tie_margin: float = help_field("With debias: average, |2 p(A) - 1| up to this is a tie.", 0.0)
    verifier_first: bool = help_field(
        "Hard checks prune before the judge: a side that alone passes them wins without a call (needs a verifier).",
        False)
    cache: bool = help_field(
        "Keep verdicts in the store's judge cache (outermost), so a re-run or resume makes no call it made before.",
        False)

    def __post_init__(self):
        check(self.debias in (True, False, "average"), "debias", f"must be true, false or average, got {self.debias!r}")
        check(isinstance(self.average_tie_margin, (int, float)) and 0.0 <= self.average_tie_margin < 1.0,
              "average_tie_margin", f"must be in [0, 1), got {self.average_tie_margin!r}")
        for name in ("verifier_first", "cache"):
            check(isinstance(getattr(self, name), bool), name, f"must be true or false, got {getattr(self, name)!r}")


WRAPPER_KEYS = tuple(f.name for f in fields(WrapperOptions))


@dataclass
class BuildContext:
    """What building a judge may need from outside: the task's verifier, the store (for the verdict cache), the
    environment (``auto`` looks for API keys) and a price table for estimates."""

    verify: Callable[[str, str], Any] | None = None
    store: Any = None
    environ: Mapping[str, str] | None = None
    prices: PriceTable | None = None


class NestedSpec(Protocol):
    """A checked judge spec nested in another's options (an ensemble member, a tier): the registry's ``JudgeSpec``."""

    name: str

    def build(self, ctx: BuildContext) -> "Judge": ...

    def estimate_cost(self, n: int, prompt_tokens: int, output_tokens: int | None = None,
                      ctx: BuildContext | None = None) -> JudgeCost: ...


class Judge(ABC):
    """Batched pairwise judge. Subclasses set ``judge_id`` (model + settings) and implement ``compare``.

    A judge *kind* also sets ``name`` (as the config spells it) and ``Options``, and may override the class methods
    ``nested_specs``, ``build``, ``estimate_cost`` and the flag ``cache_by_default``. Everything else has a default
    that holds for a judge without nested judges, counters or a budget.
    """

    name: ClassVar[str | None] = None
    Options: ClassVar[type] = NoOptions
    #: The loop caches this kind's verdicts unless told otherwise: a resumed or reproduced iteration must not pay
    #: (in money or minutes) twice for a verdict. Free, instant judges need no cache.
    cache_by_default: ClassVar[bool] = False

    judge_id: str = "judge"
    inner_judges: tuple["Judge", ...] = ()
    #: True for a judge trained on an anchor set's tuning split (the distilled reward model): agreement on its own
    #: training items proves nothing, so the calibration gate decides on the locked holdout instead.
    trained_on_tuning: ClassVar[bool] = False
    #: False for a kind whose verdicts never depend on the rubric's wording (criterion descriptions, principles): a
    #: rubric edit that changes only text cannot flip its verdicts, and the Rubrics page says so instead of reporting
    #: a bare "0 of N flipped". ``rubric_reads`` says in words what such a kind reads of the rubric, if anything.
    reads_rubric_text: ClassVar[bool] = True
    rubric_reads: ClassVar[str] = "the whole rubric text, weights and hard flags included"

    # ---- the kind, from its options alone

    @classmethod
    def nested_specs(cls, options: Any) -> dict[str, Any]:
        """Raw judge specs nested in ``options``, by their path under ``<where>.options`` (checked by the registry)."""
        return {}

    @classmethod
    def build(cls, options: Any, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> "Judge":
        """A ready judge from checked options and checked nested specs."""
        return cls(**asdict(options))  # type: ignore[call-arg]

    @classmethod
    def estimate_cost(cls, options: Any, n: int, prompt_tokens: int, output_tokens: int | None,
                      nested: Mapping[str, NestedSpec], ctx: BuildContext) -> JudgeCost:
        """USD (None when a price is unknown) for ``n`` comparisons of about ``prompt_tokens`` each."""
        if nested:
            return JudgeCost.total(spec.estimate_cost(n, prompt_tokens, output_tokens, ctx) for spec in nested.values())
        return JudgeCost(0.0, [f"{cls.name}: runs locally, no API cost"])

    # ---- a built judge

    @abstractmethod
    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        """One verdict per comparison, in order. Must not raise for a bad reply: return ``Verdict.invalid``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What goes into manifests and cache keys: identity and settings, never secrets."""
        return {"judge_id": self.judge_id}

    @property
    def stats(self) -> JudgeStats:
        stats = self.__dict__.get("_stats")
        if stats is None:
            stats = self.__dict__["_stats"] = JudgeStats()
        return stats

    @stats.setter
    def stats(self, value: JudgeStats) -> None:
        self.__dict__["_stats"] = value

    def prime(self, candidate: str, reference: str, checks: dict[str, bool]) -> None:
        """Hand over a verification the verify stage already computed (the verifier judge reuses it)."""
        for judge in self.inner_judges:
            judge.prime(candidate, reference, checks)

    def cache_key(self, comparison: Comparison, rubric: Rubric) -> str | None:
        """The verdict cache's key for this question, when the judge is cached (``CachedJudge``); else None."""
        return None

    @property
    def budget_exhausted(self) -> bool:
        """True once this judge (or one nested in it) has spent its budget: the run stops rather than train on less."""
        return any(judge.budget_exhausted for judge in self.inner_judges)

    #: True for a judge that answers through a provider's batch API: every call waits for a whole batch, so callers
    #: should hand it a whole round of comparisons at once rather than in chunks.
    batches_calls: bool = False

    @property
    def wants_whole_rounds(self) -> bool:
        """True when this judge or one nested in it judges in batches (see ``batches_calls``)."""
        return any(judge.batches_calls for judge in self.walk())

    @property
    def needs_holdout_gate(self) -> bool:
        """True when this judge or one nested in it learned from the tuning split (see ``trained_on_tuning``)."""
        return any(judge.trained_on_tuning for judge in self.walk())

    def walk(self) -> Iterator["Judge"]:
        """This judge and every judge nested in it, depth first."""
        yield self
        for inner in self.inner_judges:
            yield from inner.walk()

    def all_stats(self) -> dict[str, dict[str, Any]]:
        """Counters of every judge in the tree that keeps some, keyed ``<position>:<judge_id>`` (manifests, CLI)."""
        return {f"{k}:{j.judge_id}": j.stats.to_dict() for k, j in enumerate(self.walk()) if len(j.stats)}
