"""The rubric LLM judge over the Anthropic Messages API and OpenAI-compatible Chat Completions (the SDK adapters and
the settings are in ``llm_api``).

Why our own retry loop: the SDKs retry quietly (``max_retries=2`` by default), so a run could not say how many calls
it really made or honour one shared back-off. The SDK clients are built with ``max_retries=0`` and every retry here
is counted: 429, 408/409, 5xx, timeouts and connection errors back off exponentially with seeded jitter, and a
``retry-after`` header is honoured (and pauses the whole judge, not just one thread). Anything else fails that one
comparison as ``invalid``, never the run.

Why reservations for the budget: with 16 calls in flight, "stop when spent >= cap" overshoots by 16 calls. Each call
reserves its worst-case cost (generous prompt-token estimate, ``max_tokens`` out) before it is sent; when the next
reservation does not fit, judging stops cleanly and every remaining comparison is ``invalid`` ("budget exhausted").

Why a batch mode (``mode: batch``): the providers' batch APIs bill half the price and answer within 24 hours, which
suits a loop that judges thousands of pairs per stage. ``compare`` then sends all its comparisons as one batch (per
chunk of the provider's limits) through ``rlaif.judges.batches``, which keeps every submitted batch in the store so a
killed run resumes it. The budget check covers the whole batch before anything is submitted.

API keys come from the environment only (``api_key_env`` names the variable) and never reach ``describe()``, a
verdict, an exception message or a log line.

    judge = AnthropicJudge(LLMJudgeSettings(model="claude-haiku-4-5", concurrency=16, budget_usd=5))
    verdicts = judge.compare(comparisons, rubric); judge.stats.to_dict()
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from rlaif.core.fields import ConfigError
from rlaif.judges.base import BuildContext, Comparison, Judge, JudgeStats, NestedSpec, Verdict
from rlaif.judges.batches.runner import BatchJudging
from rlaif.judges.llm_api import (
    AnthropicClient,
    ChatClient,
    ClientReply,
    LLMJudgeSettings,
    OpenAIClient,
    verdict_label_confidence,
)
from rlaif.judges.pricing import JudgeCost, ModelPrice, PriceTable, Usage, actual_cost, estimate_cost, load_price_table
from rlaif.judges.prompting import TEMPLATE_VERSION, JudgePrompt, parse_judge_reply, render_judge_prompt
from rlaif.rubric import Rubric
from store.secrets_guard import redact_secrets

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------------
# throughput and safety


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart; ``pause`` holds every thread (a 429's retry-after)."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


class Budget:
    """Spend cap with reservations, so concurrent calls cannot overshoot it."""

    def __init__(self, limit_usd: float | None):
        self.limit = limit_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.exhausted = False
        self._lock = threading.Lock()

    def reserve(self, usd: float) -> bool:
        with self._lock:
            if self.exhausted:
                return False
            if self.limit is not None and self.spent + self.reserved + usd > self.limit:
                self.exhausted = True
                return False
            self.reserved += usd
            return True

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            self.reserved -= reserved
            self.spent += actual


# ---------------------------------------------------------------------------------------------------------------------
# the judge


class RubricLLMJudge(Judge):
    """Rubric/constitution judge over any ChatClient: concurrent, rate-limited, retried, budgeted, priced."""

    def __init__(self, client: ChatClient, settings: LLMJudgeSettings, prices: PriceTable | None = None,
                 store: Any = None, on_progress: Callable[[str], None] | None = None):
        """``store`` keeps batch mode's submitted batches and fills the judge cache (required in batch mode);
        ``on_progress`` gets batch mode's progress lines (else they are logged)."""
        self.client = client
        self.settings = settings
        self.judge_id = f"{client.provider}:{settings.model}"
        self.prices = prices or load_price_table(settings.prices_path)
        self.price: ModelPrice | None = self.prices.price(settings.model)
        if settings.budget_usd is not None and self.price is None:
            raise ConfigError("judge.options.budget_usd", f"no price for model {settings.model!r} in "
                              f"{self.prices.source}; add one (USD per million tokens) or drop the budget")
        self.limiter = RateLimiter(settings.rpm)
        self.budget = Budget(settings.budget_usd)
        self.stats = JudgeStats(comparisons=0, requests=0, retries=0, invalid=0, parse_failures=0, errors=0,
                                budget_exhausted=0, tokens_in=0, tokens_out=0, cost_usd=0.0)
        self._rng = random.Random(settings.seed)
        self._rng_lock = threading.Lock()
        self.on_progress = on_progress
        self.batches: BatchJudging | None = None
        if settings.mode == "batch":
            if store is None:
                raise ConfigError("judge.options.mode", "batch needs the store: it keeps every submitted batch so "
                                                        "a killed run resumes it instead of paying twice")
            self.batches = BatchJudging(self, store)
            self.batches_calls = True

    # ---- identity

    def describe(self) -> dict[str, Any]:
        """Everything that shapes a verdict (cache key, manifests); throughput knobs and the key are left out."""
        s = self.settings
        described = {"judge_id": self.judge_id, "kind": "rubric_llm", "provider": self.client.provider,
                     "model": s.model, "base_url": public_url(s.base_url),
                     "temperature": s.temperature if self.client.supports_temperature else None,
                     "max_tokens": s.max_tokens, "json_mode": s.json_mode, "template_version": TEMPLATE_VERSION}
        if s.logprobs and self.client.supports_logprobs:  # only when on: every other cache key stays as it was
            described["logprobs"] = True
        return described

    @property
    def budget_exhausted(self) -> bool:
        return self.budget.exhausted

    def render(self, comparison: Comparison, rubric: Rubric) -> JudgePrompt:
        return render_judge_prompt(comparison, rubric)

    # ---- judging

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        if not comparisons:
            return []
        if self.batches is not None:
            return self.batches.compare(comparisons, rubric)
        prompts = [self.render(c, rubric) for c in comparisons]
        workers = min(self.settings.concurrency, len(prompts))
        if workers == 1:
            return [self._judge_one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
            return list(pool.map(self._judge_one, prompts))

    def worst_case_cost(self, prompt: JudgePrompt) -> float:
        """What one call may cost at most (in this judge's mode), reserved against the budget before it is sent."""
        if self.price is None:
            return 0.0
        tokens_in = math.ceil(len(prompt.text) / 3.0)  # generous: real tokenizers average ~4 chars per token
        return actual_cost(Usage(tokens_in, self.settings.max_tokens), self.settings.model, self.prices,
                           batch=self.settings.mode == "batch") or 0.0

    def backoff_s(self, attempt: int) -> float:
        s = self.settings
        ceiling = min(s.backoff_max_s, s.backoff_base_s * (2 ** attempt))
        with self._rng_lock:
            jitter = self._rng.random()
        return ceiling / 2 + jitter * ceiling / 2  # "equal jitter": never less than half the back-off

    def _judge_one(self, prompt: JudgePrompt) -> Verdict:
        self.stats.add(comparisons=1)
        reserved = self.worst_case_cost(prompt)
        if not self.budget.reserve(reserved):
            if self.stats.budget_exhausted == 0:
                log.warning("%s: budget of $%.2f reached ($%.4f spent); remaining comparisons are invalid",
                            self.judge_id, self.settings.budget_usd or 0.0, self.budget.spent)
            self.stats.add(invalid=1, budget_exhausted=1)
            return Verdict.invalid(self.judge_id, "budget exhausted")
        spent = 0.0
        try:
            verdict = self._call_with_retries(prompt)
            spent = verdict.cost_usd
            return verdict
        except Exception as exc:  # a bug or an SDK surprise must cost one comparison, not the run
            self.stats.add(invalid=1, errors=1)
            reason = self.safe_text(f"judge call failed: {type(exc).__name__}: {exc}")
            log.warning("%s: %s", self.judge_id, reason)
            return Verdict.invalid(self.judge_id, reason)
        finally:
            self.budget.settle(reserved, spent)

    def _call_with_retries(self, prompt: JudgePrompt) -> Verdict:
        s = self.settings
        for attempt in range(s.max_retries + 1):
            self.limiter.acquire()
            self.stats.add(requests=1)
            started = time.perf_counter()
            try:
                reply = self.client.complete(prompt)
            except Exception as exc:
                failure = self.client.classify(exc)
                if not failure.retryable or attempt == s.max_retries:
                    tries = f" after {attempt + 1} attempts" if failure.retryable else ""
                    self.stats.add(invalid=1, errors=1)
                    reason = self.safe_text(f"{failure.reason}{tries}")
                    log.warning("%s: comparison invalid: %s", self.judge_id, reason)
                    return Verdict.invalid(self.judge_id, reason)
                delay = self.backoff_s(attempt)
                if failure.retry_after is not None:
                    delay = min(failure.retry_after, s.max_retry_after_s)
                    self.limiter.pause(delay)  # the server asked everyone to wait, not just this thread
                self.stats.add(retries=1)
                log.info("%s: %s; retry %d/%d in %.2fs", self.judge_id, failure.reason, attempt + 1,
                         s.max_retries, delay)
                time.sleep(delay)
                continue
            return self.verdict_of(prompt, reply, (time.perf_counter() - started) * 1000.0)
        raise AssertionError("unreachable")

    def verdict_of(self, prompt: JudgePrompt | None, reply: ClientReply, latency_ms: float, *,
                   batch: bool = False) -> Verdict:
        """The verdict of one reply (online or from a batch), priced at the online or the batch rate."""
        prompt_chars = len(prompt.text) if prompt is not None else 0
        usage = reply.usage or Usage(math.ceil(prompt_chars / 4), math.ceil(len(reply.text) / 4))
        cost = actual_cost(usage, self.settings.model, self.prices, batch=batch) or 0.0
        self.stats.add(tokens_in=usage.input_tokens, tokens_out=usage.output_tokens, cost_usd=cost)
        accounting = dict(tokens_in=usage.input_tokens, tokens_out=usage.output_tokens, cost_usd=cost,
                          latency_ms=latency_ms)
        if reply.refusal:
            self.stats.add(invalid=1, parse_failures=1)
            return Verdict.invalid(self.judge_id, "refusal", raw_reply=self.safe_text(reply.refusal), **accounting)
        verdict = parse_judge_reply(self.safe_text(reply.text), self.judge_id, **accounting)
        if not verdict.is_valid:
            self.stats.add(invalid=1, parse_failures=1)
        elif reply.token_logprobs:  # the label's probability, where the server sent it, beats a written number
            confidence = verdict_label_confidence(reply.token_logprobs, verdict.winner)
            if confidence is not None:
                verdict = replace(verdict, confidence=confidence)
        return verdict

    def safe_text(self, text: str) -> str:
        """``text`` with this judge's key (and anything key-shaped) removed: replies and errors get stored."""
        env = self.settings.api_key_env or self.client.default_key_env
        key = os.environ.get(env)
        if key and len(key) >= 8:
            text = text.replace(key, "[redacted]")
        return redact_secrets(text) or ""


def public_url(url: str | None) -> str | None:
    """``url`` without user info, query or fragment (where keys hide), for describe() and logs."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _APIJudgeKind(RubricLLMJudge):
    """What the two provider kinds share: their options, their build, and their price before any call."""

    Options = LLMJudgeSettings
    cache_by_default = True
    client_class: type[ChatClient]

    def __init__(self, settings: LLMJudgeSettings, prices: PriceTable | None = None, store: Any = None,
                 on_progress: Callable[[str], None] | None = None):
        super().__init__(self.client_class(settings), settings, prices, store, on_progress)

    @classmethod
    def build(cls, options: LLMJudgeSettings, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> Judge:
        return cls(options, ctx.prices, ctx.store)

    @classmethod
    def estimate_cost(cls, options: LLMJudgeSettings, n: int, prompt_tokens: int, output_tokens: int | None,
                      nested: Mapping[str, NestedSpec], ctx: BuildContext) -> JudgeCost:
        out = options.expected_output_tokens if output_tokens is None else output_tokens
        table = ctx.prices or load_price_table(options.prices_path)
        batch = options.mode == "batch"
        usd = estimate_cost(n, prompt_tokens, out, options.model, table, batch=batch).usd
        where = f"{cls.name}:{options.model}"
        if usd is None:
            return JudgeCost(None, [f"{where}: no price in {table.source}"])
        rate = " at the batch rate" if batch else ""
        return JudgeCost(usd, [f"{where}: {n} calls x ({prompt_tokens} in + {out} out) tokens{rate} ~${usd:,.2f}"])


class AnthropicJudge(_APIJudgeKind):
    """The rubric judge over the Anthropic Messages API."""

    name = "anthropic"
    client_class = AnthropicClient


class OpenAIJudge(_APIJudgeKind):
    """The rubric judge over Chat Completions: api.openai.com or any compatible ``base_url`` (vLLM, Ollama, ...)."""

    name = "openai"
    client_class = OpenAIClient
