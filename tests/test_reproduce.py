"""`reproduce` re-runs an iteration from its manifest: a fresh iteration matches field by field; a tampered
manifest, dataset or checkpoint is refused with a message naming what differs."""

import json
import shutil
from pathlib import Path

import pytest

from rlaif.cli import main
from rlaif.datasets import load_prompts
from rlaif.loop.reproduce import reproduce_manifest
from rlaif.loop.state import resume_state
from rlaif.pipeline import RLAIFPipeline
from store import Store
from tests.test_pipeline import SAMPLE, make_config, tiny  # noqa: F401  (fixture)


@pytest.fixture
def finished(tiny, tmp_path):
    """A finished one-iteration run on test-local copies of the policy and the prompts (tests corrupt them)."""
    train = tmp_path / "train.jsonl"
    shutil.copy(SAMPLE / "train.jsonl", train)
    policy = shutil.copytree(tiny, tmp_path / "policy")
    cfg = make_config(policy, tmp_path, loop={"iterations": 1}, data={"train": str(train)})
    store = Store(tmp_path / "s.duckdb")
    pipe = RLAIFPipeline(cfg, store=store)
    list(pipe.run(load_prompts(train), load_prompts(cfg.resolve(cfg.data.eval))))
    manifests = sorted((tmp_path / "runs" / pipe.run_id / "manifests").glob("*.json"))
    yield store, manifests, train, tmp_path
    store.close()


def test_fresh_iteration_reproduces_exactly(finished):
    store, manifests, _, tmp_path = finished
    for path in manifests:  # the baseline and the trained iteration
        report = reproduce_manifest(path, store, output_dir=tmp_path / "repro")
        assert report.matches, report.render()
        fields = {c.field for c in report.checks}
        assert {"dataset_hash", "model_hash", "metrics.all.execution_accuracy", "pairs.kept"} <= fields


def test_tampered_manifest_names_the_field(finished):
    store, manifests, _, tmp_path = finished
    body = json.loads(manifests[1].read_text())
    body["metrics"]["all"]["exact_match"] = 0.99
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(body))
    report = reproduce_manifest(forged, store)
    assert not report.matches and report.refused
    assert any("'metrics.all.exact_match'" in problem for problem in report.refused), report.refused


def test_changed_dataset_is_refused_naming_it(finished, capsys):
    store, manifests, train, _ = finished
    lines = train.read_text().splitlines()
    row = json.loads(lines[0])
    row["reference"] = row["reference"].replace("2024", "2023")
    train.write_text("\n".join([json.dumps(row)] + lines[1:]) + "\n")
    report = reproduce_manifest(manifests[1], store)
    assert report.refused and any(problem.startswith(f"train dataset: file {train}") for problem in report.refused)
    assert "REFUSED" in report.render()


def test_changed_parent_checkpoint_is_refused(finished):
    store, manifests, _, tmp_path = finished
    weights = tmp_path / "policy" / "model.safetensors"  # the run's own copy: no other test sees the damage
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    report = reproduce_manifest(manifests[0], store)
    assert any(problem.startswith("parent model:") for problem in report.refused), report.refused


def test_cli_exit_code_says_match(finished, capsys):
    store, manifests, _, tmp_path = finished
    store.close()
    assert main(["--store", str(tmp_path / "s.duckdb"), "reproduce", str(manifests[0])]) == 0
    assert "MATCH" in capsys.readouterr().out


def test_resume_refuses_a_checkpoint_changed_since_its_manifest(finished):
    """Resuming after iteration 1 trains on from its checkpoint: one edited since the manifest recorded its hash is
    a clear refusal (a ValueError, one line on the CLI), not a RuntimeError traceback."""
    store, manifests, _, _ = finished
    body = json.loads(manifests[1].read_text())
    weights = Path(body["model_path"]) / "model.safetensors"  # iteration 1's merged checkpoint, in this test's tmp
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    with pytest.raises(ValueError, match="no longer matches its manifest's model hash .* start a new run"):
        resume_state(store, body["run_id"], 2, "unused", "unused")


def test_reproduce_of_a_folder_or_a_non_manifest_is_one_line(tmp_path, capsys):
    db = str(tmp_path / "s.duckdb")
    assert main(["--store", db, "reproduce", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: not a readable manifest file") and len(err.splitlines()) == 1
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert main(["--store", db, "reproduce", str(listed)]) == 2
    assert capsys.readouterr().err == f"error: {listed}: a manifest is a JSON object, got list\n"


def test_a_manifest_from_before_new_config_fields_still_checks_its_config(finished):
    """A manifest written before a release added config fields records a config dict without them and that dict's
    hash; re-parsing it fills in the new defaults, which must not read as a changed config."""
    from rlaif.config import config_dict_hash
    from rlaif.loop.reproduce import check_inputs

    store, manifests, _, _ = finished
    body = json.loads(manifests[1].read_text())
    older = json.loads(json.dumps(body["config"]))
    for section, name in (("sampling", "backend"), ("sampling", "server"), ("training", "launcher"),
                          ("policy", "prompt_format")):
        assert name in older[section]  # fields this release writes ...
        del older[section][name]       # ... that an older release did not know
    body["config"], body["config_hash"] = older, config_dict_hash(older)
    problems, cfg, _ = check_inputs(body, store)
    assert cfg is not None and cfg.config_hash() != body["config_hash"]  # re-parsed, the new defaults are in
    assert not [p for p in problems if p.startswith("config")], problems
    body["config"]["loop"]["iterations"] = 7  # a config really changed since is still caught
    problems, _, _ = check_inputs(body, store)
    assert any(p.startswith("config_hash") for p in problems), problems
