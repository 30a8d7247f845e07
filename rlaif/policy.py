"""Policy loading and batched generation: N candidates per prompt over a temperature/seed ladder.

Why a ladder: candidates from one temperature are too alike for a judge to rank; spreading them over temperatures
(and recording each candidate's temperature and seed) gives contrast and keeps every sample reproducible.
Models load only from local paths (``local_files_only``), so nothing is downloaded at run time.

    policy = load_policy("sample_data/harbor_sql/policy"); cands = sample_candidates(policy, prompts, cfg, seed=0)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rlaif.core.fields import ConfigError


@dataclass(frozen=True)
class Device:
    name: str  # "cuda" or "cpu"
    dtype: Any  # a torch.dtype

    @property
    def bf16(self) -> bool:
        return str(self.dtype) == "torch.bfloat16"


def select_device(preference: str = "auto") -> Device:
    """CUDA with bf16 when present (and bf16-capable), CPU with float32 otherwise."""
    import torch  # torch loads when a model is about to run, not when the engine is imported (2 s here)

    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("policy.device", "is cuda but no CUDA device is available here; use auto (CUDA when "
                                           "present, else CPU) or cpu")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Device("cuda", dtype)
    return Device("cpu", torch.float32)


def configure_cpu_threads() -> None:
    """One torch thread on a small shared CPU is many times faster for tiny models than oversubscribed threads."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("RLAIF_TORCH_THREADS", "1")))


def quiet_library_progress() -> None:
    """Library progress bars (weight loading, dataset maps) would interleave with ours; progress goes via callbacks."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()


@dataclass(frozen=True)
class Rendering:
    """How prompts and completions of one policy are written as training text: the template, and the whitespace
    moved from the end of the prompt to the start of every completion (see ``Policy.completion_prefix``)."""

    template: str
    prefix: str

    def prompt(self, prompt: str) -> str:
        """The prompt as the policy sees it, ending on a token boundary."""
        text = self.template.format(prompt=prompt)
        return text.rstrip() if self.prefix else text

    def completion(self, text: str) -> str:
        return self.prefix + text


@dataclass
class Policy:
    model: object
    tokenizer: object
    device: Device
    path: str
    prompt_template: str = "{prompt}"

    def render(self, prompt: str) -> str:
        """The prompt as the policy sees it, ending on a token boundary (see ``completion_prefix``)."""
        return self.rendering.prompt(prompt)

    @property
    def rendering(self) -> Rendering:
        return Rendering(self.prompt_template, self.completion_prefix)

    @property
    def completion_prefix(self) -> str:
        """Whitespace moved from the end of the prompt to the start of every completion, or "" when not needed.

        With GPT-2's byte-level BPE a trailing space merges into the next word (" SELECT"), so a prompt ending in a
        space is not a token prefix of prompt+completion: TRL would then train on a context the policy never sees at
        inference. Tokenizers that isolate whitespace have no such problem. Probe once and only move the whitespace
        when the template's end would merge with a completion.
        """
        if self._prefix is None:
            rendered = self.prompt_template.format(prompt="x")
            trailing = rendered[len(rendered.rstrip()):]
            ids = self.tokenizer(rendered, add_special_tokens=False)["input_ids"]
            merges = any(self.tokenizer(rendered + probe, add_special_tokens=False)["input_ids"][:len(ids)] != ids
                         for probe in ("SELECT", "the", "a", "word", "1"))
            self._prefix = trailing if (trailing and merges) else ""
        return self._prefix

    _prefix: str | None = None


def context_length(model) -> int | None:
    """The longest sequence the model's position table holds (GPT-2: n_positions; most others:
    max_position_embeddings); None when the config says neither."""
    cfg = getattr(model, "config", model)
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


def load_tokenizer(path: str | Path, gguf_file: str | None = None):
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(path: str | Path, *, device: str = "auto", prompt_template: str = "{prompt}",
                gguf_file: str | None = None) -> Policy:
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"policy model not found at {path}")
    dev = select_device(device)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dev.dtype, **kwargs)
    model.to(dev.name)
    model.eval()
    tok = load_tokenizer(path, gguf_file)
    return Policy(model, tok, dev, str(path), prompt_template)


@dataclass(frozen=True)
class Sample:
    prompt_index: int
    sample_index: int
    text: str
    temperature: float
    seed: int
    n_tokens: int


def ladder_seed(base_seed: int, iteration: int, sample_index: int, batch_index: int) -> int:
    """A seed per (iteration, sample slot, batch) so a batch's samples do not depend on other batches."""
    digest = hashlib.sha256(f"{base_seed}:{iteration}:{sample_index}:{batch_index}".encode()).hexdigest()
    return int(digest[:8], 16)


def _generate(policy: Policy, prompts: Sequence[str], *, max_new_tokens: int, temperature: float | None,
              top_p: float = 1.0) -> list[tuple[str, int]]:
    import torch

    tok, model = policy.tokenizer, policy.model
    tok.padding_side = "left"
    tok.truncation_side = "left"  # keep the end of an over-long prompt: it holds the instruction to answer
    limit = context_length(model)
    room = (limit - max_new_tokens) if limit else None
    if room is not None and room < 8:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a {limit}-token context")
    enc = tok([policy.render(p) for p in prompts], return_tensors="pt", padding=True,
              truncation=room is not None, max_length=room).to(policy.device.name)
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if temperature is None:
        kwargs.update(do_sample=False)
    else:
        kwargs.update(do_sample=True, temperature=float(temperature), top_p=top_p, top_k=0)
    with torch.no_grad():
        out = model.generate(**enc, **kwargs)
    new = out[:, enc["input_ids"].shape[1]:]
    results = []
    for row in new:
        ids = row.tolist()
        n = next((k for k, t in enumerate(ids) if t in (tok.eos_token_id, tok.pad_token_id)), len(ids))
        results.append((tok.decode(ids[:n], skip_special_tokens=True).strip(), n))
    return results


def sample_candidates(policy: Policy, prompts: Sequence[str], *, n: int, temperatures: Sequence[float],
                      seed: int, iteration: int, batch_size: int, max_new_tokens: int, top_p: float = 1.0,
                      on_batch: Callable[[int, int], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> list[list[Sample]]:
    """N samples per prompt; sample i uses temperatures[i % len] and a seed derived from (seed, iteration, i)."""
    import torch

    result: list[list[Sample]] = [[] for _ in prompts]
    batches = [list(range(s, min(s + batch_size, len(prompts)))) for s in range(0, len(prompts), batch_size)]
    total, done = n * len(batches), 0
    for i in range(n):
        temperature = float(temperatures[i % len(temperatures)])
        for b, idxs in enumerate(batches):
            if should_stop is not None and should_stop():
                raise InterruptedError("sampling cancelled")
            s = ladder_seed(seed, iteration, i, b)
            torch.manual_seed(s)
            outs = _generate(policy, [prompts[k] for k in idxs], max_new_tokens=max_new_tokens,
                             temperature=temperature, top_p=top_p)
            for k, (text, n_tok) in zip(idxs, outs):
                result[k].append(Sample(k, i, text, temperature, s, n_tok))
            done += 1
            if on_batch:
                on_batch(done, total)
    return result


def greedy(policy: Policy, prompts: Sequence[str], *, batch_size: int, max_new_tokens: int,
           on_batch: Callable[[int, int], None] | None = None) -> list[tuple[str, int]]:
    """Deterministic decoding for evaluation."""
    out: list[tuple[str, int]] = []
    total = (len(prompts) + batch_size - 1) // batch_size
    for b, s in enumerate(range(0, len(prompts), batch_size)):
        out.extend(_generate(policy, prompts[s:s + batch_size], max_new_tokens=max_new_tokens, temperature=None))
        if on_batch:
            on_batch(b + 1, total)
    return out


def model_hash(path: str | Path) -> str:
    """sha256 over the model's weight files (safetensors/bin/gguf), in name order: the model's identity."""
    path = Path(path)
    files = sorted(p for p in (path.iterdir() if path.is_dir() else [path])
                   if p.suffix in (".safetensors", ".bin", ".gguf"))
    if not files:
        raise FileNotFoundError(f"no weight files under {path}")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
