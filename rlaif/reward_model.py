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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from rlaif.anchors.labelling import resolved_labels
from rlaif.core.fields import check, help_field
from rlaif.judges.reward_model import (  # scoring is the judge's; training here imports it
    DISTILL_FILE,
    PROMPT_TEMPLATE,
    fit_response,
    load_reward_model,
    pair_key,
    render_prompt,
    score_texts,
)
from rlaif.policy import Device, context_length, load_tokenizer, model_hash, select_device
from rlaif.training import step_callbacks, trainer_args
from rlaif.training_launch import LaunchOptions, run_training_job
from store.content_hash import content_hash

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

    model_dir = out_dir / "model"
    heldout_rows = _rows(heldout)
    main = trainer.is_world_process_zero()  # always in-process; under accelerate launch only rank 0 saves
    accuracy = None
    trained = None
    if trainer.args.world_size > 1:
        trained = _gathered_model(trainer, base_model_path, device, out_dir, model_dir, cfg.lora)
    elif main:
        trained = trainer.model.merge_and_unload() if cfg.lora else trainer.model
    if main:
        trained.eval()
        trained.save_pretrained(str(model_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(model_dir))
        if heldout_rows:
            accuracy = rank_accuracy(trained, tokenizer, heldout_rows, max_length=args.max_length)
    result = RewardModelResult(
        model_path=str(model_dir), model_hash=model_hash(model_dir) if main else "",
        steps=int(trainer.state.global_step),
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        params_changed=changed, n_train=n_train, n_heldout=len(heldout_rows), heldout_accuracy=accuracy,
        log_history=list(trainer.state.log_history), cancelled=cancelled)
    if not main:
        return result
    info = {k: v for k, v in result.to_dict().items() if k != "log_history"}
    info.update(base_model_path=str(base_model_path), base_model_hash=model_hash(base_model_path), seed=seed,
                config=asdict(cfg))
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")  # written last
    return result


def _gathered_model(trainer, base_model_path: str | Path, device: str, out_dir: Path, model_dir: Path, lora: bool):
    """Several ranks: the trainer saves the model (every rank takes part, so under FSDP or DeepSpeed ZeRO-3 the
    sharded weights are gathered first): with LoRA the adapter (and the score head it trains), merged on rank 0
    into a fresh base; without, the whole model, reloaded on rank 0. None on the other ranks (as
    ``rlaif.training._merge_gathered_adapter`` does for DPO; the CPU tests' DDP runs take this route too)."""
    from transformers import AutoModelForSequenceClassification

    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if plugin is not None:
        plugin.set_state_dict_type("FULL_STATE_DICT")
    target = out_dir / "adapter" if lora else model_dir
    trainer.save_model(str(target))
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return None
    if not lora:
        return AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    from peft import PeftModel

    base, _ = load_reward_model(base_model_path, device=device, base=True)
    return PeftModel.from_pretrained(base, str(target)).merge_and_unload()


def train_reward_model_launched(base_model_path: str | Path, pairs: Sequence[dict[str, Any]], cfg: RewardConfig,
                                out_dir: str | Path, options: LaunchOptions, seed: int = 0, *,
                                heldout: Sequence[dict[str, Any]] = (), device: str = "auto",
                                on_step: Callable[[int, int], None] | None = None,
                                cancel: threading.Event | None = None) -> RewardModelResult:
    """``train_reward_model`` run by ``accelerate launch`` (``rlaif.training_worker``): the same files in
    ``out_dir`` (``model/``, ``reward_model.json``) and the same result; ``cancelled`` set when ``cancel`` stopped
    the subprocess (then nothing was saved); a crash raises ``TrainingLaunchError``."""
    rows, heldout_rows = _rows(pairs), _rows(heldout)
    if not rows:
        raise ValueError("no preference pairs to train a reward model on")
    steps = [0]

    def progress(done: int, total: int) -> None:
        steps[0] = done
        if on_step:
            on_step(done, total)

    out = run_training_job("reward", base_model_path, rows, asdict(cfg), out_dir, options, seed=seed, device=device,
                           heldout=heldout_rows, on_step=progress, cancel=cancel)
    if out is None:
        return RewardModelResult(model_path=str(base_model_path), model_hash="", steps=steps[0], train_loss=None,
                                 params_changed=False, n_train=0, n_heldout=len(heldout_rows), heldout_accuracy=None,
                                 cancelled=True)
    names = {f.name for f in fields(RewardModelResult)}
    return RewardModelResult(**{k: v for k, v in out.items() if k in names})


# ---------------------------------------------------------------------------------------------------------------------
# scoring


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


# ---------------------------------------------------------------------------------------------------------------------
# distillation: a reward model as a cheap judge, trained on an anchor set's tuning split (and another judge's verdicts)

@dataclass
class DistillSource:
    """Where the training pairs came from, for the summary and ``distill.json``."""

    anchor_set_id: str
    annotators: str
    tuning_items: int = 0  # labelled tuning items seen
    label_pairs: int = 0  # of them A or B: trained on
    ties_skipped: int = 0
    holdout_items: int = 0  # locked holdout: never trained on
    from_judge: str | None = None
    judge_pairs: int = 0  # pairs from the other judge's stored verdicts
    judge_skipped: int = 0  # its ties, invalid verdicts, holdout prompts and pairs the labels already cover
    item_ids: list[str] = field(default_factory=list)  # anchor items trained on (tuning split only)


def labelled_pairs(store, anchor_set_id: str, annotators: str, split: str
                   ) -> tuple[list[dict[str, Any]], int, int]:
    """(chosen/rejected pairs, labelled items, ties) of one split of an anchor set; ties carry no preference."""
    labels = resolved_labels(store, anchor_set_id, annotators=annotators, split=split)
    pairs, labelled, ties = [], 0, 0
    for item in store.anchors.items(anchor_set_id, split=split):
        label = labels.get(item["item_id"])
        if label is None:
            continue
        labelled += 1
        if label.label not in ("A", "B"):
            ties += 1
            continue
        a_wins = label.label == "A"
        pairs.append({"prompt_id": item["item_id"], "prompt": item["prompt"],
                      "chosen": item["response_a"] if a_wins else item["response_b"],
                      "rejected": item["response_b"] if a_wins else item["response_a"], "source": "label"})
    return pairs, labelled, ties


def anchor_pairs(store, anchor_set_id: str, annotators: str = "any") -> tuple[list[dict[str, Any]], DistillSource]:
    """(chosen/rejected pairs, source) from the labelled TUNING items of an anchor set.

    Read through the tuning view only: the locked holdout is what the distilled judge is measured on afterwards.
    """
    if store.anchors.get_set(anchor_set_id) is None:
        raise LookupError(f"no anchor set {anchor_set_id!r}; see `rlaif anchors list`")
    pairs, labelled, ties = labelled_pairs(store, anchor_set_id, annotators, "tuning")
    source = DistillSource(anchor_set_id, annotators, tuning_items=labelled, label_pairs=len(pairs),
                           ties_skipped=ties, holdout_items=len(store.anchors.items(anchor_set_id, split="holdout")),
                           item_ids=[p["prompt_id"] for p in pairs])
    return pairs, source


def judge_pairs(store, judge_id: str, anchor_set_id: str, source: DistillSource,
                covered: set[tuple[str, str, str]] = frozenset()) -> list[dict[str, Any]]:
    """Pairs from the verdicts another judge left in the store: its verdicts on this set's tuning items (what
    ``rlaif kappa`` stored) and its judgements in runs. Ties and invalid verdicts carry no preference; a run
    judgement on a prompt of the locked holdout is skipped (the holdout must stay unseen); a pair the labels already
    cover keeps the label. Raises LookupError when the judge left no verdicts at all."""
    items = {i["item_id"]: i for i in store.anchors.items(anchor_set_id, split="tuning")}
    held_prompts = {i["prompt"] for i in store.anchors.items(anchor_set_id, split="holdout")}
    found, pairs = 0, []

    def add(prompt: str, a: str, b: str, winner: str, key: str) -> None:
        if winner not in ("a", "b") or prompt in held_prompts or (prompt, *sorted((a, b))) in covered:
            source.judge_skipped += 1
            return
        chosen, rejected = (a, b) if winner == "a" else (b, a)
        covered.add((prompt, *sorted((a, b))))
        pairs.append({"prompt_id": key, "prompt": prompt, "chosen": chosen, "rejected": rejected,
                      "source": "judge"})

    for v in store.anchors.verdicts(anchor_set_id, split="tuning", judge_id=judge_id):
        found += 1
        item = items[v["item_id"]]
        add(item["prompt"], item["response_a"], item["response_b"], v["winner"], v["item_id"])
    prompts: dict[str, dict[str, str]] = {}
    for run in store.runs.list(limit=10_000):
        offset = 0
        while True:
            rows = store.judgements.list(run["run_id"], limit=1000, offset=offset)
            offset += len(rows)
            mine = [r for r in rows if r["judge_id"] == judge_id]
            if mine and run["run_id"] not in prompts:
                dataset = run.get("train_dataset_id")
                prompts[run["run_id"]] = {p["prompt_id"]: p["prompt"] for p in
                                          (store.datasets.prompts(dataset) if dataset else [])}
            for r in mine:
                found += 1
                prompt = prompts[run["run_id"]].get(r["prompt_id"])
                if prompt is None or r["candidate_a"] is None or r["candidate_b"] is None:
                    source.judge_skipped += 1
                    continue
                add(prompt, r["candidate_a"], r["candidate_b"], r["winner"], r["judgement_id"])
            if len(rows) < 1000:
                break
    if not found:
        raise LookupError(f"--from-judge {judge_id!r}: no stored verdicts of that judge id (on the set's tuning "
                          f"items or in any run); judge ids are exact, e.g. 'verifier' (see `rlaif kappa` reports)")
    source.from_judge, source.judge_pairs = judge_id, len(pairs)
    return pairs


def tuning_hash(store, anchor_set_id: str, item_ids: Sequence[str], annotators: str) -> str:
    """The identity of what was trained on: the set, and the tuning items with the labels that counted."""
    labels = resolved_labels(store, anchor_set_id, annotators=annotators, split="tuning")
    return content_hash({"anchor_set_id": anchor_set_id, "annotators": annotators,
                         "items": [[i, labels[i].label] for i in sorted(item_ids)]})


def distill_config(**overrides: Any) -> RewardConfig:
    """The distilled judge's training defaults: LoRA on a small base, a few passes (a few hundred pairs at most)."""
    return RewardConfig(**{**dict(lora=True, lora_r=8, lora_alpha=16, learning_rate=2e-3, epochs=4, max_length=128),
                           **overrides})


@dataclass
class DistillResult:
    out_dir: str
    model_path: str
    metadata: dict[str, Any]
    training: RewardModelResult


def distill_reward_model(store, anchor_set_id: str, out_dir: str | Path, base_model_path: str | Path, *,
                         annotators: str = "any", from_judge: str | None = None, cfg: RewardConfig | None = None,
                         limit: int | None = None, seed: int = 0, device: str = "auto",
                         on_step: Callable[[int, int], None] | None = None) -> DistillResult:
    """Train the ``reward_model`` judge: a reward model on the tuning split's A/B labels (plus ``from_judge``'s stored
    verdicts), with its ranking accuracy on the locked holdout's A/B pairs REPORTED (never trained or tuned on).
    ``limit`` keeps the first N label pairs (a learning curve). Writes ``out_dir/distill.json`` last: its existence
    means the model is complete; the judge reads it to say what it was trained on."""
    cfg = cfg or distill_config()
    pairs, source = anchor_pairs(store, anchor_set_id, annotators)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        pairs, source.item_ids = pairs[:limit], source.item_ids[:limit]
        source.label_pairs = len(pairs)
    if from_judge:
        covered = {(p["prompt"], *sorted((p["chosen"], p["rejected"]))) for p in pairs}
        pairs = pairs + judge_pairs(store, from_judge, anchor_set_id, source, covered)
    if not pairs:
        raise ValueError(f"anchor set {anchor_set_id}: no tuning item has an A/B label under annotators "
                         f"{annotators!r} ({source.tuning_items} labelled, {source.ties_skipped} ties); label some "
                         f"or use --annotators any")
    heldout, _, _ = labelled_pairs(store, anchor_set_id, annotators, "holdout")  # measured, never trained on
    tok = load_tokenizer(base_model_path)

    def fitted(p: dict[str, Any]) -> dict[str, Any]:
        prompt = render_prompt(p["prompt"])
        return dict(p, prompt=prompt, chosen=fit_response(tok, prompt, p["chosen"], cfg.max_length),
                    rejected=fit_response(tok, prompt, p["rejected"], cfg.max_length))

    rendered, heldout = [fitted(p) for p in pairs], [fitted(p) for p in heldout]
    result = train_reward_model(base_model_path, rendered, cfg, out_dir, seed=seed, heldout=heldout, device=device,
                                on_step=on_step)
    metadata = {
        "kind": "reward_model", "model_hash": result.model_hash, "base_model_path": str(base_model_path),
        "base_model_hash": model_hash(base_model_path), "prompt_template": PROMPT_TEMPLATE,
        "anchor_set_id": anchor_set_id, "annotators": annotators,
        "tuning_hash": tuning_hash(store, anchor_set_id, source.item_ids, annotators),
        "from_judge": source.from_judge, "n_label_pairs": source.label_pairs, "n_judge_pairs": source.judge_pairs,
        "ties_skipped": source.ties_skipped, "judge_skipped": source.judge_skipped,
        "holdout_items_excluded": source.holdout_items, "train_item_ids": source.item_ids,
        "train_pair_keys": sorted(pair_key(p["prompt"], p["chosen"], p["rejected"]) for p in pairs),
        "n_trained": result.n_train, "steps": result.steps, "train_loss": result.train_loss,
        "holdout_rank_accuracy": result.heldout_accuracy, "n_holdout_pairs": result.n_heldout, "seed": seed,
        "config": asdict(cfg)}
    Path(out_dir, DISTILL_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")  # written last
    return DistillResult(str(out_dir), result.model_path, metadata, result)
