"""Row shaping for the Browse page: tables of pairs, judgements, candidates, evals and the manifest chain.

Why here and not in the page: the page stays a view (widgets and layout), and what a row shows (truncated text,
which columns, whether a manifest still matches its id) is plain Python that tests can call.

    rows = pair_table(store.pairs.page(run_id=run_id, limit=50)); chain = manifest_chain(store, run_id)
"""

from __future__ import annotations

import re
from typing import Any

from rlaif.anchors.agreement import judge_label
from rlaif.anchors.labelling import resolved_labels
from rlaif.manifest import verify_manifest
from rlaif.workbench.fmt import fmt_id, fmt_num, fmt_usd

PAGE_SIZE = 50
_SQL = re.compile(r"^\s*(select|with|insert|update|delete|create)\b", re.IGNORECASE)
_PY = re.compile(r"^\s*(def |class |import |from \S+ import )", re.MULTILINE)


def code_language(text: str | None) -> str | None:
    """The language to highlight model text as; None shows it as plain monospace (never as HTML/Markdown)."""
    if not text:
        return None
    if _SQL.search(text):
        return "sql"
    if _PY.search(text):
        return "python"
    return None


def short_id(value: str) -> str:
    """8 characters that tell ids apart: store ids are time (16 hex) + random (8) + sequence (8), so the random part."""
    return value[16:24] if len(value) == 32 else value[:12]


def short(text: str | None, n: int = 80) -> str:
    if text is None:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# Key columns first, long text last, readable numbers (rlaif.workbench.fmt): at 1440px no table pushes its key
# column off-screen, and the full text of a row is one click away in the page's detail view.


def pair_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"pair": r["pair_id"], "iteration": r["iteration"], "prompt_id": r["prompt_id"],
             "kept": r["kept"], "drop_reason": r["drop_reason"] or "", "confidence": fmt_num(r["confidence"]),
             "judge": r["judge_id"], "rubric": fmt_id(r["rubric_version"]),
             "chosen": short(r["chosen"], 60), "rejected": short(r["rejected"], 60)} for r in rows]


def judgement_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"judgement": fmt_id(r["judgement_id"]), "iteration": r["iteration"], "prompt_id": r["prompt_id"],
             "judge": r["judge_id"], "winner": r["winner"], "confidence": fmt_num(r["confidence"]),
             "cost": fmt_usd(r["cost_usd"]) if r["cost_usd"] is not None else "—",
             "rationale": short(r["rationale"], 80)} for r in rows]


def candidate_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per sampled candidate; ``checks`` lists the verifier's criteria, whatever the verifier kind."""
    out = []
    for r in rows:
        checks = (r.get("verification") or {}).get("criteria") or {}
        out.append({"candidate": fmt_id(r["candidate_id"]), "iteration": r["iteration"], "prompt_id": r["prompt_id"],
                    "sample": r["sample_index"], "temperature": fmt_num(r["temperature"]), "score": fmt_num(r["score"]),
                    "checks": ", ".join(f"{k}={'✓' if v else '✗'}" for k, v in checks.items()),
                    "text": short(r["text"], 70)})
    return out


def eval_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (iteration, cohort), one column per metric (3 significant decimals)."""
    table: dict[tuple[int, str], dict[str, Any]] = {}
    for r in rows:
        row = table.setdefault((r["iteration"], r["cohort"]), {"iteration": r["iteration"], "cohort": r["cohort"],
                                                               "n": r["n"]})
        row[r["metric"]] = fmt_num(r["value"])
    return list(table.values())


def column_widths(rows: list[dict[str, Any]], long: tuple[str, ...] = ("chosen", "rejected", "text", "rationale"),
                  ) -> dict[str, str]:
    """``st.dataframe`` column widths: ids and numbers small, long text large (so it goes last and wide)."""
    widths = {}
    for name in (rows[0] if rows else {}):
        widths[name] = "large" if name in long else "medium" if name in ("pair", "prompt_id", "judge",
                                                                          "drop_reason", "checks") else "small"
    return widths


def manifest_chain(store, run_id: str) -> list[dict[str, Any]]:
    """The run's manifests in order, each with whether its id verifies and whether its parents are all stored."""
    rows = store.manifests.for_run(run_id)
    known = {r["manifest_id"] for r in rows}
    chain = []
    for r in rows:
        body = r["body"]
        gate = body.get("gate") or {}
        chain.append({"iteration": r["iteration"], "manifest_id": r["manifest_id"], "kind": body.get("kind"),
                      "verified": verify_manifest(body), "parents": len(body.get("parents") or []),
                      "parents_stored": all(p in known for p in body.get("parents") or []),
                      "model_hash": fmt_id(body.get("model_hash")),
                      "dataset_hash": fmt_id(body.get("dataset_hash")),
                      "rubric_version": fmt_id(body.get("rubric_version")),
                      "gate": gate.get("decision"), "body": body})
    return chain


def anchor_disagreements(store, anchor_set_id: str, judge_id: str, rubric_version: str, *, annotators: str = "human",
                         split: str = "tuning") -> list[dict[str, Any]]:
    """Anchor items where the judge's stored verdict differs from the label that counts (invalid always differs)."""
    labels = resolved_labels(store, anchor_set_id, annotators=annotators, split=split)
    out = []
    for v in store.anchors.verdicts(anchor_set_id, split=split, judge_id=judge_id, rubric_version=rubric_version):
        label = labels.get(v["item_id"])
        if label is None or judge_label(v["winner"]) == label.label:
            continue
        out.append({"item_id": v["item_id"], "slice": v["slice"], "label": label.label, "label_by": label.method,
                    "judge": judge_label(v["winner"]), "confidence": v.get("confidence"),
                    "rationale": v.get("rationale") or ""})
    return out


def calibration_summary(store, run_id: str) -> str | None:
    """The run's calibration-gate decision in one line (from its first manifest), None before one is written."""
    manifests = store.manifests.for_run(run_id)
    gate = manifests[0]["body"].get("calibration_gate") if manifests else None
    if not gate:
        return None
    if gate.get("decision") == "not_configured":
        return "calibration gate not configured"
    kappa = gate.get("kappa")
    return (f"calibration gate {gate.get('decision')}: kappa {'—' if kappa is None else f'{kappa:.3f}'} "
            f"(threshold {gate.get('threshold')}, n {gate.get('n')})")
