"""The calibration gate's configuration: the ``calibration:`` section of a loop config.

Kept beside ``gate.py`` (TRL's ``x_config.py`` next to ``x_trainer.py``), and free of the gate's own imports (numpy,
scikit-learn), so the loop config can import it at the top; :func:`rlaif.anchors.gate.run_calibration_gate` is the
entry point that runs the gate as configured.

    cfg = CalibrationConfig(anchor_set="anchors.jsonl", annotators="oracle")
"""

from __future__ import annotations

from dataclasses import dataclass

from rlaif.anchors.defaults import (
    ANNOTATOR_MODES,
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_MIN_ITEMS,
    DEFAULT_MIN_ITEMS_PER_SLICE,
    DEFAULT_THRESHOLD,
    GATE_ON,
)
from rlaif.core.fields import check, help_field

_help, _check = help_field, check


@dataclass
class CalibrationConfig:
    anchor_set: str | None = _help(
        "Anchor set to check the judge against: an anchor set id in the store, or a JSONL/CSV/Parquet file (imported "
        "on first use; re-importing the same file is a no-op). Unset: no calibration gate runs.", None)
    threshold: float = _help(
        "Minimum judge-label Cohen's kappa on the non-holdout anchors; below it training is blocked (seed 002: 0.72).",
        DEFAULT_THRESHOLD)
    min_items: int = _help(
        "Fewest labelled non-holdout anchors the gate accepts; with fewer, kappa is too noisy and training is blocked.",
        DEFAULT_MIN_ITEMS)
    gate_on: str = _help(
        "Which number must clear the threshold: lower_bound (kappa's 95% bootstrap CI lower bound: the anchors must "
        "show agreement above the threshold, not just happen to land above it) or point (kappa itself).",
        "lower_bound")
    slices: list[str] | None = _help("Gate only on these anchor slices (unset: all slices).", None)
    per_slice: bool = _help("Every gated slice must pass on its own too, not only the items taken together.", False)
    min_items_per_slice: int = _help("With per_slice: fewest labelled items a slice needs; fewer blocks.",
                                     DEFAULT_MIN_ITEMS_PER_SLICE)
    report_holdout: bool = _help(
        "Also judge the locked holdout and report its kappa beside the decision (it never decides). Costs judge "
        "calls on the holdout items.", True)
    annotators: str = _help(
        "Whose labels count: human (people, adjudicated), oracle (machine references such as SQL execution) or any "
        "(human where present, else oracle).", "human")
    override: bool = _help(
        "Train even when the gate blocks. Recorded in the manifest as an override; needs override_reason.", False)
    override_reason: str | None = _help("Why the gate is overridden (required with override; recorded).", None)
    holdout_fraction: float = _help(
        "Share of an imported anchor file locked away as a never-tune holdout (reported, never decided on).",
        DEFAULT_HOLDOUT_FRACTION)
    bootstrap_resamples: int = _help("Bootstrap resamples for kappa's 95% confidence interval.", 1000)

    def __post_init__(self):
        _check(-1.0 <= self.threshold <= 1.0, "calibration.threshold",
               f"must be a kappa in [-1, 1], got {self.threshold}")
        _check(self.min_items >= 1, "calibration.min_items", f"must be >= 1, got {self.min_items}")
        _check(self.gate_on in GATE_ON, "calibration.gate_on",
               f"must be one of {', '.join(GATE_ON)}, got {self.gate_on!r}")
        _check(self.min_items_per_slice >= 1, "calibration.min_items_per_slice",
               f"must be >= 1, got {self.min_items_per_slice}")
        _check(self.slices is None or len(self.slices) > 0, "calibration.slices", "must list a slice when set")
        _check(self.annotators in ANNOTATOR_MODES, "calibration.annotators",
               f"must be one of {', '.join(ANNOTATOR_MODES)}, got {self.annotators!r}")
        _check(not self.override or bool(self.override_reason and self.override_reason.strip()),
               "calibration.override_reason", "is required when calibration.override is true")
        _check(0 <= self.holdout_fraction < 1, "calibration.holdout_fraction",
               f"must be in [0, 1), got {self.holdout_fraction}")
        _check(self.bootstrap_resamples >= 100, "calibration.bootstrap_resamples",
               f"must be >= 100, got {self.bootstrap_resamples}")
