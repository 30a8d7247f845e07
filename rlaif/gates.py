"""The regression gate: stop the loop when the primary metric falls too far below the best iteration so far.

Why "best so far" and not "previous": two small drops in a row would each pass a previous-iteration check while the
policy slides away from its best; comparing with the best catches the slide, and the best iteration is recommended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence


@dataclass(frozen=True)
class GateDecision:
    iteration: int
    value: float
    best_iteration: int
    best_value: float
    drop: float
    tolerance: float
    regressed: bool
    decision: str  # baseline | improved | within_tolerance | regressed

    def to_dict(self) -> dict:
        return asdict(self)


def regression_gate(history: Sequence[tuple[int, float]], iteration: int, value: float,
                    tolerance: float) -> GateDecision:
    """Judge ``value`` of ``iteration`` against ``history`` (earlier (iteration, value) pairs)."""
    if not history:
        return GateDecision(iteration, value, iteration, value, 0.0, tolerance, False, "baseline")
    best_iteration, best_value = recommend_best(history)
    drop = best_value - value
    if value > best_value:
        return GateDecision(iteration, value, iteration, value, drop, tolerance, False, "improved")
    regressed = drop > tolerance + 1e-12
    return GateDecision(iteration, value, best_iteration, best_value, drop, tolerance, regressed,
                        "regressed" if regressed else "within_tolerance")


def recommend_best(history: Sequence[tuple[int, float]]) -> tuple[int, float]:
    """The iteration with the highest value; the earliest wins a tie (fewer updates, same quality)."""
    if not history:
        raise ValueError("no iterations to choose from")
    return max(history, key=lambda iv: (iv[1], -iv[0]))
