"""Build the tiny, deliberately under-trained text-to-SQL policy bundled with the Harbor sample.

The policy is a ~1M-parameter GPT-2 trained from scratch on ``train.jsonl`` only, with its own byte-level
BPE tokenizer. It is meant to be *close but sloppy*: it knows the SQL templates, but often copies the wrong
year/region/product or picks the wrong view, so that sampled candidates mix right and wrong SQL and the
RLAIF loop (verifier pairs -> DPO + SFT term) has something to improve.

Everything is deterministic for a fixed seed on CPU: tokenizer training, weight init, data order and the
optimiser (one torch thread).

Text format (the loop config's ``policy.prompt_template`` must be the same string)::

    "Question: {prompt}\\nSQL: " + reference + "<|endoftext|>"

The pre-tokenizer isolates every whitespace character, word, number and punctuation mark before BPE, so
tokens never cross a space: tokenizing ``prompt + completion`` gives exactly ``tokens(prompt) +
tokens(completion)`` (TRL's DPO tokenization relies on that prefix property).

    info = build_policy("sample_data/harbor_sql/train.jsonl", "sample_data/harbor_sql/policy")
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Callable

from rlaif.datasets import load_prompts
from rlaif.policy import greedy, load_policy, sample_candidates
from rlaif.verifiers import Verifier

PROMPT_TEMPLATE = "Question: {prompt}\nSQL: "
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
PRETOKENIZE_PATTERN = r"[A-Za-z_]+|[0-9]+|\s|[^A-Za-z_0-9\s]"

# The committed sample policy is built with these settings (see scripts/build_sample_policy.py).
DEFAULTS = dict(
    seed=0,
    n_embd=128,
    n_layer=4,
    n_head=4,
    n_positions=128,
    vocab_size=512,
    steps=600,
    batch_size=16,
    lr=2e-3,
    warmup_steps=20,
    weight_decay=0.01,
    schedule="cosine",
    min_lr_ratio=0.1,
)
# Reduced size used by the tests.
SMALL = dict(n_embd=32, n_layer=2, n_head=2, n_positions=96, vocab_size=384, steps=30, batch_size=8)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def train_tokenizer(texts: list[str], vocab_size: int = 512, model_max_length: int = 128):
    """Train a byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``.

    Special tokens: ``<|endoftext|>`` (id 0; eos and bos) and ``<|pad|>`` (id 1; pad).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=None,
        pad_token=PAD_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
    )
    return wrapped


def _state_hash(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_policy(
    train_path: str | Path,
    out_dir: str | Path,
    *,
    seed: int = DEFAULTS["seed"],
    n_embd: int = DEFAULTS["n_embd"],
    n_layer: int = DEFAULTS["n_layer"],
    n_head: int = DEFAULTS["n_head"],
    n_positions: int = DEFAULTS["n_positions"],
    vocab_size: int = DEFAULTS["vocab_size"],
    steps: int = DEFAULTS["steps"],
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    warmup_steps: int = DEFAULTS["warmup_steps"],
    weight_decay: float = DEFAULTS["weight_decay"],
    schedule: str = DEFAULTS["schedule"],
    min_lr_ratio: float = DEFAULTS["min_lr_ratio"],
    prompt_template: str = PROMPT_TEMPLATE,
    log_every: int = 50,
    progress: Callable[[int, float], None] | None = None,
    checkpoint_cb: Callable[[int, object, object], None] | None = None,
    checkpoint_every: int = 0,
) -> dict:
    """Train the tokenizer and the model on ``train_path`` and save both into ``out_dir``.

    Returns the build info (also written to ``out_dir/build_info.json``). ``progress(step, loss)`` is called
    every ``log_every`` steps; ``checkpoint_cb(step, model, tokenizer)`` every ``checkpoint_every`` steps
    (used when tuning how under-trained the sample policy should be).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(1)
    train_path = Path(train_path)
    out_dir = Path(out_dir)
    rows = _read_jsonl(train_path)
    prompts = [prompt_template.format(prompt=r["prompt"]) for r in rows]
    completions = [r["reference"] for r in rows]

    tokenizer = train_tokenizer(
        [p + c for p, c in zip(prompts, completions)], vocab_size=vocab_size, model_max_length=n_positions
    )
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id

    examples: list[tuple[list[int], list[int]]] = []
    for p, c in zip(prompts, completions):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(c, add_special_tokens=False)["input_ids"] + [eos_id]
        ids = (p_ids + c_ids)[:n_positions]
        labels = ([-100] * len(p_ids) + c_ids)[:n_positions]
        examples.append((ids, labels))
    max_len = max(len(ids) for ids, _ in examples)

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
    )

    def lr_at(step: int) -> float:
        """Linear warmup, then constant or cosine decay to ``min_lr_ratio * lr`` at the last step."""
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        if schedule == "constant":
            return lr
        if schedule != "cosine":
            raise ValueError(f"unknown schedule {schedule!r}")
        frac = (step - warmup_steps) / max(1, steps - 1 - warmup_steps)
        return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(len(examples), generator=gen).tolist()
        batch_idx, order = order[:batch_size], order[batch_size:]
        batch = [examples[i] for i in batch_idx]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for j, (ids, lab) in enumerate(batch):
            input_ids[j, : len(ids)] = torch.tensor(ids)
            labels[j, : len(lab)] = torch.tensor(lab)
            attn[j, : len(ids)] = 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        out = model(input_ids=input_ids, attention_mask=attn, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = float(out.loss.detach())
        losses.append(loss)
        if progress and (step + 1) % log_every == 0:
            progress(step + 1, loss)
        if checkpoint_cb and checkpoint_every and (step + 1) % checkpoint_every == 0:
            model.eval()
            checkpoint_cb(step + 1, model, tokenizer)
            model.train()
    elapsed = time.perf_counter() - t0
    model.eval()

    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = pad_id
    model.generation_config.bos_token_id = eos_id
    model.generation_config.max_new_tokens = 64
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)

    def window_mean(a: list[float], lo: int, hi: int) -> float:
        seg = a[lo:hi]
        return round(sum(seg) / len(seg), 6) if seg else float("nan")

    w = max(1, min(10, steps // 5 or 1))
    curve_every = max(1, steps // 20)
    info = {
        "builder": "rlaif.sample_policy.build_policy",
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_steps": warmup_steps,
        "weight_decay": weight_decay,
        "lr_schedule": f"linear warmup then {schedule}",
        "min_lr_ratio": min_lr_ratio,
        "model": {
            "type": "gpt2",
            "n_embd": n_embd,
            "n_layer": n_layer,
            "n_head": n_head,
            "n_positions": n_positions,
            "vocab_size": len(tokenizer),
            "params": n_params,
        },
        "tokenizer": {
            "kind": "byte-level BPE (tokenizers), whitespace/words/numbers/punctuation isolated before BPE",
            "vocab_size_requested": vocab_size,
            "eos_token": EOS_TOKEN,
            "eos_token_id": eos_id,
            "pad_token": PAD_TOKEN,
            "pad_token_id": pad_id,
            "padding_side": "left",
        },
        "prompt_template": prompt_template,
        "loss_on": "completion tokens (reference SQL + eos)",
        "train_file": train_path.name,
        "train_sha256": _sha256_file(train_path),
        "train_examples": len(examples),
        "max_train_tokens": max_len,
        "loss": {
            "first": round(losses[0], 6),
            "last": round(losses[-1], 6),
            "min": round(min(losses), 6),
            "first_window_mean": window_mean(losses, 0, w),
            "last_window_mean": window_mean(losses, steps - w, steps),
            "curve": [[i + 1, round(losses[i], 6)] for i in range(curve_every - 1, steps, curve_every)],
        },
        "weights_sha256": _state_hash(model),
        "torch_version": torch.__version__,
        "transformers_version": __import__("transformers").__version__,
    }
    (out_dir / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    info["elapsed_s"] = round(elapsed, 2)  # reported, not saved: the saved files stay byte-stable
    return info


# --------------------------------------------------------------------------------------------------
# Measurement used to tune the sample: the production sampler and the sandboxed SQL verifier, so the numbers are the
# ones the loop will see.


def measure_policy(model_dir: str | Path, train_path: str | Path, eval_path: str | Path, verifier: Verifier,
                   temperatures=(0.7, 0.9, 1.1, 1.3), seed: int = 0) -> dict:
    """Greedy eval execution accuracy (overall and per cohort), greedy train accuracy and the fraction of train
    prompts whose candidates (one per temperature) are mixed right and wrong. ``verifier`` is the sample project's
    (opened through the project assembly by the build script)."""
    policy = load_policy(model_dir, device="cpu", prompt_template=PROMPT_TEMPLATE)
    train_rows, eval_rows = load_prompts(train_path), load_prompts(eval_path)

    def right(text: str, ref: str) -> bool:
        return verifier.verify(text, ref).criteria()["sql_result_matches"]

    outs = greedy(policy, [r.prompt for r in eval_rows], batch_size=64, max_new_tokens=64)
    ok = [right(text, r.reference) for (text, _), r in zip(outs, eval_rows)]
    cohorts: dict[str, list[bool]] = {}
    for r, o in zip(eval_rows, ok):
        cohorts.setdefault(r.cohort, []).append(o)
    tr_outs = greedy(policy, [r.prompt for r in train_rows], batch_size=64, max_new_tokens=64)
    tr_ok = [right(text, r.reference) for (text, _), r in zip(tr_outs, train_rows)]
    samples = sample_candidates(policy, [r.prompt for r in train_rows], n=len(temperatures),
                                temperatures=temperatures, seed=seed, iteration=0, batch_size=64,
                                max_new_tokens=64)
    per_prompt = [[right(s.text, r.reference) for s in group] for group, r in zip(samples, train_rows)]
    n = len(train_rows)
    return {
        "eval_greedy_acc": sum(ok) / len(ok),
        "eval_per_cohort": {c: round(sum(v) / len(v), 4) for c, v in sorted(cohorts.items())},
        "train_greedy_acc": sum(tr_ok) / n,
        "train_sampled_acc_per_temperature": {str(t): round(sum(p[k] for p in per_prompt) / n, 4)
                                              for k, t in enumerate(temperatures)},
        "train_mixed_fraction": sum(1 for p in per_prompt if any(p) and not all(p)) / n,
        "train_any_correct_fraction": sum(1 for p in per_prompt if any(p)) / n,
    }
