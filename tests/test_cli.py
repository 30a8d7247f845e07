"""The `rlaif` command: a run with per-iteration summaries, `rlaif runs`, and clear errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlaif.cli import main
from tests.tiny_models import build_tiny_gpt2

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"


def tiny_config(tmp_path, calibrate=False):
    model = build_tiny_gpt2(tmp_path / "model")
    cfg = yaml.safe_load((SAMPLE / "loop.yaml").read_text())
    cfg["policy"].update(path=str(model), max_new_tokens=16)
    cfg.update(rubric=str(SAMPLE / "rubric.yaml"), output_dir=str(tmp_path / "runs"))
    cfg["data"] = {"train": str(SAMPLE / "train.jsonl"), "eval": str(SAMPLE / "eval.jsonl"),
                   "max_train_prompts": 6, "max_eval_prompts": 5}
    cfg["verifier"]["warehouse"] = str(SAMPLE / "warehouse.sql")
    cfg["sampling"].update(candidates_per_prompt=2, batch_size=8)
    cfg["pairs"] = {"require_chosen_passes_hard": False, "max_length_ratio": None}
    cfg["training"].update(epochs=1, batch_size=4)
    cfg["calibration"] = ({"anchor_set": str(SAMPLE / "anchors.jsonl"), "annotators": "oracle", "threshold": 0.72}
                          if calibrate else {})
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_prints_summaries_and_runs_lists_it(tmp_path, capsys):
    config = tiny_config(tmp_path)
    store = str(tmp_path / "s.duckdb")
    code = main(["--store", store, "run", str(config), "--judge", "stub", "--iterations", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "== iteration 0" in out and "== iteration 1" in out
    assert "pairs kept" in out and "held-out: exact_match" in out and "execution_accuracy" in out
    assert "gate: " in out and "manifest " in out
    assert "execution_accuracy per iteration: 0:" in out
    assert main(["--store", store, "runs"]) == 0
    listing = capsys.readouterr().out
    assert "harbor-sql" in listing and "completed" in listing


def test_calibration_gate_blocks_a_biased_judge_before_any_training(tmp_path, capsys):
    config = tiny_config(tmp_path, calibrate=True)
    store = str(tmp_path / "s.duckdb")
    code = main(["--store", store, "run", str(config), "--judge", "biased", "--iterations", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "calibration gate: blocked" in out and "== iteration 1" not in out
    from store import Store
    with Store(store) as s:
        run = s.runs.list()[0]
        assert run["status"] == "stopped" and "calibration gate" in run["error"]
        assert s.candidates.list(run["run_id"]) == [] and s.judgements.list(run_id=run["run_id"]) == []
        manifest = s.manifests.for_run(run["run_id"])[0]["body"]
        gate = manifest["calibration_gate"]
        assert gate["decision"] == "blocked" and gate["kappa"] < 0.72 and gate["threshold"] == 0.72


def test_dataset_override_with_a_bad_line_names_file_and_line(tmp_path, capsys):
    config = tiny_config(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "1", "prompt": "q", "reference": "SELECT 1;"}) + "\n{oops\n")
    code = main(["--store", str(tmp_path / "s.duckdb"), "run", str(config), "--dataset", str(bad), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}:2: invalid JSON" in err
    # nothing was recorded for the refused run
    assert main(["--store", str(tmp_path / "s.duckdb"), "runs"]) == 0
    assert "no runs" in capsys.readouterr().out


def test_invalid_config_names_the_field(tmp_path, capsys):
    config = tmp_path / "loop.yaml"
    config.write_text("training:\n  beta: -1\n")
    assert main(["run", str(config)]) == 2
    assert "training.beta: must be > 0" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([str(Path(sys.executable).parent / "rlaif"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "runs" in out.stdout


def test_counts_on_the_command_line_must_be_positive(tmp_path, capsys):
    for argv in (["runs", "--limit", "-1"], ["kappa", "--judge", "stub", "--limit", "0"],
                 ["anchors", "label", "--annotator", "ana", "--limit", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--store", str(tmp_path / "s.duckdb"), *argv])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --limit: " in err and ("must be >= 1" in err or "expected a whole number" in err)
