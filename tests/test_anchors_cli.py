"""``rlaif anchors ...`` and ``rlaif kappa`` end to end on a file store, driven through argparse."""

import json
from pathlib import Path

import pytest

from rlaif.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "harbor_sql"


def rlaif(store_path, *argv):
    """Run the ``rlaif`` command as a user would (``--store`` on the main parser); return its exit code."""
    return main(["--store", str(store_path), *argv])


@pytest.fixture
def workspace(tmp_path):
    return tmp_path, tmp_path / "wb.duckdb"


def test_import_stats_export_and_kappa_on_the_sample(workspace, capsys):
    tmp, db = workspace
    assert rlaif(db, "anchors", "import", str(SAMPLE / "anchors.jsonl"), "--name", "harbor") == 0
    out = capsys.readouterr().out
    set_id = out.split(":")[0]
    assert set_id.startswith("as-") and "imported" in out and "in the locked holdout" in out
    assert rlaif(db, "anchors", "import", str(SAMPLE / "anchors.jsonl"), "--name", "harbor") == 0
    assert "already imported" in capsys.readouterr().out

    assert rlaif(db, "anchors", "stats") == 0
    assert set_id in capsys.readouterr().out

    code = rlaif(db, "kappa", "--judge", "verifier", "--rubric", str(SAMPLE / "rubric.yaml"), "--config",
                 str(SAMPLE / "loop.yaml"), "--anchor-set", set_id, "--include-holdout")
    out = capsys.readouterr().out
    assert code == 0 and "GATE PASSED" in out and "locked holdout" in out
    code = rlaif(db, "kappa", "--judge", "biased", "--rubric", str(SAMPLE / "rubric.yaml"), "--annotators",
                 "oracle", "--json")
    body = json.loads(capsys.readouterr().out)
    assert code == 1 and body["decision"] == "blocked" and body["kappa"] < 0.72
    code = rlaif(db, "kappa", "--judge", "biased", "--rubric", str(SAMPLE / "rubric.yaml"), "--annotators",
                 "oracle", "--override", "--override-reason", "demo")
    assert code == 0 and "GATE OVERRIDDEN" in capsys.readouterr().out

    assert rlaif(db, "anchors", "stats", set_id, "--annotators", "oracle") == 0
    out = capsys.readouterr().out
    assert "oracle:sql-execution" in out and "biased-verbose" in out and "verifier" in out

    assert rlaif(db, "anchors", "export", str(tmp / "out.csv")) == 0  # the newest set by default
    assert rlaif(db, "anchors", "export", set_id, str(tmp / "holdout.jsonl"), "--split", "holdout",
                 "--with-ids") == 0
    capsys.readouterr()
    assert (tmp / "out.csv").read_text(encoding="utf-8").startswith("prompt,response_a,response_b,slice,")
    held = [json.loads(line) for line in (tmp / "holdout.jsonl").read_text().splitlines()]
    assert held and all(r["is_holdout"] for r in held)


def test_input_errors_are_one_line_and_exit_2(workspace, capsys):
    tmp, db = workspace
    bad = tmp / "bad.jsonl"
    bad.write_text('{"prompt": "q", "response_a": "a", "response_b": "b", "label_ana": "maybe"}\n')
    assert rlaif(db, "anchors", "import", str(bad)) == 2
    assert capsys.readouterr().err.strip() == (f"error: {bad}: line 1: field 'label_ana': label must be A, B, tie "
                                               "or skip, got 'maybe'")
    assert rlaif(db, "kappa", "--judge", "stub", "--rubric", str(SAMPLE / "rubric.yaml")) == 2
    assert "no anchor sets" in capsys.readouterr().err
    rlaif(db, "anchors", "import", str(SAMPLE / "anchors.jsonl"))
    capsys.readouterr()
    assert rlaif(db, "kappa", "--judge", "verifier", "--rubric", str(SAMPLE / "rubric.yaml")) == 2
    assert "pass --config" in capsys.readouterr().err
    assert rlaif(db, "kappa", "--judge", "stub", "--rubric", "deadbeef") == 2
    assert "no stored rubric version" in capsys.readouterr().err


def test_terminal_labelling_and_adjudication(workspace, capsys, monkeypatch):
    tmp, db = workspace
    records = [{"prompt": f"q{i}", "response_a": f"a{i}", "response_b": f"b{i}"} for i in range(3)]
    (tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rlaif(db, "anchors", "import", str(tmp / "p.jsonl"), "--holdout-fraction", "0")
    answers = iter(["1 clearer", "x", "t", "s", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert rlaif(db, "anchors", "label", "--annotator", "ana") == 0
    out = capsys.readouterr().out
    assert "3 labels recorded for ana" in out and "unknown answer 'x'" in out

    from store import Store

    with Store(db) as store:
        set_id = store.anchors.list_sets()[0]["anchor_set_id"]
        rows = store.labels.latest(set_id)
        assert sorted(r["label"] for r in rows)[-2:] == ["skip", "tie"]
        assert [r["note"] for r in rows].count("clearer") == 1
        item_id = rows[0]["item_id"]
    assert rlaif(db, "anchors", "adjudicate", "--item", item_id, "--label", "B") == 2
    assert rlaif(db, "anchors", "adjudicate", "--item", item_id, "--label", "B", "--reason", "checked the docs") == 0
    assert rlaif(db, "anchors", "adjudicate") == 0
    out = capsys.readouterr().out
    assert f"{item_id}: overridden to B by adjudicator" in out and "0 conflicts need an adjudicator" in out
    with Store(db) as store:
        (adjudication,) = store.labels.adjudications(set_id)
        assert (adjudication["method"], adjudication["label"], adjudication["note"]) == ("override", "B",
                                                                                         "checked the docs")
