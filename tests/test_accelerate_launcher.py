"""``training.launcher: accelerate``: DPO (and train-rm) as an ``accelerate launch`` subprocess with two CPU ranks
(gloo), on a tiny in-test GPT-2: the LoRA weights change, the merged checkpoint loads and the loop continues from it,
cancel ends every process of the launch, a crash is one line naming the log, bad settings name their field."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from transformers import AutoModelForCausalLM

from rlaif.cli import main as cli
from rlaif.config import TrainingConfig, config_from_dict
from rlaif.core.fields import ConfigError
from rlaif.datasets import load_prompts
from rlaif.judges.reward_model import load_reward_model
from rlaif.loop import stages
from rlaif.pipeline import RLAIFPipeline, RunCancelled
from rlaif.policy import greedy, model_hash
from rlaif.reward_model import RewardConfig, train_reward_model_launched
from rlaif.training import train_dpo, train_dpo_launched
from rlaif.training_launch import LaunchOptions, TrainingLaunchError, launch_command, prepare_job
from store import Store
from tests.tiny_models import build_tiny_gpt2
from tests.workbench_fixtures import seed_pair_run

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "harbor_sql"
PAIRS = [{"prompt": f"Question: q{i}\nSQL:", "chosen": " SELECT 1;", "rejected": " SELECT 2 FROM raw;"}
         for i in range(6)]
TWO_RANKS = dict(launcher="accelerate", num_processes=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("model") / "m")


def loop_config(model, tmp_path, **training):
    data = {"name": "acc", "output_dir": str(tmp_path / "runs"), "rubric": "rubric.yaml",
            "policy": {"path": str(model), "prompt_template": "Question: {prompt}\nSQL: ", "max_new_tokens": 12,
                       "device": "cpu"},
            "data": {"train": "train.jsonl", "eval": "eval.jsonl", "max_train_prompts": 6, "max_eval_prompts": 4},
            "sampling": {"candidates_per_prompt": 2, "batch_size": 8},
            "verifier": {"kind": "sql", "warehouse": "warehouse.sql", "allowed_relations": ["v_revenue_*"]},
            "judge": {"name": "stub"}, "pairs": {"require_chosen_passes_hard": False, "max_length_ratio": None},
            "training": {"epochs": 1, "batch_size": 2, "learning_rate": 5e-3, **TWO_RANKS, **training},
            "loop": {"iterations": 2}}
    return config_from_dict(data, base_dir=SAMPLE)


def launched_pids() -> set[int]:
    """This test process's descendants that belong to a launch (the launcher, torchrun, the ranks)."""
    pids = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if any("accelerate" in part or "training_worker" in part for part in p.cmdline()):
                pids.add(p.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def left_behind(folder: Path) -> list[int]:
    """Live processes (anywhere on the machine) whose command line names a job under ``folder``: a launcher,
    torchrun or a rank that outlived its launch, even one re-parented to init."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(folder) in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(p.info["pid"])
    return found


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ---------------------------------------------------------------------------------------------------------------------
# the launcher on its own


def test_command_lines_follow_accelerates_launcher(tmp_path):
    job = tmp_path / "job.json"
    two = launch_command(LaunchOptions(2, "no"), job, 12345)
    assert two[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in two  # torchrun: a process a rank
    assert two[two.index("--num_processes") + 1] == "2" and two[two.index("--main_process_port") + 1] == "12345"
    assert two[-3:] == ["-m", "rlaif.training_worker", str(job)]
    one = launch_command(LaunchOptions(), job, 1)  # no count, no file: one process, accelerate's simple launcher
    assert one[one.index("--num_processes") + 1] == "1" and "--multi_gpu" not in one
    cfg_file = tmp_path / "ddp.yaml"
    with_file = launch_command(LaunchOptions(2, "bf16", cfg_file), job, 1)
    assert "--multi_gpu" not in with_file and with_file[with_file.index("--config_file") + 1] == str(cfg_file)
    assert with_file[with_file.index("--mixed_precision") + 1] == "bf16"
    from_file = launch_command(LaunchOptions(None, "no", cfg_file), job, 1)
    assert "--mixed_precision" not in from_file and "--num_processes" not in from_file  # the file decides


def test_two_cpu_ranks_train_one_dpo_iteration(tiny, tmp_path):
    out = tmp_path / "iteration-01"
    # what a killed earlier attempt leaves behind: a half-written model and a stale result
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.safetensors").write_bytes(b"half written")
    (out / "launch").mkdir()
    (out / "launch" / "result.json").write_text(json.dumps({"model_path": "stale", "steps": 99}))
    cfg = TrainingConfig(loss_type=["sigmoid", "sft"], epochs=2, batch_size=2, learning_rate=5e-3, **TWO_RANKS)
    seen = []
    result = train_dpo_launched(tiny, PAIRS, cfg, out, seed=0, device="cpu", on_step=lambda d, t: seen.append((d, t)))

    # 6 pairs, 2 per rank and step, 2 ranks: 2 steps an epoch, 2 epochs; progress came through the tail
    expected = math.ceil(len(PAIRS) / (2 * 2)) * 2
    assert result.steps == expected and seen == [(k, expected) for k in range(1, expected + 1)]
    assert not result.cancelled and math.isfinite(result.train_loss) and result.log_history
    assert result.lora_params_changed
    ranks = [json.loads(f.read_text()) for f in sorted((out / "launch" / "ranks").glob("rank-*.json"))]
    assert [(r["rank"], r["world_size"], r["backend"], r["steps"]) for r in ranks] == \
        [(0, 2, "gloo", expected), (1, 2, "gloo", expected)]
    assert ranks[0]["pid"] != ranks[1]["pid"]

    assert Path(result.model_path) == out / "model" and result.model_hash == model_hash(out / "model")
    merged = AutoModelForCausalLM.from_pretrained(result.model_path)
    base = dict(AutoModelForCausalLM.from_pretrained(tiny).named_parameters())
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert any(not torch.equal(p, base[n]) for n, p in merged.named_parameters())
    stored = json.loads((out / "launch" / "result.json").read_text())
    assert stored["steps"] == expected and stored["world_size"] == 2 and stored["model_hash"] == result.model_hash
    # several ranks: the adapter was saved gathered and the checkpoint is exactly its merge into the base model
    from peft import PeftModel

    assert (out / "adapter" / "adapter_config.json").is_file()
    again = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), str(out / "adapter"))
    again = dict(again.merge_and_unload().named_parameters())
    assert all(torch.equal(p, again[n]) for n, p in merged.named_parameters())


@pytest.mark.slow
def test_one_launched_process_trains_exactly_what_in_process_does(tiny, tmp_path):
    """The launcher only moves the work: one rank, same seed and rows, gives the in-process model bit for bit."""
    settings = dict(loss_type=["sigmoid", "sft"], epochs=1, batch_size=2, learning_rate=5e-3)
    here = train_dpo(tiny, PAIRS, TrainingConfig(**settings), tmp_path / "here", seed=3, device="cpu")
    there = train_dpo_launched(tiny, PAIRS, TrainingConfig(**settings, launcher="accelerate"), tmp_path / "there",
                               seed=3, device="cpu")
    assert there.model_hash == here.model_hash and there.steps == here.steps == 3
    assert there.train_loss == pytest.approx(here.train_loss)
    assert [e.get("loss") for e in there.log_history] == pytest.approx([e.get("loss") for e in here.log_history])


def test_a_crashing_rank_is_one_line_naming_the_log(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    cfg = TrainingConfig(epochs=1, batch_size=2, launcher="accelerate", num_processes=1)
    with pytest.raises(TrainingLaunchError) as err:
        train_dpo_launched(broken, PAIRS, cfg, tmp_path / "out", device="cpu")
    message = str(err.value)
    assert "\n" not in message and "exited with code" in message and "rank 0:" in message
    assert str(tmp_path / "out" / "launch" / "worker.log") in message
    assert "Traceback" in err.value.log_tail and err.value.log_path.is_file()  # the log stays for a closer look
    assert left_behind(tmp_path) == []


def test_ranks_stop_when_the_launching_process_is_gone(tiny, tmp_path):
    """A loop process killed mid-training (resume redoes the iteration) must not leave ranks writing a model into the
    folder the redo will use: the worker checks its launcher's pid each step and exits without saving."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cfg = TrainingConfig(epochs=1, batch_size=2, **TWO_RANKS)
    job = prepare_job("dpo", tiny, PAIRS, dataclasses.asdict(cfg), tmp_path / "out", seed=0, device="cpu")
    spec = json.loads(job.read_text())
    job.write_text(json.dumps({**spec, "parent_pid": dead.pid}))
    proc = subprocess.run([sys.executable, "-m", "rlaif.training_worker", str(job)], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 3 and f"the launching process {dead.pid} is gone" in proc.stderr
    assert not (job.parent / "result.json").exists() and not (tmp_path / "out" / "model").exists()


def test_settings_are_checked_and_named():
    cases = [({"launcher": "mpi"}, "training.launcher"), ({**TWO_RANKS, "num_processes": 0}, "training.num_processes"),
             ({**TWO_RANKS, "mixed_precision": "fp8"}, "training.mixed_precision"),
             ({"num_processes": 2}, "training.num_processes"),  # in-process would silently ignore it
             ({"accelerate_config": "ddp.yaml"}, "training.accelerate_config")]
    for training, field_path in cases:
        with pytest.raises(ConfigError) as err:
            config_from_dict({"training": training})
        assert err.value.field_path == field_path
    assert config_from_dict({}).training.launcher == "inprocess"  # the CPU sample's default


def test_a_missing_or_bad_accelerate_config_is_named_before_launch(tiny, tmp_path):
    cfg = TrainingConfig(epochs=1, **TWO_RANKS, accelerate_config="nowhere.yaml")
    with pytest.raises(ConfigError, match=r"training\.accelerate_config: file not found: .*nowhere\.yaml"):
        train_dpo_launched(tiny, PAIRS, cfg, tmp_path / "out", accelerate_config=tmp_path / "nowhere.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"training\.accelerate_config: .*bad\.yaml: an accelerate config is a"):
        train_dpo_launched(tiny, PAIRS, cfg, tmp_path / "out", accelerate_config=bad)
    for sharded in ("distributed_type: FSDP\n", "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 3\n"):
        bad.write_text(sharded)
        # sharding is accepted: with several ranks the trainer saves gathered weights before rank 0 merges
        LaunchOptions(2, "no", bad).check()
    assert not (tmp_path / "out").exists()  # nothing was started or written
    # through the loop's train stage the path is relative to the config file, as every path in it
    loop_cfg = loop_config(tiny, tmp_path, accelerate_config="nowhere.yaml")
    with pytest.raises(ConfigError, match=f"training.accelerate_config: file not found: {SAMPLE / 'nowhere.yaml'}"):
        stages.train(str(tiny), PAIRS, loop_cfg, tmp_path / "out", 1)


# ---------------------------------------------------------------------------------------------------------------------
# through the loop


@pytest.mark.slow
def test_the_loop_trains_through_accelerate_and_continues_from_its_checkpoint(tiny, tmp_path):
    cfg = loop_config(tiny, tmp_path)
    with Store(":memory:") as store:
        pipe = RLAIFPipeline(cfg, store=store)
        results = list(pipe.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
        assert store.runs.get(pipe.run_id)["status"] == "completed" and [r.iteration for r in results] == [0, 1, 2]
        rows = {r["iteration"]: r for r in store.iterations.list(pipe.run_id)}
        for k in (1, 2):
            folder = Path(cfg.output_dir) / pipe.run_id / f"iteration-{k:02d}"
            launched = json.loads((folder / "launch" / "result.json").read_text())
            assert launched["world_size"] == 2 and launched["lora_params_changed"]
            assert rows[k]["model_path"] == launched["model_path"] == str((folder / "model").resolve())
            assert results[k].manifest["model_hash"] == launched["model_hash"] == model_hash(folder / "model")
            assert results[k].manifest["config"]["training"]["launcher"] == "accelerate"
            assert results[k].manifest["config"]["training"]["num_processes"] == 2
        # iteration 2 started from iteration 1's launched checkpoint
        assert results[2].manifest["parent_model_hash"] == results[1].manifest["model_hash"]
        assert results[1].manifest["model_hash"] != results[0].manifest["model_hash"]
        # iteration 1 was evaluated with that checkpoint: its greedy answers are the checkpoint's
        policy = pipe.project.load_policy(rows[1]["model_path"])
        evals = load_prompts(cfg.resolve(cfg.data.eval))[: cfg.data.max_eval_prompts]
        answers = greedy(policy, [p.prompt for p in evals], batch_size=cfg.eval.batch_size,
                         max_new_tokens=cfg.policy.max_new_tokens)
        assert {p.id: text for p, (text, _) in zip(evals, answers)} == \
            {r["prompt_id"]: r["output"] for r in results[1].eval_result.rows}


@pytest.mark.slow
def test_cancel_during_the_launch_ends_every_process_and_the_run(tiny, tmp_path):
    cfg = loop_config(tiny, tmp_path, epochs=200, batch_size=1)  # far longer than the test waits
    cancel = threading.Event()
    seen: set[int] = set()
    steps = []

    def on_progress(event):
        if event.stage == "train" and event.step >= 1:
            steps.append(event.step)
            seen.update(launched_pids())
            cancel.set()

    with Store(":memory:") as store:
        pipe = RLAIFPipeline(cfg, store=store, progress=on_progress, cancel=cancel)
        with pytest.raises(RunCancelled):
            list(pipe.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
        assert store.runs.get(pipe.run_id)["status"] == "cancelled"
    assert steps and len(seen) >= 3  # the launcher, torchrun's agent and its two ranks were running
    assert not [p for p in seen if running(p)] and left_behind(tmp_path) == []
    folder = Path(cfg.output_dir) / pipe.run_id / "iteration-01"
    assert not (folder / "launch" / "result.json").exists() and not (folder / "model").exists()


# ---------------------------------------------------------------------------------------------------------------------
# train-rm


@pytest.mark.slow
def test_train_rm_runs_through_accelerate_with_a_ddp_config_file(tiny, tmp_path, capsys):
    db = str(tmp_path / "s.duckdb")
    with Store(db) as store:
        run_id = seed_pair_run(store, tiny, 12)
    out = tmp_path / "rm"
    ddp = tmp_path / "ddp.yaml"  # TRL's examples/accelerate_configs/multi_gpu.yaml, with two processes
    ddp.write_text("compute_environment: LOCAL_MACHINE\ndebug: false\ndistributed_type: MULTI_GPU\n"
                   "downcast_bf16: 'no'\ngpu_ids: all\nmachine_rank: 0\nmain_training_function: main\n"
                   "mixed_precision: 'no'\nnum_machines: 1\nnum_processes: 2\nrdzv_backend: static\n"
                   "same_network: true\ntpu_env: []\ntpu_use_cluster: false\ntpu_use_sudo: false\nuse_cpu: false\n")
    assert cli(["train-rm", "--store", db, "--run", run_id, "--out", str(out), "--epochs", "2", "--lr", "3e-3",
                "--device", "cpu", "--no-progress", "--launcher", "accelerate", "--accelerate-config", str(ddp)]) == 0
    assert "accelerate launch, processes as in ddp.yaml" in capsys.readouterr().out
    info = json.loads((out / "reward_model.json").read_text())
    assert info["params_changed"] and info["n_train"] + info["n_heldout"] == 12 and info["steps"] > 0
    assert info["model_hash"] == model_hash(out / "model")
    ranks = sorted((out / "launch" / "ranks").glob("rank-*.json"))  # the file's two processes, over gloo on CPU
    assert [(json.loads(f.read_text())["world_size"], json.loads(f.read_text())["backend"]) for f in ranks] == \
        [(2, "gloo"), (2, "gloo")]
    model, _ = load_reward_model(out / "model", device="cpu")
    assert model.config.num_labels == 1
    # two ranks: the whole model was saved gathered by the trainer and reloaded on rank 0, which then measured
    assert not (out / "adapter").exists() and info["heldout_accuracy"] is not None
    # with LoRA: the adapter (with the score head it trains) saved gathered, merged on rank 0 into a fresh base
    lora_out = tmp_path / "rm-lora"
    assert cli(["train-rm", "--store", db, "--run", run_id, "--out", str(lora_out), "--epochs", "1", "--lr", "3e-3",
                "--device", "cpu", "--no-progress", "--launcher", "accelerate", "--accelerate-config", str(ddp),
                "--lora"]) == 0
    lora_info = json.loads((lora_out / "reward_model.json").read_text())
    assert (lora_out / "adapter" / "adapter_config.json").is_file() and lora_info["heldout_accuracy"] is not None
    merged, _ = load_reward_model(lora_out / "model", device="cpu")
    assert not any("lora" in n for n, _ in merged.named_parameters())

    # a launcher setting without --launcher accelerate would do nothing: refused in one line
    assert cli(["train-rm", "--store", db, "--run", run_id, "--out", str(tmp_path / "x"), "--num-processes", "2"]) == 2
    assert "--num-processes: only used with --launcher accelerate" in capsys.readouterr().err


def test_train_rm_launched_cancel_returns_cancelled(tiny, tmp_path):
    cancel = threading.Event()
    cancel.set()  # at launch: the subprocess is stopped at the first poll
    pairs = [dict(p, chosen=" OK;", rejected=" NO;") for p in PAIRS]
    result = train_reward_model_launched(tiny, pairs, RewardConfig(epochs=1), tmp_path / "rm",
                                         LaunchOptions(2, "no"), device="cpu", cancel=cancel)
    assert result.cancelled and not (tmp_path / "rm" / "reward_model.json").exists()
    assert left_behind(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------------
# crash and resume


@pytest.mark.slow
def test_a_loop_killed_during_launched_training_resumes_and_completes(tiny, tmp_path):
    """``rlaif run`` SIGKILLed at the first training step of iteration 1 (``RLAIF_FAULT_AT``): its ranks stop on
    their own, and ``rlaif resume`` redoes the iteration through a fresh launch and completes the run."""
    import yaml

    cfg = loop_config(tiny, tmp_path, epochs=3)
    path = tmp_path / "acc.yaml"
    record = cfg.to_dict()
    for section, name in (("data", "train"), ("data", "eval"), ("verifier", "warehouse")):
        record[section][name] = str(SAMPLE / record[section][name])
    record["rubric"] = str(SAMPLE / "rubric.yaml")
    path.write_text(yaml.safe_dump(record))
    db = str(tmp_path / "s.duckdb")
    rlaif = [str(Path(sys.executable).parent / "rlaif"), "--store", db]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RLAIF_FAULT_AT": "train:1:1"}
    crashed = subprocess.run([*rlaif, "run", str(path), "--no-progress"], capture_output=True, text=True, env=env,
                             timeout=600)
    assert crashed.returncode == -9, crashed.stderr[-2000:]  # killed mid-training, as a crash would
    deadline = time.monotonic() + 120
    while left_behind(tmp_path) and time.monotonic() < deadline:  # orphaned ranks notice and exit
        time.sleep(0.5)
    assert left_behind(tmp_path) == []
    with Store(db) as store:
        (run,) = store.runs.list()
    env.pop("RLAIF_FAULT_AT")
    resumed = subprocess.run([*rlaif, "resume", run["run_id"], "--no-progress"], capture_output=True, text=True,
                             env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with Store(db) as store:
        assert store.runs.get(run["run_id"])["status"] == "completed"
        manifests = {m["iteration"]: m["body"] for m in store.manifests.for_run(run["run_id"])}
    assert sorted(manifests) == [0, 1, 2]
    folder = Path(cfg.output_dir) / run["run_id"] / "iteration-01"
    result = json.loads((folder / "launch" / "result.json").read_text())
    assert result["world_size"] == 2 and manifests[1]["model_hash"] == result["model_hash"] == model_hash(folder / "model")
    assert manifests[2]["parent_model_hash"] == manifests[1]["model_hash"]
    assert left_behind(tmp_path) == []


def test_a_training_crash_reaches_a_cli_user_as_one_line(tmp_path, capsys):
    """Every ``rlaif`` command (``run``, ``resume``, ``train-rm``) goes through the one CLI handler: a crashed
    training subprocess is its one-line error naming the log and exit code 1, not the loop's traceback."""
    from rlaif.cli.common import run_command

    log = tmp_path / "launch" / "worker.log"

    def crashing(args) -> int:
        raise TrainingLaunchError(f"training subprocess (accelerate launch, 2 process(es)) exited with code 1: "
                                  f"rank 0: RuntimeError: boom (full log: {log})", log, "Traceback ...")

    assert run_command(crashing, None) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training subprocess") and str(log) in err and err.count("\n") == 1
    assert "Traceback" not in err
