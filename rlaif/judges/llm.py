"""The rubric LLM judge over the Anthropic Messages API and OpenAI-compatible Chat Completions.

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

import email.utils
import logging
import math
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from rlaif.judges.base import Comparison, Judge, Verdict
from rlaif.judges.pricing import ModelPrice, PriceTable, Usage, actual_cost, load_price_table
from rlaif.judges.prompting import TEMPLATE_VERSION, JudgePrompt, parse_judge_reply, render_judge_prompt
from rlaif.rubric import Rubric
from store.secrets_guard import redact_secrets

log = logging.getLogger(__name__)


class MissingAPIKeyError(RuntimeError):
    """The environment variable that should hold the API key is not set (its name is in the message, never a key)."""


# ---------------------------------------------------------------------------------------------------------------------
# settings


@dataclass
class LLMJudgeSettings:
    model: str = field(metadata={"help": "Model name as the API spells it; part of the judge id and cache key."})
    base_url: str | None = field(default=None, metadata={
        "help": "API root; for OpenAI-compatible servers (vLLM, Ollama, llama.cpp) e.g. http://localhost:8000/v1."})
    api_key_env: str | None = field(default=None, metadata={
        "help": "Name of the environment variable holding the key (default ANTHROPIC_API_KEY / OPENAI_API_KEY)."})
    temperature: float | None = field(default=0.0, metadata={
        "help": "OpenAI-compatible only (this Anthropic SDK takes none): 0 makes verdicts as repeatable as the "
                "server allows; None omits it for models that reject it."})
    max_tokens: int = field(default=512, metadata={"help": "Reply cap; the JSON verdict needs ~100-300 tokens."})
    timeout_s: float = field(default=60.0, metadata={"help": "Per-request timeout; a timeout is retried."})
    concurrency: int = field(default=8, metadata={"help": "Requests in flight at once (a thread pool)."})
    rpm: float | None = field(default=None, metadata={"help": "Requests-per-minute limit (None: unlimited)."})
    max_retries: int = field(default=5, metadata={"help": "Retries per comparison on 429/5xx/timeouts."})
    backoff_base_s: float = field(default=1.0, metadata={"help": "First back-off; doubles per retry."})
    backoff_max_s: float = field(default=30.0, metadata={"help": "Cap of the exponential back-off."})
    max_retry_after_s: float = field(default=120.0, metadata={"help": "Longest retry-after honoured per retry."})
    budget_usd: float | None = field(default=None, metadata={
        "help": "Spend cap for this judge's lifetime (one run); needs a price for the model."})
    expected_output_tokens: int = field(default=200, metadata={"help": "Output size assumed by cost estimates."})
    seed: int = field(default=0, metadata={"help": "Seeds the retry jitter, so back-off schedules are repeatable."})
    prices_path: str | None = field(default=None, metadata={"help": "Price table overriding the bundled one."})
    json_mode: bool = field(default=False, metadata={
        "help": "Ask the API to enforce JSON: OpenAI response_format json_object, Anthropic structured output "
                "with the verdict's JSON schema. Off by default: not every compatible server supports it."})

    def __post_init__(self):
        def check(ok: bool, name: str, why: str):
            if not ok:
                raise ValueError(f"judge.options.{name}: {why}")

        check(isinstance(self.model, str) and bool(self.model.strip()), "model", "must be a non-empty string")
        check(self.temperature is None or 0.0 <= self.temperature <= 2.0, "temperature", "must be in [0, 2]")
        check(self.max_tokens >= 16, "max_tokens", f"must be >= 16, got {self.max_tokens}")
        check(self.timeout_s > 0, "timeout_s", f"must be > 0, got {self.timeout_s}")
        check(self.concurrency >= 1, "concurrency", f"must be >= 1, got {self.concurrency}")
        check(self.rpm is None or self.rpm > 0, "rpm", f"must be > 0, got {self.rpm}")
        check(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        check(self.backoff_base_s >= 0 and self.backoff_max_s >= 0, "backoff_base_s", "back-off must be >= 0")
        check(self.budget_usd is None or self.budget_usd > 0, "budget_usd", f"must be > 0, got {self.budget_usd}")
        check(self.api_key_env is None or (self.api_key_env.replace("_", "").isalnum()), "api_key_env",
              "must be the NAME of an environment variable (e.g. MY_JUDGE_KEY), never the key itself")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "LLMJudgeSettings":
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"judge.options: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        if "model" not in options:
            raise ValueError("judge.options.model: is required for an API judge (e.g. claude-haiku-4-5, gpt-4o-mini)")
        return cls(**options)


# ---------------------------------------------------------------------------------------------------------------------
# clients: one small adapter per SDK, so the judge logic is shared


@dataclass(frozen=True)
class ClientReply:
    text: str
    usage: Usage | None
    refusal: str | None = None


@dataclass(frozen=True)
class CallFailure:
    retryable: bool
    reason: str
    retry_after: float | None = None


def _retry_after(headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None when absent/unparseable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def classify_sdk_error(exc: BaseException, sdk) -> CallFailure:
    """Retry on timeouts, connection errors, 408/409/429 and 5xx; everything else fails the comparison."""
    if isinstance(exc, sdk.APITimeoutError):
        return CallFailure(True, "timeout")
    if isinstance(exc, sdk.APIConnectionError):
        return CallFailure(True, "connection error")
    if isinstance(exc, sdk.APIStatusError):
        code = exc.status_code
        retryable = code in (408, 409, 429) or code >= 500
        return CallFailure(retryable, f"HTTP {code}", _retry_after(getattr(exc.response, "headers", None)))
    return CallFailure(False, f"malformed response ({type(exc).__name__})")


class ChatClient(ABC):
    """One provider's API: send the judge prompt, return the reply text and usage."""

    provider: str = "chat"
    default_key_env: str = ""
    supports_temperature: bool = True

    @abstractmethod
    def complete(self, prompt: JudgePrompt) -> ClientReply:
        raise NotImplementedError

    @abstractmethod
    def classify(self, exc: BaseException) -> CallFailure:
        raise NotImplementedError


def _read_key(env: str, *, optional: bool) -> str | None:
    key = os.environ.get(env)
    if not key and not optional:
        raise MissingAPIKeyError(f"the judge needs an API key: set the environment variable {env}")
    return key or None


class AnthropicClient(ChatClient):
    provider = "anthropic"
    default_key_env = "ANTHROPIC_API_KEY"
    supports_temperature = False

    def __init__(self, settings: LLMJudgeSettings):
        import anthropic

        self._sdk = anthropic
        self.settings = settings
        key = _read_key(settings.api_key_env or self.default_key_env, optional=False)
        # max_retries=0: our loop does the retrying, so every retry is counted and retry-after pauses all threads
        self._client = anthropic.Anthropic(api_key=key, base_url=settings.base_url, max_retries=0,
                                           timeout=settings.timeout_s)

    def complete(self, prompt: JudgePrompt) -> ClientReply:
        s = self.settings
        # This SDK's Messages API takes no temperature; json_mode asks for structured output against our schema
        kwargs: dict[str, Any] = dict(model=s.model, max_tokens=s.max_tokens, system=prompt.system,
                                      messages=[{"role": "user", "content": prompt.user}])
        if s.json_mode and prompt.schema is not None:
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": prompt.schema}}
        msg = self._client.messages.create(**kwargs)
        text = "".join(getattr(b, "text", "") for b in (msg.content or []) if getattr(b, "type", "") == "text")
        usage = None
        if msg.usage is not None:
            read = msg.usage.cache_read_input_tokens or 0
            write = msg.usage.cache_creation_input_tokens or 0
            # Anthropic's input_tokens excludes cache reads/writes; Usage.input_tokens counts every prompt token
            usage = Usage(msg.usage.input_tokens + read + write, msg.usage.output_tokens, read, write)
        refusal = (text or "refused") if msg.stop_reason == "refusal" else None
        return ClientReply(text, usage, refusal)

    def classify(self, exc: BaseException) -> CallFailure:
        return classify_sdk_error(exc, self._sdk)


class OpenAIClient(ChatClient):
    provider = "openai"
    default_key_env = "OPENAI_API_KEY"

    def __init__(self, settings: LLMJudgeSettings):
        import openai

        self._sdk = openai
        self.settings = settings
        # self-hosted OpenAI-compatible servers usually need no key; api.openai.com does
        key = _read_key(settings.api_key_env or self.default_key_env, optional=settings.base_url is not None)
        self._client = openai.OpenAI(api_key=key or "EMPTY", base_url=settings.base_url, max_retries=0,
                                     timeout=settings.timeout_s)
        # api.openai.com's newer models reject max_tokens; compatible servers (Ollama, llama.cpp) may ignore the new one
        self._max_tokens_param = "max_tokens" if settings.base_url else "max_completion_tokens"

    def complete(self, prompt: JudgePrompt) -> ClientReply:
        s = self.settings
        kwargs: dict[str, Any] = {"model": s.model, self._max_tokens_param: s.max_tokens,
                                  "messages": [{"role": "system", "content": prompt.system},
                                               {"role": "user", "content": prompt.user}]}
        if s.temperature is not None:
            kwargs["temperature"] = s.temperature
        if s.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        resp = self._client.chat.completions.create(**kwargs)
        if not resp.choices:
            return ClientReply("", None)
        message = resp.choices[0].message
        usage = None
        if resp.usage is not None:
            details = resp.usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details is not None else 0
            usage = Usage(resp.usage.prompt_tokens, resp.usage.completion_tokens, cached, 0)
        return ClientReply(message.content or "", usage, getattr(message, "refusal", None) or None)

    def classify(self, exc: BaseException) -> CallFailure:
        return classify_sdk_error(exc, self._sdk)


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


@dataclass
class JudgeStats:
    """Counters for one judge's lifetime; shown by the CLI and stored in manifests."""

    comparisons: int = 0
    requests: int = 0
    retries: int = 0
    invalid: int = 0
    parse_failures: int = 0
    errors: int = 0
    budget_exhausted: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}


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
            raise ValueError(f"judge.options.budget_usd: no price for model {settings.model!r} in "
                             f"{self.prices.source}; add one (USD per million tokens) or drop the budget")
        self.limiter = RateLimiter(settings.rpm)
        self.budget = Budget(settings.budget_usd)
        self.stats = JudgeStats()
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

    def estimate_cost(self, n_comparisons: int, prompt_tokens_est: int,
                      output_tokens_est: int | None = None) -> float | None:
        out = output_tokens_est if output_tokens_est is not None else self.settings.expected_output_tokens
        return actual_cost(Usage(prompt_tokens_est * n_comparisons, out * n_comparisons), self.settings.model,
                           self.prices)

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


class AnthropicJudge(RubricLLMJudge):
    """The rubric judge over the Anthropic Messages API."""

    def __init__(self, settings: LLMJudgeSettings, prices: PriceTable | None = None):
        super().__init__(AnthropicClient(settings), settings, prices)


class OpenAIJudge(RubricLLMJudge):
    """The rubric judge over Chat Completions: api.openai.com or any compatible ``base_url`` (vLLM, Ollama, ...)."""

    def __init__(self, settings: LLMJudgeSettings, prices: PriceTable | None = None):
        super().__init__(OpenAIClient(settings), settings, prices)
