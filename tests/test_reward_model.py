"""A reward model (TRL RewardTrainer, one-output head on a tiny GPT-2) learns a marker and ranks held-out pairs."""

import random

import pytest
import torch

from rlaif.policy import select_device
from rlaif.reward_model import (
    RewardConfig,
    load_reward_model,
    rank_accuracy,
    score_texts,
    split_holdout,
    to_trl_reward_config,
    train_reward_model,
)
from tests.tiny_models import build_tiny_gpt2

WORDS = ["revenue", "orders", "region", "West", "East", "total", "year", "units", "SELECT", "FROM"]


def marker_pairs(n: int, seed: int = 0, good: str = "OK", bad: str = "NO") -> list[dict]:
    """Chosen answers end in the good marker, rejected in the bad one: the only learnable difference."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        pairs.append({"prompt_id": f"p{i}", "prompt": f"Question: q{i}\nSQL:", "chosen": f" {body} {good};",
                      "rejected": f" {body} {bad};"})
    return pairs


def test_holdout_split_is_deterministic_and_by_prompt():
    pairs = marker_pairs(50) + [dict(p, chosen=p["chosen"] + " x") for p in marker_pairs(50)]
    train, held = split_holdout(pairs, 0.2, seed=0)
    assert (train, held) == split_holdout(pairs, 0.2, seed=0)
    assert 10 <= len(held) <= 35 and len(train) + len(held) == 100
    assert not {p["prompt_id"] for p in train} & {p["prompt_id"] for p in held}
    assert split_holdout(pairs, 0.0)[1] == []
    with pytest.raises(ValueError):
        split_holdout(pairs, 1.0)


def test_config_validates_and_maps_to_trl(tmp_path):
    with pytest.raises(ValueError, match="reward.learning_rate"):
        RewardConfig(learning_rate=0)
    trl_cfg = to_trl_reward_config(RewardConfig(max_length=512), tmp_path, select_device("cpu"), seed=4,
                                   context_length=96)
    assert trl_cfg.max_length == 96 and trl_cfg.use_cpu and not trl_cfg.bf16 and trl_cfg.seed == 4
    assert trl_cfg.gradient_checkpointing is False


@pytest.mark.parametrize("good,bad", [("OK", "NO"), ("NO", "OK")])
def test_reward_model_learns_marker_and_ranks_heldout_pairs(tmp_path, good, bad):
    # An untrained head already ranks every pair the same way (all right or all wrong: only the marker differs), so
    # one direction could pass by luck; learning both directions cannot.
    base = build_tiny_gpt2(tmp_path / "base")
    train, held = split_holdout(marker_pairs(60, good=good, bad=bad), 0.25, seed=0)
    before_model, tok = load_reward_model(base, device="cpu", base=True)
    cfg = RewardConfig(learning_rate=3e-3, epochs=3, batch_size=8, max_length=64)
    steps = []
    result = train_reward_model(base, train, cfg, tmp_path / "rm", seed=0, heldout=held, device="cpu",
                                on_step=lambda s, t: steps.append(s))
    assert result.params_changed and result.steps == len(steps) > 0
    assert result.n_train == len(train) and result.n_heldout == len(held)
    assert result.heldout_accuracy is not None and result.heldout_accuracy >= 0.8, result.heldout_accuracy
    model, tok = load_reward_model(result.model_path, device="cpu")
    assert rank_accuracy(model, tok, held) == pytest.approx(result.heldout_accuracy)
    trained = dict(model.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in before_model.named_parameters() if n in trained)
    # a scored text is prompt + completion + EOS, the EOS not doubled
    a, b = score_texts(model, tok, ["Question: q\nSQL:"] * 2, [" total OK;", " total OK;" + tok.eos_token])
    assert a == pytest.approx(b)
    assert (tmp_path / "rm" / "reward_model.json").is_file()


def test_lora_reward_model_trains_adapters_and_head(tmp_path):
    base = build_tiny_gpt2(tmp_path / "base")
    result = train_reward_model(base, marker_pairs(16), RewardConfig(lora=True, lora_r=4, learning_rate=5e-3,
                                                                     epochs=1, batch_size=8), tmp_path / "rm",
                                device="cpu")
    assert result.params_changed and result.steps == 2 and result.heldout_accuracy is None
    model, _ = load_reward_model(result.model_path, device="cpu")
    assert not any("lora" in n for n, _ in model.named_parameters())
