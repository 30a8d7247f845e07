"""A scalar reward model trained with TRL's ``RewardTrainer`` on stored (or approved) preference pairs.

Why: a pairwise judge costs N(N-1)/2 calls to rank N candidates; a reward model scores each candidate once, so
best-of-N reranking and quick rubric checks get cheap once enough pairs are labelled. Its ranking accuracy on held-out
pairs (score(chosen) > score(rejected)) says whether it learned the judge's preferences or just noise.

The model is the policy's base with a one-output sequence-classification head (``num_labels=1``), trained on the
Bradley-Terry loss -log sigmoid(r_chosen - r_rejected). A text is scored exactly as TRL trained it: prompt +
completion + EOS, reward read at the last non-padding token. ``to_trl_reward_config`` is the only place that knows
TRL's argument names for it. With ``lora`` the adapters and the fresh score head train and are merged afterwards.

    result = train_reward_model("sample_data/harbor_sql/policy", pairs, RewardConfig(), "runs/rm", seed=0,
                                heldout=heldout)
    result.heldout_accuracy
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from rlaif.core.fields import check, help_field
from rlaif.policy import Device, context_length, load_tokenizer, model_hash, quiet_library_progress, select_device
from rlaif.training import step_callbacks, trainer_args

INFO_FILE = "reward_model.json"


@dataclass
class RewardConfig:
    learning_rate: float = help_field(
        "AdamW learning rate. Full fine-tuning of a small model wants ~1e-4; LoRA more.", 1e-4)
    epochs: float = help_field("Passes over the training pairs.", 3.0)
    batch_size: int = help_field("Pairs per step (each pair is two sequences: chosen and rejected).", 8)
    gradient_accumulation_steps: int = help_field("Steps accumulated before an update.", 1)
    max_length: int = help_field("Longest prompt+completion in tokens; TRL drops (not truncates) longer pairs.", 256)
    center_rewards_coefficient: float | None = help_field(
        "Pull rewards towards mean zero (0.01 is the paper's value); None disables it.", None)
    lora: bool = help_field("Train LoRA adapters plus the score head instead of every weight (large bases).", False)
    lora_r: int = help_field("LoRA rank (with lora).", 16)
    lora_alpha: int = help_field("LoRA scaling numerator (with lora).", 32)
    target_modules: list[str] | str = help_field("Modules that get LoRA adapters ('all-linear' or names).",
                                                 "all-linear")

    def __post_init__(self):
        check(self.learning_rate > 0, "reward.learning_rate", f"must be > 0, got {self.learning_rate}")
        check(self.epochs > 0, "reward.epochs", f"must be > 0, got {self.epochs}")
        check(self.batch_size > 0, "reward.batch_size", f"must be > 0, got {self.batch_size}")
        check(self.gradient_accumulation_steps > 0, "reward.gradient_accumulation_steps", "must be > 0")
        check(self.max_length > 8, "reward.max_length", f"must be > 8, got {self.max_length}")
        check(self.center_rewards_coefficient is None or self.center_rewards_coefficient >= 0,
              "reward.center_rewards_coefficient", "must be >= 0 when set")
        check(self.lora_r > 0, "reward.lora_r", f"must be > 0, got {self.lora_r}")


@dataclass
class RewardModelResult:
    model_path: str
    model_hash: str
    steps: int
    train_loss: float | None
    params_changed: bool
    n_train: int  # pairs trained on (after TRL's max_length filter)
    n_heldout: int
    heldout_accuracy: float | None  # None without held-out pairs
    log_history: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------------
# data


def split_holdout(pairs: Sequence[dict[str, Any]], fraction: float = 0.2, seed: int = 0
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, heldout): a deterministic split by a hash of each pair's prompt (``prompt_id`` when present).

    Splitting by prompt keeps every pair of one prompt on the same side, so held-out accuracy is not inflated by a
    near-duplicate of a training pair. The same pairs and seed give the same split on every machine.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    train, heldout = [], []
    for p in pairs:
        key = str(p.get("prompt_id") or p["prompt"])
        u = int(hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()[:12], 16) / float(1 << 48)
        (heldout if u < fraction else train).append(p)
    return train, heldout


def _rows(pairs: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for k, p in enumerate(pairs):
        missing = [c for c in ("prompt", "chosen", "rejected") if not isinstance(p.get(c), str)]
        if missing:
            raise ValueError(f"pair {k}: missing text column(s) {missing}")
        rows.append({"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]})
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# TRL


def to_trl_reward_config(cfg: RewardConfig, output_dir: str | Path, device: Device, seed: int,
                         context_length: int | None = None):
    """Map our reward config onto TRL's ``RewardConfig`` with per-device settings (TRL's defaults assume a GPU)."""
    from trl import RewardConfig as TRLRewardConfig

    return TRLRewardConfig(
        center_rewards_coefficient=cfg.center_rewards_coefficient,
        disable_dropout=True,
        **trainer_args(cfg, output_dir, device, seed, context_length),
    )


def reward_lora_config(cfg: RewardConfig, model):
    from peft import LoraConfig

    # GPT-2 stores its projections as Conv1D (transposed); Llama-style models (SmolLM2) use nn.Linear.
    is_conv1d = getattr(model.config, "model_type", "") in ("gpt2",)
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=cfg.target_modules,
                      fan_in_fan_out=is_conv1d, bias="none", task_type="SEQ_CLS", modules_to_save=["score"])


def load_reward_model(path: str | Path, *, device: str = "auto", base: bool = False):
    """(model, tokenizer) for scoring; ``base=True`` loads a causal LM folder with a fresh one-output head."""
    from transformers import AutoModelForSequenceClassification


    quiet_library_progress()  # also silences "score.weight newly initialized", expected for a fresh head
    dev = select_device(device)
    kwargs = {"num_labels": 1} if base else {}
    model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True, dtype=dev.dtype,
                                                               **kwargs)
    if model.config.num_labels != 1:
        raise ValueError(f"{path}: a reward model has one output, this one has {model.config.num_labels}")
    tok = load_tokenizer(path)
    model.config.pad_token_id = tok.pad_token_id  # the head reads the last non-pad token
    model.to(dev.name)
    model.eval()
    return model, tok


def train_reward_model(base_model_path: str | Path, pairs: Sequence[dict[str, Any]], cfg: RewardConfig,
                       out_dir: str | Path, seed: int = 0, *, heldout: Sequence[dict[str, Any]] = (),
                       device: str = "auto", on_step: Callable[[int, int], None] | None = None,
                       cancel: threading.Event | None = None) -> RewardModelResult:
    """Train on (prompt, chosen, rejected) rows; save the model to ``out_dir/model`` with ``reward_model.json``.

    ``heldout`` pairs are never trained on; their ranking accuracy is measured after training.
    """
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import RewardTrainer

    rows = _rows(pairs)
    if not rows:
        raise ValueError("no preference pairs to train a reward model on")
    os.environ.setdefault("WANDB_DISABLED", "true")
    dev = select_device(device)
    out_dir = Path(out_dir)
    set_seed(seed)  # before loading: the score head is initialised at random
    model, tokenizer = load_reward_model(base_model_path, device=device, base=True)
    model.train()
    args = to_trl_reward_config(cfg, out_dir / "trainer", dev, seed, context_length(model))
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=reward_lora_config(cfg, model) if cfg.lora else None,
        callbacks=step_callbacks(on_step, cancel))
    trainer.remove_callback(PrinterCallback)
    n_train = len(trainer.train_dataset)
    if n_train == 0:
        raise ValueError(f"every pair is longer than reward max_length={args.max_length} tokens; raise it")
    trainable = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    output = trainer.train()
    after = dict(trainer.model.named_parameters())
    changed = any(not torch.equal(before, after[n].detach()) for n, before in trainable.items())
    cancelled = cancel is not None and cancel.is_set()

    trained = trainer.model.merge_and_unload() if cfg.lora else trainer.model
    trained.eval()
    model_dir = out_dir / "model"
    trained.save_pretrained(str(model_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(model_dir))
    heldout_rows = _rows(heldout)
    accuracy = rank_accuracy(trained, tokenizer, heldout_rows, max_length=args.max_length) if heldout_rows else None
    result = RewardModelResult(
        model_path=str(model_dir), model_hash=model_hash(model_dir), steps=int(trainer.state.global_step),
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        params_changed=changed, n_train=n_train, n_heldout=len(heldout_rows), heldout_accuracy=accuracy,
        log_history=list(trainer.state.log_history), cancelled=cancelled)
    info = {k: v for k, v in result.to_dict().items() if k != "log_history"}
    info.update(base_model_path=str(base_model_path), base_model_hash=model_hash(base_model_path), seed=seed,
                config=asdict(cfg))
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")  # written last
    return result


# ---------------------------------------------------------------------------------------------------------------------
# scoring


@torch.no_grad()
def score_texts(model, tokenizer, prompts: Sequence[str], completions: Sequence[str], *, batch_size: int = 16,
                max_length: int | None = None) -> list[float]:
    """One reward per (prompt, completion), formatted as TRL trains: prompt + completion + EOS, right-padded."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    eos = tokenizer.eos_token or ""
    limit = max_length or context_length(model)
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(prompts), batch_size):
        texts = [p + c + ("" if c.endswith(eos) else eos)
                 for p, c in zip(prompts[start:start + batch_size], completions[start:start + batch_size])]
        ids = [tokenizer(t)["input_ids"] for t in texts]
        if limit:
            ids = [x[-limit:] for x in ids]  # keep the end: the reward is read at the last token
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, :len(x)] = torch.tensor(x)
            mask[row, :len(x)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        scores.extend(float(v) for v in logits.squeeze(-1).float().cpu())
    return scores


def rank_accuracy(model, tokenizer, heldout_pairs: Sequence[dict[str, Any]], *, batch_size: int = 16,
                  max_length: int | None = None) -> float:
    """Fraction of pairs with score(chosen) > score(rejected); a tie counts as wrong."""
    rows = _rows(heldout_pairs)
    if not rows:
        raise ValueError("no held-out pairs to measure ranking accuracy on")
    prompts = [r["prompt"] for r in rows]
    chosen = score_texts(model, tokenizer, prompts, [r["chosen"] for r in rows], batch_size=batch_size,
                         max_length=max_length)
    rejected = score_texts(model, tokenizer, prompts, [r["rejected"] for r in rows], batch_size=batch_size,
                           max_length=max_length)
    return sum(c > r for c, r in zip(chosen, rejected)) / len(rows)
