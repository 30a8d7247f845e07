"""The API side of the rubric LLM judge: its settings, and one small adapter per SDK (Anthropic Messages, OpenAI
Chat Completions) that sends a judge prompt and returns the reply text and token usage.

Why adapters: the judge logic (concurrency, retries, budget, parsing) is the same for every provider; only the call
and the error classes differ. The SDK clients are built with ``max_retries=0`` because the judge does the retrying
(``rlaif.judges.llm``). API keys come from the environment only (``api_key_env`` names the variable).

Each adapter builds its request body in one place (``request_params``) and reads a reply in one place (``reply_of``),
so batch mode (``rlaif.judges.batches``) sends exactly the online request and reads its results the online way.

    client = OpenAIClient(LLMJudgeSettings(model="gpt-4o-mini")); client.complete(prompt).text
"""

from __future__ import annotations

import email.utils
import math
import os
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from rlaif.core.fields import check
from rlaif.judges.pricing import Usage
from rlaif.judges.prompting import JudgePrompt


class MissingAPIKeyError(RuntimeError):
    """The environment variable that should hold the API key is not set (its name is in the message, never a key)."""


# ---------------------------------------------------------------------------------------------------------------------
# settings


@dataclass
class LLMJudgeSettings:
    model: str = field(metadata={"help": "Model name as the API spells it (e.g. claude-haiku-4-5, gpt-4o-mini); part "
                                         "of the judge id and cache key."})
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
    mode: str = field(default="online", metadata={
        "help": "online: one request per comparison, answered in seconds. batch: all comparisons of a call go to "
                "the provider's batch API (Anthropic Message Batches, OpenAI Batch API) at half price, answered "
                "within 24 h; needs the store, which keeps every submitted batch so a killed run resumes it "
                "instead of paying twice."})
    poll_interval_s: float = field(default=30.0, metadata={
        "help": "Batch mode: first wait between status polls; grows 1.5x per poll up to poll_max_interval_s."})
    poll_max_interval_s: float = field(default=300.0, metadata={
        "help": "Batch mode: longest wait between status polls."})
    max_wait_s: float = field(default=26 * 3600.0, metadata={
        "help": "Batch mode: stop waiting after this long (providers end a batch within 24 h); requests still "
                "pending become invalid for now and a re-run resumes the same batch."})
    logprobs: bool = field(default=False, metadata={
        "help": "OpenAI-compatible only: ask for token log-probabilities (logprobs, top_logprobs=5) and, when the "
                "reply carries them for the verdict token, take the confidence from them (softmax over the a / b / "
                "tie alternatives found) instead of the confidence the model wrote. Servers that ignore the request "
                "(transformers serve does) leave the written confidence."})

    def __post_init__(self):
        check(isinstance(self.model, str) and bool(self.model.strip()), "model", "must be a non-empty string")
        check(self.temperature is None or 0.0 <= self.temperature <= 2.0, "temperature", "must be in [0, 2]")
        check(self.max_tokens >= 16, "max_tokens", f"must be >= 16, got {self.max_tokens}")
        check(self.timeout_s > 0, "timeout_s", f"must be > 0, got {self.timeout_s}")
        check(self.concurrency >= 1, "concurrency", f"must be >= 1, got {self.concurrency}")
        check(self.rpm is None or self.rpm > 0, "rpm", f"must be > 0, got {self.rpm}")
        check(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        check(self.backoff_base_s >= 0 and self.backoff_max_s >= 0, "backoff_base_s", "back-off must be >= 0")
        check(self.budget_usd is None or self.budget_usd > 0, "budget_usd", f"must be > 0, got {self.budget_usd}")
        check(self.mode in ("online", "batch"), "mode", f"must be online or batch, got {self.mode!r}")
        check(self.poll_interval_s > 0, "poll_interval_s", f"must be > 0, got {self.poll_interval_s}")
        check(self.poll_max_interval_s >= self.poll_interval_s, "poll_max_interval_s",
              f"must be >= poll_interval_s ({self.poll_interval_s}), got {self.poll_max_interval_s}")
        check(self.max_wait_s > 0, "max_wait_s", f"must be > 0, got {self.max_wait_s}")
        check(self.api_key_env is None or (self.api_key_env.replace("_", "").isalnum()), "api_key_env",
              "must be the NAME of an environment variable (e.g. MY_JUDGE_KEY), never the key itself")


# ---------------------------------------------------------------------------------------------------------------------
# clients: one small adapter per SDK, so the judge logic is shared


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and its top alternatives (token, log-probability)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ClientReply:
    text: str
    usage: Usage | None
    refusal: str | None = None
    token_logprobs: tuple[TokenLogprob, ...] | None = None  # when asked for (``logprobs``) and the server sent them


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
    supports_logprobs: bool = False

    @abstractmethod
    def complete(self, prompt: JudgePrompt) -> ClientReply:
        raise NotImplementedError

    def request_params(self, prompt: JudgePrompt) -> dict[str, Any]:
        """The body of one request for ``prompt``, as online mode sends it (batch lines carry the same)."""
        raise NotImplementedError(f"{type(self).__name__} has no batch support")

    def reply_of(self, response: Any) -> ClientReply:
        """Reply text, usage and refusal of one SDK response object."""
        raise NotImplementedError(f"{type(self).__name__} has no batch support")

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

    @property
    def sdk_client(self):
        """The SDK client (built with our key, base_url and timeout): batch mode calls its batch endpoints."""
        return self._client

    def request_params(self, prompt: JudgePrompt) -> dict[str, Any]:
        s = self.settings
        # This SDK's Messages API takes no temperature; json_mode asks for structured output against our schema
        kwargs: dict[str, Any] = dict(model=s.model, max_tokens=s.max_tokens, system=prompt.system,
                                      messages=[{"role": "user", "content": prompt.user}])
        if s.json_mode and prompt.schema is not None:
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": prompt.schema}}
        return kwargs

    def complete(self, prompt: JudgePrompt) -> ClientReply:
        return self.reply_of(self._client.messages.create(**self.request_params(prompt)))

    def reply_of(self, msg: Any) -> ClientReply:
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
    supports_logprobs = True

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

    @property
    def sdk_client(self):
        """The SDK client (built with our key, base_url and timeout): batch mode calls its batch endpoints."""
        return self._client

    def request_params(self, prompt: JudgePrompt) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {"model": s.model, self._max_tokens_param: s.max_tokens,
                                  "messages": [{"role": "system", "content": prompt.system},
                                               {"role": "user", "content": prompt.user}]}
        if s.temperature is not None:
            kwargs["temperature"] = s.temperature
        if s.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        if s.logprobs:
            kwargs.update(logprobs=True, top_logprobs=5)
        return kwargs

    def complete(self, prompt: JudgePrompt) -> ClientReply:
        return self.reply_of(self._client.chat.completions.create(**self.request_params(prompt)))

    def reply_of(self, resp: Any) -> ClientReply:
        if not resp.choices:
            return ClientReply("", None)
        message = resp.choices[0].message
        usage = None
        if resp.usage is not None:
            details = resp.usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details is not None else 0
            usage = Usage(resp.usage.prompt_tokens, resp.usage.completion_tokens, cached, 0)
        return ClientReply(message.content or "", usage, getattr(message, "refusal", None) or None,
                           _token_logprobs(resp.choices[0]))

    def classify(self, exc: BaseException) -> CallFailure:
        return classify_sdk_error(exc, self._sdk)


def _token_logprobs(choice: Any) -> tuple[TokenLogprob, ...] | None:
    """The choice's ``logprobs.content`` as TokenLogprobs; None when the server sent none (or an unreadable block)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    try:
        return tuple(TokenLogprob(t.token, float(t.logprob), tuple((a.token, float(a.logprob))
                                                                    for a in (t.top_logprobs or [])))
                     for t in content)
    except (AttributeError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------------------------
# confidence from label log-probabilities

_VERDICT_KEY = re.compile(r"winner|verdict", re.IGNORECASE)
_FILLER = {"", "candidate", "response", "answer", "option"}  # what may stand between the key and the label


def _token_label(token: str) -> str | None:
    """'a', 'b' or 'tie' for a token that is exactly a label (quotes, spaces and case aside); 't' / 'ti' count as the
    start of 'tie' (a tokenizer may split it; no other label starts with t)."""
    t = token.strip(" \t\n\"'*_()[]{}:,.").lower()
    if t in ("a", "b", "tie"):
        return t
    return "tie" if t in ("t", "ti") else None


def verdict_label_confidence(tokens: tuple[TokenLogprob, ...], winner: str) -> float | None:
    """Confidence in ``winner`` from the verdict token's log-probabilities: the label token that follows a
    "winner"/"verdict" key (the last such one naming ``winner``; the reply's first label token when no key is
    there), and the softmax over the a / b / tie alternatives among that token and its top log-probabilities.
    None when no such token is found or ``winner`` is not among its alternatives: the caller keeps its confidence.

        verdict_label_confidence(reply.token_logprobs, "a")  # 0.8 when a: -0.22, b: -1.61 were the alternatives
    """
    if winner not in ("a", "b", "tie") or not tokens:
        return None
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t.token)
    text = "".join(t.token for t in tokens)
    key_ends = [m.end() for m in _VERDICT_KEY.finditer(text)] or [0]
    found: TokenLogprob | None = None
    for end in key_ends:
        i = next((k for k, s in enumerate(starts) if s >= end), len(tokens))
        while i < len(tokens) and _token_label(tokens[i].token) is None and \
                tokens[i].token.strip(" \t\n\"'*_()[]{}:=-,.").lower() in _FILLER:
            i += 1
        if i < len(tokens) and _token_label(tokens[i].token) == winner:
            found = tokens[i]
    if found is None:
        return None
    mass: dict[str, float] = {}
    for token, logprob in {(found.token, found.logprob), *found.top}:
        label = _token_label(token)
        if label is not None and math.isfinite(logprob):
            mass[label] = mass.get(label, 0.0) + math.exp(logprob)
    total = sum(mass.values())
    if winner not in mass or total <= 0.0:
        return None
    return min(1.0, max(0.0, mass[winner] / total))
