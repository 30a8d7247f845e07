"""One request per candidate to OpenAI-compatible servers, through the ``openai`` client, many at once.

Why one request per candidate (not ``n``): every candidate gets its own seed and temperature, which ``n`` cannot
express (and transformers serve ignores ``n``). Requests are spread round-robin over the servers (one per node for
data parallelism); a request that still fails after the client's own retries (connection errors, timeouts, 5xx,
with backoff) is tried on the next server, and only when every server failed does the run fail, with one line that
names the server and the fix. Results come back in request order; ``should_stop`` is asked before every request.

    client = CompletionClient(["http://127.0.0.1:8000/v1"], concurrency=8, max_retries=2, timeout_s=60)
    replies = client.run([Request(prompt="Question: ...\\nSQL:", model=path, temperature=0.7, seed=1, max_tokens=64)])
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rlaif.serving.managed import ServerError


@dataclass(frozen=True)
class Request:
    model: str
    temperature: float  # 0: greedy
    max_tokens: int
    prompt: str | None = None  # /v1/completions
    messages: list[dict[str, str]] | None = None  # /v1/chat/completions
    seed: int | None = None
    top_p: float = 1.0
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    text: str
    completion_tokens: int | None
    finish_reason: str | None
    base_url: str


def _short(err: Exception) -> str:
    """An openai error as one short line (status and the server's detail, no traceback)."""
    status = getattr(err, "status_code", None)
    text = " ".join(str(getattr(err, "message", None) or err).split())
    return (f"{status}: " if status else "") + text[:300]


class CompletionClient:
    def __init__(self, base_urls: Sequence[str], *, concurrency: int, max_retries: int, timeout_s: float,
                 api_key_env: str | None = None):
        import openai  # the SDK loads when a server backend is used, not when the engine is imported

        self._openai = openai
        key = (os.environ.get(api_key_env) if api_key_env else None) or "EMPTY"  # servers without a key want one
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.clients = [openai.OpenAI(base_url=u, api_key=key, max_retries=max_retries, timeout=timeout_s)
                        for u in self.base_urls]
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.requests_per_url: Counter[str] = Counter()  # answered requests, per server
        self._lock = threading.Lock()

    def run(self, requests: Sequence[Request], *, should_stop: Callable[[], bool] | None = None,
            on_done: Callable[[int, int], None] | None = None,
            route: Sequence[int] | None = None) -> list[Reply]:
        """Every request answered, in order; InterruptedError when ``should_stop`` says so, ServerError when a
        request failed on every server. ``route``: the server (index into base_urls) each request must go to
        (continuous batching: the server fixed to its sampling setting; no other server may answer it); the
        requests are then submitted alternating between servers so every server's batch fills at once."""
        stop = should_stop or (lambda: False)
        out: list[Reply | None] = [None] * len(requests)
        every = max(1, len(requests) // 50)  # progress ~50 times per call, not per request
        order = list(range(len(requests)))
        if route is not None:
            rank: dict[int, int] = {}
            position = []
            for i in order:
                rank[route[i]] = rank.get(route[i], -1) + 1
                position.append((rank[route[i]], route[i], i))
            order = [i for _, _, i in sorted(position)]
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="rlaif-server")
        try:
            pending = {pool.submit(self._answer, i, requests[i], stop, None if route is None else route[i]): i
                       for i in order}
            done = 0
            while pending:
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    out[pending.pop(fut)] = fut.result()
                    done += 1
                    if on_done is not None and (done % every == 0 or done == len(requests)):
                        on_done(done, len(requests))
                if stop():
                    raise InterruptedError("sampling cancelled")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # in-flight requests end; queued ones never start
        return out  # type: ignore[return-value]  # every slot is filled

    def _answer(self, index: int, request: Request, stop: Callable[[], bool], server: int | None) -> Reply:
        errors = []
        targets = [server] if server is not None else [(index + step) % len(self.clients)
                                                       for step in range(len(self.clients))]
        for k in targets:
            if stop():
                raise InterruptedError("sampling cancelled")
            try:
                reply = self._send(self.clients[k], self.base_urls[k], request)
            except (self._openai.APIConnectionError, self._openai.InternalServerError) as err:
                errors.append(f"{self.base_urls[k]}: {_short(err)}")
                continue  # this server is down or broken: the next one
            except self._openai.APIStatusError as err:
                raise ServerError("sampling.server", f"{self.base_urls[k]} refused the request ({_short(err)}); "
                                  f"check the model name the servers know (sampling.server.model) and the "
                                  f"server's log") from None
            with self._lock:
                self.requests_per_url[reply.base_url] += 1
            return reply
        raise ServerError("sampling.server", f"a request failed on every server after {self.max_retries} "
                          f"retries each ({'; '.join(errors)}); is the server running "
                          f"(sampling.server.base_urls)?")

    def _send(self, client, base_url: str, request: Request) -> Reply:
        common = dict(model=request.model, max_tokens=request.max_tokens, temperature=request.temperature,
                      top_p=request.top_p, extra_body=request.extra_body or None)
        if request.seed is not None:
            common["seed"] = request.seed
        if request.messages is not None:
            out = client.chat.completions.create(messages=request.messages, **common)
            choice = out.choices[0]
            text = choice.message.content or ""
        else:
            out = client.completions.create(prompt=request.prompt, **common)
            choice = out.choices[0]
            text = choice.text or ""
        usage = getattr(out, "usage", None)
        return Reply(text, getattr(usage, "completion_tokens", None), choice.finish_reason, base_url)
