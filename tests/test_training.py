import torch
from transformers import AutoModelForCausalLM

from rlaif.config import TrainingConfig
from rlaif.policy import model_hash, select_device
from rlaif.training import lora_config, to_dpo_config, train_dpo
from tests.tiny_models import build_tiny_gpt2

PAIRS = [{"prompt": f"Question: q{i}\nSQL:", "chosen": " SELECT 1;", "rejected": " SELECT 2 FROM raw;"}
         for i in range(8)]


def test_dpo_config_is_set_per_device(tmp_path):
    cpu = to_dpo_config(TrainingConfig(loss_type=["sigmoid", "sft"]), tmp_path, select_device("cpu"), seed=3)
    assert cpu.bf16 is False and cpu.gradient_checkpointing is False and cpu.use_cpu is True
    assert cpu.loss_type == ["sigmoid", "sft"] and cpu.learning_rate == 5e-4 and cpu.seed == 3


def test_gpt2_lora_uses_fan_in_fan_out(tmp_path):
    model = AutoModelForCausalLM.from_pretrained(build_tiny_gpt2(tmp_path / "m"))
    assert lora_config(TrainingConfig(), model).fan_in_fan_out is True


def test_dpo_sft_step_changes_lora_and_merged_model(tmp_path):
    base = build_tiny_gpt2(tmp_path / "base")
    cfg = TrainingConfig(loss_type=["sigmoid", "sft"], epochs=1, batch_size=4, learning_rate=5e-3)
    steps = []
    result = train_dpo(base, PAIRS, cfg, tmp_path / "out", seed=0, device="cpu", on_step=lambda s, t: steps.append(s))
    assert result.steps == 2 and steps == [1, 2]
    assert result.lora_params_changed
    assert result.model_hash == model_hash(result.model_path) != model_hash(base)
    merged = AutoModelForCausalLM.from_pretrained(result.model_path)
    original = AutoModelForCausalLM.from_pretrained(base)
    assert not any(n.startswith("base_model") or "lora" in n for n, _ in merged.named_parameters())
    diffs = [not torch.equal(p, dict(original.named_parameters())[n]) for n, p in merged.named_parameters()]
    assert any(diffs)
    # DPO moved probability mass towards chosen and away from rejected
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(base)

    def margin(model):
        def logp(completion):
            ids = tok(PAIRS[0]["prompt"] + completion, return_tensors="pt")["input_ids"]
            n_prompt = len(tok(PAIRS[0]["prompt"])["input_ids"])
            with torch.no_grad():
                logits = model(ids).logits.log_softmax(-1)
            return sum(logits[0, k - 1, ids[0, k]].item() for k in range(n_prompt, ids.shape[1]))
        return logp(PAIRS[0]["chosen"]) - logp(PAIRS[0]["rejected"])

    assert margin(merged) > margin(original)


def test_cancel_stops_training_early(tmp_path):
    import threading

    base = build_tiny_gpt2(tmp_path / "base")
    cancel = threading.Event()
    cancel.set()
    result = train_dpo(base, PAIRS * 4, TrainingConfig(epochs=1, batch_size=2), tmp_path / "out", device="cpu",
                       cancel=cancel)
    assert result.cancelled and result.steps == 1
