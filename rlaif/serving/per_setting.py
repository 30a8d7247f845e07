"""Continuous batching on ``transformers serve`` with correct sampling: one server per sampling setting.

Why: in transformers 5.24 a ``--continuous-batching`` server fixes its sampling settings (do_sample, temperature,
top_p, top_k) from the first request it answers and applies them to every later one; only ``max_new_tokens`` and the
stop tokens are per request (``transformers/cli/serving/utils.py``, ``CBGenerateManager``). No server option gives a
request its own temperature. So the loop starts one server per distinct setting on the checkpoint (each temperature
of the ladder with top_p; greedy for evaluation), lazily and side by side, primes each with a one-token request of
exactly its setting, and sends every request to the server of its setting, many at once, so the scheduler batches
them. The batch shares one random generator, so seeds are not honoured per request (the generator sends none).

    servers = SettingServers(checkpoint, options, log_dir=Path("runs/servers"))
    client = RoutedClient(servers, options)   # the ``run(requests)`` of a CompletionClient
    replies = client.run(requests)            # starts the servers the requests' settings need, then answers them
    servers.stop()
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from rlaif.serving.client import CompletionClient, Reply, Request
from rlaif.serving.managed import ManagedServer
from rlaif.serving.options import ServerOptions


def setting_key(request: Request) -> str:
    """What a continuous-batching server fixes from its first request, as one canonical string: everything in the
    request's sampling settings except the per-request length (and the prompt and seed)."""
    gen = json.loads(request.extra_body.get("generation_config") or "{}")
    gen.pop("max_new_tokens", None)
    return json.dumps({"temperature": request.temperature, "top_p": request.top_p, "generation_config": gen},
                      sort_keys=True)


def setting_label(request: Request) -> str:
    """A short name for a setting's server (its log file): greedy, or t0.7 (with top_p when not 1)."""
    if request.temperature <= 0:
        return "greedy"
    return f"t{request.temperature:g}" + (f"-p{request.top_p:g}" if request.top_p < 1 else "")


def priming_request(request: Request) -> Request:
    """A one-token request with exactly ``request``'s sampling settings: the first request a server sees."""
    extra = dict(request.extra_body)
    if "generation_config" in extra:
        extra["generation_config"] = json.dumps({**json.loads(extra["generation_config"]), "max_new_tokens": 1})
    return replace(request, max_tokens=1, seed=None, extra_body=extra)


class SettingServers:
    """The continuous-batching servers on one checkpoint, one per sampling setting, started when first needed.

    Stopped together (``stop``); each is a ``ManagedServer``, so each runs under the guard and is stopped at
    interpreter exit too. ``pid`` is the first server's (the one a single managed server would have)."""

    def __init__(self, model_path: str | Path, options: ServerOptions, *, log_dir: Path):
        self.model_path = str(model_path)
        self.options = options
        self.log_dir = Path(log_dir)
        self.servers: dict[str, ManagedServer] = {}  # setting key -> its server, in start order
        self.started = 0
        probe = ManagedServer(self.model_path, options, log_dir=self.log_dir)  # resolves and checks the engine
        self.engine, self.version = probe.engine, probe.version

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers.values() if s.pid is not None]

    @property
    def pid(self) -> int | None:
        return self.pids[0] if self.pids else None

    def alive(self) -> bool:
        return all(s.alive() for s in self.servers.values())

    def ensure(self, firsts: dict[str, Request], should_stop: Callable[[], bool]) -> None:
        """Start (side by side) and prime a server for every setting in ``firsts`` that has none yet."""
        missing = {key: request for key, request in firsts.items() if key not in self.servers}
        if not missing:
            return
        fresh: dict[str, ManagedServer] = {}
        try:
            for key, request in missing.items():  # launched from this thread: the guard follows the launcher
                server = ManagedServer(self.model_path, self.options, log_dir=self.log_dir,
                                       label=setting_label(request))
                fresh[key] = server
                server.launch()
            deadline = time.monotonic() + self.options.startup_timeout_s
            waiting = list(fresh.values())
            while waiting:
                if should_stop():
                    raise InterruptedError("sampling cancelled")
                waiting = [s for s in waiting if not s.healthy(deadline)]
                if waiting:
                    time.sleep(0.25)
            for key, server in fresh.items():  # the first request fixes the server's settings: exactly this one
                CompletionClient([server.base_url], concurrency=1, max_retries=self.options.max_retries,
                                 timeout_s=self.options.request_timeout_s,
                                 api_key_env=self.options.api_key_env).run([priming_request(missing[key])])
        except BaseException:
            for server in fresh.values():
                server.stop()
            raise
        self.servers.update(fresh)
        self.started += len(fresh)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


class RoutedClient:
    """A ``CompletionClient``'s ``run`` over ``SettingServers``: each request goes to the server of its setting."""

    def __init__(self, servers: SettingServers, options: ServerOptions):
        self.servers = servers
        self.options = options
        self._counts: Counter[str] = Counter()
        self._client: CompletionClient | None = None

    def run(self, requests: Sequence[Request], *, should_stop: Callable[[], bool] | None = None,
            on_done: Callable[[int, int], None] | None = None) -> list[Reply]:
        stop = should_stop or (lambda: False)
        keys = [setting_key(r) for r in requests]
        firsts: dict[str, Request] = {}
        for key, request in zip(keys, requests):
            firsts.setdefault(key, request)
        self.servers.ensure(firsts, stop)
        urls = [s.base_url for s in self.servers.servers.values()]
        if self._client is None or self._client.base_urls != [u.rstrip("/") for u in urls]:
            self._collect_counts()
            per_server = self.options.requests_at_once("transformers")
            self._client = CompletionClient(urls, concurrency=per_server * len(urls),
                                            max_retries=self.options.max_retries,
                                            timeout_s=self.options.request_timeout_s,
                                            api_key_env=self.options.api_key_env)
        index = {key: k for k, key in enumerate(self.servers.servers)}
        return self._client.run(requests, should_stop=should_stop, on_done=on_done, route=[index[k] for k in keys])

    def _collect_counts(self) -> None:
        if self._client is not None:
            self._counts.update(self._client.requests_per_url)
            self._client.requests_per_url.clear()

    @property
    def requests_per_url(self) -> Counter[str]:
        """Answered requests per server (over every server set this client has had), as a CompletionClient's."""
        self._collect_counts()
        return self._counts
