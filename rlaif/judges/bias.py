"""Judge bias figures: how often a verdict flips with the order, how often the first-shown or the longer answer wins,
how many verdicts are invalid, and whether the judge (almost) always gives one answer.

Why beside kappa: kappa says how far a judge agrees with people, not why it fails. A judge that picks whatever is
shown first, or whatever is longer, can reach a fair kappa on an anchor set where the better answer happens to come
first or be longer, and then reward exactly that in training. These numbers need no labels, so they are computed the
same way on the anchor set (``rlaif kappa``) and on every iteration's judgements (the manifest).

Conventions: a *question* is one pair asked in one order; ``ab`` is the verdict asked in the pair's own order and
``ba`` the verdict asked with the two swapped, **as the judge answered it** (``a`` = the answer shown first). The
flip rate needs both orders and counts any change of the un-swapped verdict (a -> b, a -> tie, ...); the shares pool
both orders, so with both the first-shown share is free of which answer is better. Lengths are characters of the
stripped text (what ``LengthJudge`` compares).

    figures = bias_figures([OrderedVerdicts(a_text, b_text, ab="a", ba="a")])
    figures.flip_rate, figures.first_shown_share, figures.warnings
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

#: A judge whose verdicts are at least this share one answer is flagged (with at least ``ONE_CLASS_MIN`` verdicts).
ONE_CLASS_SHARE = 0.95
ONE_CLASS_MIN = 10
ONE_CLASS_WHY = ("a judge that (almost) always gives one answer agrees with people only by chance (kappa ~ 0) and "
                 "tells you nothing about which answer is better")
_SWAP = {"a": "b", "b": "a", "tie": "tie", "invalid": "invalid"}


def unswap(winner: str) -> str:
    """A winner given on the swapped order, in the pair's own orientation (tie and invalid stay as they are)."""
    return _SWAP[winner]


@dataclass(frozen=True)
class OrderedVerdicts:
    """One pair and what the judge answered in each order it was asked (``ba``: None when asked in one order)."""

    a: str
    b: str
    ab: str
    ba: str | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Both orders recorded inside one verdict (judges run with ``debias``)

_DEBIASED_SPLIT = re.compile(r"^(?:position-inconsistent|orders disagree): (a|b|tie) in (?:order )?AB, (a|b|tie) in "
                             r"(?:order )?BA")
_AVERAGED = re.compile(r"^p\(A\) averaged over both orders [0-9.]+ \(AB ([0-9.]+), BA ([0-9.]+)\)")


def _side(p_first_wins: float) -> str:
    return "a" if p_first_wins > 0.5 else "b" if p_first_wins < 0.5 else "tie"


def recorded_orders(winner: str, rationale: str | None,
                    criteria: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """(verdict in order AB, verdict in order BA as answered) when one verdict records both orders, else None.

    Read from what the both-orders judges (``debias: true`` / ``average``) keep: ``criteria["orders"]`` =
    ``{"ab": w, "ba": w}`` (BA as answered) when a judge records it; otherwise their rationale, which names each
    order's winner in the pair's orientation ("position-inconsistent: a in order AB, b in order BA", "both orders
    agree: ...", "p(A) averaged over both orders 0.41 (AB 0.62, BA 0.21)"). Stored anchor verdicts keep the
    rationale, so this works on them too. An invalid pair records no orders (either may have failed).
    """
    orders = (criteria or {}).get("orders") if isinstance(criteria, dict) else None
    if isinstance(orders, dict) and orders.get("ab") in _SWAP and orders.get("ba") in _SWAP:
        return orders["ab"], orders["ba"]
    if winner == "invalid" or not rationale:
        return None
    if rationale.startswith("both orders agree"):
        return winner, unswap(winner)
    if m := _DEBIASED_SPLIT.match(rationale):
        return m.group(1), unswap(m.group(2))
    if m := _AVERAGED.match(rationale):  # both numbers are p(the pair's A wins), one per order
        return _side(float(m.group(1))), unswap(_side(float(m.group(2))))
    return None


# ---------------------------------------------------------------------------------------------------------------------
# The figures


def _share(hits: int, n: int) -> float | None:
    return round(hits / n, 6) if n else None


@dataclass(frozen=True)
class BiasFigures:
    n_pairs: int
    n_verdicts: int  # questions asked: one per pair and order
    n_both_orders: int  # pairs valid in both orders: the flip rate's denominator
    flip_rate: float | None  # share of those whose verdict changed with the order; None when none was asked twice
    n_decisive: int  # verdicts for a or b
    first_shown_share: float | None  # of decisive verdicts, those for the answer shown first
    n_length_differs: int  # decisive verdicts on pairs of different lengths
    longer_share: float | None  # of those, verdicts for the longer answer
    invalid_rate: float | None  # invalid verdicts / questions asked
    label_shares: dict[str, float] = field(default_factory=dict)  # valid verdicts as answered: a / b / tie
    one_class: str | None = None  # the answer given to >= ONE_CLASS_SHARE of valid verdicts (enough of them)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"n_pairs": self.n_pairs, "n_verdicts": self.n_verdicts, "n_both_orders": self.n_both_orders,
                "flip_rate": self.flip_rate, "n_decisive": self.n_decisive,
                "first_shown_share": self.first_shown_share, "n_length_differs": self.n_length_differs,
                "longer_share": self.longer_share, "invalid_rate": self.invalid_rate,
                "label_shares": dict(self.label_shares), "one_class": self.one_class,
                "warnings": list(self.warnings)}


def bias_figures(pairs: Sequence[OrderedVerdicts], *, one_class_share: float = ONE_CLASS_SHARE,
                 one_class_min: int = ONE_CLASS_MIN) -> BiasFigures:
    """The figures of one judge over ``pairs`` (see the module docstring for what each counts)."""
    asked: list[tuple[str, str, str]] = []  # (shown first, shown second, winner as answered)
    both = flips = 0
    for p in pairs:
        asked.append((p.a, p.b, p.ab))
        if p.ba is not None:
            asked.append((p.b, p.a, p.ba))
            if p.ab != "invalid" and p.ba != "invalid":
                both += 1
                flips += p.ab != unswap(p.ba)
    decisive = [(first, second, w) for first, second, w in asked if w in ("a", "b")]
    sized = [(first, second, w) for first, second, w in decisive if len(first.strip()) != len(second.strip())]
    longer = sum((len(first.strip()) > len(second.strip())) == (w == "a") for first, second, w in sized)
    valid = Counter(w for _, _, w in asked if w != "invalid")
    n_valid = sum(valid.values())
    shares = {label: round(valid[label] / n_valid, 6) for label in ("a", "b", "tie")} if n_valid else {}
    top = max(shares, key=shares.get) if shares else None
    one_class = top if top and n_valid >= one_class_min and shares[top] >= one_class_share else None
    warnings = []
    if one_class:
        answer = {"a": "the first-shown answer", "b": "the second-shown answer", "tie": "a tie"}[one_class]
        warnings.append(f"{shares[one_class]:.0%} of {n_valid} verdicts are {answer}: {ONE_CLASS_WHY}")
    return BiasFigures(
        n_pairs=len(pairs), n_verdicts=len(asked), n_both_orders=both, flip_rate=_share(flips, both),
        n_decisive=len(decisive), first_shown_share=_share(sum(w == "a" for _, _, w in decisive), len(decisive)),
        n_length_differs=len(sized), longer_share=_share(longer, len(sized)),
        invalid_rate=_share(sum(w == "invalid" for _, _, w in asked), len(asked)), label_shares=shares,
        one_class=one_class, warnings=tuple(warnings))


def ordered_from_verdict(a: str, b: str, winner: str, rationale: str | None = None,
                         criteria: dict[str, Any] | None = None) -> OrderedVerdicts:
    """One verdict in the pair's own order, split into both orders when it records them (``recorded_orders``)."""
    orders = recorded_orders(winner, rationale, criteria)
    return OrderedVerdicts(a, b, *orders) if orders else OrderedVerdicts(a, b, winner)


def format_bias(figures: dict[str, Any]) -> list[str]:
    """The figures as lines of text (``rlaif kappa``, the run summary): what each share is out of, then warnings."""
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0%}"

    flip = (f"{pct(figures['flip_rate'])} of {figures['n_both_orders']} pairs asked both ways"
            if figures["n_both_orders"] else "— (each pair asked in one order)")
    lines = [f"position flips {flip}",
             f"first-shown answer wins {pct(figures['first_shown_share'])} of {figures['n_decisive']} decisive "
             f"verdicts · longer answer wins {pct(figures['longer_share'])} of {figures['n_length_differs']} · "
             f"invalid {pct(figures['invalid_rate'])} of {figures['n_verdicts']}"]
    return lines + [f"WARNING: {w}" for w in figures["warnings"]]
