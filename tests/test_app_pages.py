"""Every workbench page driven through ``app.py`` with Streamlit's AppTest: its main actions, its guards.

The app runs in-process against a temporary DuckDB store and a tiny project (tests/workbench_fixtures.py), so a real
background run (baseline + one DPO iteration on 4 prompts) finishes in seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from rlaif.access import User, hash_password
from rlaif.workbench.jobs import RUNNER
from rlaif.workbench.stores import close_stores, open_store
from tests.tiny_models import build_tiny_gpt2
from tests.workbench_fixtures import seed_rejudge_run, seed_run, write_project

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture
def env(tmp_path, monkeypatch, tiny):
    """A fresh store and a tiny project; the server bound to loopback as .streamlit/config.toml does."""
    project = write_project(tmp_path / "project", tiny)
    monkeypatch.setenv("RLAIF_STORE", str(tmp_path / "wb.duckdb"))
    monkeypatch.setenv("RLAIF_PROJECTS", str(project))
    monkeypatch.delenv("RLAIF_USERS", raising=False)
    st_config.set_option("server.address", "127.0.0.1")
    yield tmp_path
    for job_id in RUNNER.pending():  # never leave a worker writing into a closed store
        RUNNER.cancel(store(tmp_path), job_id)
        RUNNER.wait(job_id, 120)
    close_stores()


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def open_page(page: str) -> AppTest:
    at = app().run()
    assert not at.exception, at.exception
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def store(env):
    return open_store(env / "wb.duckdb")


def texts(at) -> str:
    parts = [e.value for kind in ("success", "info", "error", "caption", "markdown", "warning")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


# ---------------------------------------------------------------------------------------------------------------------


def test_every_page_file_is_registered_in_the_navigation():
    from rlaif.workbench.page import PAGES  # the table app.py's router builds its st.Page list from

    registered = {p.path for p in PAGES}
    on_disk = {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    assert registered == on_disk
    assert "PAGES" in (ROOT / "app.py").read_text() and len({p.title for p in PAGES}) == len(PAGES)


def test_rubrics_page_saves_a_new_version_and_lists_it(env):
    at = open_page("rubrics")
    assert at.title[0].value == "Rubrics"
    desc = next(t for t in at.text_area if t.label == "Description" and t.value == "The query runs.")
    desc.set_value("The query runs without error.").run()
    next(b for b in at.button if b.label == "Save as new version").click().run()
    assert not at.exception, at.exception
    assert "Saved version" in texts(at)
    versions = store(env).rubrics.list()
    assert len(versions) == 1
    saved = versions[0]
    assert saved["body"]["criteria"][0]["description"] == "The query runs without error."
    assert any(saved["rubric_version"][:12] in option for option in at.selectbox(key="r.base").options)
    # the diff of the project file against the saved version names the changed criterion
    at.selectbox(key="r.old").set_value("project file").run()
    at.selectbox(key="r.new").set_value(saved["rubric_version"]).run()
    diff = at.dataframe[0].value
    assert list(diff[diff["change"] == "changed"]["criterion"]) == ["executes"]
    # the judge prompt preview renders the rubric
    assert any("Rubric: sql-test" in c.value for c in at.code)


def test_rubric_rejudge_shows_flipped_verdicts(env):
    """Dropping the allowlist criterion's weight to 0 in the form flips the one verdict the allowlist decided (the
    project's SQL verifier judges real answers), and the table names that pair."""
    seed_rejudge_run(store(env))
    at = open_page("rubrics")
    weight = next(n for n in at.number_input if n.label == "Weight" and n.key.endswith(".2.w"))
    weight.set_value(0.0).run()
    at.selectbox(key="r.judge").set_value("verifier").run()
    next(b for b in at.button if b.label == "Re-judge under both versions").click().run()
    assert not at.exception, at.exception
    assert at.metric[0].label == "Flipped verdicts" and at.metric[0].value == "1 of 3"
    flipped = at.dataframe[-1].value
    assert list(flipped["old"]) == ["a"] and list(flipped["new"]) == ["tie"]
    assert list(flipped["prompt"]) == ["What was the total revenue in the East region in 2025?"]


def test_runs_page_runs_a_job_and_shows_progress_and_charts(env):
    at = open_page("runs")
    assert "Cost estimate" in texts(at) and "$0.00" in texts(at)
    next(b for b in at.button if b.label == "Start run").click().run()
    assert not at.exception, at.exception
    assert "Queued job" in texts(at)
    job_id = at.session_state["runs.selected_job"]
    deadline = time.monotonic() + 240
    while not RUNNER.wait(job_id, 0.2):
        at.run()  # the page keeps working while the worker thread trains
        assert not at.exception, at.exception
        assert time.monotonic() < deadline, "the tiny run did not finish in time"
    at.run()
    job = store(env).jobs.get(job_id)
    assert job["status"] == "completed", job
    assert job["run_id"] and "run completed" in job["message"]
    charts = at.get("plotly_chart")
    assert len(charts) == 4
    run = store(env).runs.get(job["run_id"])
    assert run["status"] == "completed"
    assert [i["iteration"] for i in store(env).iterations.list(run["run_id"])] == [0, 1]


def test_runs_page_says_a_mistyped_prompts_path_and_disables_the_start(env):
    at = open_page("runs")
    next(t for t in at.text_input if t.label == "Training prompts").set_value("no_such_prompts.jsonl").run()
    assert not at.exception, at.exception
    assert any("no_such_prompts.jsonl: file not found" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Start run").disabled


def test_runs_page_cancels_a_job(env):
    at = open_page("runs")
    next(b for b in at.button if b.label == "Start run").click().run()
    job_id = at.session_state["runs.selected_job"]
    cancel = [b for b in at.button if b.label.startswith("Cancel job ")]  # labelled with the job's short id
    assert cancel, "an active job offers a Cancel button"
    cancel[0].click().run()
    assert RUNNER.wait(job_id, 120)
    assert store(env).jobs.get(job_id)["status"] == "cancelled"


def test_runs_page_resumes_a_cancelled_run(env):
    at = open_page("runs")
    next(b for b in at.button if b.label == "Start run").click().run()
    job_id = at.session_state["runs.selected_job"]
    deadline = time.monotonic() + 120
    while not store(env).jobs.get(job_id)["run_id"]:  # cancel once the run exists, not while the job is queued
        assert time.monotonic() < deadline
        time.sleep(0.05)
    RUNNER.cancel(store(env), job_id)
    assert RUNNER.wait(job_id, 120)
    at.run()
    run_id = store(env).jobs.get(job_id)["run_id"]
    assert store(env).runs.get(run_id)["status"] == "cancelled"
    resume = [b for b in at.button if b.label == "Resume run"]
    assert resume, "a cancelled run offers a Resume button"
    resume[0].click().run()
    assert not at.exception, at.exception
    resumed = at.session_state["runs.selected_job"]
    assert resumed != job_id and RUNNER.wait(resumed, 240)
    assert store(env).jobs.get(resumed)["status"] == "completed"
    assert store(env).runs.get(run_id)["status"] == "completed"


def test_browse_page_filters_and_pages_pairs(env):
    s = store(env)
    run_id = seed_run(s, pairs=130)
    at = open_page("browse")
    at.selectbox(key="b.run").set_value(run_id).run()
    assert "130 pairs match" in texts(at)
    kept = next(sb for sb in at.selectbox if sb.label == "Kept")
    kept.set_value(False).run()
    assert "65 pairs match" in texts(at)
    reason = next(sb for sb in at.selectbox if sb.label == "Drop reason")
    assert set(reason.options) == {"any", "tie", "length_skew"}
    reason.set_value("tie").run()
    n_tie = s.pairs.count(run_id=run_id, kept=False, drop_reason="tie")
    assert f"{n_tie} pairs match" in texts(at)
    # keyset paging over all pairs of the run
    next(sb for sb in at.selectbox if sb.label == "Drop reason").set_value(None).run()
    next(sb for sb in at.selectbox if sb.label == "Kept").set_value(None).run()
    assert "130 pairs match" in texts(at)
    first_page = list(at.dataframe[0].value["pair"])
    next(b for b in at.button if b.label == "Next ›").click().run()
    assert "page 2 of 3" in texts(at)
    second_page = list(at.dataframe[0].value["pair"])
    assert len(first_page) == 50 and not set(first_page) & set(second_page)
    # model text is shown as code/text, never as HTML
    assert all("<b>" not in m.value for m in at.markdown)
    for view in ("Judgements", "Candidates", "Evals", "Manifests"):
        at.radio(key="b.view").set_value(view).run()
        assert not at.exception, (view, at.exception)
    assert any("→" in c.value for c in at.caption)  # the manifest chain


def test_export_page_approves_and_writes_trl_files(env):
    s = store(env)
    run_id = seed_run(s, pairs=20)
    at = open_page("export")
    assert "10 kept pairs selected" in texts(at)
    next(b for b in at.button if b.label.startswith("Approve 10 pairs")).click().run()
    assert not at.exception, at.exception
    approvals = s.approvals.list(run_id)
    assert len(approvals) == 1 and approvals[0]["n_pairs"] == 10 and approvals[0]["approved_by"]
    at.text_input(key="x.dir").set_value(str(env / "out")).run()
    next(b for b in at.button if b.label == "Write JSONL + Parquet").click().run()
    assert not at.exception, at.exception
    table = pq.read_table(next((env / "out").glob("*.parquet")))
    assert table.num_rows == 10
    assert {"prompt", "chosen", "rejected", "teacher_model", "rubric_version", "judge_confidence", "run_id",
            "iteration", "pair_id", "approved_by"} <= set(table.column_names)
    assert len(next((env / "out").glob("*.jsonl")).read_text().splitlines()) == 10


def test_label_page_imports_anchors_and_records_blind_labels(env):
    at = open_page("label")
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception, at.exception
    s = store(env)
    (anchor_set,) = s.anchors.list_sets()
    shown = [h.proto.body for h in at.get("html") if "rlaif-diff" in h.proto.body]
    assert len(shown) == 2  # left and right, as escaped panes with their differences marked
    next(b for b in at.button if b.label == "◀ Left is better").click().run()
    at.text_input(key=next(t.key for t in at.text_input if t.key and t.key.startswith("l.note."))) \
        .set_value("right one drops a filter").run()
    next(b for b in at.button if b.label == "Tie").click().run()
    assert not at.exception, at.exception
    labeller = at.session_state["workbench"].labeller
    labels = s.labels.latest(anchor_set["anchor_set_id"], kinds=("human",), annotator=labeller)
    assert sorted(r["label"] for r in labels)[-1] == "tie" and len(labels) == 2
    assert any(r["note"] == "right one drops a filter" for r in labels)
    assert f"2 of {anchor_set['n_items']} labelled" in at.get("progress")[0].proto.text
    page_text = texts(at).lower()
    assert "judge" not in page_text and "verdict" not in page_text and "oracle" not in page_text  # blind
    assert all(not m.proto.allow_html for m in at.markdown)


def test_calibration_page_runs_the_gate_and_shows_kappa(env):
    at = open_page("label")
    next(b for b in at.button if b.label == "Import").click().run()
    at.switch_page("pages/calibration.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="c.who").set_value("oracle").run()
    at.selectbox(key="c.judge").set_value("verifier").run()
    next(b for b in at.button if b.label == "Measure and decide").click().run()
    assert not at.exception, at.exception
    # the verifier judge agrees with the execution oracle on every one of the 74 tuning items; the biased one does not
    assert at.success and at.success[0].value.startswith("**PASSED** · verifier"), at.success or at.error
    assert [(m.label, m.value) for m in at.metric][:4] == [("Kappa (tuning)", "1.000"), ("95% CI", "[1.00, 1.00]"),
                                                            ("Items", "74"), ("Invalid verdicts", "0")]
    shown = {m.label: m.value for m in at.metric}  # the bias figures, both orders asked
    assert shown["Position flips"] == "0%" and shown["Invalid rate"] == "0%" and "First shown wins" in shown
    assert independent_kappa(store(env), "verifier") == (pytest.approx(1.0), 74)
    at.selectbox(key="c.judge").set_value("biased").run()
    next(b for b in at.button if b.label == "Measure and decide").click().run()
    kappa, n = independent_kappa(store(env), "biased-verbose")
    assert at.error and at.error[0].value.startswith("**BLOCKED** · biased-verbose"), at.error
    assert at.metric[0].value == f"{kappa:.3f}" and kappa < 0.72 and n == 74
    shown = {m.label: m.value for m in at.metric}  # the verbose judge picks the longer answer in either order
    assert (shown["Longer answer wins"], shown["First shown wins"], shown["Position flips"]) == ("100%", "50%", "0%")
    assert at.get("plotly_chart")  # the confusion matrix
    assert "Holdout" in texts(at)


def test_calibration_page_shows_alpha_and_the_adjudication_split(env):
    """Three people labelled the same items, one of them differing on 3: the page shows Fleiss' kappa and
    Krippendorff's alpha as the engine computes them, and how many items are unanimous, majority or in conflict."""
    from rlaif.anchors.stats import anchor_set_stats

    at = open_page("label")
    next(b for b in at.button if b.label == "Import").click().run()
    s = store(env)
    set_id = s.anchors.list_sets()[0]["anchor_set_id"]
    items = s.anchors.items(set_id)[:12]
    labels = [{"item_id": i["item_id"], "annotator": who, "annotator_kind": "human", "shown_left": "a",
               "label": ("A", "B", "tie")[(k + (who == "bo" and k % 4 == 0)) % 3]}
              for k, i in enumerate(items) for who in ("ana", "bo", "cy")]
    s.labels.add_many(labels)
    at.switch_page("pages/calibration.py").run()
    assert not at.exception, at.exception
    expected = anchor_set_stats(s, set_id)
    alpha = expected["inter_annotator"]["krippendorff_alpha"]["alpha"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Krippendorff's alpha"] == f"{alpha:.3f}" and 0 < alpha < 1
    assert metrics["Fleiss' kappa"] == f"{expected['inter_annotator']['fleiss_kappa']:.3f}"
    split = next(d.value for d in at.dataframe if "unanimous" in d.value.columns)
    assert split.iloc[0].to_dict() == {"items with 2+ labels": 12, "unanimous": 9, "majority": 3, "conflicts": 0,
                                       "overridden": 0}


def independent_kappa(s, judge_id: str) -> tuple[float, int]:
    """Cohen's kappa of a judge's stored anchor verdicts against the oracle labels, by scikit-learn directly."""
    from sklearn.metrics import cohen_kappa_score

    set_id = s.anchors.list_sets()[0]["anchor_set_id"]
    labels = {r["item_id"]: r["label"] for r in s.labels.latest(set_id, split="tuning", kinds=("oracle",))}
    verdicts = [v for v in s.anchors.verdicts(set_id, split="tuning") if v["judge_id"] == judge_id]
    judged = [{"a": "A", "b": "B"}.get(v["winner"], v["winner"]) for v in verdicts]
    return cohen_kappa_score([labels[v["item_id"]] for v in verdicts], judged), len(verdicts)


# ---- who may do what ------------------------------------------------------------------------------------------------


@pytest.fixture
def team(env, monkeypatch):
    monkeypatch.setenv("RLAIF_USERS", f"ana:admin:{hash_password('ana-pw')},bo:annotator:{hash_password('bo-pw')}")
    return env


def sign_in(name: str, password: str) -> AppTest:
    at = app().run()
    assert at.button[0].label == "Sign in"
    at.text_input[0].set_value(name)
    at.text_input[1].set_value(password)
    at.button[0].click().run()
    return at


def test_sign_in_is_required_and_wrong_passwords_are_refused(team):
    at = app().run()
    assert [b.label for b in at.button] == ["Sign in"] and not at.sidebar.text_input
    at = sign_in("ana", "nope")
    assert "wrong password" in texts(at)
    at = sign_in("ana", "ana-pw")
    assert not at.exception and at.title[0].value == "Runs"
    assert "ana-pw" not in texts(at) and "pbkdf2" not in texts(at)  # neither the password nor its hash is shown


def test_annotator_cannot_reach_runs_rubrics_or_export(team):
    at = sign_in("bo", "bo-pw")
    assert not at.exception, at.exception
    assert at.title[0].value == "Label"  # the only page an annotator has
    for page in ("runs", "rubrics", "export", "browse", "calibration"):
        try:
            at.switch_page(f"pages/{page}.py").run()
        except ValueError:
            continue  # not even registered for this user
        assert at.title and at.title[0].value == "Label", page
    # page code refuses too, even when reached without the router's help
    for page, action_label in (("runs", "Start run"), ("rubrics", "Save as new version"), ("export", "Approve")):
        direct = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=30)
        direct.session_state["workbench"] = _workbench(team, User("bo", "annotator"))
        direct.run()
        assert direct.error and "may not" in direct.error[0].value
        assert not any(b.label.startswith(action_label) for b in direct.button)


def _workbench(env, user):
    from rlaif.workbench.page import Workbench

    path = env / "wb.duckdb"
    return Workbench(str(path), open_store(path), "tiny", env / "project" / "tiny.yaml", user, user.name)
