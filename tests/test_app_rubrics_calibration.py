"""The Rubrics and Calibration pages read honestly: judges that ignore rubric text are marked and explained, an API
judge is set up on the page with its cost shown first, a weight edit reaches the judge prompt, and every kappa that
means nothing says so in words beside short ids, CIs and the holdout's metrics.

Driven through ``app.py`` with Streamlit's AppTest on a temporary store and the tiny project (no model is loaded: the
judges here are the verifier, the stub and a scripted fake).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from rlaif.anchors import import_anchor_file, kappa_gate
from rlaif.judges import parse_spec
from rlaif.judges.fake import FakeJudge
from rlaif.judges.prompting import render_rubric
from rlaif.judges.simple import StubJudge
from rlaif.rubric import load_rubric
from rlaif.workbench.calibration_view import kappa_note
from rlaif.workbench.rubric_edit import rejudge_flips, rubric_reading, sample_comparisons
from rlaif.workbench.stores import close_stores, open_store
from tests.workbench_fixtures import seed_rejudge_run, write_project

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh store and the tiny project (its policy path is never loaded on these pages)."""
    project = write_project(tmp_path / "project", tmp_path / "no-model")
    monkeypatch.setenv("RLAIF_STORE", str(tmp_path / "wb.duckdb"))
    monkeypatch.setenv("RLAIF_PROJECTS", str(project))
    monkeypatch.delenv("RLAIF_USERS", raising=False)
    st_config.set_option("server.address", "127.0.0.1")
    yield tmp_path
    close_stores()


def store(env):
    return open_store(env / "wb.duckdb")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("success", "info", "error", "caption", "markdown", "warning")
                     for e in getattr(at, kind))


def click(at, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception


# ---- the degenerate-kappa rule --------------------------------------------------------------------------------------


def test_kappa_note_names_why_a_kappa_means_nothing():
    ties = kappa_note(5, 0.0, labels={"tie": 4, "A": 1}, judge={"A": 3, "B": 2})
    assert "4 of 5 labels are ties" in ties and "only 5 items" in ties
    assert "every label is A" in kappa_note(40, float("nan"), labels={"A": 40}, judge={"A": 20, "B": 20})
    assert "one answer (B)" in kappa_note(40, 0.0, labels={"A": 20, "B": 20}, judge={"B": 38, "invalid": 2})
    assert "every verdict was invalid" in kappa_note(12, 0.0, n_invalid=12)
    assert "nothing is measured" in kappa_note(0)
    assert kappa_note(40, 0.61, labels={"A": 18, "B": 17, "tie": 5}, judge={"A": 20, "B": 20}) is None
    assert kappa_note(9, 0.61, labels={"A": 4, "B": 5}, judge={"A": 4, "B": 5}).startswith("only 9 items")
    assert kappa_note(5, 0.0, labels={"tie": 4, "A": 1}, short=True) == "4 of 5 labels are ties; only 5 items"


# ---- Rubrics --------------------------------------------------------------------------------------------------------


def test_a_judge_made_of_judges_reads_rubric_text_when_one_of_them_does():
    reads_text, what = rubric_reading(parse_spec("ensemble", {"judges": ["stub", "verifier"]}))
    assert not reads_text and what.startswith("stub: nothing of the rubric") and "verifier: only the criteria's" in what
    assert rubric_reading(parse_spec("tiered", {"cheap": "stub", "expensive": {
        "name": "openai", "options": {"model": "gpt-4o-mini"}}}))[0]
    assert rubric_reading(parse_spec("verifier", {"cache": True}))[0] is False  # wrappers change nothing


def test_judges_that_ignore_rubric_text_are_marked_and_explain_zero_flips(env):
    seed_rejudge_run(store(env))
    at = open_page("rubrics")
    options = at.selectbox(key="r.judge").options
    for blind in ("verifier", "stub", "biased", "reward_model"):
        assert f"{blind} (ignores rubric text)" in options, options
    assert "anthropic" in options and "local" in options  # these read the rubric's wording
    # a wording-only edit: the verifier cannot flip on it, and the page says why instead of a bare "0 of 3"
    desc = next(t for t in at.text_area if t.label == "Description" and t.value == "The query runs.")
    desc.set_value("The query runs, and fast.").run()
    at.selectbox(key="r.judge").set_value("verifier").run()
    assert "verifier ignores the rubric's text. It reads only the criteria's weights" in texts(at)
    click(at, "Re-judge under both versions")
    assert at.metric[0].value == "0 of 3"
    assert "verifier does not read the rubric's text" in texts(at)
    assert "No verdict flipped: both versions pick the same winner on all 3 pairs." in texts(at)
    assert not [d for d in at.dataframe if "old rationale" in d.value.columns]  # no empty grid


def test_api_judge_settings_and_cost_estimate_before_rejudging(env):
    seed_rejudge_run(store(env))
    at = open_page("rubrics")
    at.selectbox(key="r.judge").set_value("openai").run()
    assert not at.exception, at.exception
    assert at.text_input(key="r.provider").value == "openai"
    assert any("model" in e.value for e in at.error)  # no model configured yet: said inline, the button is off
    assert next(b for b in at.button if b.label == "Re-judge under both versions").disabled
    at.text_input(key="r.openai.model").set_value("gpt-4o-mini").run()
    at.text_input(key="r.openai.url").set_value("http://127.0.0.1:9/v1").run()
    assert not at.error, [e.value for e in at.error]
    cost = next(c.value for c in at.caption if c.value.startswith("Cost estimate"))
    assert "for 6 judge calls (3 pairs x 2 versions)" in cost and "openai:gpt-4o-mini: 6 calls" in cost
    assert cost.startswith("Cost estimate: $0.0") and "(upper bound)" in cost  # priced; cached by default
    assert not next(b for b in at.button if b.label == "Re-judge under both versions").disabled


def test_a_weight_change_shows_in_the_judge_prompt_diff(env):
    at = open_page("rubrics")
    weight = next(n for n in at.number_input if n.label == "Weight" and n.key.endswith(".0.w"))  # executes: hard
    weight.set_value(3.0).run()
    at.selectbox(key="r.old").set_value("project file").run()
    at.selectbox(key="r.new").set_value("draft").run()
    side = next(d.value for d in at.dataframe if list(d.value.columns) == ["change", "old", "new"])
    changed = side[side["change"] != ""]
    assert list(changed["old"]) == ["R1. executes (hard requirement, weight 1): The query runs."]
    assert list(changed["new"]) == ["R1. executes (hard requirement, weight 3): The query runs."]
    assert any("R1. executes (hard requirement, weight 3)" in c.value for c in at.code)  # the draft's prompt preview


def test_remove_takes_a_criterion_out_of_the_draft(env):
    at = open_page("rubrics")
    remove = [b for b in at.button if b.label == "Remove"]
    assert len(remove) == 3  # one labelled button per criterion
    remove[2].click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.text_input if t.label == "Criterion"] == ["executes", "correct"]
    at.selectbox(key="r.old").set_value("project file").run()
    at.selectbox(key="r.new").set_value("draft").run()
    rows = at.dataframe[0].value
    assert list(rows[rows["change"] == "removed"]["criterion"]) == ["allowlisted"]


def test_rejudging_in_chunks_reports_progress_and_matches_one_batch(env):
    s = store(env)
    comparisons = sample_comparisons(s, seed_rejudge_run(s), sample=5)
    rubric = load_rubric(env / "project" / "rubric.yaml")
    seen = []
    chunked = rejudge_flips(StubJudge(), comparisons, rubric, rubric, chunk=2,
                            on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 6), (4, 6), (5, 6), (6, 6)]
    assert chunked == rejudge_flips(StubJudge(), comparisons, rubric, rubric)
    assert "weight 2" in render_rubric(rubric)  # the hard "correct" criterion's weight reaches the prompt


# ---- Calibration ----------------------------------------------------------------------------------------------------


def anchors(env) -> str:
    return import_anchor_file(store(env), env / "project" / "anchors.jsonl", name="tiny-anchors").anchor_set_id


def test_calibration_defaults_to_the_last_reports_labels_with_short_ids_and_holdout_metrics(env):
    s = store(env)
    set_id = anchors(env)
    rubric = load_rubric(env / "project" / "rubric.yaml")
    kappa_gate(s, StubJudge(), rubric, set_id, annotators="oracle", n_resamples=50)
    at = open_page("calibration")
    assert at.selectbox(key="c.who").value == "oracle"  # what the banner shows
    banner = (at.success or at.error)[0].value
    assert f"stub · rubric {rubric.version[:12]} · oracle labels" in banner and rubric.version not in banner
    decisions = next(d.value for d in at.dataframe if "decision" in d.value.columns)
    assert list(decisions.columns)[:4] == ["when", "judge", "decision", "kappa [95% CI]"]
    assert list(decisions["rubric"]) == [rubric.version[:12]]
    assert list(decisions["rubric version (full)"]) == [rubric.version]  # the full id, last, for copying
    kappa = next(d.value for d in at.dataframe if "slice" in d.value.columns)
    assert list(kappa["rubric"].str.len().unique()) == [12] and "all" in set(kappa["slice"])
    assert kappa["kappa [95% CI]"].str.fullmatch(r"-?\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]|—").all()
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Holdout items"]) > 0 and metrics["By the gate's rule"] in ("would pass", "would block")
    assert re.fullmatch(r"-?\d\.\d{3}", metrics["Holdout kappa"])
    assert re.fullmatch(r"\[-?\d\.\d\d, -?\d\.\d\d\]", metrics["Holdout 95% CI"])
    assert not at.json  # no raw JSON tree
    # other labels: the banner follows the selection and says there is no decision on them yet
    at.selectbox(key="c.who").set_value("human").run()
    assert not at.exception, at.exception
    assert "No gate decision on human labels yet; the last one was made on oracle labels" in texts(at)
    assert not at.success and not [e for e in at.error if e.value.startswith("**")]


def test_calibration_explains_a_degenerate_kappa(env):
    """Five human labels, four of them ties, and a judge that always says A: kappa 0.000 is shown with the words
    that it means nothing, next to the number and in the table."""
    s = store(env)
    set_id = anchors(env)
    items = s.anchors.items(set_id, split="tuning")[:5]
    s.labels.add_many([{"item_id": i["item_id"], "annotator": "ana", "annotator_kind": "human", "shown_left": "a",
                        "label": "A" if k == 0 else "tie"} for k, i in enumerate(items)])
    rubric = load_rubric(env / "project" / "rubric.yaml")
    result = kappa_gate(s, FakeJudge("always-a", default="a"), rubric, set_id, annotators="human", min_items=1,
                        n_resamples=50)
    assert result.n == 5 and result.kappa == 0.0
    at = open_page("calibration")
    assert at.selectbox(key="c.who").value == "human"
    warning = next(w.value for w in at.warning if "means little or nothing" in w.value)
    assert "Kappa 0 on 5 items" in warning and "4 of 5 labels are ties" in warning and "only 5 items" in warning
    kappa = next(d.value for d in at.dataframe if "slice" in d.value.columns)
    row = kappa[(kappa["judge"] == "always-a") & (kappa["slice"] == "all")].iloc[0]
    assert "4 of 5 labels are ties" in row["note"]
    disagreements = next(d.value for d in at.dataframe if "confidence" in d.value.columns)
    assert set(disagreements["confidence"]) == {"1"}  # 3 significant decimals, never 1.0000000000000000


def test_inter_annotator_agreement_on_few_items_says_it_means_little(env):
    """Two people labelled 4 common items: their pairwise kappa and Krippendorff's alpha are shown with the plain-words
    note that 4 items are too few, as the judge kappas are."""
    s = store(env)
    set_id = anchors(env)
    items = s.anchors.items(set_id)[:4]
    s.labels.add_many([{"item_id": i["item_id"], "annotator": who, "annotator_kind": "human", "shown_left": "a",
                        "label": ("A", "B")[(k + (who == "bo" and k == 0)) % 2]}
                       for k, i in enumerate(items) for who in ("ana", "bo")])
    at = open_page("calibration")
    pairwise = next(d.value for d in at.dataframe if "raw agreement" in d.value.columns)
    assert list(pairwise["n"]) == [4] and list(pairwise["note"]) == ["only 4 items"]
    assert any("only 4 items" in c.value and "alpha" in c.value for c in at.caption)
