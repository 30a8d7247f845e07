"""The tiny sample-policy builder (reduced size) and the committed sample policy."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif.sample_prompts import SAMPLE_DIR, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
POLICY = SAMPLE_DIR / "policy"
PROMPT_TEMPLATE = "Question: {prompt}\nSQL: "


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_sample_policy.py"), "--small", "--quiet", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "build_info.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def small_builds(tmp_path_factory):
    base = tmp_path_factory.mktemp("sample_policy")
    a, b = base / "a", base / "b"
    return (a, _build(a)), (b, _build(b))


def test_small_build_loads(small_builds):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    (out, info), _ = small_builds
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert (out / "model.safetensors").exists()
    assert info["steps"] == 30
    assert info["model"]["params"] == sum(p.numel() for p in model.parameters())
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert tok.eos_token_id != tok.pad_token_id
    assert model.config.eos_token_id == tok.eos_token_id
    assert info["train_sha256"] == _sha(SAMPLE_DIR / "train.jsonl")


def test_small_build_is_deterministic(small_builds):
    (a, info_a), (b, info_b) = small_builds
    assert info_a["weights_sha256"] == info_b["weights_sha256"]
    assert info_a["loss"] == info_b["loss"]
    for name in ("model.safetensors", "tokenizer.json", "config.json", "build_info.json"):
        assert _sha(a / name) == _sha(b / name), name


def test_small_build_loss_decreases(small_builds):
    (_, info), _ = small_builds
    loss = info["loss"]
    assert loss["last_window_mean"] < loss["first_window_mean"] * 0.8
    assert loss["last"] < loss["first"]


def test_small_tokenizer_round_trips_sql(small_builds):
    from transformers import AutoTokenizer

    (out, _), _ = small_builds
    tok = AutoTokenizer.from_pretrained(out)
    for r in read_jsonl(SAMPLE_DIR / "eval.jsonl")[:20]:
        ids = tok(r["reference"], add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == r["reference"]


def _check_prefix_property(tok, rows):
    """tokens(prompt) + tokens(completion + eos) == tokens(prompt + completion + eos) (TRL DPO relies on it)."""
    for r in rows:
        p = PROMPT_TEMPLATE.format(prompt=r["prompt"])
        c = r["reference"] + tok.eos_token
        assert tok(p)["input_ids"] + tok(c)["input_ids"] == tok(p + c)["input_ids"], r
        assert tok(c)["input_ids"][-1] == tok.eos_token_id


def test_committed_policy_loads_and_generates():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(POLICY).eval()
    tok = AutoTokenizer.from_pretrained(POLICY)
    info = json.loads((POLICY / "build_info.json").read_text(encoding="utf-8"))
    assert info["train_sha256"] == _sha(SAMPLE_DIR / "train.jsonl"), "policy is stale: rebuild it"
    assert info["prompt_template"] == PROMPT_TEMPLATE
    assert 500_000 <= info["model"]["params"] <= 2_000_000
    assert sum(f.stat().st_size for f in POLICY.iterdir()) < 8 * 1024 * 1024

    rows = read_jsonl(SAMPLE_DIR / "eval.jsonl")[:4]
    _check_prefix_property(tok, rows)
    tok.padding_side = "left"
    enc = tok([PROMPT_TEMPLATE.format(prompt=r["prompt"]) for r in rows], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=64,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(texts) == 4
    assert all(t.startswith("SELECT ") for t in texts), texts
    assert sum(t.rstrip().endswith(";") for t in texts) >= 2, texts


def _padding(lengths, batches):
    return sum(max(lengths[k] for k in b) - lengths[k] for b in batches for k in b)


def test_length_sorted_batching_cuts_padding_and_keeps_prompt_order():
    """Sorting by token length must cut padding, return results in prompt order, and leave the default ladder (the
    seeds the recorded runs were made with) exactly as it was."""
    from rlaif.policy import _batches, greedy, ladder_seed, load_policy, sample_candidates

    policy = load_policy(POLICY, device="cpu", prompt_template=PROMPT_TEMPLATE)
    prompts = [r["prompt"] for r in read_jsonl(SAMPLE_DIR / "eval.jsonl")[:12]]
    lengths = [len(policy.tokenizer(policy.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    plain, ordered = _batches(policy, prompts, 4, False), _batches(policy, prompts, 4, True)
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert sorted(k for b in ordered for k in b) == list(range(12))
    assert [lengths[k] for b in ordered for k in b] == sorted(lengths)
    assert _padding(lengths, ordered) < _padding(lengths, plain)

    assert greedy(policy, prompts, batch_size=4, max_new_tokens=24, length_sorted=True) == \
        greedy(policy, prompts, batch_size=4, max_new_tokens=24)  # same answers, back in prompt order

    kw = dict(n=2, temperatures=[0.7, 1.0], seed=3, iteration=1, batch_size=4, max_new_tokens=12)
    default = sample_candidates(policy, prompts, **kw)
    assert [[s.seed for s in row] for row in default] == [[ladder_seed(3, 1, i, k // 4) for i in range(2)]
                                                          for k in range(12)]
    first = sample_candidates(policy, prompts, **kw, length_sorted=True)
    assert first == sample_candidates(policy, prompts, **kw, length_sorted=True)  # reproducible
    assert all(s.prompt_index == k for k, row in enumerate(first) for s in row)
