"""The server backend over a run: which server serves which checkpoint, and the generator for each.

Managed: one server at a time, on the checkpoint asked for (with ``continuous_batching``: one set of servers, one
per sampling setting, ``rlaif.serving.per_setting``); asking for another checkpoint stops it and starts one on
the new checkpoint, ``release()`` stops it (the project does so before training, so the judge and training get the
accelerator), ``close()`` at the end of the session (a crash or cancel included). External: the servers at
``base_urls``; a new checkpoint is handed over by naming its folder in the requests (transformers serve loads it) or
by running ``restart_command`` and waiting for every server's health.

    with ServerBackend(options, base_path, make_rendering, log_dir) as backend:
        gen = backend.generator(checkpoint); gen.sample_candidates(...)
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from rlaif.policy import Policy
from rlaif.serving.client import CompletionClient
from rlaif.serving.generator import ServerGenerator, transformers_generation_config
from rlaif.serving.managed import ManagedServer, ServerError, continuous_batching_args, is_healthy, root_of
from rlaif.serving.options import ServerOptions, refuse_continuous_batching
from rlaif.serving.per_setting import RoutedClient, SettingServers


def detect_engine(base_url: str, timeout: float = 5.0) -> str:
    """What an external server is: vLLM answers /version; transformers serve has /load_model in its OpenAPI
    schema; anything else gets the standard fields only."""
    root = root_of(base_url)
    try:
        with urllib.request.urlopen(f"{root}/version", timeout=timeout) as reply:
            if "version" in json.loads(reply.read() or b"{}"):
                return "vllm"
    except (OSError, ValueError):
        pass
    try:
        with urllib.request.urlopen(f"{root}/openapi.json", timeout=timeout) as reply:
            if "/load_model" in json.loads(reply.read()).get("paths", {}):
                return "transformers"
    except (OSError, ValueError):
        pass
    return "openai"


class ServerBackend:
    def __init__(self, options: ServerOptions, base_path: str, rendering_policy: Callable[[str], Policy],
                 log_dir: Path):
        self.options = options
        self.base_path = str(base_path)
        self.rendering_policy = rendering_policy  # checkpoint path -> a weightless Policy that renders prompts
        self.log_dir = Path(log_dir)
        self.server: ManagedServer | SettingServers | None = None
        self.engine: str | None = None
        self.version: str | None = None
        self.served_path: str = self.base_path  # external: the checkpoint the servers serve now
        self.requests_per_url: Counter[str] = Counter()
        self.started = 0  # managed servers started over the session
        self._client: CompletionClient | None = None

    # ---- generators

    def generator(self, model_path: str) -> ServerGenerator:
        model_path = str(model_path)
        if self.options.mode == "managed" and self.options.continuous_batching:
            client = self._per_setting_on(model_path)
            model = model_path
        elif self.options.mode == "managed":
            client, model = self._client_for(self._managed_on(model_path)), model_path
        else:
            model = self._handed_over(model_path)
            client = self._client_for(None)
        engine = self.engine or "openai"
        policy = self.rendering_policy(model_path)
        gen_config = transformers_generation_config(model_path, policy.tokenizer) if engine == "transformers" else None
        return ServerGenerator(client, policy, model=model, engine=engine, generation_config=gen_config,
                               seeds_honoured=not self.options.continuous_batching)

    def _client_for(self, base_url: str | None) -> CompletionClient:
        urls = [base_url] if base_url else list(self.options.base_urls)
        if self._client is not None and self._client.base_urls == [u.rstrip("/") for u in urls]:
            return self._client
        self._collect_counts()
        engine = self.engine or "openai"
        self._client = CompletionClient(urls, concurrency=self.options.requests_at_once(engine),
                                        max_retries=self.options.max_retries,
                                        timeout_s=self.options.request_timeout_s,
                                        api_key_env=self.options.api_key_env)
        return self._client

    def _collect_counts(self) -> None:
        if self._client is not None:
            self.requests_per_url.update(self._client.requests_per_url)
            self._client.requests_per_url.clear()

    # ---- managed

    def _managed_on(self, model_path: str) -> str:
        if self.server is not None and self.server.model_path == model_path and self.server.alive():
            return self.server.base_url
        self.release()
        server = ManagedServer(model_path, self.options, log_dir=self.log_dir)
        self.engine, self.version = server.engine, server.version
        self.server = server.start()
        self.started += 1
        return server.base_url

    def _per_setting_on(self, model_path: str) -> RoutedClient:
        """Continuous batching: the servers (one per sampling setting, started as requests need them) on
        ``model_path``, behind a client that routes each request to the server of its setting."""
        if (isinstance(self.server, SettingServers) and self.server.model_path == model_path and self.server.alive()
                and isinstance(self._client, RoutedClient)):
            return self._client
        self.release()
        servers = SettingServers(model_path, self.options, log_dir=self.log_dir)
        self.engine, self.version = servers.engine, servers.version
        self.server = servers
        self._collect_counts()
        self._client = RoutedClient(servers, self.options)
        return self._client

    def release(self) -> None:
        """Stop the managed server (if any): before training, and when the session ends."""
        if self.server is not None:
            self._collect_counts()
            if isinstance(self.server, SettingServers):
                self.started += self.server.started
            self.server.stop()
            self.server = None

    # ---- external

    def _handed_over(self, model_path: str) -> str:
        """The model name requests use for ``model_path``, after handing it to the servers if it is new."""
        opts = self.options
        if self.engine is None:
            self.engine = opts.engine if opts.engine != "auto" else detect_engine(opts.base_urls[0])
            refuse_continuous_batching(self.engine, list(opts.extra_args))
        if opts.handover == "model_path":
            if self.engine == "vllm" and model_path != self.base_path:
                raise ServerError("sampling.server.handover", "a vLLM server serves the model it was started with; "
                                  "use handover: restart_command to hand it each new checkpoint")
            return (opts.model or model_path) if model_path == self.base_path else model_path
        if model_path != self.served_path:
            self._restart_on(model_path)
        return opts.model or model_path

    def _restart_on(self, model_path: str) -> None:
        opts = self.options
        command = [part.replace("{checkpoint}", model_path) for part in shlex.split(opts.restart_command or "")]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=opts.startup_timeout_s)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ServerError("sampling.server.restart_command", f"could not run {command[0]!r}: {err}") from None
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
            raise ServerError("sampling.server.restart_command", f"exited with code {done.returncode}: {tail}")
        deadline = time.monotonic() + opts.startup_timeout_s
        waiting = [u for u in opts.base_urls if not is_healthy(root_of(u))]
        while waiting:
            if time.monotonic() > deadline:
                raise ServerError("sampling.server.restart_command", f"{', '.join(waiting)} not healthy "
                                  f"{opts.startup_timeout_s:g} s after the restart")
            time.sleep(1.0)
            waiting = [u for u in waiting if not is_healthy(root_of(u))]
        self.served_path = model_path

    # ---- records

    def describe(self) -> dict[str, Any]:
        """The server part of a manifest (no managed port: it would change the manifest's id every run)."""
        self._collect_counts()
        opts = self.options
        if opts.mode == "managed":
            engine = self.engine or ManagedServer(self.base_path, opts, log_dir=self.log_dir).engine
            record = {"mode": "managed", "engine": engine, "version": self.version,
                      "command": f"{engine} serve <checkpoint> {' '.join(opts.extra_args)}".strip(),
                      "requests": sum(self.requests_per_url.values())}
            if opts.continuous_batching:
                flags = " ".join(continuous_batching_args(list(opts.extra_args)))
                record.update(command=f"{engine} serve <checkpoint> {flags} {' '.join(opts.extra_args)}".strip(),
                              continuous_batching="one server per sampling setting (each temperature with top_p; "
                                                  "greedy for evaluation), fixed by its first request",
                              seeds_honoured=False,
                              concurrency_per_server=opts.requests_at_once(engine))
            else:
                record["seeds_honoured"] = engine == "vllm" or opts.requests_at_once(engine) == 1
            return record
        return {"mode": "external", "engine": self.engine or opts.engine, "base_urls": list(opts.base_urls),
                "handover": opts.handover, "model": opts.model,
                "requests_per_url": {u: self.requests_per_url.get(u.rstrip("/"), 0) for u in opts.base_urls}}

    def close(self) -> None:
        self.release()

    def __enter__(self) -> "ServerBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
