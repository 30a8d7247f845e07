"""Judge cost: an editable price table, an estimate before a run, and the actual cost from the APIs' usage fields.

Why a table file and not constants: prices change more often than code, and a team may have negotiated ones. The
bundled ``prices.yaml`` is the default; ``RLAIF_PRICES`` or a judge's ``prices_path`` option names a file whose
entries override it. Tokens are estimated at ~4 characters each before a run; the real cost comes from ``usage``.

    est = estimate_cost(n_comparisons=600, prompt_tokens_est=900, output_tokens_est=150, model="claude-haiku-4-5")
    print(est)   # 600 calls x (900 in + 150 out) tokens on claude-haiku-4-5: ~$0.99
"""

from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")
PRICES_ENV = "RLAIF_PRICES"
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None  # Anthropic: tokens read from the prompt cache
    cache_write: float | None = None  # Anthropic: tokens written to the prompt cache
    cached_input: float | None = None  # OpenAI: the cached share of prompt_tokens


@dataclass(frozen=True)
class Usage:
    """Token counts as the APIs report them.

    ``input_tokens`` counts every prompt token; ``cache_read_tokens`` / ``cache_write_tokens`` say how many of them
    were read from / written to a prompt cache (they are priced differently).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class PriceTable:
    def __init__(self, models: Mapping[str, ModelPrice], source: str = "<prices>"):
        self.models = dict(models)
        self.source = source

    def price(self, model: str) -> ModelPrice | None:
        """The most specific entry whose key equals or (as a glob) matches ``model``; None when unknown."""
        if model in self.models:
            return self.models[model]
        matches = [k for k in self.models if fnmatch.fnmatchcase(model, k)]
        return self.models[max(matches, key=len)] if matches else None


def _parse_prices(data: Any, source: str) -> dict[str, ModelPrice]:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ValueError(f"{source}: must be a mapping with a 'models' mapping")
    out = {}
    for name, entry in data["models"].items():
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry):
            raise ValueError(f"{source}: models.{name}: needs input and output prices (USD per million tokens)")
        unknown = set(entry) - {"input", "output", "cache_read", "cache_write", "cached_input"}
        if unknown:
            raise ValueError(f"{source}: models.{name}: unknown field(s) {sorted(unknown)}")
        for field, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{source}: models.{name}.{field}: must be a number >= 0, got {value!r}")
        out[str(name)] = ModelPrice(**{k: float(v) for k, v in entry.items()})
    return out


@lru_cache(maxsize=16)
def _load_file(path: str, mtime: float) -> dict[str, ModelPrice]:
    return _parse_prices(yaml.safe_load(Path(path).read_text(encoding="utf-8")), path)


def load_price_table(override: str | Path | None = None) -> PriceTable:
    """The bundled table, overridden entry by entry by ``override`` or, failing that, ``$RLAIF_PRICES``."""
    models = dict(_load_file(str(DEFAULT_PRICES), DEFAULT_PRICES.stat().st_mtime))
    override = override or os.environ.get(PRICES_ENV)
    source = str(DEFAULT_PRICES)
    if override:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"price table {path} not found")
        models.update(_load_file(str(path), path.stat().st_mtime))
        source = f"{DEFAULT_PRICES} + {path}"
    return PriceTable(models, source)


def estimate_tokens(text: str) -> int:
    """A provider-agnostic token estimate (~4 characters per token), for budgets and estimates before a call."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def actual_cost(usage: Usage | Mapping[str, int], model: str, table: PriceTable | None = None) -> float | None:
    """USD for one call from its usage; None when the model has no price."""
    if not isinstance(usage, Usage):
        usage = Usage(**{k: int(v or 0) for k, v in usage.items()})
    price = (table or load_price_table()).price(model)
    if price is None:
        return None
    read = usage.cache_read_tokens
    write = usage.cache_write_tokens
    plain = max(0, usage.input_tokens - read - write)
    read_price = price.cache_read if price.cache_read is not None else (
        price.cached_input if price.cached_input is not None else price.input)
    write_price = price.cache_write if price.cache_write is not None else price.input
    usd = plain * price.input + read * read_price + write * write_price + usage.output_tokens * price.output
    return usd / 1_000_000


@dataclass(frozen=True)
class CostEstimate:
    model: str
    calls: int
    prompt_tokens: int
    output_tokens: int
    usd: float | None  # None: the model has no price in the table

    def __str__(self) -> str:
        cost = f"~${self.usd:,.2f}" if self.usd is not None else "unknown (no price for this model)"
        return (f"{self.calls} calls x ({self.prompt_tokens} in + {self.output_tokens} out) tokens "
                f"on {self.model}: {cost}")


def estimate_cost(n_comparisons: int, prompt_tokens_est: int, output_tokens_est: int, model: str,
                  table: PriceTable | None = None) -> CostEstimate:
    """Cost of ``n_comparisons`` judge calls of about the given size, before running them."""
    usd = actual_cost(Usage(prompt_tokens_est * n_comparisons, output_tokens_est * n_comparisons), model, table)
    return CostEstimate(model, n_comparisons, prompt_tokens_est, output_tokens_est, usd)


def cost_of_judge(judge, n_comparisons: int, prompt_tokens_est: int,
                  output_tokens_est: int | None = None) -> float | None:
    """USD for ``n_comparisons`` through a built judge (combinators multiply: both orders x2, ensembles sum, tiers add).

    Judges without an ``estimate_cost`` method (stub, verifier, local) cost nothing. None when a price is unknown.
    """
    method = getattr(judge, "estimate_cost", None)
    if method is None:
        return 0.0
    return method(n_comparisons, prompt_tokens_est, output_tokens_est)


def estimate_prompt_tokens(rubric=None, prompt_chars: int = 300, candidate_chars: int = 300) -> int:
    """Tokens of one rubric-judge prompt for candidates of about the given size (rendered, then estimated)."""
    from rlaif.judges.base import Comparison
    from rlaif.judges.prompting import render_judge_prompt
    from rlaif.rubric import DEFAULT_RUBRIC

    c = Comparison("x" * prompt_chars, "y" * candidate_chars, "z" * candidate_chars)
    return estimate_tokens(render_judge_prompt(c, rubric or DEFAULT_RUBRIC).text)


def estimate_spec_cost(name: str, options: dict[str, Any] | None, n_comparisons: int, prompt_tokens_est: int,
                       output_tokens_est: int | None = None,
                       table: PriceTable | None = None) -> tuple[float | None, list[str]]:
    """(USD or None, notes) for a judge spec (name + options, as in the config), without building the judge.

    No API key is needed. Upper bounds where the real number depends on verdicts: a tiered judge escalating
    everything, a cache with no hits, verifier-first pruning nothing.
    """
    from rlaif.judges.registry import split_options, sub_spec

    base, wrappers = split_options(options)
    n = n_comparisons * (2 if wrappers.get("debias") else 1)
    if name in ("anthropic", "openai"):
        model = base.get("model", "?")
        out = output_tokens_est if output_tokens_est is not None else int(base.get("expected_output_tokens", 200))
        tbl = table or load_price_table(base.get("prices_path"))
        usd = actual_cost(Usage(prompt_tokens_est * n, out * n), model, tbl)
        if usd is None:
            return None, [f"{name}:{model}: no price in {tbl.source}"]
        return usd, [f"{name}:{model}: {n} calls x ({prompt_tokens_est} in + {out} out) tokens ~${usd:,.2f}"]
    if name == "ensemble":
        parts = [estimate_spec_cost(*sub_spec(m, "ensemble.judges"), n, prompt_tokens_est, output_tokens_est, table)
                 for m in base.get("judges") or []]
    elif name == "tiered":
        parts = [estimate_spec_cost(*sub_spec(base[k], f"tiered.{k}"), n, prompt_tokens_est, output_tokens_est, table)
                 for k in ("cheap", "expensive") if k in base]
    else:  # stub, biased, verifier, local: no API money
        return 0.0, [f"{name}: runs locally, no API cost"]
    notes = [note for _, ns in parts for note in ns]
    if any(usd is None for usd, _ in parts):
        return None, notes
    return sum(usd for usd, _ in parts), notes


def estimate_judge_cost(cfg, n_comparisons: int, *, prompt_tokens_est: int | None = None,
                        output_tokens_est: int | None = None) -> tuple[float | None, str]:
    """(USD or None, a one-line note) for ``n_comparisons`` by the run config's judge, before the run.

    ``cfg`` is a RunConfig (its ``judge`` spec and ``rubric``); the prompt size defaults to the rendered rubric prompt
    with ~300-character prompts and candidates.
    """
    if prompt_tokens_est is None:
        rubric = None
        if getattr(cfg, "rubric", None):
            from rlaif.rubric import load_rubric

            rubric = load_rubric(cfg.resolve(cfg.rubric))
        prompt_tokens_est = estimate_prompt_tokens(rubric)
    usd, notes = estimate_spec_cost(cfg.judge.name, cfg.judge.options, n_comparisons, prompt_tokens_est,
                                    output_tokens_est)
    bound = " (upper bound)" if cfg.judge.name == "tiered" or (cfg.judge.options or {}).get("cache") else ""
    total = f"~${usd:,.2f}{bound}" if usd is not None else "unknown"
    return usd, f"{total}: " + "; ".join(notes)
