"""The calibration gate: do not train on a judge + rubric version whose kappa with people is under the threshold.

Seed 002: "do not train on RLAIF batches where judge agreement on anchors falls below a threshold (e.g. 0.72 kappa)".
:func:`kappa_gate` judges the NON-HOLDOUT anchors (reusing verdicts stored for the same judge id and rubric version),
compares them with the label that counts per item (:func:`rlaif.anchors.labelling.resolved_labels`), and decides by
the rule in ``gate_rules`` (by default kappa's 95% CI lower bound must clear the threshold). An override is never
implicit: it must be asked for with a reason, and the result says ``override=True`` with the numbers that would have
blocked. The holdout's kappa is measured after the decision, only when asked for, and never used for it.

    result = kappa_gate(store, judge, rubric, "as-1f2e...", threshold=0.72, annotators="human")
    if not result.passed: raise SystemExit(result.reason)
    manifest["calibration_gate"] = result.to_dict()
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rlaif.anchors.agreement import JudgeHumanAgreement, agreement_by_slice, judge_label
from rlaif.anchors.defaults import ANNOTATOR_MODES, DEFAULT_MIN_ITEMS, DEFAULT_MIN_ITEMS_PER_SLICE, DEFAULT_THRESHOLD
from rlaif.anchors.gate_config import CalibrationConfig
from rlaif.anchors.gate_rules import GateRule, decide_all
from rlaif.anchors.importers import resolve_anchor_set
from rlaif.anchors.labelling import resolved_labels
from rlaif.anchors.sampling import allocate
from rlaif.judges.base import Comparison, Judge
from rlaif.judges.bias import OrderedVerdicts, bias_figures, ordered_from_verdict, recorded_orders, unswap
from rlaif.rubric import Rubric

_JUDGE_CHUNK = 256
#: Verdicts asked with A and B swapped are stored under the judge id plus this suffix, in the item's orientation
#: (a = response_a, like every stored verdict), so reuse and the flip rate work like the judge's own verdicts.
SWAPPED_SUFFIX = "@swapped"


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    kappa: float | None
    ci: tuple[float | None, float | None]
    n: int
    threshold: float
    reason: str
    override: bool
    decision: str = "blocked"  # passed | blocked | overridden
    override_reason: str | None = None
    min_items: int = DEFAULT_MIN_ITEMS
    annotators: str = "human"
    anchor_set_id: str = ""
    judge_id: str = ""
    rubric_version: str = ""
    raw_agreement: float | None = None
    n_invalid: int = 0
    two_class: dict[str, Any] = field(default_factory=dict)
    confusion: dict[str, Any] = field(default_factory=dict)
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    holdout: dict[str, Any] | None = None  # reported, never decided on
    report_id: str | None = None  # the kappa_reports row (not in to_dict: it is not part of the decision)
    rule: dict[str, Any] = field(default_factory=dict)  # the GateRule that decided
    degenerate: str | None = None  # all_invalid | judge_one_class | labels_one_class: kappa means nothing
    n_labelled: int | None = None  # labelled tuning items before --limit sampled n of them
    bias: dict[str, Any] = field(default_factory=dict)  # position flips, first-shown / longer shares, invalid rate
    split: str = "tuning"  # the items decided on: "holdout" only for a judge trained on the tuning split

    def to_dict(self) -> dict[str, Any]:
        """What the manifest records: the decision with its numbers (JSON-safe: undefined numbers are null)."""
        return {"passed": self.passed, "decision": self.decision, "kappa": _num(self.kappa),
                "ci": [_num(c) for c in self.ci], "n": self.n, "threshold": self.threshold,
                "min_items": self.min_items, "reason": self.reason, "override": self.override,
                "override_reason": self.override_reason, "annotators": self.annotators,
                "anchor_set_id": self.anchor_set_id, "judge_id": self.judge_id,
                "rubric_version": self.rubric_version, "raw_agreement": _num(self.raw_agreement),
                "n_invalid": self.n_invalid, "two_class": self.two_class, "confusion": self.confusion,
                "slices": self.slices, "holdout": self.holdout, "rule": self.rule, "degenerate": self.degenerate,
                "n_labelled": self.n_labelled, "bias": self.bias, "split": self.split}


# ---------------------------------------------------------------------------------------------------------------------
# Judging anchors


def ensure_verdicts(store, judge: Judge, rubric: Rubric, items: Sequence[dict[str, Any]],
                    reuse: bool = True, *, swapped: bool = False) -> dict[str, dict[str, Any]]:
    """Verdicts of ``judge`` under ``rubric`` on ``items`` (item orientation: a = response_a), keyed by item id.

    Stored valid verdicts of the same judge id and rubric version are reused; the others are judged in batches and
    stored. An invalid verdict is stored too but is asked again next time (it may have been a transient failure).
    ``swapped`` asks each item with its responses swapped (stored under ``judge_id + SWAPPED_SUFFIX``, un-swapped
    back into the item's orientation): the second order the position-flip rate needs.
    """
    if not items:
        return {}
    judge_id = judge.judge_id + (SWAPPED_SUFFIX if swapped else "")
    stored: dict[str, dict[str, Any]] = {}
    if reuse:
        anchor_set_ids = {i["anchor_set_id"] for i in items}
        for set_id in anchor_set_ids:
            for v in store.anchors.verdicts(set_id, judge_id=judge_id, rubric_version=rubric.version):
                if v["winner"] != "invalid":
                    stored[v["item_id"]] = v
    todo = [i for i in items if i["item_id"] not in stored]
    for start in range(0, len(todo), _JUDGE_CHUNK):
        chunk = todo[start:start + _JUDGE_CHUNK]
        comparisons = [Comparison(i["prompt"], i["response_a"], i["response_b"], i["reference"], i["item_id"])
                       for i in chunk]
        verdicts = judge.compare([c.swapped() for c in comparisons] if swapped else comparisons, rubric)
        if len(verdicts) != len(chunk):
            raise RuntimeError(f"judge {judge.judge_id!r} returned {len(verdicts)} verdicts for {len(chunk)} items")
        rows = [{"item_id": i["item_id"], "judge_id": judge_id, "rubric_version": rubric.version,
                 "winner": unswap(v.winner) if swapped else v.winner, "confidence": v.confidence,
                 "rationale": ("[asked B/A] " if swapped else "") + (v.rationale or "")}
                for i, v in zip(chunk, verdicts)]
        store.anchors.save_verdicts(rows)
        stored.update({r["item_id"]: r for r in rows})
    return {i["item_id"]: stored[i["item_id"]] for i in items}


def ordered_verdicts(items: Sequence[dict[str, Any]], verdicts: dict[str, dict[str, Any]],
                     swapped: dict[str, dict[str, Any]] | None = None) -> list[OrderedVerdicts]:
    """Each item's verdicts per order as the judge answered them: from the verdict itself when it records both
    orders (a ``debias`` judge), else from the swapped pass when there is one, else the one order."""
    out = []
    for i in items:
        v, w = verdicts.get(i["item_id"]), (swapped or {}).get(i["item_id"])
        if v is None:
            continue
        pair = ordered_from_verdict(i["response_a"], i["response_b"], v["winner"], v.get("rationale"))
        if pair.ba is None and w is not None:
            pair = OrderedVerdicts(i["response_a"], i["response_b"], v["winner"], unswap(w["winner"]))
        out.append(pair)
    return out


def judge_bias(store, judge: Judge, rubric: Rubric, items: Sequence[dict[str, Any]],
               verdicts: dict[str, dict[str, Any]], *, swap: bool = True, reuse: bool = True) -> dict[str, Any]:
    """Bias figures of ``judge`` on ``items`` (``rlaif.judges.bias``). Unless every verdict already records both
    orders, the items are asked again with A and B swapped (``swap``; stored and reused like any verdict, through the
    same judge, so its cache and budget apply) to measure the position-flip rate."""
    records_both = any(recorded_orders(v["winner"], v.get("rationale")) for v in verdicts.values())
    swapped = ensure_verdicts(store, judge, rubric, items, reuse=reuse, swapped=True) if swap and not records_both \
        else None
    return bias_figures(ordered_verdicts(items, verdicts, swapped)).to_dict()


def labelled_items(store, anchor_set_id: str, *, split: str = "tuning", annotators: str = "human",
                   slices: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the items of one split that have a label under ``annotators``, in set order; their labels by item id)."""
    labels = resolved_labels(store, anchor_set_id, annotators=annotators, split=split, slices=slices)
    items = [i for i in store.anchors.items(anchor_set_id, split=split, slices=list(slices or []))
             if i["item_id"] in labels]
    return items, labels


def stratified_sample(items: Sequence[dict[str, Any]], limit: int, seed: int = 0) -> list[dict[str, Any]]:
    """At most ``limit`` items, each slice keeping its share (every slice at least one when the limit allows),
    drawn with a seeded generator, in set order: a cheap first measurement before judging everything."""
    if limit >= len(items):
        return list(items)
    by_slice: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_slice.setdefault(item["slice"], []).append(item)
    rng = np.random.default_rng(seed)
    keep: set[str] = set()
    for name, take in allocate({k: len(v) for k, v in by_slice.items()}, limit).items():
        chosen = rng.choice(len(by_slice[name]), size=take, replace=False) if take else []
        keep.update(by_slice[name][k]["item_id"] for k in chosen)
    return [i for i in items if i["item_id"] in keep]


def measure_agreement(store, judge: Judge, rubric: Rubric, anchor_set_id: str, *, split: str = "tuning",
                      annotators: str = "human", slices: Sequence[str] | None = None, seed: int = 0,
                      n_resamples: int = 1000, reuse_verdicts: bool = True) -> dict[str, JudgeHumanAgreement]:
    """Judge–label agreement on the labelled items of one split: ``{"all": ..., <slice>: ...}``."""
    items, labels = labelled_items(store, anchor_set_id, split=split, annotators=annotators, slices=slices)
    return agreement_on(store, judge, rubric, items, labels, seed=seed, n_resamples=n_resamples,
                        reuse_verdicts=reuse_verdicts)


def agreement_on(store, judge: Judge, rubric: Rubric, items: Sequence[dict[str, Any]], labels: dict[str, Any], *,
                 seed: int = 0, n_resamples: int = 1000, reuse_verdicts: bool = True) -> dict[str, JudgeHumanAgreement]:
    """Judge–label agreement on ``items`` (each with a label in ``labels``), judging those without a stored verdict."""
    verdicts = ensure_verdicts(store, judge, rubric, items, reuse=reuse_verdicts)
    return agreement_of(items, labels, verdicts, seed=seed, n_resamples=n_resamples)


def agreement_of(items: Sequence[dict[str, Any]], labels: dict[str, Any], verdicts: dict[str, dict[str, Any]], *,
                 seed: int = 0, n_resamples: int = 1000) -> dict[str, JudgeHumanAgreement]:
    """Judge–label agreement of verdicts already obtained (``ensure_verdicts``)."""
    rows = [{"slice": i["slice"], "human": labels[i["item_id"]].label,
             "judge": judge_label(verdicts[i["item_id"]]["winner"])} for i in items]
    return agreement_by_slice(rows, n_resamples=n_resamples, seed=seed)


def _summary(a: JudgeHumanAgreement) -> dict[str, Any]:
    return {"n": a.n, "kappa": _num(a.kappa), "ci": [_num(c) for c in a.ci],
            "raw_agreement": _num(a.three_class.raw_agreement), "n_invalid": a.n_invalid,
            "kappa_2class": _num(a.two_class.kappa), "n_2class": a.two_class.n}


# ---------------------------------------------------------------------------------------------------------------------
# The gate


def kappa_gate(store, judge: Judge, rubric: Rubric, anchor_set_id: str, threshold: float = DEFAULT_THRESHOLD,
               min_items: int = DEFAULT_MIN_ITEMS, annotators: str = "human", override: bool = False,
               override_reason: str | None = None, *, slices: Sequence[str] | None = None, seed: int = 0,
               n_resamples: int = 1000, reuse_verdicts: bool = True, report_holdout: bool = True,
               record: bool = True, gate_on: str = "lower_bound", per_slice: bool = False,
               min_items_per_slice: int = DEFAULT_MIN_ITEMS_PER_SLICE, limit: int | None = None,
               swap_orders: bool = False) -> GateResult:
    """Decide whether training may use ``judge`` under ``rubric``, from the non-holdout anchors of one set (from the
    locked holdout for a judge trained on the tuning split: ``Judge.needs_holdout_gate``).

    Blocks when fewer than ``min_items`` tuning items have a label under ``annotators`` (human | oracle | any), when
    kappa means nothing (every verdict invalid, one class), or when the rule's number is under ``threshold``:
    kappa's 95% CI lower bound (``gate_on="lower_bound"``, the default) or kappa itself (``"point"``); with
    ``per_slice`` every slice must pass too, on at least ``min_items_per_slice`` items. ``limit`` judges a seeded,
    slice-stratified sample of that many items first. ``override=True`` (with ``override_reason``) lets a blocked
    gate pass and says so. With ``record`` the decision is stored in ``kappa_reports``. The result's ``bias`` holds
    the judge's bias figures on the same items; ``swap_orders`` asks them again with A and B swapped (twice the
    calls, once: the swapped verdicts are stored and reused) so the position-flip rate is measured too.
    """
    rule = GateRule(threshold, min_items, gate_on, per_slice, min_items_per_slice)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 when given, got {limit}")
    if annotators not in ANNOTATOR_MODES:
        raise ValueError(f"annotators must be one of {ANNOTATOR_MODES}, got {annotators!r}")
    if override and not (override_reason and override_reason.strip()):
        raise ValueError("an override of the calibration gate needs override_reason (it is recorded)")
    if store.anchors.get_set(anchor_set_id) is None:
        raise ValueError(f"no anchor set {anchor_set_id!r}")

    # a judge trained on the tuning split (a distilled reward model) would be graded on its own training items:
    # it is decided on the locked holdout instead, which it never saw
    split = "holdout" if judge.needs_holdout_gate else "tuning"
    items, labels = labelled_items(store, anchor_set_id, split=split, annotators=annotators, slices=slices)
    sample = stratified_sample(items, limit, seed) if limit else items
    verdicts = ensure_verdicts(store, judge, rubric, sample, reuse=reuse_verdicts)
    measured = agreement_of(sample, labels, verdicts, seed=seed, n_resamples=n_resamples)
    bias = judge_bias(store, judge, rubric, sample, verdicts, swap=swap_orders, reuse=reuse_verdicts)
    overall = measured["all"]
    kappa, n = overall.kappa, overall.n
    who = {"human": "human-labelled", "oracle": "oracle-labelled", "any": "labelled"}[annotators]
    scope = (f"locked-holdout {who} items (the judge was trained on the tuning split)" if split == "holdout"
             else f"non-holdout {who} items") + (f" (a stratified sample of {len(items)})"
                                                 if len(sample) < len(items) else "")
    verdict = decide_all(measured, rule, scope)
    ok, reason = verdict.ok, verdict.reason
    decision, overridden = ("passed" if ok else "blocked"), False
    if override and not ok:
        decision, overridden = "overridden", True
        reason = f"OVERRIDDEN ({override_reason.strip()}); the gate would have blocked: {reason}"
    elif override:
        reason += "; an override was requested but not needed"

    holdout = None
    if report_holdout and split == "tuning":  # measured after the decision, from the holdout only: reported
        held = measure_agreement(store, judge, rubric, anchor_set_id, split="holdout", annotators=annotators,
                                 slices=slices, seed=seed, n_resamples=n_resamples, reuse_verdicts=reuse_verdicts)
        holdout = _summary(held["all"])

    result = GateResult(
        passed=ok or overridden, kappa=_num(kappa), ci=tuple(_num(c) for c in overall.ci), n=n,
        threshold=threshold, reason=reason, override=overridden, decision=decision,
        override_reason=override_reason if overridden else None, min_items=min_items, annotators=annotators,
        anchor_set_id=anchor_set_id, judge_id=judge.judge_id, rubric_version=rubric.version,
        raw_agreement=_num(overall.three_class.raw_agreement), n_invalid=overall.n_invalid,
        two_class=overall.two_class.to_dict(),
        confusion={"rows": "labels", "columns": "judge", "labels": list(overall.three_class.labels),
                   "matrix": overall.three_class.confusion},
        slices={name: _summary(a) for name, a in measured.items() if name != "all"}, holdout=holdout,
        rule=rule.to_dict(), degenerate=verdict.degenerate, n_labelled=len(items), bias=bias, split=split)
    if record:
        report_id = store.anchors.add_kappa_report({
            "anchor_set_id": anchor_set_id, "judge_id": judge.judge_id, "rubric_version": rubric.version,
            "annotators": annotators, "n": n, "kappa": result.kappa, "ci_low": result.ci[0],
            "ci_high": result.ci[1], "threshold": threshold, "passed": result.passed, "override": overridden,
            "override_reason": result.override_reason, "body": result.to_dict()})
        result = replace(result, report_id=report_id)
    return result


def kappa_table(store, anchor_set_id: str, *, annotators: str = "human", split: str = "tuning", seed: int = 0,
                n_resamples: int = 1000) -> list[dict[str, Any]]:
    """Kappa per judge x rubric version x slice from the verdicts already stored (no judge is run), for the
    calibration dashboard and ``rlaif anchors stats``: one row per (judge_id, rubric_version, slice), "all" first.
    The "all" rows carry the judge's bias figures on the same items (the flip rate where both orders were asked)."""
    labels = resolved_labels(store, anchor_set_id, annotators=annotators, split=split)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    swapped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for v in store.anchors.verdicts(anchor_set_id, split=split):
        if v["item_id"] not in labels:
            continue
        if v["judge_id"].endswith(SWAPPED_SUFFIX):
            key = (v["judge_id"][:-len(SWAPPED_SUFFIX)], v["rubric_version"])
            swapped.setdefault(key, {})[v["item_id"]] = v
        else:
            groups.setdefault((v["judge_id"], v["rubric_version"]), []).append(v)
    items = {i["item_id"]: i for i in store.anchors.items(anchor_set_id, split=split)} if groups else {}
    table = []
    for key, verdicts in sorted(groups.items()):
        rows = [{"slice": v["slice"], "human": labels[v["item_id"]].label, "judge": judge_label(v["winner"])}
                for v in verdicts]
        judged = [items[v["item_id"]] for v in verdicts]
        bias = bias_figures(ordered_verdicts(judged, {v["item_id"]: v for v in verdicts}, swapped.get(key)))
        for name, a in agreement_by_slice(rows, n_resamples=n_resamples, seed=seed).items():
            row = {"judge_id": key[0], "rubric_version": key[1], "slice": name, **_summary(a)}
            if name == "all":
                row.update(flip_rate=bias.flip_rate, first_shown_share=bias.first_shown_share,
                           longer_share=bias.longer_share, invalid_rate=bias.invalid_rate,
                           one_class=bias.one_class)
            table.append(row)
    return table


def run_calibration_gate(store, cfg: CalibrationConfig, judge: Judge, rubric: Rubric, *,
                         resolve: Callable[[str], Path | None] = Path, seed: int = 0) -> GateResult | None:
    """Run the gate as a loop config's ``calibration:`` section asks; None when no anchor set is configured."""
    if not cfg.anchor_set:
        return None
    anchor_set_id = resolve_anchor_set(store, cfg.anchor_set, resolve, cfg.holdout_fraction)
    return kappa_gate(store, judge, rubric, anchor_set_id, threshold=cfg.threshold, min_items=cfg.min_items,
                      annotators=cfg.annotators, override=cfg.override, override_reason=cfg.override_reason,
                      slices=cfg.slices, seed=seed, n_resamples=cfg.bootstrap_resamples, gate_on=cfg.gate_on,
                      per_slice=cfg.per_slice, min_items_per_slice=cfg.min_items_per_slice,
                      report_holdout=cfg.report_holdout)
