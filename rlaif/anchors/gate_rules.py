"""How the calibration gate decides: which number must clear the threshold, on how many items, per slice or not, and
what to say when the number means nothing.

Why the lower bound by default: kappa on a few dozen anchors is noisy. A judge that simply preferred the shorter
answer passed a 0.72 gate on two hand-picked slices of a public benchmark with kappa 0.756, its 95% CI reaching down
to 0.60: the point estimate cleared the bar by luck of the sample. Gating on the CI's lower bound asks the data to
*show* agreement above the threshold. ``gate_on: point`` restores the old rule.

Why words instead of numbers for degenerate cases: when every verdict was invalid, or the judge gave one answer to
every item, kappa is 0 by construction and "kappa 0.000 < 0.72" reads like a measurement of a bad judge. It is not a
measurement at all, and the fix (the judge's errors, its prompt) is different; so the reason says what happened.

    ok, reason = decide(agreement, GateRule(threshold=0.72), "non-holdout human-labelled items")
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from rlaif.anchors.agreement import JudgeHumanAgreement
from rlaif.anchors.defaults import DEFAULT_MIN_ITEMS, DEFAULT_MIN_ITEMS_PER_SLICE, DEFAULT_THRESHOLD, GATE_ON


@dataclass(frozen=True)
class GateRule:
    """What must hold for the gate to pass (see ``CalibrationConfig`` for the field help)."""

    threshold: float = DEFAULT_THRESHOLD
    min_items: int = DEFAULT_MIN_ITEMS
    gate_on: str = "lower_bound"
    per_slice: bool = False
    min_items_per_slice: int = DEFAULT_MIN_ITEMS_PER_SLICE

    def __post_init__(self):
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a kappa in [-1, 1], got {self.threshold}")
        if self.min_items < 1 or self.min_items_per_slice < 1:
            raise ValueError("min_items and min_items_per_slice must be >= 1")
        if self.gate_on not in GATE_ON:
            raise ValueError(f"gate_on must be one of {', '.join(GATE_ON)}, got {self.gate_on!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str
    degenerate: str | None = None  # all_invalid | judge_one_class | labels_one_class: kappa means nothing here


def _one_class(confusion: list[list[int]], labels: tuple[str, ...], axis: int) -> str | None:
    """The only class used along ``axis`` (0: the labels, rows; 1: the judge, columns), if just one is."""
    totals = [sum(row[k] for row in confusion) for k in range(len(labels))] if axis == 1 else \
        [sum(row) for row in confusion]
    used = [label for label, total in zip(labels, totals) if total]
    return used[0] if len(used) == 1 else None


def decide(a: JudgeHumanAgreement, rule: GateRule, items: str, min_items: int | None = None) -> Decision:
    """The decision on one scope (all items, or one slice); ``items`` names them for the reason text."""
    need = rule.min_items if min_items is None else min_items
    n = a.n
    if n < need:
        return Decision(False, f"too few labelled items: {n} {items}, the gate needs at least {need}")
    table = a.three_class
    only_label = _one_class(table.confusion, table.labels, 0)
    if only_label is not None:
        return Decision(False, f"kappa is undefined: every one of the {n} {items} is labelled {only_label}, so "
                               "agreement beyond chance cannot be measured (label a mix of cases)", "labels_one_class")
    if a.n_invalid == n:
        return Decision(False, f"every verdict was invalid ({n} of {n} {items}): no agreement was measured; the "
                               "verdicts' rationale says why the judge failed", "all_invalid")
    only_answer = _one_class(table.confusion, table.labels, 1)
    if only_answer is not None:
        return Decision(False, f"the judge gave the same answer ({only_answer}) to all {n} {items}, whatever the "
                               "label: kappa is 0 by construction, not a measurement", "judge_one_class")
    kappa, (low, high) = a.kappa, a.ci
    if math.isnan(kappa):
        return Decision(False, f"kappa is undefined on {n} {items}")
    measured = f"kappa {kappa:.3f}, 95% CI [{_fmt(low)}, {_fmt(high)}]"
    if rule.gate_on == "point":
        ok = kappa >= rule.threshold
        return Decision(ok, f"kappa {kappa:.3f} {'>=' if ok else '<'} threshold {rule.threshold:.2f} on {n} {items} "
                            f"(rule: the point estimate; 95% CI [{_fmt(low)}, {_fmt(high)}])")
    if math.isnan(low):
        return Decision(False, f"{measured}: the CI is undefined on {n} {items}, so its lower bound cannot clear "
                               f"the threshold (rule: lower_bound)")
    ok = low >= rule.threshold
    return Decision(ok, f"the 95% CI's lower bound {low:.3f} {'>=' if ok else '<'} threshold {rule.threshold:.2f} "
                        f"({measured}) on {n} {items} (rule: lower_bound)")


def decide_all(measured: Mapping[str, JudgeHumanAgreement], rule: GateRule, items: str) -> Decision:
    """Overall first; with ``per_slice`` every slice measured must pass on its own too (its own minimum)."""
    overall = decide(measured["all"], rule, items)
    if not overall.ok or not rule.per_slice:
        return overall
    for name, a in measured.items():
        if name == "all":
            continue
        part = decide(a, rule, f"{items} of slice {name!r}", rule.min_items_per_slice)
        if not part.ok:
            return Decision(False, f"slice {name!r} fails (every gated slice must pass): {part.reason}",
                            part.degenerate)
    slices = [name for name in measured if name != "all"]
    return Decision(True, f"{overall.reason}; each of the {len(slices)} gated slices passes on its own")


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"
