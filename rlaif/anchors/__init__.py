"""Human anchor calibration: anchor sets, blind multi-annotator labelling, agreement, and the kappa gate.

An AI judge passes its biases on to the model it trains; the anchor set is the small, human-labelled check on it.
Modules: ``importers`` / ``exporters`` (files users have; the formats themselves, Label Studio and Argilla exports
included, are in ``formats/``), ``sampling`` (from a run, disagreement-driven),
``holdout`` (the locked never-tune share), ``labelling`` (blind presentation, adjudication), ``agreement`` and
``krippendorff`` (Cohen's / Fleiss' kappa, Krippendorff's alpha, bootstrap CIs), ``gate``, ``gate_rules`` and
``gate_config`` (block training on a judge people disagree with; the CI lower bound decides by default), ``stats``,
``sets`` (create and delete sets). The names below are loaded on first use, so importing the package stays cheap.

    from rlaif.anchors import import_anchor_file, kappa_gate
    result = import_anchor_file(store, "sample_data/harbor_sql/anchors.jsonl", name="harbor-sql")
    gate = kappa_gate(store, judge, rubric, result.anchor_set_id, threshold=0.72, annotators="oracle")
"""

from importlib import import_module

_EXPORTS = {
    "AnchorImportError": "importers", "import_anchor_file": "importers", "parse_anchor_file": "importers",
    "ImportOptions": "importers", "ImportResult": "importers",
    "export_anchor_set": "exporters", "sample_anchor_set": "sampling", "tuning_view": "holdout",
    "holdout_view": "holdout", "present": "labelling", "record_label": "labelling", "next_item": "labelling",
    "adjudicate_majority": "labelling", "override_label": "labelling", "resolved_labels": "labelling",
    "GateResult": "gate", "kappa_gate": "gate", "kappa_table": "gate", "CalibrationConfig": "gate_config",
    "run_calibration_gate": "gate", "resolve_anchor_set": "importers", "anchor_set_stats": "stats",
    "delete_anchor_set": "sets", "krippendorff_alpha": "agreement", "GateRule": "gate_rules",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rlaif.anchors' has no attribute {name!r}")
    return getattr(import_module(f"rlaif.anchors.{_EXPORTS[name]}"), name)
