"""Runs: configure the loop from the project's config, see what it costs, start it in the background, watch it."""

import streamlit as st

from rlaif.config import LOSS_TYPES, ConfigError
from rlaif.datasets import load_prompts
from rlaif.judges import JUDGE_NAMES
from rlaif.workbench.charts import judge_figure, length_figure, metric_figure, pairs_figure, run_chart_data
from rlaif.workbench.jobs import RUNNER, job_view, resumable
from rlaif.workbench.page import page_context
from rlaif.workbench.projects import estimate_run_cost, field_help, kappa_field, run_config, spends_api
from rlaif.workbench.tables import calibration_summary, short_id

wb = page_context("run", "Your role may not start or watch training runs.")
store, HELP = wb.store, field_help()
st.title("Runs")

# ---- configure ------------------------------------------------------------------------------------------------------
base = run_config(wb.project_path)
versions = {v["rubric_version"]: v for v in store.rubrics.list()}
with st.expander("Configure a run", expanded=True):
    c1, c2, c3 = st.columns(3)
    judges = list(dict.fromkeys([base.judge.name, *JUDGE_NAMES]))
    overrides = {
        "policy.path": c1.text_input("Policy (path or hub id)", base.policy.path, help=HELP["policy.path"]),
        "data.train": c1.text_input("Training prompts", base.data.train, help=HELP["data.train"]),
        "data.eval": c1.text_input("Held-out prompts", base.data.eval, help=HELP["data.eval"]),
        "data.max_train_prompts": c1.number_input("Max training prompts (0 = all)", 0, value=base.data.max_train_prompts
                                                  or 0, help=HELP["data.max_train_prompts"]) or None,
        "output_dir": c1.text_input("Output folder", base.output_dir, help=HELP["output_dir"]),
        "judge.name": c2.selectbox("Judge", judges, help=HELP["judge.name"]),
        "loop.iterations": c2.number_input("Iterations", 1, 50, base.loop.iterations, help=HELP["loop.iterations"]),
        "sampling.candidates_per_prompt": c2.number_input("Candidates per prompt", 2, 64,
                                                          base.sampling.candidates_per_prompt,
                                                          help=HELP["sampling.candidates_per_prompt"]),
        "loop.regression_tolerance": c3.number_input("Regression tolerance", 0.0, 1.0,
                                                     float(base.loop.regression_tolerance), step=0.01,
                                                     help=HELP["loop.regression_tolerance"]),
        "training.loss_type": c3.multiselect("Loss terms", sorted(LOSS_TYPES), base.training.loss_type,
                                             help=HELP["training.loss_type"]),
    }
    kappa = kappa_field(base)
    if kappa is not None:
        overrides[kappa[0]] = c3.number_input("Kappa threshold", -1.0, 1.0, float(kappa[1]), step=0.01,
                                              help=HELP.get(kappa[0]))
    rubric_version = c3.selectbox(
        "Rubric version", [None, *versions],
        format_func=lambda v: "as in the config file" if v is None else f"{versions[v]['name']} · {v[:12]}")
    try:
        cfg = run_config(wb.project_path, overrides)
        n_train = len(load_prompts(cfg.resolve(cfg.data.train)))  # a mistyped prompts path is said here, once
    except (ConfigError, ValueError) as err:
        cfg = None
        st.error(str(err))
    if cfg is not None:
        estimate = estimate_run_cost(cfg, n_train)
        cost = "unknown" if estimate.judge.usd is None else f"${estimate.judge.usd:,.2f}"
        st.info(f"Cost estimate: at most {estimate.judge_calls:,} judge calls, {cost} ({estimate.note}).")
    spends = cfg is not None and spends_api(cfg)
    allowed = cfg is not None and (not spends or wb.can("spend_api"))
    if st.button("Start run", type="primary", disabled=not allowed):
        job_id = RUNNER.submit_run(store, cfg, started_by=wb.labeller, rubric_version=rubric_version,
                                   project=wb.project)
        st.session_state["runs.selected_job"] = job_id
        st.success(f"Queued job {short_id(job_id)}: one training job runs at a time, others wait their turn.")

# ---- live progress and charts ---------------------------------------------------------------------------------------
active_at_start = {j["job_id"] for j in store.jobs.list() if j["status"] in ("queued", "running")}


@st.fragment(run_every=2.0 if active_at_start else None)
def live() -> None:
    jobs = store.jobs.list()[:20]
    active = [job_view(j) for j in jobs if j["status"] in ("queued", "running")]
    if active_at_start and not active:
        st.rerun()  # the last job ended: stop polling and redraw everything once
    st.subheader("Jobs")
    for job in active:
        position = RUNNER.position(job.job_id)
        where = "running" if position == 0 else f"queued, {position} ahead" if position else job.status
        st.progress(job.fraction or 0.0, text=f"{short_id(job.job_id)} · {where} · {job.label}")
        if st.button("Cancel", key=f"cancel-{job.job_id}"):
            RUNNER.cancel(store, job.job_id)
            st.toast("Cancel requested; the job stops at its next check.")
    if jobs:
        st.dataframe([{"job": short_id(j["job_id"]), "status": j["status"], "stage": j["stage"], "run": j["run_id"],
                       "message": job_view(j).label, "started": j["started_at"], "error": j["error"]}
                      for j in jobs], hide_index=True)
    runs = store.runs.list(limit=50)
    if not runs:
        st.caption("No runs yet.")
        return
    chosen = st.session_state.get("runs.selected_job")
    latest = next((j["run_id"] for j in jobs if j["job_id"] == chosen and j["run_id"]), None)
    ids = [r["run_id"] for r in runs]
    run_id = st.selectbox("Run", ids, index=ids.index(latest) if latest in ids else 0,
                          format_func=lambda r: f"{r} · {next(x['status'] for x in runs if x['run_id'] == r)}")
    run = next(r for r in runs if r["run_id"] == run_id)
    details = [f"status **{run['status']}**", f"judge {run['judge_id']}", f"rubric {str(run['rubric_version'])[:12]}",
               f"recommended iteration {run['recommended_iteration']}", calibration_summary(store, run_id), run["error"]]
    st.caption(" · ".join(d for d in details if d))
    if resumable(run) and wb.can("run") and st.button("Resume run", key=f"resume-{run_id}",
                                                      help="Continue after the last finished iteration; verdicts "
                                                           "already paid for come back from the judge cache."):
        st.session_state["runs.selected_job"] = RUNNER.submit_resume(store, run_id, started_by=wb.labeller)
        st.rerun()
    data = run_chart_data(store, run_id)
    left, right = st.columns(2)
    left.plotly_chart(metric_figure(data), key="chart-metric")
    right.plotly_chart(pairs_figure(data), key="chart-pairs")
    left.plotly_chart(judge_figure(data), key="chart-judge")
    right.plotly_chart(length_figure(data), key="chart-length")


live()
