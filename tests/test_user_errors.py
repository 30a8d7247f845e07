"""Every mistake a user can make in a config or a data file is one line on stderr naming the file (and the line or
field), exit code 2, no traceback, and no run row left behind: the config is checked before a run is recorded.

Each case runs the real ``rlaif run`` entry point in-process (two also as a subprocess, to see the real streams).
"""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlaif.cli import main
from rlaif.config import load_config
from rlaif.datasets import load_prompts
from store import Store
from tests.test_pipeline import tiny  # noqa: F401  (fixture)
from tests.test_secrets_in_output import FakePolicyOutput

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"
ROOT = Path(__file__).resolve().parent.parent
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def base(tiny, tmp_path):  # noqa: F811
    """A valid loop config (absolute paths, the tiny policy, one iteration) as a dict to spoil."""
    cfg = yaml.safe_load((SAMPLE / "loop.yaml").read_text())
    cfg.update(rubric=str(SAMPLE / "rubric.yaml"), output_dir=str(tmp_path / "runs"), calibration={})
    cfg["policy"].update(path=str(tiny), max_new_tokens=8)
    cfg["data"] = {"train": str(SAMPLE / "train.jsonl"), "eval": str(SAMPLE / "eval.jsonl"),
                   "max_train_prompts": 4, "max_eval_prompts": 3}
    cfg["verifier"]["warehouse"] = str(SAMPLE / "warehouse.sql")
    cfg["loop"]["iterations"] = 1
    return cfg


def write(path: Path, content: str | bytes | dict) -> Path:
    if isinstance(content, dict):
        content = yaml.safe_dump(content)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def refused(config: Path, store: Path, capsys) -> str:
    """Run ``rlaif run config``; assert exit 2, one stderr line, no traceback, no run row; return the line."""
    code = main(["--store", str(store), "run", str(config), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    with Store(store) as s:
        assert s.runs.list() == []
    return lines[0]


def test_unknown_judge_name(base, tmp_path, capsys):
    config = write(tmp_path / "loop.yaml", {**base, "judge": {"name": "nope"}})
    line = refused(config, tmp_path / "s.duckdb", capsys)
    assert line.startswith(f"error: {config}: judge.name: unknown judge 'nope'; one of verifier, stub")


def test_missing_warehouse_file_names_the_field_as_written(base, tmp_path, capsys):
    missing = tmp_path / "nowhere.sql"
    config = write(tmp_path / "loop.yaml", {**base, "verifier": {**base["verifier"], "warehouse": str(missing)}})
    line = refused(config, tmp_path / "s.duckdb", capsys)
    assert line == f"error: {config}: verifier.warehouse: file not found: {missing}"


@pytest.mark.parametrize("content", ["", "# only a comment\n", "{}\n"])
def test_empty_config_says_it_is_empty_and_what_it_needs(tmp_path, capsys, content):
    config = write(tmp_path / "loop.yaml", content)
    line = refused(config, tmp_path / "s.duckdb", capsys)
    assert line.startswith(f"error: {config}: <file>: the config is empty; a loop config needs at least policy.path")
    assert "data.train" in line and "train.jsonl: file not found" not in line


@pytest.mark.parametrize("content, kind", [("- a\n- b\n", "list"), ("hello\n", "str"), ("42\n", "int")])
def test_config_that_is_not_a_mapping(tmp_path, capsys, content, kind):
    config = write(tmp_path / "loop.yaml", content)
    line = refused(config, tmp_path / "s.duckdb", capsys)
    assert line == f"error: {config}: <root>: a loop config is a mapping of sections (policy:, data:, judge:, ...), " \
                   f"got a {kind}"


def test_config_that_is_not_utf8_or_nested_too_deeply(tmp_path, capsys):
    config = write(tmp_path / "loop.yaml", b"name: caf\xe9\n")
    assert refused(config, tmp_path / "s.duckdb", capsys) == \
        f"error: {config}: <file>: not UTF-8 text (invalid continuation byte at byte 9)"
    config = write(tmp_path / "deep.yaml", f"name: {DEEP}\n")
    assert refused(config, tmp_path / "s.duckdb", capsys) == f"error: {config}: <yaml>: invalid YAML: nested too deeply"


def test_deeply_nested_prompts_line_names_file_and_line(base, tmp_path, capsys):
    train = write(tmp_path / "train.jsonl", (SAMPLE / "train.jsonl").read_text().splitlines()[0] + f"\n{DEEP}\n")
    config = write(tmp_path / "loop.yaml", {**base, "data": {**base["data"], "train": str(train)}})
    line = refused(config, tmp_path / "s.duckdb", capsys)
    assert line.startswith(f"error: {train}:2: invalid JSON: nested too deeply")


def test_prompts_line_that_is_not_an_object(base, tmp_path, capsys):
    train = write(tmp_path / "train.jsonl", (SAMPLE / "train.jsonl").read_text().splitlines()[0] + "\n[1, 2]\n")
    config = write(tmp_path / "loop.yaml", {**base, "data": {**base["data"], "train": str(train)}})
    assert refused(config, tmp_path / "s.duckdb", capsys) == f"error: {train}:2: expected a JSON object, got list"


def test_prompts_file_with_invalid_utf8_names_the_line(base, tmp_path, capsys):
    first = (SAMPLE / "train.jsonl").read_bytes().split(b"\n")[0]
    train = write(tmp_path / "train.jsonl", first + b'\n{"id": "x", "prompt": "caf\xe9"}\n')
    config = write(tmp_path / "loop.yaml", {**base, "data": {**base["data"], "train": str(train)}})
    line = refused(config, tmp_path / "s.duckdb", capsys)
    assert line.startswith(f"error: {train}:2: not UTF-8 text (invalid continuation byte")


def test_missing_rubric_and_policy_name_the_config_field(base, tmp_path, capsys):
    config = write(tmp_path / "loop.yaml", {**base, "rubric": str(tmp_path / "rubric.yaml")})
    assert refused(config, tmp_path / "s.duckdb", capsys) == \
        f"error: {config}: rubric: file not found: {tmp_path / 'rubric.yaml'}"
    config = write(tmp_path / "loop.yaml", {**base, "policy": {**base["policy"], "path": str(tmp_path)}})
    assert refused(config, tmp_path / "s.duckdb", capsys).startswith(
        f"error: {config}: policy.path: no model weights (.safetensors, .bin, .gguf files) in {tmp_path}")
    # weights without config.json used to fail at the first model load, after the run row: a failed run left behind
    broken = tmp_path / "broken"
    broken.mkdir()
    write(broken / "model.safetensors", b"not really")
    config = write(tmp_path / "loop.yaml", {**base, "policy": {**base["policy"], "path": str(broken)}})
    assert refused(config, tmp_path / "s.duckdb", capsys) == \
        f"error: {config}: policy.path: no config.json in {broken}: not a Hugging Face model folder"


def test_bad_anchor_file_leaves_no_failed_run_behind(base, tmp_path, capsys):
    """Found after the run row used to be created (a ``failed`` run was left behind); now read before it."""
    missing = tmp_path / "anchors.jsonl"
    config = write(tmp_path / "loop.yaml", {**base, "calibration": {"anchor_set": str(missing)}})
    assert refused(config, tmp_path / "s.duckdb", capsys) == f"error: {missing}: file not found"
    write(missing, f"{DEEP}\n")
    assert refused(config, tmp_path / "s.duckdb", capsys).startswith(
        f"error: {missing}: line 1: invalid JSON: nested too deeply")


def test_byte_order_marks_simply_work(base, tmp_path, monkeypatch, capsys):
    train = write(tmp_path / "train.jsonl", b"\xef\xbb\xbf" + (SAMPLE / "train.jsonl").read_bytes())
    assert load_prompts(train) == load_prompts(SAMPLE / "train.jsonl")
    cfg = copy.deepcopy(base)
    cfg["data"]["train"] = str(train)
    config = write(tmp_path / "loop.yaml", b"\xef\xbb\xbf" + yaml.safe_dump(cfg).encode())
    assert load_config(config).name == "harbor-sql"
    FakePolicyOutput(["SELECT 1", "SELECT 2"], answer="SELECT 1").install(monkeypatch)
    assert main(["--store", str(tmp_path / "s.duckdb"), "run", str(config), "--no-progress"]) == 0
    assert "run harbor-sql: 4 train prompts" in capsys.readouterr().out
    with Store(tmp_path / "s.duckdb") as store:
        assert [r["name"] for r in store.runs.list()] == ["harbor-sql"]


@pytest.mark.parametrize("content, expected", [
    ("", "<file>: the config is empty"),
    (f"name: {DEEP}\n", "<yaml>: invalid YAML: nested too deeply"),
])
def test_real_process_streams_carry_one_line_and_no_traceback(tmp_path, content, expected):
    config = write(tmp_path / "loop.yaml", content)
    proc = subprocess.run([sys.executable, "-m", "rlaif.cli", "--store", str(tmp_path / "s.duckdb"), "run",
                           str(config)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and expected in proc.stderr
