"""What the Calibration page shows of kappa: readable rows (12-character ids, "0.79 [0.78, 0.80]") and, next to every
kappa, a plain-words note when the number means nothing.

Why a note and not just the number: kappa 0.000 on 5 items where 4 of the 5 labels are ties reads like "the judge
disagrees with people", but it is not a measurement at all: with one class (or almost only ties) there is no
agreement beyond chance to measure, and on a handful of items the CI spans most of [-1, 1]. The gate's own reasons
say this for the decision (``rlaif.anchors.gate_rules``); :func:`kappa_note` says it for every number on the page,
the per-slice and holdout rows included. The rule is a pure function of counts, so it is tested without a store.

    kappa_note(5, 0.0, labels={"tie": 4, "A": 1})   # "4 of 5 labels are ties: ... kappa means nothing here; ..."
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping, Sequence

from rlaif.anchors import kappa_table, resolved_labels
from rlaif.anchors.agreement import judge_label
from rlaif.anchors.defaults import DEFAULT_MIN_ITEMS_PER_SLICE
from rlaif.anchors.gate import SWAPPED_SUFFIX
from rlaif.workbench.fmt import fmt_ci, fmt_id, fmt_num

#: Fewer items than this and kappa is shown with a "too few items" note (the gate's own per-slice minimum).
MIN_ITEMS_FOR_KAPPA = DEFAULT_MIN_ITEMS_PER_SLICE
#: At least this share of ties among the labels and kappa is dominated by them (too few decisive labels).
TIE_SHARE = 0.8


def kappa_note(n: int, kappa: float | None = None, *, labels: Mapping[str, int] | None = None,
               judge: Mapping[str, int] | None = None, n_invalid: int = 0,
               min_items: int = MIN_ITEMS_FOR_KAPPA, short: bool = False) -> str | None:
    """Why a kappa on ``n`` items means nothing (or little), in plain words; None when it is a real measurement.

    ``labels``: how many items carry each label (A, B, tie); ``judge``: how many got each verdict (A, B, tie,
    invalid). Without the counts only the item count and the invalid verdicts are checked. ``short`` gives the terse
    form a table cell holds ("4 of 5 labels are ties; only 5 items").
    """
    reasons: list[tuple[str, str]] = []  # (short, long)
    used = {k: v for k, v in (labels or {}).items() if v}
    answers = {k: v for k, v in (judge or {}).items() if v and k != "invalid"}
    if n <= 0:
        reasons.append(("no items", "no labelled item was judged: nothing is measured"))
    elif n_invalid >= n:
        reasons.append((f"all {n} verdicts invalid", f"every verdict was invalid ({n} of {n}): nothing is measured; "
                                                      "the rationales say why the judge failed"))
    else:
        if len(used) == 1:
            only = next(iter(used))
            reasons.append((f"every label is {only}", f"every label is {only}: with one class, agreement beyond "
                                                      "chance cannot be measured (label a mix of cases)"))
        elif used and used.get("tie", 0) / n >= TIE_SHARE:
            reasons.append((f"{used['tie']} of {n} labels are ties", f"{used['tie']} of {n} labels are ties: too few "
                                                                     "labels pick a side, so kappa means nothing here"))
        if len(answers) == 1 and len(used) != 1:
            only = next(iter(answers))
            reasons.append((f"the judge always said {only}", f"the judge gave one answer ({only}) to every item: "
                                                              "kappa is 0 by construction, not a measurement"))
        if n < min_items:
            reasons.append((f"only {n} items", f"only {n} items: too few for kappa to mean much (its CI is very "
                                               "wide)"))
        if not reasons and (kappa is None or (isinstance(kappa, float) and math.isnan(kappa))):
            reasons.append(("undefined", "kappa is undefined on these items"))
    return "; ".join(r[0] if short else r[1] for r in reasons) or None


def counts_from_confusion(confusion: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(label counts, verdict counts) from a report's confusion matrix (rows: labels, columns: the judge)."""
    names, matrix = confusion.get("labels") or [], confusion.get("matrix") or []
    labels = {name: sum(row) for name, row in zip(names, matrix)}
    judge = {name: sum(row[k] for row in matrix) for k, name in enumerate(names)}
    return labels, judge


def report_note(report: Mapping[str, Any]) -> str | None:
    """The note for a gate report's headline kappa (its confusion gives the counts)."""
    labels, judge = counts_from_confusion(report.get("confusion") or {})
    return kappa_note(report.get("n") or 0, report.get("kappa"), labels=labels, judge=judge,
                      n_invalid=report.get("n_invalid") or 0)


def pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def kappa_rows(store, anchor_set_id: str, *, annotators: str, split: str = "tuning",
               n_resamples: int = 300) -> list[dict[str, Any]]:
    """``kappa_table`` as the page shows it: judge, 12-character rubric id (the decisions table above carries the full
    one), slice, n, "kappa [CI]", agreement, and a short note where the kappa means little or nothing."""
    table = kappa_table(store, anchor_set_id, annotators=annotators, split=split, n_resamples=n_resamples)
    if not table:
        return []
    labels = resolved_labels(store, anchor_set_id, annotators=annotators, split=split)
    label_counts: dict[tuple[str, str, str], Counter] = {}
    judge_counts: dict[tuple[str, str, str], Counter] = {}
    for v in store.anchors.verdicts(anchor_set_id, split=split):
        if v["item_id"] not in labels or v["judge_id"].endswith(SWAPPED_SUFFIX):
            continue
        for slice_name in ("all", v["slice"]):
            key = (v["judge_id"], v["rubric_version"], slice_name)
            label_counts.setdefault(key, Counter())[labels[v["item_id"]].label] += 1
            judge_counts.setdefault(key, Counter())[judge_label(v["winner"])] += 1
    rows = []
    for r in table:
        key = (r["judge_id"], r["rubric_version"], r["slice"])
        ci = r.get("ci") or [None, None]
        rows.append({"judge": r["judge_id"], "rubric": fmt_id(r["rubric_version"]), "slice": r["slice"], "n": r["n"],
                     "kappa [95% CI]": fmt_ci(r["kappa"], ci[0], ci[1]) if r["kappa"] is not None else "—",
                     "agreement": pct(r.get("raw_agreement")), "invalid": r.get("n_invalid", 0),
                     "flips": pct(r.get("flip_rate")) if r["slice"] == "all" else "",
                     "note": kappa_note(r["n"], r["kappa"], labels=label_counts.get(key), short=True,
                                        judge=judge_counts.get(key), n_invalid=r.get("n_invalid", 0)) or ""})
    return rows


def report_rows(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The gate's decisions, newest first: key columns first, 12-character ids, the full version last."""
    rows = []
    for r in reports:
        decision = r["body"].get("decision") or ("passed" if r["passed"] else "blocked")
        rows.append({"when": f"{r['created_at']:%Y-%m-%d %H:%M}", "judge": r["judge_id"], "decision": decision,
                     "kappa [95% CI]": fmt_ci(r["kappa"], r["ci_low"], r["ci_high"]) if r["kappa"] is not None
                     else "—", "n": r["n"], "threshold": fmt_num(r["threshold"]), "labels": r["annotators"],
                     "rubric": fmt_id(r["rubric_version"]), "rubric version (full)": r["rubric_version"]})
    return rows


def holdout_metrics(holdout: Mapping[str, Any] | None, rule: Mapping[str, Any],
                    threshold: float) -> dict[str, Any] | None:
    """The locked holdout as the page's metrics: kappa and its CI, n, raw agreement, what the gate's rule would say on
    it (reported only, it never decides), and a note when its kappa means nothing."""
    if not holdout:
        return None
    kappa, ci, n = holdout.get("kappa"), holdout.get("ci") or [None, None], holdout.get("n") or 0
    note = kappa_note(n, kappa, n_invalid=holdout.get("n_invalid") or 0)
    number = kappa if rule.get("gate_on") == "point" else ci[0]
    if kappa is None or number is None:
        would = "not measurable"
    else:
        would = "would pass" if number >= threshold else "would block"
    return {"kappa": "—" if kappa is None else f"{kappa:.3f}",
            "ci": "—" if None in (ci[0], ci[1]) else f"[{ci[0]:.2f}, {ci[1]:.2f}]", "n": n,
            "agreement": pct(holdout.get("raw_agreement")), "decision": would, "note": note}
