"""A real HTTP server on loopback that speaks the Anthropic Messages and OpenAI Chat Completions protocols.

Tests drive the real ``anthropic`` and ``openai`` clients against it, so request building, response parsing, error
classes and headers are the SDKs' own, not a mock's idea of them. Replies are scriptable: ``enqueue`` actions
(played in order, shared by all threads) or a ``responder(request) -> action`` for everything else. Actions:
a reply text, ``Reply`` (text + usage), ``Fail`` (status, optional retry-after), ``Hang`` (sleep past the client's
timeout), ``Garbage`` (a 200 whose body is not the protocol). ``requests`` records every request with its headers.

    with JudgeServer(latency_s=0.05) as server:
        server.enqueue(Fail(429, retry_after=0.01), verdict_json("a"))
        client = anthropic.Anthropic(base_url=server.url, api_key="sk-test-...", max_retries=0)
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
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


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

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


Action = Any  # str | Reply | Fail | Hang | Garbage
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

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
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
                if request.protocol == "anthropic":
                    payload = {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(action.status, "api_error"),
                                                          "message": action.message}}
                else:
                    payload = {"error": {"message": action.message, "type": "server_error", "code": action.status}}
                self._send(action.status, payload, headers)
                return
            assert isinstance(action, Reply), f"unknown action {action!r}"
            tokens_in = action.input_tokens if action.input_tokens is not None else \
                math.ceil(len(request.prompt_text) / 4)
            tokens_out = action.output_tokens if action.output_tokens is not None else math.ceil(len(action.text) / 4)
            model = request.body.get("model", "unknown")
            if request.protocol == "anthropic":
                payload = {
                    "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": action.text}],
                    "stop_reason": action.stop_reason or "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out,
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
            else:
                payload = {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                    "created": int(time.time()), "model": model, "system_fingerprint": "fp_loopback",
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": None if action.refusal else action.text,
                                             "refusal": action.refusal}}],
                    "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                              "total_tokens": tokens_in + tokens_out,
                              "prompt_tokens_details": {"cached_tokens": 0}}}
            self._send(200, payload)

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
