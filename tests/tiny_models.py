"""Tiny GPT-2 models built in-test (no weights shipped, no network): a byte-level BPE over a few SQL strings."""

from __future__ import annotations

from pathlib import Path

TEXTS = [
    "Question: total revenue West 2023\nSQL: SELECT SUM(revenue) FROM v_revenue_by_region WHERE region = 'West';",
    "Question: orders East 2022\nSQL: SELECT SUM(orders) FROM v_revenue_by_region WHERE year = 2022;",
]


def build_tiny_gpt2(path: Path, seed: int = 0, n_embd: int = 32) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(TEXTS * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=n_embd, n_layer=2, n_head=2, n_positions=96,
                                       bos_token_id=0, eos_token_id=0))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
