"""Policy loading and batched generation: N candidates per prompt over a temperature/seed ladder.

Why a ladder: candidates from one temperature are too alike for a judge to rank; spreading them over temperatures
(and recording each candidate's temperature and seed) gives contrast and keeps every sample reproducible.
Models load from a folder, a .gguf file or a hub id resolved to its local HF cache snapshot (``rlaif.model_source``),
always with ``local_files_only``, so nothing is downloaded at load time.

    policy = load_policy("sample_data/harbor_sql/policy"); cands = sample_candidates(policy, prompts, cfg, seed=0)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rlaif.core.fields import ConfigError
from rlaif.model_source import ModelSource, resolve_source


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
    """How prompts and completions of one policy are written, for generation and as training text: the one place.

    plain: ``template`` plus the whitespace moved from the end of the prompt to the start of every completion (see
    ``Policy.completion_prefix``). chat: the tokenizer's own chat template over an optional system message and the
    user prompt, so the policy sees what it was instruction-tuned on; pairs then stay raw text in the store and
    become TRL's conversational rows (``trl_row``), which TRL renders with the same template.
    """

    template: str
    prefix: str
    chat: bool = False
    system_prompt: str | None = None
    tokenizer: object = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.chat and self.tokenizer is not None and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError("policy.prompt_format", "is chat but the policy's tokenizer has no chat template; "
                                                      "use plain with a prompt_template")

    @classmethod
    def of_config(cls, policy_cfg) -> "Rendering":
        """Without a tokenizer: enough to write stored pairs as TRL rows (training, export), not to render text."""
        return cls(policy_cfg.prompt_template, "", policy_cfg.prompt_format == "chat", policy_cfg.system_prompt)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []
        return [*system, {"role": "user", "content": prompt}]

    def prompt(self, prompt: str) -> str:
        """The prompt as the policy sees it, ending on a token boundary (chat: ending on the assistant's turn)."""
        if self.chat:
            if self.tokenizer is None:
                raise ValueError("a chat rendering needs the policy's tokenizer to render text")
            return self.tokenizer.apply_chat_template(self.messages(prompt), tokenize=False,
                                                      add_generation_prompt=True)
        text = self.template.format(prompt=prompt)
        return text.rstrip() if self.prefix else text

    def pair_prompt(self, prompt: str) -> str:
        """A pair row's prompt as the store keeps it: the rendered text (plain), the user's prompt (chat)."""
        return prompt if self.chat else self.prompt(prompt)

    def completion(self, text: str) -> str:
        return text if self.chat else self.prefix + text

    def trl_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A stored pair (prompt, chosen, rejected) as TRL trains on it: strings (plain) or conversational."""
        if not self.chat:
            return {k: row[k] for k in ("prompt", "chosen", "rejected")}
        return {"prompt": self.messages(row["prompt"]),
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}]}

    def template_hash(self) -> str | None:
        """sha256 of the chat template in use (chat mode with a tokenizer), else None: for manifests."""
        if not self.chat or self.tokenizer is None:
            return None
        return hashlib.sha256(str(self.tokenizer.chat_template).encode()).hexdigest()


@dataclass
class Policy:
    model: object
    tokenizer: object
    device: Device
    path: str
    prompt_template: str = "{prompt}"
    prompt_format: str = "plain"  # or "chat": see Rendering
    system_prompt: str | None = None

    def render(self, prompt: str) -> str:
        """The prompt as the policy sees it, ending on a token boundary (see ``completion_prefix``)."""
        return self.rendering.prompt(prompt)

    @property
    def rendering(self) -> Rendering:
        if self.prompt_format == "chat":
            return Rendering(self.prompt_template, "", True, self.system_prompt, self.tokenizer)
        return Rendering(self.prompt_template, self.completion_prefix)

    @property
    def completion_prefix(self) -> str:
        """Whitespace moved from the end of the prompt to the start of every completion, or "" when not needed.

        With GPT-2's byte-level BPE a trailing space merges into the next word (" SELECT"), so a prompt ending in a
        space is not a token prefix of prompt+completion: TRL would then train on a context the policy never sees at
        inference. Tokenizers that isolate whitespace have no such problem. Probe once and only move the whitespace
        when the template's end would merge with a completion. Chat mode: always "" (the chat template ends the
        prompt on the assistant's turn, and TRL writes the completion as the assistant's message).
        """
        if self.prompt_format == "chat":
            return ""
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


def load_tokenizer(path: str | Path | ModelSource, gguf_file: str | None = None):
    """The tokenizer of a folder, .gguf file or hub id (``rlaif.model_source``), with a pad token."""
    from transformers import AutoTokenizer

    src = path if isinstance(path, ModelSource) else resolve_source(path, gguf_file=gguf_file, field="model path")
    tok = AutoTokenizer.from_pretrained(src.folder, **src.kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(path: str | Path, *, device: str = "auto", prompt_template: str = "{prompt}",
                gguf_file: str | None = None, revision: str | None = None) -> Policy:
    """A policy from a folder, a .gguf file or a hub id (offline: from the HF cache only; see ``model_source``)."""
    from transformers import AutoModelForCausalLM

    src = resolve_source(path, gguf_file=gguf_file, revision=revision, field="policy.path")
    dev = select_device(device)
    model = AutoModelForCausalLM.from_pretrained(src.folder, dtype=dev.dtype, **src.kwargs)
    model.to(dev.name)
    model.eval()
    tok = load_tokenizer(src)
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
        out = _cuda_generate(model, enc, kwargs) if policy.device.name == "cuda" else model.generate(**enc, **kwargs)
    new = out[:, enc["input_ids"].shape[1]:]
    results = []
    for row in new:
        ids = row.tolist()
        n = next((k for k, t in enumerate(ids) if t in (tok.eos_token_id, tok.pad_token_id)), len(ids))
        results.append((tok.decode(ids[:n], skip_special_tokens=True).strip(), n))
    return results


def _batches(policy: Policy, prompts: Sequence[str], batch_size: int, length_sorted: bool) -> list[list[int]]:
    """Prompt indices per batch: in order, or (``length_sorted``) grouped by rendered token length to cut padding.

    Why sorting is opt-in: a batch shares one seeded RNG stream, so regrouping prompts changes which random numbers
    each row draws — sorted sampling is as reproducible but not identical to the unsorted ladder the loop's recorded
    runs (and the sample run's 0.35 / 0.43 execution accuracy) were made with. Results stay in prompt order.
    """
    order = list(range(len(prompts)))
    if length_sorted:
        lengths = [len(policy.tokenizer(policy.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
        order.sort(key=lambda k: lengths[k])  # stable: equal lengths keep their prompt order
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def sample_candidates(policy: Policy, prompts: Sequence[str], *, n: int, temperatures: Sequence[float],
                      seed: int, iteration: int, batch_size: int, max_new_tokens: int, top_p: float = 1.0,
                      on_batch: Callable[[int, int], None] | None = None,
                      should_stop: Callable[[], bool] | None = None, length_sorted: bool = False) -> list[list[Sample]]:
    """N samples per prompt; sample i uses temperatures[i % len] and a seed derived from (seed, iteration, i, batch).

    ``length_sorted`` batches prompts of similar length together (see ``_batches``); results keep prompt order.
    """
    import torch

    result: list[list[Sample]] = [[] for _ in prompts]
    batches = _batches(policy, prompts, cuda_batch_size(policy, batch_size, max_new_tokens, prompts), length_sorted)
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
           on_batch: Callable[[int, int], None] | None = None, length_sorted: bool = False) -> list[tuple[str, int]]:
    """Deterministic decoding for evaluation, returned in prompt order (``length_sorted``: see ``_batches``)."""
    out: list[tuple[str, int] | None] = [None] * len(prompts)
    batches = _batches(policy, prompts, cuda_batch_size(policy, batch_size, max_new_tokens, prompts), length_sorted)
    for b, idxs in enumerate(batches):
        outs = _generate(policy, [prompts[k] for k in idxs], max_new_tokens=max_new_tokens, temperature=None)
        for k, o in zip(idxs, outs):
            out[k] = o
        if on_batch:
            on_batch(b + 1, len(batches))
    return out  # type: ignore[return-value]  # every slot is filled


# ---------------------------------------------------------------------------------------------------------------------
# CUDA only. UNTESTED ON GPU: no GPU was available when this was written; CPU runs never enter these paths.


def cuda_batch_size(policy: Policy, requested: int, max_new_tokens: int, prompts: Sequence[str]) -> int:
    """``requested`` on CPU; on CUDA, at most what free memory holds: the KV cache of one row is
    2 (K and V) x layers x hidden x bytes per value x (prompt + new tokens), and half the free memory is kept spare
    for activations and the allocator. Never below 1. (Untested on GPU.)"""
    if policy.device.name != "cuda" or not prompts:
        return requested
    import torch

    cfg = policy.model.config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 0)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 0)
    kv_heads, heads = getattr(cfg, "num_key_value_heads", None), getattr(cfg, "num_attention_heads", None)
    if kv_heads and heads:
        hidden = hidden * kv_heads // heads  # grouped-query attention stores fewer K/V heads
    longest = max(len(policy.tokenizer(policy.render(p), add_special_tokens=False)["input_ids"]) for p in prompts)
    per_row = 2 * layers * hidden * torch.finfo(policy.device.dtype).bits // 8 * (longest + max_new_tokens)
    free, _total = torch.cuda.mem_get_info()
    return max(1, min(requested, int(free * 0.5 // max(per_row, 1))))


_STATIC_CACHE_BROKEN: set[int] = set()  # models whose static-cache generate failed once: dynamic cache from then on


def _cuda_generate(model, enc, kwargs):
    """generate() with a static KV cache and a compiled forward (transformers' ``cache_implementation="static"``),
    falling back to the plain dynamic cache once if this transformers/model pair does not support it.
    Opt-in (``RLAIF_STATIC_CACHE=1``) until it has been measured on a GPU: batches of varying shape may recompile,
    and the dynamic-cache path is the one the H200 run of the sample loop measured. (Untested on GPU.)"""
    import torch

    if not torch.cuda.is_available() or os.environ.get("RLAIF_STATIC_CACHE", "0") != "1" \
            or id(model) in _STATIC_CACHE_BROKEN or not getattr(model, "_supports_static_cache", True):
        return model.generate(**enc, **kwargs)
    try:
        # with a static cache on CUDA, transformers (>= 4.5x) compiles the decoding step itself (auto-compile)
        return model.generate(**enc, **kwargs, cache_implementation="static")
    except Exception as err:  # noqa: BLE001 - an unsupported combination must not stop a run; say so once
        import logging

        logging.getLogger(__name__).warning("static KV cache unavailable (%s); using the dynamic cache", err)
        _STATIC_CACHE_BROKEN.add(id(model))
        return model.generate(**enc, **kwargs)


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
