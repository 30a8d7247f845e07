"""Runs: configure the loop from the project's config (each field checked as it is typed, the values kept across
pages), see what it costs, start it in the background, watch the jobs, compare runs."""

import streamlit as st

from rlaif.config import LOSS_TYPES
from rlaif.judges import JUDGE_NAMES
from rlaif.workbench.charts import (
    NO_DATA,
    chart_has_data,
    judge_figure,
    length_figure,
    metric_figure,
    metric_series,
    overlay_figure,
    pairs_figure,
    run_chart_data,
)
from rlaif.workbench.fmt import fmt_id, fmt_usd
from rlaif.workbench.jobs import RUNNER, active_jobs, job_view, resumable
from rlaif.workbench.page import form_widget_key, page_context, page_guard
from rlaif.workbench.projects import estimate_run_cost, field_help, kappa_field, run_config, spends_api
from rlaif.workbench.run_form import API_JUDGES, FORM_WIDE, check_run_form, form_defaults
from rlaif.workbench.runs_table import config_diff, run_label, runs_table
from rlaif.workbench.tables import calibration_summary

wb = page_context("run", "Your role may not start or watch training runs.")
store, HELP = wb.store, field_help()
st.title("Runs")

# ---- configure ------------------------------------------------------------------------------------------------------
# The form's values live under a plain session key per project (Streamlit drops keyed widget state when the page
# changes, which reset the form to the config's values: Start would then launch a full run). Widgets are re-seeded
# from it on every visit; the router copies widget values into it before any page runs (``keep_form_values``).
base = run_config(wb.project_path)
FORM = f"runs.form.{wb.project}"
saved = st.session_state.setdefault(FORM, form_defaults(base))
kappa = kappa_field(base)
if kappa is not None:
    saved.setdefault(kappa[0], float(kappa[1]))


def seeded(name: str) -> str:
    key = form_widget_key(FORM, name)
    if key not in st.session_state:
        st.session_state[key] = saved[name]
    return key


def reset_form() -> None:
    st.session_state[FORM] = {**form_defaults(base), **({kappa[0]: float(kappa[1])} if kappa else {})}
    for name in list(st.session_state):
        if str(name).startswith(form_widget_key(FORM, "")):
            del st.session_state[name]


versions = {v["rubric_version"]: v for v in store.rubrics.list()}
slots = {}
with st.expander("Configure a run", expanded=True):
    c1, c2, c3 = st.columns(3)
    widgets = {
        "policy.path": lambda k: c1.text_input("Policy (path or hub id)", key=k, help=HELP["policy.path"]),
        "data.train": lambda k: c1.text_input("Training prompts", key=k, help=HELP["data.train"]),
        "data.eval": lambda k: c1.text_input("Held-out prompts", key=k, help=HELP["data.eval"]),
        "data.max_train_prompts": lambda k: c1.number_input("Max training prompts (0 = all)", 0, key=k,
                                                            help=HELP["data.max_train_prompts"]),
        "output_dir": lambda k: c1.text_input("Output folder", key=k, help=HELP["output_dir"]),
        "judge.name": lambda k: c2.selectbox("Judge", list(dict.fromkeys([base.judge.name, *JUDGE_NAMES])), key=k,
                                             help=HELP["judge.name"]),
        "judge.options.model": lambda k: c2.text_input("Judge model", key=k, placeholder="e.g. claude-haiku-4-5",
                                                       help="The API's model name (judge.options.model); the key "
                                                            "is read from the server's environment, never here."),
        "loop.iterations": lambda k: c2.number_input("Iterations", 1, 50, key=k, help=HELP["loop.iterations"]),
        "sampling.candidates_per_prompt": lambda k: c2.number_input("Candidates per prompt", 2, 64, key=k,
                                                                    help=HELP["sampling.candidates_per_prompt"]),
        "loop.regression_tolerance": lambda k: c3.number_input("Regression tolerance", 0.0, 1.0, step=0.01, key=k,
                                                               help=HELP["loop.regression_tolerance"]),
        "training.loss_type": lambda k: c3.multiselect("Loss terms", sorted(LOSS_TYPES), key=k,
                                                       help=HELP["training.loss_type"]),
    }
    if kappa is not None:
        widgets[kappa[0]] = lambda k: c3.number_input("Kappa threshold", -1.0, 1.0, step=0.01, key=k,
                                                      help=HELP.get(kappa[0]))
    for name, draw in widgets.items():
        if name == "judge.options.model" and saved["judge.name"] not in API_JUDGES:
            continue  # only API judges take a model name here
        saved[name] = draw(seeded(name))
        slots[name] = (c1 if name in ("policy.path", "data.train", "data.eval", "output_dir") else c2).empty()
    rubric_version = c3.selectbox(
        "Rubric version", [None, *versions],
        format_func=lambda v: "as in the config file" if v is None else f"{versions[v]['name']} · {fmt_id(v)}")
    c3.button("Reset to the config", on_click=reset_form, help="Put every field back to the project's config.")

    check = check_run_form(wb.project_path, saved)
    for name, text in check.errors.items():
        (slots.get(name) or st).error(text if name != FORM_WIDE else f"The config: {text}", icon="⚠️")
    for name, text in check.notes.items():
        if slots.get(name) is not None and name not in check.errors:
            slots[name].caption(text)
    cfg = check.config if check.ready else None
    if cfg is not None and check.n_train is not None:
        estimate = estimate_run_cost(cfg, check.n_train)
        st.info(f"Cost estimate: at most {estimate.judge_calls:,} judge calls, {fmt_usd(estimate.judge.usd)} "
                f"({estimate.note}).")
    else:  # always an element here, so the Start button keeps its place and no stale copy lingers in a rerun
        st.info("Cost estimate: once the form's fields check out.")
    blocked = check.reason() or ("" if cfg is None or not spends_api(cfg) or wb.can("spend_api") else
                                 "Your role may not start a judge that spends API money.")
    start, why = st.columns([1, 5], vertical_alignment="center")
    if start.button("Start run", type="primary", disabled=bool(blocked) or cfg is None):
        job_id = RUNNER.submit_run(store, cfg, started_by=wb.labeller, rubric_version=rubric_version,
                                   project=wb.project)
        st.session_state["runs.selected_job"] = job_id
        st.success(f"Queued job {fmt_id(job_id)}: one training job runs at a time, others wait their turn.")
    if blocked:
        why.markdown(f":red[Start is disabled.] {blocked}")

# ---- jobs, runs and charts (polled while a job is active) -----------------------------------------------------------
active_at_start = {j["job_id"] for j in store.jobs.list() if j["status"] in ("queued", "running")}


def jobs_section(jobs: list[dict]) -> None:
    st.subheader("Jobs")
    for job in active_jobs(jobs):
        position = RUNNER.position(job.job_id)
        where = "running" if position == 0 else f"queued, {position} ahead" if position else job.status
        st.progress(job.fraction or 0.0, text=f"Job {fmt_id(job.job_id)} · {where} · {job.label}")
        if st.button(f"Cancel job {fmt_id(job.job_id)}…", key=f"cancel-{job.job_id}"):
            RUNNER.cancel(store, job.job_id)
            st.toast("Cancel requested; the job stops at its next check.")
    for row in [j for j in jobs[:5] if j["status"] == "failed"]:  # recent failures, their reason in full
        st.error(f"Job {fmt_id(row['job_id'])} failed: {row['error'] or row['message']}")
    if not jobs:
        st.caption("No jobs yet: Start run queues one.")
        return
    done = [job_view(j) for j in jobs if j["status"] not in ("queued", "running")]
    if not done:
        return
    with st.expander(f"Recent jobs ({len(done)})"):
        st.dataframe([{"job": fmt_id(j.job_id), "status": j.status, "run": fmt_id(j.run_id), "started by":
                       j.started_by or "—", "outcome": j.error or j.label} for j in done], hide_index=True)


def runs_section(runs: list[dict]) -> None:
    st.subheader("All runs")
    st.dataframe(runs_table(store, runs), hide_index=True)
    labels = {r["run_id"]: run_label(r) for r in runs}
    compare = st.multiselect("Compare runs (two or more: overlaid curves and config diff)", list(labels),
                             format_func=labels.get, key="runs.compare")
    if len(compare) >= 2:
        st.plotly_chart(overlay_figure({labels[r]: metric_series(store, r) for r in compare}), key="chart-overlay")
        diff = config_diff({labels[r]: next(x for x in runs if x["run_id"] == r).get("config") for r in compare})
        st.caption("Config fields that differ" if diff else "The configs are identical.")
        if diff:
            st.dataframe(diff, hide_index=True)


def run_detail(runs: list[dict], jobs: list[dict]) -> None:
    chosen = st.session_state.get("runs.selected_job")
    latest = next((j["run_id"] for j in jobs if j["job_id"] == chosen and j["run_id"]), None)
    ids = [r["run_id"] for r in runs]
    names = {r["run_id"]: f"{run_label(r)} · {r['status']}" for r in runs}
    run_id = st.selectbox("Run", ids, index=ids.index(latest) if latest in ids else 0, format_func=names.get)
    run = next(r for r in runs if r["run_id"] == run_id)
    details = [f"status **{run['status']}**", f"judge {run['judge_id']}", f"rubric {fmt_id(run['rubric_version'])}",
               f"recommended iteration {run['recommended_iteration']}", calibration_summary(store, run_id)]
    st.caption(" · ".join(d for d in details if d))
    if run["error"]:
        st.error(f"Run {fmt_id(run_id)} ended: {run['error']}")
    if resumable(run) and wb.can("run") and st.button("Resume run", key=f"resume-{run_id}",
                                                      help="Continue after the last finished iteration; verdicts "
                                                           "already paid for come back from the judge cache."):
        st.session_state["runs.selected_job"] = RUNNER.submit_resume(store, run_id, started_by=wb.labeller)
        st.rerun()
    data = run_chart_data(store, run_id)
    has = chart_has_data(data)
    figures = {"metric": metric_figure, "pairs": pairs_figure, "judge": judge_figure, "length": length_figure}
    columns = st.columns(2)
    for k, (name, figure) in enumerate(figures.items()):
        with columns[k % 2]:
            if has[name]:
                st.plotly_chart(figure(data), key=f"chart-{name}")
            else:
                st.info(NO_DATA[name], icon=":material/hourglass_empty:")


@st.fragment(run_every=2.0 if active_at_start else None)
def live() -> None:
    with page_guard("The live runs section"):  # a fragment rerun is outside the router's guard
        jobs = store.jobs.list()[:20]
        if active_at_start and not any(j["status"] in ("queued", "running") for j in jobs):
            st.rerun()  # the last job ended: stop polling and redraw everything once
        jobs_section(jobs)
        runs = store.runs.list(limit=50)
        if not runs:
            st.subheader("All runs")
            st.caption("No runs yet.")
            return
        runs_section(runs)
        st.subheader("Run details")
        run_detail(runs, jobs)


live()
