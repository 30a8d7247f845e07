"""The Runs page through ``app.py`` with Streamlit's AppTest: a form that checks itself and keeps its values, the page
guard, the sidebar's question before a new store, jobs in run order with labelled buttons and a run-wide bar, the
runs table with overlaid curves and a config diff, and charts that say "no data yet".

Stores and projects are real (a temporary DuckDB file, the tiny project of ``tests/workbench_fixtures.py``); runs are
seeded through the store, or started for real on the tiny policy where a job has to run.
"""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from rlaif.workbench.charts import RunChartData, drop_reason_colour, pairs_figure
from rlaif.workbench.fmt import fmt_id
from rlaif.workbench.jobs import RUNNER, run_fraction
from rlaif.workbench.page import page_guard
from rlaif.workbench.run_form import check_run_form, form_defaults
from rlaif.workbench.runs_table import config_diff
from tests.test_app_pages import ROOT, env, store, texts, tiny  # noqa: F401 (fixtures)

# ---- helpers ---------------------------------------------------------------------------------------------------------


def _routed_script():
    import app

    app.run()


def open_runs() -> AppTest:
    """The workbench through its router, every run: ``app.run()`` from a script outside the repository, so Streamlit
    does not fall back to its pages-folder mode (where AppTest runs a switched-to page file alone, without the
    sidebar and without the router's page guard)."""
    at = AppTest.from_function(_routed_script, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Runs"
    return at


def go(at, page: str) -> AppTest:
    return at.switch_page(str(ROOT / "pages" / f"{page}.py")).run()


def field(at, label):
    return next(w for kind in ("text_input", "number_input", "selectbox") for w in getattr(at, kind)
                if w.label == label)


def start_button(at):
    return next(b for b in at.button if b.label == "Start run")


def subheaders(at) -> list[str]:
    return [s.value for s in at.subheader]


def seed_compared_run(s, run_id: str, *, candidates: int, values: list[float], started_by: str | None = None):
    """A finished run whose config differs from its sibling's in ``sampling.candidates_per_prompt`` only."""
    config = {"loop": {"primary_metric": "execution_accuracy", "gate_cohort": "all", "iterations": len(values) - 1},
              "sampling": {"candidates_per_prompt": candidates}, "training": {"loss_type": ["sigmoid", "sft"]},
              "data": {"train": "/data/train.jsonl", "max_train_prompts": 8}}
    s.runs.create(run_id, "cmp", config, "c" * 64, "stub", "r" * 64, None, None)
    for it, value in enumerate(values):
        s.iterations.start(run_id, it)
        s.evals.add_many([{"run_id": run_id, "iteration": it, "metric": "execution_accuracy", "cohort": "all",
                           "value": value, "n": 10}])
        s.iterations.finish(run_id, it, status="completed", model_path=None, model_hash=None, regressed=False,
                            gate_decision="baseline" if it == 0 else "improved", pairs_kept=0, pairs_dropped=0)
    s.runs.set_recommended(run_id, len(values) - 1)
    s.runs.set_status(run_id, "completed")
    if started_by:
        s.jobs.update(s.jobs.create("run_loop", {"started_by": started_by}, run_id=run_id), status="completed")
    return run_id


# ---- forms that check themselves -------------------------------------------------------------------------------------


def test_a_mistyped_prompts_path_is_said_inline_and_the_page_keeps_working(env):
    at = open_runs()
    assert not start_button(at).disabled
    field(at, "Training prompts").set_value("no_such_prompts.jsonl").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("no_such_prompts.jsonl: file not found" in e for e in errors) and len(errors) == 1
    assert start_button(at).disabled
    assert "Start is disabled" in texts(at) and "Training prompts" in texts(at)  # the reason, beside the button
    assert {"Jobs", "All runs"} <= set(subheaders(at))  # the rest of the page is still drawn
    field(at, "Training prompts").set_value(form_defaults_of(env)["data.train"]).run()
    assert not at.error and not start_button(at).disabled


def form_defaults_of(env):
    from rlaif.workbench.projects import run_config

    return form_defaults(run_config(env / "project" / "tiny.yaml"))


def test_a_wrong_policy_and_an_api_judge_without_model_or_key_are_said_before_start(env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    at = open_runs()
    field(at, "Policy (path or hub id)").set_value(str(env / "no-model-here")).run()
    assert any("not found" in e.value and "no-model-here" in e.value for e in at.error)
    assert start_button(at).disabled
    field(at, "Policy (path or hub id)").set_value(form_defaults_of(env)["policy.path"]).run()
    assert not at.error
    field(at, "Judge").set_value("anthropic").run()
    assert not at.exception, at.exception
    assert any("judge.options.model" in e.value or "needs a model name" in e.value or "is required" in e.value
               for e in at.error) and start_button(at).disabled
    field(at, "Judge model").set_value("claude-haiku-4-5").run()
    assert any("set ANTHROPIC_API_KEY" in e.value for e in at.error) and start_button(at).disabled
    secret = "sk-ant-test-not-a-real-key-1234567890"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    at.run()
    assert not at.error and not start_button(at).disabled
    form = at.session_state[f"runs.form.{at.session_state['workbench'].project}"]
    assert secret not in texts(at) and secret not in str(form)  # the key is looked up, never shown or kept


def test_form_checks_without_streamlit_report_every_field_at_once(env):
    project = env / "project" / "tiny.yaml"
    values = {**form_defaults_of(env), "data.train": "missing.jsonl", "data.eval": "also-missing.jsonl",
              "loop.iterations": 0, "output_dir": "/etc/hostname/runs"}
    check = check_run_form(project, values)
    assert not check.ready and check.config is None
    assert set(check.errors) == {"data.train", "data.eval", "loop.iterations", "output_dir"}
    assert "Training prompts" in check.reason() and "(and 3 more)" in check.reason()
    assert check_run_form(project, form_defaults_of(env)).ready


def test_form_values_survive_a_visit_to_another_page_and_reset_goes_back_to_the_config(env):
    at = open_runs()
    field(at, "Iterations").set_value(3).run()
    field(at, "Held-out prompts").set_value("typo.jsonl").run()
    go(at, "label")
    assert at.title[0].value == "Label"
    go(at, "runs")
    assert not at.exception, at.exception
    assert field(at, "Iterations").value == 3 and field(at, "Held-out prompts").value == "typo.jsonl"
    assert start_button(at).disabled  # the kept typo still blocks Start
    # an edit whose own rerun never reached the page (the user clicked another page first) is kept by the router
    field(at, "Candidates per prompt").set_value(5)
    go(at, "label")
    go(at, "runs")
    assert field(at, "Candidates per prompt").value == 5
    next(b for b in at.button if b.label == "Reset to the config").click().run()
    assert field(at, "Iterations").value == 1 and not start_button(at).disabled


# ---- page guard and sidebar ------------------------------------------------------------------------------------------


def test_an_unexpected_error_in_a_page_is_one_line_with_details_and_the_sidebar_stays(env):
    project = env / "project" / "tiny.yaml"
    at = open_runs()
    project.write_text(project.read_text().replace("iterations: 1", "iterations: -3"))  # the project file breaks
    at.run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("The Runs page hit an unexpected error: ConfigError")
    assert any(e.label == "Details" for e in at.expander)
    assert "Traceback" in at.expander[-1].code[0].value
    assert any(t.label == "Store" for t in at.sidebar.text_input)  # the sidebar is still there


def test_the_page_guard_lets_streamlit_control_flow_through():
    def script():
        import streamlit as st

        from rlaif.workbench.page import page_guard

        with page_guard("Here"):
            st.write("before")
            if st.session_state.get("stop"):
                st.stop()
            raise KeyError("boom")
        st.write("after")  # the guard turned the KeyError into a line, so the script goes on

    at = AppTest.from_function(script).run()
    assert not at.exception and "Here hit an unexpected error: KeyError: 'boom'" in at.error[0].value
    assert [m.value for m in at.markdown] == ["before", "after"]
    at.session_state["stop"] = True
    at.run()
    assert not at.error and [m.value for m in at.markdown] == ["before"]  # st.stop ended the script, not the guard
    assert page_guard  # imported for the reader: the guard under test


def test_a_store_path_that_does_not_exist_asks_before_creating_one(env):
    at = open_runs()
    new = env / "typo.duckdb"
    box = next(t for t in at.sidebar.text_input if t.label == "Store")
    box.set_value(str(new)).run()
    assert not at.exception, at.exception
    assert f"No store at {new} yet" in texts(at) and not new.exists()
    assert at.session_state["workbench"].store_path == str(env / "wb.duckdb")  # still on the previous store
    assert at.title[0].value == "Runs"
    next(b for b in at.button if b.label == "Keep using wb.duckdb").click().run()
    assert "No store at" not in texts(at) and not new.exists()
    assert next(t for t in at.sidebar.text_input if t.label == "Store").value == str(env / "wb.duckdb")
    next(t for t in at.sidebar.text_input if t.label == "Store").set_value(str(new)).run()
    next(b for b in at.button if b.label == f"Create new store at {new}").click().run()
    assert not at.exception, at.exception
    assert new.exists() and at.session_state["workbench"].store_path == str(new)
    # an existing store opens without a question
    box = next(t for t in at.sidebar.text_input if t.label == "Store")
    box.set_value(str(env / "wb.duckdb")).run()
    assert "No store at" not in texts(at) and at.session_state["workbench"].store_path == str(env / "wb.duckdb")


# ---- jobs ------------------------------------------------------------------------------------------------------------


def test_running_job_first_then_queued_with_labelled_cancel_buttons(env):
    at = open_runs()
    start_button(at).click().run()
    first = at.session_state["runs.selected_job"]
    start_button(at).click().run()
    second = at.session_state["runs.selected_job"]
    deadline = time.monotonic() + 60
    while store(env).jobs.get(first)["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    at.run()
    cancels = [b.label for b in at.button if b.label.startswith("Cancel job")]
    assert cancels == [f"Cancel job {fmt_id(first)}…", f"Cancel job {fmt_id(second)}…"]
    bars = [p.proto.text for p in at.get("progress")]
    assert "running" in bars[0] and "queued" in bars[1]
    for job_id in (second, first):
        RUNNER.cancel(store(env), job_id)
    assert RUNNER.wait(first, 120) and RUNNER.wait(second, 10)


def test_a_failed_jobs_reason_is_shown_in_full(env):
    s = store(env)
    reason = "RuntimeError: " + "the policy ran out of memory while sampling the 8th batch; " * 4
    job_id = s.jobs.create("run_loop", {"started_by": "ana"})
    s.jobs.update(job_id, status="failed", error=reason, message="failed")
    at = open_runs()
    assert any(reason.strip() in e.value for e in at.error)


def test_progress_is_over_the_whole_run_and_never_goes_back():
    events = [(0, "calibrate", 0, 1), (0, "eval", 1, 2), (0, "gate", 1, 1)]
    for it in (1, 2):
        events += [(it, "sample", 1, 2), (it, "sample", 2, 2), (it, "verify", 4, 4), (it, "judge", 3, 10),
                   (it, "pairs", 5, 5), (it, "train", 1, 4), (it, "train", 4, 4), (it, "eval", 2, 2),
                   (it, "gate", 1, 1)]
    fractions = [run_fraction(i, stage, step, total, 2) for i, stage, step, total in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    halfway = run_fraction(1, "gate", 1, 1, 2)
    assert 0.4 < halfway < 0.6  # iteration 1 of 2 done: about half, not "100%" of a stage


# ---- runs table, overlay, diff, charts -------------------------------------------------------------------------------


def test_runs_table_overlays_two_runs_and_diffs_their_configs(env):
    s = store(env)
    a = seed_compared_run(s, "run-aaaa1111", candidates=2, values=[0.2, 0.4], started_by="ana")
    b = seed_compared_run(s, "run-bbbb2222", candidates=4, values=[0.2, 0.3, 0.5])
    at = open_runs()
    table = next(d.value for d in at.dataframe if "best" in d.value.columns)
    by_run = {row["run"]: row for row in table.to_dict("records")}
    assert by_run["run-aaaa1111"]["started by"] == "ana" and by_run["run-bbbb2222"]["started by"] == "—"
    assert by_run["run-aaaa1111"]["best"] == "0.400 (it. 1)" and by_run["run-bbbb2222"]["best"] == "0.500 (it. 2)"
    assert by_run["run-bbbb2222"]["candidates"] == 4 and by_run["run-aaaa1111"]["prompts"] == "train.jsonl (≤ 8)"
    at.multiselect(key="runs.compare").set_value([a, b]).run()
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {t["name"]: t["y"] for t in spec["data"]}
    assert traces == {"run-aaaa1111 · cmp": [0.2, 0.4], "run-bbbb2222 · cmp": [0.2, 0.3, 0.5]}
    assert len({t["line"]["color"] for t in spec["data"]}) == 2
    diff = next(d.value for d in at.dataframe if "field" in d.value.columns)
    assert list(diff["field"]) == ["loop.iterations", "sampling.candidates_per_prompt"]
    assert list(diff.iloc[1][1:]) == ["2", "4"]


def test_config_diff_keeps_only_differing_fields():
    rows = config_diff({"x": {"a": {"b": 1, "c": [1, 2]}, "d": 1}, "y": {"a": {"b": 1, "c": [1, 3]}}})
    assert rows == [{"field": "a.c", "x": "[1, 2]", "y": "[1, 3]"}, {"field": "d", "x": "1", "y": "—"}]


def test_a_fresh_run_shows_no_data_yet_instead_of_empty_axes(env):
    store(env).runs.create("run-fresh", "fresh", {}, "h", "stub", None, None, None)
    at = open_runs()
    assert not at.get("plotly_chart")
    notes = [i.value for i in at.info]
    assert sum(n.startswith("No ") and "yet" in n for n in notes) == 4


def test_drop_reasons_keep_their_colour_from_run_to_run():
    one = RunChartData("r1", "m", 0.0, "all", kept_by_iteration={1: 3},
                       dropped_by_iteration={1: {"tie": 2, "length_skew": 1}})
    two = RunChartData("r2", "m", 0.0, "all", kept_by_iteration={1: 3},
                       dropped_by_iteration={1: {"length_skew": 4, "made_up_reason": 1}})

    def colours(data):
        return {t.name: t.marker.color for t in pairs_figure(data).data}

    assert colours(one)["dropped: length_skew"] == colours(two)["dropped: length_skew"]
    assert colours(one)["dropped: tie"] != colours(one)["dropped: length_skew"]
    assert colours(two)["dropped: made_up_reason"] == drop_reason_colour("made_up_reason")
