"""DPO training with TRL's DPOTrainer and a PEFT LoRA adapter; the reference is the adapter-disabled model.

Why LoRA with the adapter-disabled reference: no second copy of the model in memory, and the reference is exactly the
policy this iteration started from. After training the adapter is merged, so the next iteration samples from (and
uses as its reference) the improved policy. ``to_dpo_config`` is the only place that knows TRL's argument names.

    result = train_dpo("runs/r1/iter-0/model", pairs, cfg.training, "runs/r1/iter-1", seed=0)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from rlaif.config import TrainingConfig
from rlaif.model_source import resolve_source
from rlaif.policy import Device, context_length, load_tokenizer, model_hash, quiet_library_progress, select_device
from rlaif.training_launch import LaunchOptions, run_training_job

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model_path: str
    model_hash: str
    steps: int
    train_loss: float | None
    lora_params_changed: bool
    log_history: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False


def to_dpo_config(cfg: TrainingConfig, output_dir: str | Path, device: Device, seed: int,
                  context_length: int | None = None):
    """Map our training config onto TRL's DPOConfig, with per-device settings (TRL's defaults assume a GPU).

    ``max_length`` is capped at the model's context length: a longer sequence would index past the position table.
    """
    from trl import DPOConfig

    return DPOConfig(
        loss_type=list(cfg.loss_type),
        loss_weights=list(cfg.loss_weights) if cfg.loss_weights else None,
        beta=cfg.beta,
        warmup_steps=float(cfg.warmup_ratio),  # a float in [0, 1) is a ratio in transformers 5
        remove_unused_columns=False,
        **trainer_args(cfg, output_dir, device, seed, context_length),
    )


def trainer_args(cfg, output_dir: str | Path, device: Device, seed: int, context_length: int | None) -> dict[str, Any]:
    """The arguments every TRL trainer here takes from our configs (``TrainingConfig``, ``RewardConfig``: both have
    learning_rate, epochs, batch_size, gradient_accumulation_steps, max_length), plus the per-device ones.

    ``max_length`` is capped at the model's context length: a longer sequence would index past the position table.
    """
    return dict(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=min(cfg.max_length, context_length) if context_length else cfg.max_length,
        **trainer_device_args(device, seed),
    )


def trainer_device_args(device: Device, seed: int) -> dict[str, Any]:
    """What every TRL trainer here shares: precision per device (TRL's defaults assume a GPU), no activation
    checkpointing, no mid-run saves, seeded data order, quiet logging (progress goes through callbacks)."""
    return dict(
        lr_scheduler_type="linear",
        bf16=device.bf16,
        fp16=device.name == "cuda" and device.dtype == torch.float16,
        use_cpu=device.name == "cpu",
        gradient_checkpointing=False,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def lora_config(cfg: TrainingConfig, model) -> Any:
    from peft import LoraConfig

    # GPT-2 stores its projections as Conv1D (weights transposed): LoRA must know, or it adapts the wrong axis.
    is_conv1d = getattr(model.config, "model_type", "") in ("gpt2",)
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        fan_in_fan_out=is_conv1d,
        bias="none",
        task_type="CAUSAL_LM",
    )


def step_callbacks(on_step: Callable[[int, int], None] | None, cancel: threading.Event | None):
    """Trainer callbacks that report each step and stop training cleanly once ``cancel`` is set."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if on_step:
                on_step(state.global_step, state.max_steps)
            if cancel is not None and cancel.is_set():
                control.should_training_stop = True
            return control

    return [Progress()]


def train_dpo(base_model_path: str | Path, pairs: Sequence[dict[str, str]], cfg: TrainingConfig,
              output_dir: str | Path, *, seed: int = 0, device: str = "auto",
              on_step: Callable[[int, int], None] | None = None,
              cancel: threading.Event | None = None) -> TrainResult:
    """Train a LoRA adapter on (prompt, chosen, rejected) rows, merge it, save the merged model to output_dir/model."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PrinterCallback, set_seed
    from trl import DPOTrainer

    quiet_library_progress()  # progress is reported through on_step, not printed

    if not pairs:
        raise ValueError("no preference pairs to train on")
    os.environ.setdefault("WANDB_DISABLED", "true")
    dev = select_device(device)
    set_seed(seed)
    output_dir = Path(output_dir)
    src = resolve_source(base_model_path, field="policy.path")  # a folder, .gguf file or cached hub id
    model = AutoModelForCausalLM.from_pretrained(src.folder, dtype=dev.dtype, **src.kwargs)
    tokenizer = load_tokenizer(src)
    dataset = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                                 for p in pairs])
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=to_dpo_config(cfg, output_dir / "trainer", dev, seed, context_length=context_length(model)),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg, model),
        callbacks=step_callbacks(on_step, cancel),
    )
    trainer.remove_callback(PrinterCallback)  # per-step log dicts would flood the CLI; log_history keeps them
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    train_output = trainer.train()
    after = dict(trainer.model.named_parameters())
    changed = any(not torch.equal(before[n], after[n].detach()) for n in before if n in after)
    cancelled = cancel is not None and cancel.is_set()
    model_dir = output_dir / "model"
    main = trainer.is_world_process_zero()  # always in-process; under accelerate launch only rank 0 saves
    if trainer.args.world_size > 1:
        changed = _merge_gathered_adapter(trainer, src, dev, tokenizer, output_dir / "adapter", model_dir) or changed
    elif main:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(model_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(model_dir))
    return TrainResult(
        model_path=str(model_dir),
        model_hash=model_hash(model_dir) if main else "",
        steps=int(trainer.state.global_step),
        train_loss=float(train_output.training_loss) if train_output.training_loss is not None else None,
        lora_params_changed=changed,
        log_history=list(trainer.state.log_history),
        cancelled=cancelled,
    )


def _merge_gathered_adapter(trainer, src, dev: Device, tokenizer, adapter_dir: Path, model_dir: Path) -> bool:
    """Several ranks: save the trained adapter with the trainer (every rank takes part, so under FSDP or DeepSpeed
    ZeRO-3 the sharded LoRA weights are gathered first), then rank 0 merges it into a fresh copy of the base model and
    saves that. Returns whether the saved adapter moved off its zero-initialised ``lora_B`` (rank 0; False elsewhere).

    Why not merge the in-memory model as one process does: under sharding no rank holds whole weights. The same route
    serves DDP, so the CPU tests (DDP over gloo) exercise it; the gathering itself is accelerate's and TRL's.
    """
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if plugin is not None:
        plugin.set_state_dict_type("FULL_STATE_DICT")  # a whole adapter on rank 0, not per-rank shards
    trainer.save_model(str(adapter_dir))
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return False
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    moved = any("lora_B" in name and bool(t.abs().sum() > 0) for name, t in weights.items())
    base = AutoModelForCausalLM.from_pretrained(src.folder, dtype=dev.dtype, **src.kwargs)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(model_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(model_dir))
    return moved


def train_dpo_launched(base_model_path: str | Path, pairs: Sequence[dict[str, str]], cfg: TrainingConfig,
                       output_dir: str | Path, *, seed: int = 0, device: str = "auto",
                       on_step: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
                       accelerate_config: str | Path | None = None) -> TrainResult:
    """``train_dpo`` run by ``accelerate launch`` (``cfg.num_processes`` ranks; ``rlaif.training_worker``), with the
    same result: the merged model in ``output_dir/model``. A cancel stops the subprocess and returns a result with
    ``cancelled`` set, as in-process (the caller records the run as cancelled); a crash raises
    ``TrainingLaunchError``."""
    if not pairs:
        raise ValueError("no preference pairs to train on")
    options = LaunchOptions(cfg.num_processes, cfg.mixed_precision,
                            Path(accelerate_config) if accelerate_config is not None else None)
    steps = [0]

    def progress(done: int, total: int) -> None:
        steps[0] = done
        if on_step:
            on_step(done, total)

    config = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    out = run_training_job("dpo", base_model_path, list(pairs), config, output_dir, options, seed=seed,
                           device=device, on_step=progress, cancel=cancel)
    if out is None:  # cancelled: nothing was saved, the caller stops the run
        return TrainResult(model_path=str(base_model_path), model_hash="", steps=steps[0], train_loss=None,
                           lora_params_changed=False, cancelled=True)
    return TrainResult(model_path=out["model_path"], model_hash=out["model_hash"], steps=out["steps"],
                       train_loss=out["train_loss"], lora_params_changed=out["lora_params_changed"],
                       log_history=out["log_history"], cancelled=out["cancelled"])
