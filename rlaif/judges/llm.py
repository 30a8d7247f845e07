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
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from rlaif.core.fields import ConfigError
from rlaif.judges.base import BuildContext, Comparison, Judge, JudgeStats, NestedSpec, Verdict
from rlaif.judges.llm_api import AnthropicClient, ChatClient, ClientReply, LLMJudgeSettings, OpenAIClient
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

    def __init__(self, client: ChatClient, settings: LLMJudgeSettings, prices: PriceTable | None = None):
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

    # ---- identity

    def describe(self) -> dict[str, Any]:
        """Everything that shapes a verdict (cache key, manifests); throughput knobs and the key are left out."""
        s = self.settings
        return {"judge_id": self.judge_id, "kind": "rubric_llm", "provider": self.client.provider, "model": s.model,
                "base_url": public_url(s.base_url),
                "temperature": s.temperature if self.client.supports_temperature else None, "max_tokens": s.max_tokens,
                "json_mode": s.json_mode, "template_version": TEMPLATE_VERSION}

    @property
    def budget_exhausted(self) -> bool:
        return self.budget.exhausted

    def render(self, comparison: Comparison, rubric: Rubric) -> JudgePrompt:
        return render_judge_prompt(comparison, rubric)

    # ---- judging

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        if not comparisons:
            return []
        prompts = [self.render(c, rubric) for c in comparisons]
        workers = min(self.settings.concurrency, len(prompts))
        if workers == 1:
            return [self._judge_one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
            return list(pool.map(self._judge_one, prompts))

    def _worst_case_cost(self, prompt: JudgePrompt) -> float:
        if self.price is None:
            return 0.0
        tokens_in = math.ceil(len(prompt.text) / 3.0)  # generous: real tokenizers average ~4 chars per token
        return actual_cost(Usage(tokens_in, self.settings.max_tokens), self.settings.model, self.prices) or 0.0

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        ceiling = min(s.backoff_max_s, s.backoff_base_s * (2 ** attempt))
        with self._rng_lock:
            jitter = self._rng.random()
        return ceiling / 2 + jitter * ceiling / 2  # "equal jitter": never less than half the back-off

    def _judge_one(self, prompt: JudgePrompt) -> Verdict:
        self.stats.add(comparisons=1)
        reserved = self._worst_case_cost(prompt)
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
            reason = self._safe(f"judge call failed: {type(exc).__name__}: {exc}")
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
                    reason = self._safe(f"{failure.reason}{tries}")
                    log.warning("%s: comparison invalid: %s", self.judge_id, reason)
                    return Verdict.invalid(self.judge_id, reason)
                delay = self._backoff(attempt)
                if failure.retry_after is not None:
                    delay = min(failure.retry_after, s.max_retry_after_s)
                    self.limiter.pause(delay)  # the server asked everyone to wait, not just this thread
                self.stats.add(retries=1)
                log.info("%s: %s; retry %d/%d in %.2fs", self.judge_id, failure.reason, attempt + 1,
                         s.max_retries, delay)
                time.sleep(delay)
                continue
            return self._verdict(prompt, reply, (time.perf_counter() - started) * 1000.0)
        raise AssertionError("unreachable")

    def _verdict(self, prompt: JudgePrompt, reply: ClientReply, latency_ms: float) -> Verdict:
        usage = reply.usage or Usage(math.ceil(len(prompt.text) / 4), math.ceil(len(reply.text) / 4))
        cost = actual_cost(usage, self.settings.model, self.prices) or 0.0
        self.stats.add(tokens_in=usage.input_tokens, tokens_out=usage.output_tokens, cost_usd=cost)
        accounting = dict(tokens_in=usage.input_tokens, tokens_out=usage.output_tokens, cost_usd=cost,
                          latency_ms=latency_ms)
        if reply.refusal:
            self.stats.add(invalid=1, parse_failures=1)
            return Verdict.invalid(self.judge_id, "refusal", raw_reply=self._safe(reply.refusal), **accounting)
        verdict = parse_judge_reply(self._safe(reply.text), self.judge_id, **accounting)
        if not verdict.is_valid:
            self.stats.add(invalid=1, parse_failures=1)
        return verdict

    def _safe(self, text: str) -> str:
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

    def __init__(self, settings: LLMJudgeSettings, prices: PriceTable | None = None):
        super().__init__(self.client_class(settings), settings, prices)

    @classmethod
    def build(cls, options: LLMJudgeSettings, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> Judge:
        return cls(options, ctx.prices)

    @classmethod
    def estimate_cost(cls, options: LLMJudgeSettings, n: int, prompt_tokens: int, output_tokens: int | None,
                      nested: Mapping[str, NestedSpec], ctx: BuildContext) -> JudgeCost:
        out = options.expected_output_tokens if output_tokens is None else output_tokens
        table = ctx.prices or load_price_table(options.prices_path)
        usd = estimate_cost(n, prompt_tokens, out, options.model, table).usd
        where = f"{cls.name}:{options.model}"
        if usd is None:
            return JudgeCost(None, [f"{where}: no price in {table.source}"])
        return JudgeCost(usd, [f"{where}: {n} calls x ({prompt_tokens} in + {out} out) tokens ~${usd:,.2f}"])


class AnthropicJudge(_APIJudgeKind):
    """The rubric judge over the Anthropic Messages API."""

    name = "anthropic"
    client_class = AnthropicClient


class OpenAIJudge(_APIJudgeKind):
    """The rubric judge over Chat Completions: api.openai.com or any compatible ``base_url`` (vLLM, Ollama, ...)."""

    name = "openai"
    client_class = OpenAIClient
