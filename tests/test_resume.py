"""Crash recovery: a run SIGKILLed at each stage continues with `rlaif resume` and ends exactly where an
uninterrupted run ends (pairs hash, metrics), without repeating a finished judge call or iteration."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from store import Store
from tests.judge_server import JudgeServer, verdict_json
from tests.tiny_models import build_tiny_gpt2

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"
RLAIF = str(Path(sys.executable).parent / "rlaif")


def prefer_shorter(request):
    a, b = request.candidates()
    return verdict_json("a" if len(a) <= len(b) else "b")


@pytest.fixture(scope="module")
def server():
    with JudgeServer(prefer_shorter) as s:
        yield s


@pytest.fixture(scope="module")
def config(tmp_path_factory, server):
    root = tmp_path_factory.mktemp("resume")
    model = build_tiny_gpt2(root / "model")
    cfg = yaml.safe_load((SAMPLE / "loop.yaml").read_text())
    cfg["policy"].update(path=str(model), max_new_tokens=16)
    cfg.update(rubric=str(SAMPLE / "rubric.yaml"), calibration={})
    cfg["data"] = {"train": str(SAMPLE / "train.jsonl"), "eval": str(SAMPLE / "eval.jsonl"),
                   "max_train_prompts": 10, "max_eval_prompts": 6}
    cfg["verifier"]["warehouse"] = str(SAMPLE / "warehouse.sql")
    cfg["sampling"].update(candidates_per_prompt=3, batch_size=4)
    cfg["pairs"] = {"require_chosen_passes_hard": False, "max_length_ratio": None}
    cfg["training"].update(epochs=2, batch_size=2)
    cfg["loop"]["iterations"] = 2
    cfg["judge"] = {"name": "openai", "batch_size": 6,
                    "options": {"model": "judge-model", "base_url": server.openai_url, "concurrency": 2}}
    path = root / "loop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def env(fault=None):
    e = {**os.environ, "OPENAI_API_KEY": "sk-test-resume-0000000000", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    e.pop("RLAIF_FAULT_AT", None)
    if fault:
        e["RLAIF_FAULT_AT"] = fault
    return e


def rlaif(*args, fault=None, cwd=None):
    return subprocess.run([RLAIF, *args], capture_output=True, text=True, env=env(fault), cwd=cwd, timeout=300)


def final_state(store_path):
    with Store(store_path) as store:
        run = store.runs.list()[0]
        bodies = [m["body"] for m in store.manifests.for_run(run["run_id"])]
        candidates = {k: len(store.candidates.list(run["run_id"], iteration=k)) for k in (1, 2)}
        return run, {b["iteration"]: (b["dataset_hash"], b["metrics"], b["model_hash"]) for b in bodies}, candidates


@pytest.fixture(scope="module")
def reference(config, server, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    before = len(server.requests)
    out = rlaif("--store", str(root / "s.duckdb"), "run", str(config), "--no-progress", "--output-dir",
                str(root / "runs"))
    assert out.returncode == 0, out.stderr[-3000:]
    run, manifests, _ = final_state(root / "s.duckdb")
    assert run["status"] == "completed" and sorted(manifests) == [0, 1, 2]
    return manifests, len(server.requests) - before


@pytest.mark.parametrize("fault", ["sample:1:2", "verify:1:1", "judge:1:2", "train:1:2", "eval:1:1",
                                   "judge:2:1", "train:2:3"])
def test_killed_run_resumes_to_the_same_result(fault, config, server, reference, tmp_path):
    expected, reference_requests = reference
    store_path = tmp_path / "s.duckdb"
    before = len(server.requests)
    killed = rlaif("--store", str(store_path), "run", str(config), "--no-progress", "--output-dir",
                   str(tmp_path / "runs"), fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    run, partial, _ = final_state(store_path)
    assert run["status"] == "interrupted"  # what a crash leaves behind, once a reader sees its process gone
    stage, iteration = fault.split(":")[:2]
    assert max(partial) == int(iteration) - 1  # finished iterations have manifests, the crashed one has none

    resumed = rlaif("--store", str(store_path), "resume", run["run_id"], "--no-progress")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    run, manifests, candidates = final_state(store_path)
    assert run["status"] == "completed"
    assert manifests == expected  # pairs hash, metrics and model hash of every iteration
    assert candidates == {1: 30, 2: 30}  # the crashed iteration's partial rows were replaced, not duplicated
    # every distinct comparison was asked once: the crashed run's verdicts came back from the judge cache
    assert len(server.requests) - before == reference_requests


def test_resume_refuses_a_finished_run(config, tmp_path):
    store_path = tmp_path / "s.duckdb"
    assert rlaif("--store", str(store_path), "run", str(config), "--no-progress", "--iterations", "1",
                 "--output-dir", str(tmp_path / "runs")).returncode == 0
    with Store(store_path) as store:
        run_id = store.runs.list()[0]["run_id"]
    out = rlaif("--store", str(store_path), "resume", run_id)
    assert out.returncode == 2 and "nothing to resume" in out.stderr
