"""Plotly figures of a run, built from store rows: what the Runs page draws while a job runs and after.

Why builders separate from the page: a figure is a pure function of rows, so it is tested without Streamlit, and the
page stays a thin ``st.plotly_chart(metric_figure(data))``. The data comes from ``run_chart_data`` (store reads
only, no SQL here).

    data = run_chart_data(store, run_id); fig = metric_figure(data)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
import pyarrow.compute as pc

from store import PairFilter

GATE_COLOURS = {"baseline": "#636efa", "improved": "#00a36c", "within_tolerance": "#f2a900", "regressed": "#d62728",
                "no_pairs": "#7f7f7f"}

# Fixed colours: the same drop reason (cohort, run) has the same colour in every chart of every run, so a reader
# learns them once; Plotly's default cycles by trace order, which changes with the reasons present in a run.
PALETTE = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#2ca02c",
           "#d62728", "#393b79", "#637939")
DROP_REASON_COLOURS = {
    "tie": "#f2a900", "length_skew": "#9467bd", "low_confidence": "#8c564b", "conflict": "#e377c2",
    "invalid_verdict": "#d62728", "chosen_fails_hard_checks": "#ff7f0e", "no_contrast": "#17becf",
    "identical_candidates": "#7f7f7f", "all_invalid": "#393b79", "undecided_ranking": "#bcbd22",
}
KEPT_COLOUR = "#00a36c"
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#e377c2")


def stable_colour(name: str, known: dict[str, str] | None = None) -> str:
    """``known[name]``, else a palette colour picked by a hash of the name (the same in every process and run)."""
    if known and name in known:
        return known[name]
    return PALETTE[int(hashlib.sha1(name.encode()).hexdigest(), 16) % len(PALETTE)]


def drop_reason_colour(reason: str) -> str:
    return stable_colour(reason, DROP_REASON_COLOURS)


def cohort_colour(cohort: str) -> str:
    return stable_colour(f"cohort:{cohort}")


@dataclass
class RunChartData:
    run_id: str
    primary_metric: str
    tolerance: float
    cohort: str
    metric_by_iteration: dict[int, float] = field(default_factory=dict)
    cohort_metrics: dict[str, dict[int, float]] = field(default_factory=dict)
    gate_by_iteration: dict[int, str] = field(default_factory=dict)
    kept_by_iteration: dict[int, int] = field(default_factory=dict)
    dropped_by_iteration: dict[int, dict[str, int]] = field(default_factory=dict)
    verdicts_by_iteration: dict[int, dict[str, int]] = field(default_factory=dict)
    flips_by_iteration: dict[int, tuple[int, int]] = field(default_factory=dict)  # (flipped, valid in both orders)
    chosen_lengths: list[int] = field(default_factory=list)
    rejected_lengths: list[int] = field(default_factory=list)


def _flip_counters(manifest_body: dict[str, Any]) -> tuple[int, int] | None:
    """(order-dependent verdicts, pairs judged validly in both orders) so far in the run, summed over every judge that
    asks both orders (their counters are recorded in each manifest's ``judge_stats``); None when none does."""
    stats = [s for s in (manifest_body.get("judge_stats") or {}).values()
             if isinstance(s, dict) and "both_valid" in s and "disagreements" in s]
    if not stats:
        return None
    return sum(int(s["disagreements"]) for s in stats), sum(int(s["both_valid"]) for s in stats)


def run_chart_data(store, run_id: str, *, length_sample: int = 20_000) -> RunChartData:
    """Everything the run charts need, read through the store's repositories."""
    run = store.runs.get(run_id)
    if run is None:
        raise LookupError(f"no run {run_id!r}")
    loop = (run.get("config") or {}).get("loop", {})
    data = RunChartData(run_id, loop.get("primary_metric", "execution_accuracy"),
                        float(loop.get("regression_tolerance", 0.0)), loop.get("gate_cohort", "all"))
    for row in store.evals.for_run(run_id):
        if row["metric"] != data.primary_metric or row["value"] is None:
            continue
        data.cohort_metrics.setdefault(row["cohort"], {})[row["iteration"]] = row["value"]
    data.metric_by_iteration = dict(sorted(data.cohort_metrics.get(data.cohort, {}).items()))
    for it in store.iterations.list(run_id):
        i = it["iteration"]
        if it.get("gate_decision"):
            data.gate_by_iteration[i] = it["gate_decision"]
        if i == 0:
            continue  # the baseline trains on nothing
        data.kept_by_iteration[i] = it.get("pairs_kept") or 0
        data.dropped_by_iteration[i] = store.pairs.drop_reasons(run_id, i)
        data.verdicts_by_iteration[i] = store.judgements.count_by_winner(run_id, i)
    previous = (0, 0)  # the counters are cumulative over the run: an iteration's share is the difference
    for m in store.manifests.for_run(run_id):
        counters = _flip_counters(m["body"])
        if counters is None or m["iteration"] is None:
            continue
        if m["iteration"] > 0:
            data.flips_by_iteration[m["iteration"]] = (counters[0] - previous[0], counters[1] - previous[1])
        previous = counters
    table = store.pairs.table(PairFilter(run_id=run_id, kept=True))
    if table.num_rows > length_sample:
        table = table.slice(0, length_sample)
    if table.num_rows:
        data.chosen_lengths = pc.utf8_length(table["chosen"]).to_pylist()
        data.rejected_lengths = pc.utf8_length(table["rejected"]).to_pylist()
    return data


# ---------------------------------------------------------------------------------------------------------------------
# what each chart needs before it is worth drawing: a fresh or cancelled run gets a sentence, not empty axes

NO_DATA = {
    "metric": "No held-out metric yet: the baseline's evaluation writes the first point.",
    "pairs": "No pairs yet: iteration 1 writes the first kept and dropped pairs.",
    "judge": "No verdicts yet: the judge's invalid and flip rates appear once iteration 1 is judged.",
    "length": "No kept pairs yet: chosen vs rejected lengths appear once pairs are kept.",
}


def chart_has_data(data: RunChartData) -> dict[str, bool]:
    """Which of the four run charts has anything to show (keys as in ``NO_DATA``)."""
    return {"metric": bool(data.metric_by_iteration or data.cohort_metrics),
            "pairs": bool(data.kept_by_iteration) and any(
                data.kept_by_iteration.get(i) or data.dropped_by_iteration.get(i) for i in data.kept_by_iteration),
            "judge": any(sum(c.values()) for c in data.verdicts_by_iteration.values()),
            "length": bool(data.chosen_lengths)}


def metric_series(store, run_id: str) -> tuple[str, dict[int, float]]:
    """(primary metric, its value per iteration on the gate's cohort) for one run: what the overlay draws."""
    run = store.runs.get(run_id)
    loop = ((run or {}).get("config") or {}).get("loop", {})
    metric, cohort = loop.get("primary_metric", "execution_accuracy"), loop.get("gate_cohort", "all")
    series = {row["iteration"]: row["value"] for row in store.evals.for_run(run_id)
              if row["metric"] == metric and row["cohort"] == cohort and row["value"] is not None}
    return metric, dict(sorted(series.items()))


def overlay_figure(series: dict[str, tuple[str, dict[int, float]]]) -> go.Figure:
    """Several runs' primary metric per iteration on one chart: one line per run (named by its label), colours
    fixed by the order the runs are given, so the first run is always blue and the second red."""
    fig = go.Figure()
    metrics = sorted({metric for metric, _ in series.values()})
    for k, (name, (metric, values)) in enumerate(series.items()):
        fig.add_trace(go.Scatter(x=list(values), y=list(values.values()), mode="lines+markers", name=name,
                                 line=dict(color=RUN_COLOURS[k % len(RUN_COLOURS)], width=3),
                                 hovertemplate=f"{name}<br>iteration %{{x}}<br>{metric} %{{y:.3f}}<extra></extra>"))
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Runs compared: held-out metric per iteration", "iteration", " / ".join(metrics) or "metric")


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, margin=dict(l=40, r=20, t=50, b=40), height=340,
                      legend=dict(orientation="h", y=-0.25))
    return fig


def metric_figure(data: RunChartData) -> go.Figure:
    """The primary metric per iteration, the tolerance band under the best so far, and each gate decision."""
    fig = go.Figure()
    its = list(data.metric_by_iteration)
    values = [data.metric_by_iteration[i] for i in its]
    if its:
        best, upper, lower = None, [], []
        for v in values:  # the band an iteration is judged against: [best before it - tolerance, best before it]
            ref = v if best is None else best
            upper.append(ref)
            lower.append(ref - data.tolerance)
            best = v if best is None else max(best, v)
        fig.add_trace(go.Scatter(x=its, y=upper, mode="lines", line=dict(width=0), showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=its, y=lower, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor="rgba(242,169,0,0.18)", name=f"tolerance band (−{data.tolerance:g})"))
    for cohort, series in sorted(data.cohort_metrics.items()):
        if cohort == data.cohort:
            continue
        fig.add_trace(go.Scatter(x=list(series), y=list(series.values()), mode="lines", name=cohort,
                                 line=dict(dash="dot", width=1, color=cohort_colour(cohort)), opacity=0.6))
    decisions = [data.gate_by_iteration.get(i, "running") for i in its]
    fig.add_trace(go.Scatter(
        x=its, y=values, mode="lines+markers+text", name=f"{data.primary_metric} ({data.cohort})",
        line=dict(color="#1f2937", width=3), text=decisions, textposition="top center",
        marker=dict(size=12, color=[GATE_COLOURS.get(d, "#999999") for d in decisions],
                    symbol=["x" if d == "regressed" else "circle" for d in decisions])))
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Held-out metric and regression gate", "iteration", data.primary_metric)


def pairs_figure(data: RunChartData) -> go.Figure:
    """Pairs kept vs dropped per iteration, stacked by the filter that dropped them."""
    its = sorted(data.kept_by_iteration)
    fig = go.Figure(go.Bar(x=its, y=[data.kept_by_iteration[i] for i in its], name="kept", marker_color=KEPT_COLOUR))
    reasons = sorted({r for d in data.dropped_by_iteration.values() for r in d})
    for reason in reasons:
        fig.add_trace(go.Bar(x=its, y=[data.dropped_by_iteration.get(i, {}).get(reason, 0) for i in its],
                             name=f"dropped: {reason}", marker_color=drop_reason_colour(reason)))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Pairs kept and dropped (by reason)", "iteration", "pairs")


def judge_rates(data: RunChartData) -> dict[int, dict[str, float | None]]:
    """Invalid-verdict rate and position-flip rate per iteration (None when no verdict asked both orders)."""
    out = {}
    for i, counts in sorted(data.verdicts_by_iteration.items()):
        total = sum(counts.values())
        flipped, checked = data.flips_by_iteration.get(i, (0, 0))
        out[i] = {"invalid": counts.get("invalid", 0) / total if total else 0.0,
                  "flip": flipped / checked if checked else None}
    return out


def judge_figure(data: RunChartData) -> go.Figure:
    rates = judge_rates(data)
    its = list(rates)
    fig = go.Figure(go.Scatter(x=its, y=[rates[i]["invalid"] for i in its], mode="lines+markers",
                               name="invalid verdicts"))
    fig.add_trace(go.Scatter(x=its, y=[rates[i]["flip"] for i in its], mode="lines+markers",
                             name="position flips (both orders)", connectgaps=False))
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Judge invalid and flip rates", "iteration", "rate")


def length_figure(data: RunChartData) -> go.Figure:
    """Chosen vs rejected length (characters): a judge with a verbosity bias shows up as chosen ≫ rejected."""
    fig = go.Figure()
    fig.add_trace(go.Box(y=data.chosen_lengths, name="chosen", marker_color="#00a36c", boxmean=True))
    fig.add_trace(go.Box(y=data.rejected_lengths, name="rejected", marker_color="#d62728", boxmean=True))
    return _layout(fig, "Chosen vs rejected length", "", "characters")


def confusion_figure(labels: list[str], matrix: list[list[int]], title: str = "Labels (rows) vs judge (columns)"):
    """A confusion matrix as an annotated heatmap."""
    fig = go.Figure(go.Heatmap(z=matrix, x=[f"judge {c}" for c in labels],
                               y=[f"label {r}" for r in labels[:len(matrix)]], colorscale="Blues", text=matrix,
                               texttemplate="%{text}", showscale=False))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, "", "")
