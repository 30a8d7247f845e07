"""``rlaif kappa`` takes its gate from the project's config, judges only what the gate decides on, and can measure
a small stratified sample first."""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.cli import main
from rlaif.rubric import load_rubric
from store import Store

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "harbor_sql"
RUBRIC = str(SAMPLE / "rubric.yaml")


def kappa(db, *argv, capsys) -> tuple[int, dict]:
    code = main(["--store", str(db), "kappa", "--rubric", RUBRIC, "--json", "--resamples", "200", *argv])
    return code, json.loads(capsys.readouterr().out)


def verdicts(db, judge_id: str) -> tuple[int, int]:
    """(verdicts stored on tuning items, on holdout items) for one judge."""
    with Store(db) as store:
        (anchor_set,) = store.anchors.list_sets()
        set_id = anchor_set["anchor_set_id"]
        return tuple(len([v for v in store.anchors.verdicts(set_id, split=split) if v["judge_id"] == judge_id])
                     for split in ("tuning", "holdout"))


def test_the_configs_calibration_section_is_the_default_gate(tmp_path, capsys):
    """The sample's config says annotators: oracle and names its anchor file: no flag needed for either, and the
    file is imported on first use. Without the config the default annotators are people, and there are none."""
    db = tmp_path / "s.duckdb"
    code, body = kappa(db, "--judge", "verifier", "--config", str(SAMPLE / "loop.yaml"), capsys=capsys)
    assert code == 0 and body["annotators"] == "oracle" and body["n"] == 74 and body["decision"] == "passed"
    assert body["rule"]["gate_on"] == "lower_bound" and body["threshold"] == 0.72
    # a flag is checked like the config field it overrides
    assert main(["--store", str(db), "kappa", "--judge", "verifier", "--rubric", RUBRIC, "--config",
                 str(SAMPLE / "loop.yaml"), "--threshold", "1.5"]) == 2
    assert "calibration.threshold: must be a kappa in [-1, 1]" in capsys.readouterr().err
    code, body = kappa(db, "--judge", "stub", capsys=capsys)
    assert code == 1 and body["annotators"] == "human" and body["n"] == 0


def test_only_the_items_the_gate_decides_on_are_judged_unless_asked(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    kappa(db, "--judge", "stub", "--config", str(SAMPLE / "loop.yaml"), capsys=capsys)
    assert verdicts(db, "stub") == (74, 0)  # the 18 holdout items cost nothing
    code, body = kappa(db, "--judge", "stub", "--config", str(SAMPLE / "loop.yaml"), "--include-holdout",
                       capsys=capsys)
    assert verdicts(db, "stub") == (74, 18) and body["holdout"]["n"] == 18


def test_limit_measures_a_stratified_sample_first(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    code, body = kappa(db, "--judge", "biased", "--config", str(SAMPLE / "loop.yaml"), "--limit", "25",
                       "--min-items", "20", capsys=capsys)
    assert body["n"] == 25 and body["n_labelled"] == 74 and verdicts(db, "biased-verbose") == (25, 0)
    assert all(s["n"] >= 1 for s in body["slices"].values()) and len(body["slices"]) == 4  # all four cohorts drawn
    assert code == 1 and "a stratified sample of 74" in body["reason"]


def test_degenerate_results_are_words_in_the_report(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    main(["--store", str(db), "anchors", "import", str(SAMPLE / "anchors.jsonl")])
    capsys.readouterr()
    code = main(["--store", str(db), "kappa", "--judge", "stub", "--rubric", RUBRIC, "--annotators", "oracle",
                 "--config", str(SAMPLE / "loop.yaml")])
    out = capsys.readouterr().out
    assert code == 1 and "rule: lower bound >= 0.72 on at least 30 items" in out


def test_the_verifier_message_names_the_config_field_when_a_config_was_passed(tmp_path, capsys):
    config = tmp_path / "loop.yaml"
    config.write_text("judge: {name: stub}\n")
    db = tmp_path / "s.duckdb"
    main(["--store", str(db), "anchors", "import", str(SAMPLE / "anchors.jsonl")])
    capsys.readouterr()
    assert main(["--store", str(db), "kappa", "--judge", "verifier", "--rubric", RUBRIC, "--config",
                 str(config)]) == 2
    err = capsys.readouterr().err
    assert "verifier.kind" in err and "pass --config" not in err


def test_the_configs_rubric_is_the_default_and_no_rubric_at_all_is_one_line(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    assert main(["--store", str(db), "kappa", "--judge", "verifier", "--config", str(SAMPLE / "loop.yaml"),
                 "--resamples", "200", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["rubric_version"] == load_rubric(RUBRIC).version and body["decision"] == "passed"
    assert main(["--store", str(tmp_path / "other.duckdb"), "kappa", "--judge", "stub"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --rubric: is required: pass a rubric YAML file or stored version, or --config LOOP.yaml "
                   "with a rubric") and not (tmp_path / "other.duckdb").exists()
