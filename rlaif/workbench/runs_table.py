"""The Runs page's runs table and config diff: one row per run with what it was asked to do and what it reached.

Why here: the row (settings, judge, rubric, who started it, duration, best metric) and the diff of two configs are
plain Python over store rows, tested without Streamlit; the page only draws them. Ids and numbers go through
``rlaif.workbench.fmt`` so no 64-character hash pushes the status or metric off-screen.

    rows = runs_table(store, store.runs.list(limit=50)); diff = config_diff({label: run["config"] for ...})
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from rlaif.workbench.fmt import fmt_id, fmt_num, fmt_seconds


def run_label(run: dict[str, Any]) -> str:
    """How a run is named in pickers and chart legends: its short id and its config's name."""
    return f"{fmt_id(run['run_id'])} · {run.get('name') or 'run'}"


def _get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def duration_s(run: dict[str, Any], now: dt.datetime | None = None) -> float | None:
    """Seconds from creation to finish (to now while it runs); None without a start time."""
    start, end = run.get("created_at"), run.get("finished_at")
    if not isinstance(start, dt.datetime):
        return None
    if not isinstance(end, dt.datetime):
        if run.get("status") != "running":
            return None
        end = now or dt.datetime.now()
    return max(0.0, (end - start).total_seconds())


def best_metric(store, run: dict[str, Any]) -> tuple[str, float | None]:
    """(primary metric, its value at the recommended iteration on the gate's cohort); the value is None before the
    run recommends an iteration."""
    loop = (run.get("config") or {}).get("loop", {})
    metric, cohort = loop.get("primary_metric", "execution_accuracy"), loop.get("gate_cohort", "all")
    it = run.get("recommended_iteration")
    if it is None:
        return metric, None
    for row in store.evals.for_run(run["run_id"]):
        if row["iteration"] == it and row["metric"] == metric and row["cohort"] == cohort:
            return metric, row["value"]
    return metric, None


def _prompts(config: dict[str, Any]) -> str:
    train = _get(config, "data.train")
    if not train:
        return "—"
    limit = _get(config, "data.max_train_prompts")
    return Path(str(train)).name + (f" (≤ {limit})" if limit else "")


def runs_table(store, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run, key columns (run, status, best metric) first so they stay on screen at 1440 px."""
    owners = store.jobs.started_by([r["run_id"] for r in runs])
    rows = []
    for run in runs:
        config = run.get("config") or {}
        metric, best = best_metric(store, run)
        rec = run.get("recommended_iteration")
        loss = _get(config, "training.loss_type")
        rows.append({
            "run": fmt_id(run["run_id"]),
            "status": run["status"],
            "best": "—" if best is None else f"{fmt_num(best)} (it. {rec})",
            "metric": metric,
            "started by": owners.get(run["run_id"], "—"),
            "duration": fmt_seconds(duration_s(run)),
            "prompts": _prompts(config),
            "iterations": _get(config, "loop.iterations", "—"),
            "candidates": _get(config, "sampling.candidates_per_prompt", "—"),
            "loss": "+".join(loss) if isinstance(loss, list) else (loss or "—"),
            "judge": run.get("judge_id") or _get(config, "judge.name", "—"),
            "rubric": fmt_id(run.get("rubric_version")) or "—",
            "name": run.get("name") or "",
            "started": run["created_at"].strftime("%Y-%m-%d %H:%M") if isinstance(run.get("created_at"),
                                                                                dt.datetime) else "",
        })
    return rows


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted field: value}; lists stay whole (a loss list is one setting)."""
    if not isinstance(config, dict):
        return {prefix: config}
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def config_diff(configs: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """The fields whose values differ between the given configs (by label), side by side: {"field", label...}.
    A field one config lacks counts as different ("—")."""
    flat = {label: flatten(cfg or {}) for label, cfg in configs.items()}
    fields = sorted({f for values in flat.values() for f in values})
    rows = []
    for name in fields:
        shown = {label: _shown(values.get(name)) for label, values in flat.items()}
        if len(set(shown.values())) > 1:
            rows.append({"field": name, **shown})
    return rows
