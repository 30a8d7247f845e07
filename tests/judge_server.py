"""A real HTTP server on loopback that speaks the Anthropic Messages and OpenAI Chat Completions protocols.

Tests drive the real ``anthropic`` and ``openai`` clients against it, so request building, response parsing, error
classes and headers are the SDKs' own, not a mock's idea of them. Replies are scriptable: ``enqueue`` actions
(played in order, shared by all threads) or a ``responder(request) -> action`` for everything else. Actions:
a reply text, ``Reply`` (text + usage), ``Fail`` (status, optional retry-after), ``Hang`` (sleep past the client's
timeout), ``Garbage`` (a 200 whose body is not the protocol). ``requests`` records every request with its headers.

It also speaks both batch APIs: Anthropic Message Batches (POST /v1/messages/batches, GET .../{id}, GET
.../{id}/results as JSONL) and the OpenAI Batch API (POST /v1/files with a JSONL of chat completion requests, POST
/v1/batches, GET /v1/batches/{id}, GET /v1/files/{id}/content). Each request of a new batch is recorded in
``requests`` (``batch_id`` set) and answered by the same queue/responder, so a script gives the same verdicts online
and in a batch: ``Fail`` becomes an errored request, ``Garbage`` a result that is not a message, and ``Expire`` /
``Cancel`` a request that expired / was canceled. A batch ends ``batch_delay_s`` after creation unless
``hold_batches`` is set; ``batch_failure`` makes OpenAI batches fail validation; ``fail_batch_calls`` queues
``Fail`` answers for the batch endpoints themselves; ``batches`` holds every batch created, ``api_calls`` every call.

    with JudgeServer(latency_s=0.05) as server:
        server.enqueue(Fail(429, retry_after=0.01), verdict_json("a"))
        client = anthropic.Anthropic(base_url=server.url, api_key="sk-test-...", max_retries=0)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass(frozen=True)
class Reply:
    text: str
    input_tokens: int | None = None  # None: ~len(prompt)/4, like a tokenizer would roughly count
    output_tokens: int | None = None
    stop_reason: str | None = None  # anthropic: end_turn | refusal | max_tokens
    refusal: str | None = None  # openai: message.refusal


@dataclass(frozen=True)
class Fail:
    status: int
    retry_after: float | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    seconds: float


@dataclass(frozen=True)
class Garbage:
    body: bytes = b"<html><body>502 upstream sent garbage</body></html>"
    status: int = 200


@dataclass(frozen=True)
class Expire:
    """In a batch: the request expired before it was processed."""


@dataclass(frozen=True)
class Cancel:
    """In a batch: the request was canceled before it was processed."""


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    batch_id: str | None = None  # set for a request that arrived inside a batch
    custom_id: str | None = None

    @property
    def protocol(self) -> str:
        return "anthropic" if self.path.endswith("/messages") else "openai"

    @property
    def prompt_text(self) -> str:
        """All prompt text of the request (system + messages)."""
        parts = [self.body["system"]] if isinstance(self.body.get("system"), str) else []
        for m in self.body.get("messages", []):
            content = m.get("content")
            parts.append(content if isinstance(content, str) else json.dumps(content))
        return "\n".join(parts)

    def candidates(self) -> tuple[str, str]:
        """The two candidate texts between the judge prompt's nonce tags."""
        text = self.prompt_text
        out = []
        for label in ("a", "b"):
            m = re.search(rf"<candidate_{label}_([0-9a-f]{{16}})>\n(.*?)\n</candidate_{label}_\1>", text, re.DOTALL)
            out.append(m.group(2) if m else "")
        return out[0], out[1]


def verdict_json(winner: str, confidence: float = 0.9, criteria: dict[str, str] | None = None,
                 rationale: str = "scripted verdict") -> str:
    return json.dumps({"criteria": criteria or {}, "winner": winner, "confidence": confidence,
                       "rationale": rationale})


Action = Any  # str | Reply | Fail | Hang | Garbage | Expire | Cancel
_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


class JudgeServer:
    def __init__(self, responder: Callable[[RecordedRequest], Action] | None = None, latency_s: float = 0.0):
        self.responder = responder or (lambda request: verdict_json("a"))
        self.latency_s = latency_s
        self.queue: deque[Action] = deque()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the server was handling at once
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # batch APIs
        self.batches: dict[str, FakeBatch] = {}  # in creation order
        self.files: dict[str, bytes] = {}
        self.api_calls: list[tuple[str, str]] = []  # (method, path) of every batch-endpoint call
        self.batch_delay_s = 0.0
        self.hold_batches = False
        self.batch_failure: str | None = None
        self.fail_batch_calls: deque[Fail] = deque()

    # ---- scripting

    def enqueue(self, *actions: Action) -> "JudgeServer":
        with self._lock:
            self.queue.extend(actions)
        return self

    def _next_action(self, request: RecordedRequest) -> Action:
        with self._lock:
            self.requests.append(request)
            if self.queue:
                return self.queue.popleft()
        return self.responder(request)

    # ---- lifecycle

    @property
    def url(self) -> str:
        """Base URL for the Anthropic client (it appends /v1/messages)."""
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the OpenAI client (it appends /chat/completions)."""
        return self.url + "/v1"

    def start(self) -> "JudgeServer":
        server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "JudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class FakeBatch:
    """One batch: its requests with the actions that answer them (resolved at creation, in request order)."""

    batch_id: str
    protocol: str  # anthropic | openai
    items: list[tuple[str, RecordedRequest, Action]]
    created: float = field(default_factory=time.monotonic)
    created_at: float = field(default_factory=time.time)
    input_file_id: str | None = None
    polls: int = 0
    files: dict[str, str] = field(default_factory=dict)  # openai: "output"/"error" -> file id, once ended

    @property
    def custom_ids(self) -> list[str]:
        return [custom_id for custom_id, _, _ in self.items]

    def outcomes(self) -> dict[str, int]:
        kinds = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for _, _, action in self.items:
            kinds[_outcome(action)] += 1
        return kinds


def _outcome(action: Action) -> str:
    if isinstance(action, Fail):
        return "errored"
    if isinstance(action, Expire):
        return "expired"
    if isinstance(action, Cancel):
        return "canceled"
    return "succeeded"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _reply_payload(request: RecordedRequest, action: Any) -> dict:
    """The protocol's success body for a ``Reply`` (or a plain reply text)."""
    if isinstance(action, str):
        action = Reply(action)
    tokens_in = action.input_tokens if action.input_tokens is not None else math.ceil(len(request.prompt_text) / 4)
    tokens_out = action.output_tokens if action.output_tokens is not None else math.ceil(len(action.text) / 4)
    model = request.body.get("model", "unknown")
    if request.protocol == "anthropic":
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": action.text}],
            "stop_reason": action.stop_reason or "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
    logprobs = None
    if request.body.get("logprobs") and not action.refusal:
        # token (text, logprob, {alternative: logprob}) as scripted by a Reply subclass's ``token_logprobs``, else
        # word/punctuation tokens the fake model was sure of; top_logprobs alternatives at most, like the API
        tokens = getattr(action, "token_logprobs", None) or [
            (t, 0.0, {t: 0.0}) for t in re.findall(r"\w+|\s+|[^\w\s]", action.text)]
        top_n = int(request.body.get("top_logprobs") or 0)
        logprobs = {"refusal": None, "content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode()),
             "top_logprobs": [{"token": a, "logprob": alp, "bytes": list(a.encode())}
                              for a, alp in list(top.items())[:top_n]]} for t, lp, top in tokens]}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
        "created": int(time.time()), "model": model, "system_fingerprint": "fp_loopback",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                     "message": {"role": "assistant", "content": None if action.refusal else action.text,
                                 "refusal": action.refusal}}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                  "total_tokens": tokens_in + tokens_out,
                  "prompt_tokens_details": {"cached_tokens": 0}}}


def _error_payload(protocol: str, fail: Fail) -> dict:
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(fail.status, "api_error"),
                                           "message": fail.message}}
    return {"error": {"message": fail.message, "type": "server_error", "code": fail.status}}


class _BatchAPI:
    """The batch endpoints of both protocols over one JudgeServer's scripting."""

    def __init__(self, owner: JudgeServer):
        self.owner = owner

    def _ended(self, batch: FakeBatch) -> bool:
        return not self.owner.hold_batches and time.monotonic() >= batch.created + self.owner.batch_delay_s

    def _create(self, protocol: str, requests: list[tuple[str, dict]], headers: dict[str, str],
                input_file_id: str | None = None) -> FakeBatch:
        prefix = "msgbatch_" if protocol == "anthropic" else "batch_"
        batch_id = prefix + uuid.uuid4().hex[:24]
        path = "/v1/messages" if protocol == "anthropic" else "/v1/chat/completions"
        items = []
        for custom_id, body in requests:
            recorded = RecordedRequest(path, headers, body, batch_id=batch_id, custom_id=custom_id)
            action = self.owner._next_action(recorded)
            if isinstance(action, Hang):
                action = Reply(verdict_json("a", rationale="too late"))
            items.append((custom_id, recorded, action))
        batch = FakeBatch(batch_id, protocol, items, input_file_id=input_file_id)
        with self.owner._lock:
            self.owner.batches[batch_id] = batch
        return batch

    # ---- anthropic

    def anthropic_create(self, body: dict, headers: dict[str, str]) -> dict:
        requests = [(r["custom_id"], r["params"]) for r in body.get("requests", [])]
        return self.anthropic_batch(self._create("anthropic", requests, headers))

    def anthropic_batch(self, batch: FakeBatch, base_url: str = "") -> dict:
        ended = self._ended(batch)
        counts = batch.outcomes() if ended else {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        counts["processing"] = 0 if ended else len(batch.items)
        return {"id": batch.batch_id, "type": "message_batch",
                "processing_status": "ended" if ended else "in_progress", "request_counts": counts,
                "created_at": _iso(batch.created_at), "expires_at": _iso(batch.created_at + 86400),
                "ended_at": _iso(time.time()) if ended else None, "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"{base_url}/v1/messages/batches/{batch.batch_id}/results" if ended else None}

    def anthropic_results(self, batch: FakeBatch) -> bytes:
        lines = []
        for custom_id, request, action in batch.items:
            if isinstance(action, Fail):
                result = {"type": "errored", "error": _error_payload("anthropic", action)}
            elif isinstance(action, Expire):
                result = {"type": "expired"}
            elif isinstance(action, Cancel):
                result = {"type": "canceled"}
            elif isinstance(action, Garbage):
                result = {"type": "succeeded", "message": action.body.decode("utf-8", "replace")}
            else:
                result = {"type": "succeeded", "message": _reply_payload(request, action)}
            lines.append(json.dumps({"custom_id": custom_id, "result": result}))
        return ("\n".join(lines) + "\n").encode()

    # ---- openai

    def openai_file(self, raw: bytes, content_type: str) -> dict:
        message = BytesParser(policy=email_policy).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        data, purpose, filename = b"", None, "upload.jsonl"
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                data = part.get_payload(decode=True) or b""
                filename = part.get_filename() or filename
            elif name == "purpose":
                purpose = part.get_content().strip()
        return {"id": self._store_file(data), "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose or "batch", "status": "processed"}

    def _store_file(self, data: bytes) -> str:
        file_id = "file-" + uuid.uuid4().hex[:24]
        with self.owner._lock:
            self.owner.files[file_id] = data
        return file_id

    def openai_create(self, body: dict, headers: dict[str, str]) -> dict:
        data = self.owner.files[body["input_file_id"]]
        requests = []
        for line in data.decode().splitlines():
            if line.strip():
                item = json.loads(line)
                assert item["url"] == body["endpoint"] == "/v1/chat/completions", item
                requests.append((item["custom_id"], item["body"]))
        return self.openai_batch(self._create("openai", requests, headers, body["input_file_id"]))

    def openai_batch(self, batch: FakeBatch) -> dict:
        ended = self._ended(batch)
        failure = self.owner.batch_failure
        kinds = batch.outcomes()
        status = "in_progress"
        if ended:
            status = ("failed" if failure else "expired" if kinds["expired"] else
                      "cancelled" if kinds["canceled"] else "completed")
            if not failure and not batch.files:
                self._write_openai_files(batch)
        completed = kinds["succeeded"] if ended and not failure else 0
        return {"id": batch.batch_id, "object": "batch", "endpoint": "/v1/chat/completions",
                "input_file_id": batch.input_file_id, "completion_window": "24h", "status": status,
                "created_at": int(batch.created_at), "output_file_id": batch.files.get("output"),
                "error_file_id": batch.files.get("error"),
                "errors": {"object": "list", "data": [{"code": "invalid_request", "message": failure}]}
                if ended and failure else None,
                "request_counts": {"total": len(batch.items), "completed": completed,
                                   "failed": len(batch.items) - completed if ended and not failure else 0}}

    def _write_openai_files(self, batch: FakeBatch) -> None:
        output, errors = [], []
        for custom_id, request, action in batch.items:
            record: dict[str, Any] = {"id": "batch_req_" + uuid.uuid4().hex[:16], "custom_id": custom_id,
                                      "response": None, "error": None}
            if isinstance(action, Fail):
                record["response"] = {"status_code": action.status, "request_id": uuid.uuid4().hex,
                                      "body": _error_payload("openai", action)}
                errors.append(record)
            elif isinstance(action, (Expire, Cancel)):
                code = "batch_expired" if isinstance(action, Expire) else "batch_cancelled"
                record["error"] = {"code": code, "message": f"request not executed ({code})"}
                errors.append(record)
            elif isinstance(action, Garbage):
                record["response"] = {"status_code": 200, "request_id": uuid.uuid4().hex,
                                      "body": action.body.decode("utf-8", "replace")}
                output.append(record)
            else:
                record["response"] = {"status_code": 200, "request_id": uuid.uuid4().hex,
                                      "body": _reply_payload(request, action)}
                output.append(record)
        for kind, records in (("output", output), ("error", errors)):
            if records:
                batch.files[kind] = self._store_file("".join(json.dumps(r) + "\n" for r in records).encode())


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # 16+ concurrent connects must not overflow the listen backlog (default 5)
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that timed out and left is expected here
        pass


def _handler_for(owner: JudgeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

        def log_message(self, *args):  # quiet
            pass

        def _batch_route(self, method: str, raw: bytes) -> bool:
            """Answer a batch-endpoint call; False when the path is not one."""
            path = self.path.split("?")[0]
            routes = [("POST", r"/v1/messages/batches"), ("GET", r"/v1/messages/batches/([\w-]+)"),
                      ("GET", r"/v1/messages/batches/([\w-]+)/results"), ("POST", r"/v1/files"),
                      ("POST", r"/v1/batches"), ("GET", r"/v1/batches/([\w-]+)"),
                      ("GET", r"/v1/files/([\w-]+)/content")]
            matched = next(((i, m) for i, (verb, pattern) in enumerate(routes)
                            if verb == method and (m := re.fullmatch(pattern, path))), None)
            if matched is None:
                return False
            index, match = matched
            with owner._lock:
                owner.api_calls.append((method, path))
                fail = owner.fail_batch_calls.popleft() if owner.fail_batch_calls else None
            protocol = "anthropic" if path.startswith("/v1/messages") else "openai"
            if fail is not None:
                headers = {"retry-after": f"{fail.retry_after:g}"} if fail.retry_after is not None else {}
                self._send(fail.status, _error_payload(protocol, fail), headers)
                return True
            headers = {k.lower(): v for k, v in self.headers.items()}
            api = _BatchAPI(owner)
            batch = owner.batches.get(match.group(1)) if match.groups() else None
            if match.groups() and batch is None and index != 6:
                self._send(404, _error_payload(protocol, Fail(404, message=f"no batch {match.group(1)}")))
                return True
            if index == 0:
                self._send(200, api.anthropic_create(json.loads(raw), headers))
            elif index == 1:
                batch.polls += 1
                self._send(200, api.anthropic_batch(batch, owner.url))
            elif index == 2:
                self._send_raw(200, api.anthropic_results(batch), "application/binary")
            elif index == 3:
                self._send(200, api.openai_file(raw, self.headers.get("Content-Type", "")))
            elif index == 4:
                self._send(200, api.openai_create(json.loads(raw), headers))
            elif index == 5:
                batch.polls += 1
                self._send(200, api.openai_batch(batch))
            else:
                data = owner.files.get(match.group(1))
                if data is None:
                    self._send(404, _error_payload("openai", Fail(404, message="no such file")))
                else:
                    self._send_raw(200, data, "application/octet-stream")
            return True

        def do_GET(self):
            if not self._batch_route("GET", b""):
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self._batch_route("POST", raw):
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_unparseable": raw.decode("utf-8", "replace")}
            request = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if not (self.path.endswith("/v1/messages") or self.path.endswith("/chat/completions")):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            with owner._lock:
                owner.in_flight += 1
                owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
            try:
                action = owner._next_action(request)
                if owner.latency_s:
                    time.sleep(owner.latency_s)
                self._play(request, action)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a scripted timeout)
            finally:
                with owner._lock:
                    owner.in_flight -= 1

        def _play(self, request: RecordedRequest, action: Action) -> None:
            if isinstance(action, str):
                action = Reply(action)
            if isinstance(action, Hang):
                time.sleep(action.seconds)
                action = Reply(verdict_json("a", rationale="too late"))
            if isinstance(action, Garbage):
                self._send_raw(action.status, action.body, "application/json")
                return
            if isinstance(action, Fail):
                headers = {"retry-after": f"{action.retry_after:g}"} if action.retry_after is not None else {}
                self._send(action.status, _error_payload(request.protocol, action), headers)
                return
            assert isinstance(action, Reply), f"unknown action {action!r}"
            self._send(200, _reply_payload(request, action))

        def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

        def _send_raw(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def flaky_responder(seed: int, *, server_error: int = 500,
                    ties: bool = False) -> Callable[[RecordedRequest], Action]:
    """A seeded responder mixing faults into a shorter-is-better judge: 15% 429s (retry-after 10 ms), 10% server
    errors, 5% garbage bodies, otherwise a verdict (equal lengths a tie when ``ties``, else "a")."""
    import random

    rng = random.Random(seed)

    def respond(request: RecordedRequest) -> Action:
        r = rng.random()
        if r < 0.15:
            return Fail(429, retry_after=0.01)
        if r < 0.25:
            return Fail(server_error)
        if r < 0.30:
            return Garbage()
        a, b = request.candidates()
        if ties and len(a) == len(b):
            return verdict_json("tie")
        return verdict_json("a" if len(a) <= len(b) else "b")

    return respond
