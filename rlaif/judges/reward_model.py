"""``judge: {name: reward_model}``: a distilled scalar reward model as a pairwise judge, the cheap first tier.

Why: an API judge costs money per comparison and a local LM judge a forward pass over a long prompt; a reward model
distilled from the anchors' labels (and another judge's stored verdicts) scores each candidate once, in
milliseconds. It answers the same question every judge answers: the winner is the side with the higher reward,
|r(A) - r(B)| up to ``tie_margin`` is a tie, and the confidence is the Bradley-Terry probability the model was
trained on, sigmoid(|r(A) - r(B)|): 0.5 for no margin, so ``tiered`` escalates exactly the pairs it cannot separate.
A reward model scores each side alone, so it has no position bias: ``debias`` would only double the work.

A verdict on a pair it was trained on measures memory, not agreement: such a pair (recognised by content, whatever
its order or item id) gets an ``invalid`` verdict unless ``judge_training_pairs``. So ``rlaif kappa`` on the tuning
split it learned from cannot pass the gate on recall; its honest number is the locked holdout's
(``--include-holdout``), and a loop's own prompts are unaffected.

Its identity is its weights: the judge id carries the model's hash, so a retrained model never reuses the verdicts
(cache, stored anchor verdicts) of an older one; ``describe()`` adds what it was trained on, from the
``distill.json`` that ``rlaif judge distill`` writes next to the model (anchor set, tuning-split hash, from-judge,
base model hash). Scoring a text with a reward model lives here (torch loads at the first score, not at import), so
training (``rlaif.reward_model``) and judging format and cut texts one way. Train one, then gate it like any judge:

    rlaif judge distill --anchor-set sample_data/harbor_sql/anchors.jsonl --out runs/rm-judge
    judge = make_judge("reward_model", options={"path": "runs/rm-judge"}); judge.compare(comparisons, rubric)
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from rlaif.core.fields import ConfigError, build_options, check, help_field
from rlaif.judges.base import Comparison, Judge, Verdict
from rlaif.model_source import resolve_source
from rlaif.policy import context_length, load_tokenizer, model_hash, quiet_library_progress, select_device
from rlaif.rubric import Rubric

# ---------------------------------------------------------------------------------------------------------------------
# scoring with a reward model (training, in rlaif.reward_model, scores with these too)

DISTILL_FILE = "distill.json"
#: How a (prompt, response) pair becomes one text, at training and at judging alike (recorded in ``distill.json``).
PROMPT_TEMPLATE = "Question: {prompt}\nAnswer: "


def render_prompt(prompt: str, template: str = PROMPT_TEMPLATE) -> str:
    return template.format(prompt=prompt)


def fit_response(tokenizer, prompt: str, response: str, max_length: int | None) -> str:
    """``response`` cut at its END so prompt + response + EOS fits ``max_length`` tokens (2 spare for re-tokenising).

    Why the end: TRL drops a pair longer than max_length, and a small base's context is short, so without this the
    pairs with long (commented, verbose) answers would silently never be trained on -- a length bias by omission;
    and scoring keeps a text's end, which would cut the question. The substance of an answer comes first; its
    explanation trails. Training and judging cut the same way."""
    if not max_length:
        return response
    budget = max_length - len(tokenizer(prompt)["input_ids"]) - 3
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if budget <= 0 or len(ids) <= budget:
        return response
    return tokenizer.decode(ids[:budget])


def pair_key(prompt: str, first: str, second: str) -> str:
    """A pair's identity whichever side won or came first: the judge recognises the pairs it was trained on."""
    return hashlib.sha256("\x1f".join((prompt, *sorted((first, second)))).encode("utf-8")).hexdigest()[:16]


def read_distill_metadata(path: str | Path) -> dict[str, Any]:
    """``distill.json`` of a distilled judge folder ({} for a reward model trained some other way)."""
    file = Path(path) / DISTILL_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def load_reward_model(path: str | Path, *, device: str = "auto", base: bool = False):
    """(model, tokenizer) for scoring; ``base=True`` loads a causal LM folder with a fresh one-output head."""
    from transformers import AutoModelForSequenceClassification

    quiet_library_progress()  # also silences "score.weight newly initialized", expected for a fresh head
    dev = select_device(device)
    kwargs = {"num_labels": 1} if base else {}
    src = resolve_source(path, field="reward model path")  # a folder or a cached hub id
    model = AutoModelForSequenceClassification.from_pretrained(src.folder, dtype=dev.dtype, **src.kwargs, **kwargs)
    if model.config.num_labels != 1:
        raise ValueError(f"{path}: a reward model has one output, this one has {model.config.num_labels}")
    tok = load_tokenizer(path)
    model.config.pad_token_id = tok.pad_token_id  # the head reads the last non-pad token
    model.to(dev.name)
    model.eval()
    return model, tok


def score_texts(model, tokenizer, prompts: Sequence[str], completions: Sequence[str], *, batch_size: int = 16,
                max_length: int | None = None) -> list[float]:
    """One reward per (prompt, completion), formatted as TRL trains: prompt + completion + EOS, right-padded."""
    import torch

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
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        scores.extend(float(v) for v in logits.squeeze(-1).float().cpu())
    return scores


# ---------------------------------------------------------------------------------------------------------------------
# the judge

_MODELS: dict[tuple[str, str], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


def _loaded(model_dir: str, device: str):
    """(model, tokenizer), loaded once per process per (folder, device)."""
    key = (model_dir, device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_reward_model(model_dir, device=device)
        return _MODELS[key]


def model_folder(path: str | Path) -> Path:
    """The model inside a distilled judge folder (``DIR/model``), or ``path`` itself when it is the model."""
    path = Path(path)
    return path / "model" if (path / "model" / "config.json").is_file() else path


@dataclass
class RewardModelJudgeOptions:
    path: str | None = help_field(
        "Folder written by `rlaif judge distill --out DIR` (or a reward model folder with a one-output head).", None)
    tie_margin: float = help_field("|r(A) - r(B)| up to this (in reward units) is a tie.", 0.0)
    device: str = help_field("cpu or cuda.", "cpu")
    batch_size: int = help_field("Texts per forward pass.", 16)
    max_length: int | None = help_field(
        "Longest prompt+response in tokens (the start is cut); default: what it was trained with.", None)
    judge_training_pairs: bool = help_field(
        "Judge the pairs it was trained on too (in-sample numbers); by default their verdicts are invalid.", False)

    def __post_init__(self):
        check(isinstance(self.path, str) and bool(self.path), "path",
              "is required: the folder `rlaif judge distill --out DIR` wrote")
        check(isinstance(self.tie_margin, (int, float)) and self.tie_margin >= 0, "tie_margin",
              f"must be >= 0, got {self.tie_margin!r}")
        check(self.device in ("cpu", "cuda"), "device", f"must be cpu or cuda, got {self.device!r}")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
              f"must be an integer >= 1, got {self.batch_size!r}")
        check(isinstance(self.judge_training_pairs, bool), "judge_training_pairs",
              f"must be true or false, got {self.judge_training_pairs!r}")
        check(self.max_length is None or (isinstance(self.max_length, int) and self.max_length > 8), "max_length",
              f"must be an integer > 8, got {self.max_length!r}")


class RewardModelJudge(Judge):
    trained_on_tuning = True  # the gate decides on the locked holdout (see Judge.trained_on_tuning)
    name = "reward_model"
    Options = RewardModelJudgeOptions
    reads_rubric_text = False
    rubric_reads = "nothing of the rubric: a trained reward model scores each answer"
    cache_by_default = False  # one short forward pass per side: cheaper than a cache lookup's bookkeeping

    def __init__(self, path: str | None = None, *, tie_margin: float = 0.0, device: str = "cpu",
                 batch_size: int = 16, max_length: int | None = None, judge_training_pairs: bool = False):
        given = locals()
        opts = build_options(RewardModelJudgeOptions, {f.name: given[f.name] for f in fields(RewardModelJudgeOptions)},
                             "judge.options")
        folder = Path(opts.path)
        model_dir = model_folder(folder)
        if not (model_dir / "config.json").is_file():
            raise ConfigError("judge.options.path", f"no reward model at {folder} (expected {folder}/model or a model "
                                                    f"folder); train one with `rlaif judge distill --out {folder}`")
        self.path, self.model_dir = str(folder), str(model_dir)
        self.tie_margin, self.device, self.batch_size = float(opts.tie_margin), opts.device, opts.batch_size
        self.metadata = read_distill_metadata(folder) or read_distill_metadata(model_dir.parent)
        self.max_length = opts.max_length or (self.metadata.get("config") or {}).get("max_length")
        self.prompt_template = self.metadata.get("prompt_template", PROMPT_TEMPLATE)
        self.judge_training_pairs = opts.judge_training_pairs
        self.trained_pairs = frozenset(self.metadata.get("train_pair_keys") or ())
        self.weights_hash = model_hash(model_dir)  # the identity: a retrained model is another judge
        self.judge_id = f"reward_model:{self.weights_hash[:12]}"

    def describe(self) -> dict[str, Any]:
        m = self.metadata
        trained_on = {k: m.get(k) for k in ("anchor_set_id", "annotators", "tuning_hash", "from_judge",
                                            "n_label_pairs", "n_judge_pairs", "base_model_hash")} if m else None
        return {"judge_id": self.judge_id, "kind": "reward_model", "weights_sha256": self.weights_hash,
                "tie_margin": self.tie_margin, "max_length": self.max_length, "prompt_template": self.prompt_template,
                "judge_training_pairs": self.judge_training_pairs, "trained_on": trained_on}

    def rewards(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """One scalar reward per (prompt, response), formatted as the model was trained."""
        model, tok = _loaded(self.model_dir, self.device)
        texts = [self.prompt_template.format(prompt=p) for p in prompts]
        fitted = [fit_response(tok, t, r, self.max_length) for t, r in zip(texts, responses)]
        return score_texts(model, tok, texts, fitted, batch_size=self.batch_size, max_length=self.max_length)

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        seen = [not self.judge_training_pairs and pair_key(c.prompt, c.a, c.b) in self.trained_pairs
                for c in comparisons]
        todo = [c for c, s in zip(comparisons, seen) if not s]
        t0 = time.perf_counter()
        prompts = [c.prompt for c in todo]
        scores = self.rewards(prompts + prompts, [c.a for c in todo] + [c.b for c in todo]) if todo else []
        latency = (time.perf_counter() - t0) * 1000.0 / max(1, len(todo))
        fresh = iter(zip(scores[:len(todo)], scores[len(todo):]))
        return [Verdict.invalid(self.judge_id, "trained on this pair: a verdict on it measures memory, not agreement "
                                "(judge_training_pairs: true to judge it anyway)") if s
                else self.verdict(*next(fresh), latency) for s in seen]

    def verdict(self, reward_a: float, reward_b: float, latency_ms: float = 0.0) -> Verdict:
        """The verdict of two rewards: higher wins, within ``tie_margin`` a tie; confidence sigmoid(|margin|)."""
        if not (math.isfinite(reward_a) and math.isfinite(reward_b)):
            return Verdict.invalid(self.judge_id, f"non-finite reward (A {reward_a}, B {reward_b})")
        diff = reward_a - reward_b
        p_a = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, diff))))
        criteria = {"reward": {"a": reward_a, "b": reward_b}, "label_probability": {"a": p_a, "b": 1.0 - p_a}}
        rationale = f"reward A {reward_a:.3f}, B {reward_b:.3f} (margin {diff:+.3f})"
        winner = "tie" if abs(diff) <= self.tie_margin else ("a" if diff > 0 else "b")
        return Verdict(winner, max(p_a, 1.0 - p_a), rationale, criteria, raw_reply=rationale, latency_ms=latency_ms,
                       judge_id=self.judge_id)
