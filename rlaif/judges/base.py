"""The one judge interface: compare (prompt, A, B) under a rubric, in batches, and return verdicts.

Why an explicit ``invalid`` winner: TRL's last API judges returned -1 for a failed reply and then "un-flipped" it into
an out-of-range index. Here a verdict that could not be obtained or parsed is ``invalid``; it is never turned into a
winner, and code that swaps A/B must call :meth:`Verdict.unflipped`, which leaves ``invalid`` and ``tie`` alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

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


class Judge(ABC):
    """Batched pairwise judge. Subclasses set ``judge_id`` (model + settings) and implement ``compare``."""

    judge_id: str = "judge"

    @abstractmethod
    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        """One verdict per comparison, in order. Must not raise for a bad reply: return ``Verdict.invalid``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What goes into manifests and cache keys: identity and settings, never secrets."""
        return {"judge_id": self.judge_id}
