"""Judge cost: an editable price table, an estimate before a run, and the actual cost from the APIs' usage fields.

Why a table file and not constants: prices change more often than code, and a team may have negotiated ones. The
bundled ``prices.yaml`` is the default; ``RLAIF_PRICES`` or a judge's ``prices_path`` option names a file whose
entries override it. Tokens are estimated at ~4 characters each before a run; the real cost comes from ``usage``.

    est = estimate_cost(n_comparisons=600, prompt_tokens_est=900, output_tokens_est=150, model="claude-haiku-4-5")
    print(est)   # 600 calls x (900 in + 150 out) tokens on claude-haiku-4-5: ~$0.99

Batch APIs (Anthropic Message Batches, the OpenAI Batch API) bill the same tokens at a discount: the table's top-level
``batch_discount`` (0.5 = half price) applies to every model, and a model's own ``batch_discount`` overrides it.
``actual_cost(..., batch=True)`` and ``estimate_cost(..., batch=True)`` price at that rate.

A judge spec's estimate (``JudgeCost``) is asked of the judge kind itself (``rlaif.judges.registry``).
"""

from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

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
    batch_discount: float | None = None  # share taken off every rate in batch mode; None: the table's default


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


DEFAULT_BATCH_DISCOUNT = 0.5  # both providers' batch APIs cost half the online price (2025)


class PriceTable:
    def __init__(self, models: Mapping[str, ModelPrice], source: str = "<prices>",
                 batch_discount: float = DEFAULT_BATCH_DISCOUNT):
        self.models = dict(models)
        self.source = source
        self.batch_discount = batch_discount

    def batch_factor(self, model: str) -> float:
        """What a batch token costs relative to an online one (0.5 at a 50% discount)."""
        price = self.price(model)
        discount = price.batch_discount if price is not None and price.batch_discount is not None \
            else self.batch_discount
        return 1.0 - discount

    def price(self, model: str) -> ModelPrice | None:
        """The most specific entry whose key equals or (as a glob) matches ``model``; None when unknown."""
        if model in self.models:
            return self.models[model]
        matches = [k for k in self.models if fnmatch.fnmatchcase(model, k)]
        return self.models[max(matches, key=len)] if matches else None


def _discount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{where}: must be a share in [0, 1) (0.5 = half price), got {value!r}")
    return float(value)


def _parse_prices(data: Any, source: str) -> tuple[dict[str, ModelPrice], float | None]:
    """(models, the table's batch_discount or None when it sets none)."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ValueError(f"{source}: must be a mapping with a 'models' mapping")
    discount = _discount(data["batch_discount"], f"{source}: batch_discount") if "batch_discount" in data else None
    out = {}
    for name, entry in data["models"].items():
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry):
            raise ValueError(f"{source}: models.{name}: needs input and output prices (USD per million tokens)")
        unknown = set(entry) - {"input", "output", "cache_read", "cache_write", "cached_input", "batch_discount"}
        if unknown:
            raise ValueError(f"{source}: models.{name}: unknown field(s) {sorted(unknown)}")
        if "batch_discount" in entry:
            _discount(entry["batch_discount"], f"{source}: models.{name}.batch_discount")
        for field, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{source}: models.{name}.{field}: must be a number >= 0, got {value!r}")
        out[str(name)] = ModelPrice(**{k: float(v) for k, v in entry.items()})
    return out, discount


@lru_cache(maxsize=16)
def _load_file(path: str, mtime: float) -> tuple[dict[str, ModelPrice], float | None]:
    try:
        body = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:  # a config error, one line, on every face
        raise ValueError(f"price table {path}: not readable YAML ({str(err).splitlines()[0]})") from None
    return _parse_prices(body, path)


def load_price_table(override: str | Path | None = None) -> PriceTable:
    """The bundled table, overridden entry by entry by ``override`` or, failing that, ``$RLAIF_PRICES``."""
    bundled, discount = _load_file(str(DEFAULT_PRICES), DEFAULT_PRICES.stat().st_mtime)
    models = dict(bundled)
    override = override or os.environ.get(PRICES_ENV)
    source = str(DEFAULT_PRICES)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ValueError(f"price table {path} not found (judge option prices_path, or ${PRICES_ENV})")
        extra, extra_discount = _load_file(str(path), path.stat().st_mtime)
        models.update(extra)
        discount = extra_discount if extra_discount is not None else discount
        source = f"{DEFAULT_PRICES} + {path}"
    return PriceTable(models, source, DEFAULT_BATCH_DISCOUNT if discount is None else discount)


def estimate_tokens(text: str) -> int:
    """A provider-agnostic token estimate (~4 characters per token), for budgets and estimates before a call."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def actual_cost(usage: Usage | Mapping[str, int], model: str, table: PriceTable | None = None, *,
                batch: bool = False) -> float | None:
    """USD for one call from its usage (at the batch rate when ``batch``); None when the model has no price."""
    if not isinstance(usage, Usage):
        usage = Usage(**{k: int(v or 0) for k, v in usage.items()})
    table = table or load_price_table()
    price = table.price(model)
    if price is None:
        return None
    read = usage.cache_read_tokens
    write = usage.cache_write_tokens
    plain = max(0, usage.input_tokens - read - write)
    read_price = price.cache_read if price.cache_read is not None else (
        price.cached_input if price.cached_input is not None else price.input)
    write_price = price.cache_write if price.cache_write is not None else price.input
    usd = plain * price.input + read * read_price + write * write_price + usage.output_tokens * price.output
    return usd / 1_000_000 * (table.batch_factor(model) if batch else 1.0)


@dataclass(frozen=True)
class CostEstimate:
    model: str
    calls: int
    prompt_tokens: int
    output_tokens: int
    usd: float | None  # None: the model has no price in the table
    batch: bool = False  # priced at the batch rate

    def __str__(self) -> str:
        cost = f"~${self.usd:,.2f}" if self.usd is not None else "unknown (no price for this model)"
        rate = " at the batch rate" if self.batch else ""
        return (f"{self.calls} calls x ({self.prompt_tokens} in + {self.output_tokens} out) tokens "
                f"on {self.model}{rate}: {cost}")


def estimate_cost(n_comparisons: int, prompt_tokens_est: int, output_tokens_est: int, model: str,
                  table: PriceTable | None = None, *, batch: bool = False) -> CostEstimate:
    """Cost of ``n_comparisons`` judge calls of about the given size, before running them."""
    usd = actual_cost(Usage(prompt_tokens_est * n_comparisons, output_tokens_est * n_comparisons), model, table,
                      batch=batch)
    return CostEstimate(model, n_comparisons, prompt_tokens_est, output_tokens_est, usd, batch)


@dataclass(frozen=True)
class JudgeCost:
    """What a judge spec would cost, before anything is built: USD (None when some model has no price), one note per
    priced part, and whether the number is an upper bound (a cache with no hits, a tier escalating everything)."""

    usd: float | None
    notes: list[str]
    upper_bound: bool = False

    @classmethod
    def total(cls, parts: Iterable["JudgeCost"]) -> "JudgeCost":
        parts = list(parts)
        usd = None if any(p.usd is None for p in parts) else sum(p.usd for p in parts)  # type: ignore[misc]
        return cls(usd, [note for p in parts for note in p.notes], any(p.upper_bound for p in parts))

    @property
    def spends(self) -> bool:
        """Whether it may cost API money; an unknown price counts as spending."""
        return self.usd is None or self.usd > 0

    def __str__(self) -> str:
        bound = " (upper bound)" if self.upper_bound else ""
        total = f"~${self.usd:,.2f}{bound}" if self.usd is not None else "unknown"
        return f"{total}: " + "; ".join(self.notes)
