"""The Label page's import form refuses a file with unmapped label columns and imports it with the mapping typed into
"Label columns", reporting the labels per annotator (driven through ``app.py`` with Streamlit's AppTest)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from rlaif.workbench.stores import close_stores, open_store
from tests.workbench_fixtures import write_project

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A project whose folder holds a team's vote file; the page never loads the policy, so no model is built."""
    project = write_project(tmp_path / "project", tmp_path / "no-model")
    with (project.parent / "team_anchors.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response_a", "response_b", "ana", "bo_label"])
        writer.writerows([["q1", "a1", "b1", "A", "B"], ["q2", "a2", "b2", "tie", ""], ["q3", "a3", "b3", "", "A"]])
    monkeypatch.setenv("RLAIF_STORE", str(tmp_path / "wb.duckdb"))
    monkeypatch.setenv("RLAIF_PROJECTS", str(project))
    monkeypatch.delenv("RLAIF_USERS", raising=False)
    st_config.set_option("server.address", "127.0.0.1")
    yield tmp_path
    close_stores()


def test_the_import_form_maps_label_columns(env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/label.py").run()
    assert not at.exception, at.exception
    next(sb for sb in at.selectbox if sb.label == "Anchor file").select_index(1).run()  # team_anchors.csv
    next(b for b in at.button if b.label == "Import").click().run()
    (error,) = at.error
    assert "['ana', 'bo_label'] look like labels" in error.value and "--label-column" in error.value
    store = open_store(env / "wb.duckdb")
    assert store.anchors.list_sets() == []  # refused: nothing stored

    next(t for t in at.text_input if t.label == "Label columns").set_value("ana, bo_label=bo").run()
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception and not at.error, at.error
    assert "Imported 3 items" in at.success[0].value and "Labels: ana 2, bo 2." in at.success[0].value
    (anchor_set,) = store.anchors.list_sets()
    assert {a["annotator"]: a["n_items"] for a in store.labels.annotators(anchor_set["anchor_set_id"])} == {
        "ana": 2, "bo": 2}
