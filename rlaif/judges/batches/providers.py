"""The two providers' batch APIs behind one small interface: build a request line, submit, poll, read results.

Why an adapter per provider: the batch orchestration (store rows, budget, chunking, polling, verdicts) is the same
for both; the wire differs. Anthropic takes the requests in one call (``messages.batches.create``) and streams
results (``messages.batches.results``); OpenAI takes a JSONL file (``files.create(purpose="batch")``) named by a batch
(``batches.create``) and writes an output file and an error file (``files.content``). A request line carries exactly
the body online mode sends (``ChatClient.request_params``) and a result is read the online way (``reply_of``).

The size limits are module constants, so a test can lower them to show chunking:

    monkeypatch.setattr(providers, "ANTHROPIC_MAX_REQUESTS", 3)
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from rlaif.judges.llm_api import ChatClient, ClientReply
from rlaif.judges.prompting import JudgePrompt

# Provider limits per batch (2025): Anthropic 100,000 requests or 256 MB; OpenAI 50,000 requests or a 200 MB file.
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BYTES = 256 * 1024 * 1024
OPENAI_MAX_REQUESTS = 50_000
OPENAI_MAX_BYTES = 200 * 1024 * 1024
_HEADROOM = 0.95  # request framing the byte count of our lines does not see (JSON array, multipart envelope)


@dataclass(frozen=True)
class BatchState:
    """Where a provider batch stands. ``failed`` is a reason when the whole batch failed (no request ran)."""

    batch_id: str
    provider_status: str
    ended: bool
    counts: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """One request's outcome: a reply, or the reason it has none (errored, expired, canceled, malformed)."""

    custom_id: str
    reply: ClientReply | None = None
    error: str | None = None


class BatchAPI(ABC):
    provider: str = ""

    def __init__(self, client: ChatClient):
        self.client = client
        self.sdk = client.sdk_client  # type: ignore[attr-defined]

    # ---- request lines and chunks

    @abstractmethod
    def line(self, custom_id: str, prompt: JudgePrompt) -> dict[str, Any]:
        """One request of a batch, as the provider takes it."""

    @property
    @abstractmethod
    def limits(self) -> tuple[int, int]:
        """(most requests, most bytes) per batch."""

    def chunks(self, lines: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """``lines`` split, in order, into batches within the provider's request and byte limits."""
        max_requests, max_bytes = self.limits
        out: list[list[dict[str, Any]]] = []
        current: list[dict[str, Any]] = []
        size = 0
        for line in lines:
            n = len(json.dumps(line).encode("utf-8")) + 1
            if current and (len(current) >= max_requests or size + n > max_bytes * _HEADROOM):
                out.append(current)
                current, size = [], 0
            current.append(line)
            size += n
        if current:
            out.append(current)
        return out

    # ---- the batch's life

    @abstractmethod
    def submit(self, lines: Sequence[dict[str, Any]]) -> BatchState:
        """Create the batch; the provider bills it from here on."""

    @abstractmethod
    def status(self, batch_id: str) -> BatchState:
        """Poll the batch once."""

    @abstractmethod
    def results(self, state: BatchState) -> Iterator[BatchResult]:
        """The outcome of every request the provider reports, in any order (an ended batch only)."""


def _malformed(custom_id: str, exc: Exception) -> BatchResult:
    return BatchResult(custom_id, error=f"malformed result ({type(exc).__name__})")


class AnthropicBatchAPI(BatchAPI):
    provider = "anthropic"

    @property
    def limits(self) -> tuple[int, int]:
        return ANTHROPIC_MAX_REQUESTS, ANTHROPIC_MAX_BYTES

    def line(self, custom_id: str, prompt: JudgePrompt) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": self.client.request_params(prompt)}

    def _state(self, batch: Any) -> BatchState:
        counts = batch.request_counts.model_dump() if batch.request_counts is not None else {}
        return BatchState(batch.id, batch.processing_status, batch.processing_status == "ended", counts)

    def submit(self, lines: Sequence[dict[str, Any]]) -> BatchState:
        return self._state(self.sdk.messages.batches.create(requests=list(lines)))

    def status(self, batch_id: str) -> BatchState:
        return self._state(self.sdk.messages.batches.retrieve(batch_id))

    def results(self, state: BatchState) -> Iterator[BatchResult]:
        for item in self.sdk.messages.batches.results(state.batch_id):
            result = item.result
            kind = getattr(result, "type", None)
            try:
                if kind == "succeeded":
                    yield BatchResult(item.custom_id, reply=self.client.reply_of(result.message))
                elif kind == "errored":
                    inner = getattr(result.error, "error", None)
                    detail = f"{getattr(inner, 'type', 'error')}: {getattr(inner, 'message', '')}".rstrip(": ")
                    yield BatchResult(item.custom_id, error=f"errored ({detail})")
                elif kind in ("canceled", "expired"):
                    yield BatchResult(item.custom_id, error=f"{kind} before it was processed")
                else:
                    yield BatchResult(item.custom_id, error=f"unknown result type {kind!r}")
            except Exception as exc:  # a result we cannot read costs that one request
                yield _malformed(item.custom_id, exc)


class OpenAIBatchAPI(BatchAPI):
    provider = "openai"
    endpoint = "/v1/chat/completions"
    _ENDED = ("completed", "failed", "expired", "cancelled")

    @property
    def limits(self) -> tuple[int, int]:
        return OPENAI_MAX_REQUESTS, OPENAI_MAX_BYTES

    def line(self, custom_id: str, prompt: JudgePrompt) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": self.endpoint,
                "body": self.client.request_params(prompt)}

    def _state(self, batch: Any) -> BatchState:
        counts = batch.request_counts.model_dump() if batch.request_counts is not None else {}
        failed = None
        if batch.status == "failed":
            errors = [getattr(e, "message", None) or getattr(e, "code", "") for e in
                      (batch.errors.data or [] if batch.errors is not None else [])]
            failed = "batch failed: " + ("; ".join(e for e in errors if e) or "no reason given")
        ended = batch.status in self._ENDED
        return BatchState(batch.id, batch.status, ended, counts, failed)

    def submit(self, lines: Sequence[dict[str, Any]]) -> BatchState:
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
        upload = self.sdk.files.create(file=("judge-batch.jsonl", body, "application/jsonl"), purpose="batch")
        batch = self.sdk.batches.create(input_file_id=upload.id, endpoint=self.endpoint, completion_window="24h")
        return self._state(batch)

    def status(self, batch_id: str) -> BatchState:
        return self._state(self.sdk.batches.retrieve(batch_id))

    def results(self, state: BatchState) -> Iterator[BatchResult]:
        from openai.types.chat import ChatCompletion

        batch = self.sdk.batches.retrieve(state.batch_id)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for raw in self.sdk.files.content(file_id).text.splitlines():
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                    custom_id = record["custom_id"]
                except (ValueError, KeyError, TypeError):
                    continue  # an unreadable line: its request ends as "no result" below
                try:
                    yield self._result(custom_id, record, ChatCompletion)
                except Exception as exc:
                    yield _malformed(custom_id, exc)

    def _result(self, custom_id: str, record: dict[str, Any], completion_type: Any) -> BatchResult:
        error = record.get("error")
        if error:
            return BatchResult(custom_id, error=f"errored ({error.get('code')}: {error.get('message')})")
        response = record.get("response") or {}
        status, body = response.get("status_code"), response.get("body")
        if status != 200:
            message = body.get("error", {}).get("message") if isinstance(body, dict) else None
            return BatchResult(custom_id, error=f"errored (HTTP {status}: {message or 'no message'})")
        if not isinstance(body, dict):
            raise TypeError("response body is not an object")
        return BatchResult(custom_id, reply=self.client.reply_of(completion_type.construct(**body)))


def batch_api_for(client: ChatClient) -> BatchAPI:
    """The batch adapter of ``client``'s provider."""
    kinds = {cls.provider: cls for cls in (AnthropicBatchAPI, OpenAIBatchAPI)}
    if client.provider not in kinds:
        raise ValueError(f"provider {client.provider!r} has no batch API; use mode: online")
    return kinds[client.provider](client)
