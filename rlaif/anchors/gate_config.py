"""The calibration gate's configuration (the ``calibration:`` section of a loop config) and its one entry point.

Kept beside ``gate.py`` (TRL's ``x_config.py`` next to ``x_trainer.py``) so the loop config only has to add
``calibration: CalibrationConfig`` and the pipeline one call, :func:`run_calibration_gate`, before training. Importing
this module is cheap and cycle-free (``rlaif.config`` may import it at the top): the engine is imported on use.

    cfg = CalibrationConfig(anchor_set="anchors.jsonl", annotators="oracle")
    result = run_calibration_gate(store, cfg, judge, rubric, resolve=run_config.resolve)   # None: gate disabled
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rlaif.config_fields import check, help_field
from rlaif.anchors.defaults import ANNOTATOR_MODES, DEFAULT_HOLDOUT_FRACTION, DEFAULT_MIN_ITEMS, DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from rlaif.anchors.gate import GateResult
    from rlaif.judges.base import Judge
    from rlaif.rubric import Rubric


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
        _check(self.annotators in ANNOTATOR_MODES, "calibration.annotators",
               f"must be one of {', '.join(ANNOTATOR_MODES)}, got {self.annotators!r}")
        _check(not self.override or bool(self.override_reason and self.override_reason.strip()),
               "calibration.override_reason", "is required when calibration.override is true")
        _check(0 <= self.holdout_fraction < 1, "calibration.holdout_fraction",
               f"must be in [0, 1), got {self.holdout_fraction}")
        _check(self.bootstrap_resamples >= 100, "calibration.bootstrap_resamples",
               f"must be >= 100, got {self.bootstrap_resamples}")


def resolve_anchor_set(store, anchor_set: str, resolve: Callable[[str], Path | None] = Path,
                       holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION) -> str:
    """The anchor set id for a config value: a stored id as is, a file imported (idempotently) first."""
    from rlaif.anchors.importers import FILE_TYPES, import_anchor_file

    if store.anchors.get_set(anchor_set) is not None:
        return anchor_set
    path = resolve(anchor_set)
    if path is not None and Path(path).suffix.lower() in FILE_TYPES:
        return import_anchor_file(store, path, holdout_fraction=holdout_fraction).anchor_set_id
    raise ValueError(f"calibration.anchor_set: {anchor_set!r} is neither an anchor set in the store nor an "
                     f"anchor file ({', '.join(sorted(FILE_TYPES))})")


def run_calibration_gate(store, cfg: CalibrationConfig, judge: Judge, rubric: Rubric, *,
                         resolve: Callable[[str], Path | None] = Path, seed: int = 0) -> GateResult | None:
    """Run the gate as configured; None when no anchor set is configured (the manifest should say so)."""
    from rlaif.anchors.gate import kappa_gate

    if not cfg.anchor_set:
        return None
    anchor_set_id = resolve_anchor_set(store, cfg.anchor_set, resolve, cfg.holdout_fraction)
    return kappa_gate(store, judge, rubric, anchor_set_id, threshold=cfg.threshold, min_items=cfg.min_items,
                      annotators=cfg.annotators, override=cfg.override, override_reason=cfg.override_reason,
                      seed=seed, n_resamples=cfg.bootstrap_resamples)
