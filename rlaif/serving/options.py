"""The ``sampling.server`` section: how the loop reaches an OpenAI-compatible inference server.

Why its own options class: the server backend has two lives (a server the loop starts and stops itself, or servers a
team already runs) and each has settings the other must refuse; validating them here names the exact field
(``sampling.server.base_urls``) before anything starts.

    sampling: {backend: server, server: {mode: external, base_urls: [http://node1:8000/v1, http://node2:8000/v1]}}
"""

from __future__ import annotations

from dataclasses import dataclass

from rlaif.core.fields import ConfigError, check, help_field

MODES = ("managed", "external")
ENGINES = ("auto", "vllm", "transformers", "openai")
HANDOVERS = ("model_path", "restart_command")
WHERE = "sampling.server"


@dataclass
class ServerOptions:
    mode: str = help_field(
        "managed: the loop starts an inference server on each checkpoint it samples or evaluates and stops it "
        "before training (and on a crash or cancel); external: the servers at base_urls, already running.",
        "managed")
    engine: str = help_field(
        "auto (managed: vllm when installed, else transformers serve; external: asked from the server), vllm, "
        "transformers (transformers serve) or openai (any other OpenAI-compatible server: standard fields only).",
        "auto")
    base_urls: list[str] = help_field(
        "mode=external: the servers' OpenAI base URLs (http://host:port/v1), one per node; requests are spread "
        "round-robin across them and a failed one is retried on the next.", factory=list)
    model: str | None = help_field(
        "mode=external: the model name the servers know the base policy by (vLLM's --served-model-name); "
        "default: the policy path.", None)
    handover: str = help_field(
        "mode=external: how an iteration's new checkpoint reaches the servers. model_path: requests name the "
        "checkpoint folder (transformers serve loads it; the folder must be visible to the servers); "
        "restart_command: run restart_command with {checkpoint} substituted, then wait for every server's /health.",
        "model_path")
    restart_command: str | None = help_field(
        "handover=restart_command: the command that restarts the servers on {checkpoint} (e.g. a script that "
        "runs `vllm serve {checkpoint}` on each node).", None)
    continuous_batching: bool = help_field(
        "mode=managed, transformers serve: one `transformers serve --continuous-batching` server per sampling "
        "setting (each temperature of the ladder, and a greedy one for evaluation), each fixed to its setting by a "
        "first request, with requests sent many at once to the server of their setting. Several times faster on "
        "CPU than one request at a time, but seeds are not honoured per request (a batch shares one random "
        "generator): candidates are stored without a seed and the manifest says seeds_honoured: false. Each server "
        "holds its own copy of the model.", False)
    concurrency: int | None = help_field(
        "Requests in flight at once (with continuous_batching: per server). Default: 1 for transformers serve (it "
        "generates one request at a time and seeds torch globally, so only one at a time keeps seeds "
        "reproducible), 48 per server with continuous_batching, 64 for vLLM and others.", None)
    max_retries: int = help_field("Retries of a request on connection errors, timeouts and 5xx (the openai "
                                  "client's backoff), before the next server is tried.", 2)
    request_timeout_s: float = help_field("Seconds one request may take.", 120.0)
    startup_timeout_s: float = help_field("Seconds a managed (or restarted) server may take to become healthy.",
                                          300.0)
    extra_args: list[str] = help_field(
        "mode=managed: extra command-line arguments for the server (vLLM: --tensor-parallel-size 2, "
        "--gpu-memory-utilization 0.8; transformers serve: --device cpu).", factory=list)
    cpu_threads: int | None = help_field(
        "mode=managed: OMP_NUM_THREADS of the server process (1 is fastest for small models on a small shared "
        "CPU); default: inherited.", None)
    api_key_env: str | None = help_field(
        "Environment variable holding the servers' API key (vLLM --api-key); none: no key is sent.", None)

    def __post_init__(self):
        check(self.mode in MODES, f"{WHERE}.mode", f"must be managed or external, got {self.mode!r}")
        check(self.engine in ENGINES, f"{WHERE}.engine", f"must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        check(self.handover in HANDOVERS, f"{WHERE}.handover",
              f"must be one of {', '.join(HANDOVERS)}, got {self.handover!r}")
        if self.mode == "external":
            check(bool(self.base_urls), f"{WHERE}.base_urls",
                  "mode external needs at least one server URL (http://host:port/v1)")
        else:
            check(not self.base_urls, f"{WHERE}.base_urls",
                  "is only for mode external (a managed server gets a free loopback port); remove it or set "
                  "mode: external")
        for i, url in enumerate(self.base_urls):
            check(isinstance(url, str) and url.startswith(("http://", "https://")), f"{WHERE}.base_urls[{i}]",
                  f"must be an http:// or https:// URL, got {url!r}")
        if self.handover == "restart_command":
            check(bool(self.restart_command) and "{checkpoint}" in self.restart_command, f"{WHERE}.restart_command",
                  "handover restart_command needs a command containing {checkpoint}")
        check(self.concurrency is None or self.concurrency >= 1, f"{WHERE}.concurrency",
              f"must be >= 1 when set, got {self.concurrency}")
        check(self.max_retries >= 0, f"{WHERE}.max_retries", f"must be >= 0, got {self.max_retries}")
        check(self.request_timeout_s > 0, f"{WHERE}.request_timeout_s", f"must be > 0, got {self.request_timeout_s}")
        check(self.startup_timeout_s > 0, f"{WHERE}.startup_timeout_s", f"must be > 0, got {self.startup_timeout_s}")
        check(self.cpu_threads is None or self.cpu_threads >= 1, f"{WHERE}.cpu_threads",
              f"must be >= 1 when set, got {self.cpu_threads}")
        if self.engine == "transformers" and "--continuous-batching" in self.extra_args:
            raise ConfigError(f"{WHERE}.extra_args", _CB_REFUSED)
        for i, arg in enumerate(self.extra_args):  # extra_args are recorded in manifests: no secret may be among them
            flag = str(arg).split("=", 1)[0].lower()
            words = set(flag.lstrip("-").replace("_", "-").split("-"))  # --api-key, --hf-token; not --max-*-tokens
            check(not (flag.startswith("--") and words & {"key", "token", "secret", "password"}),
                  f"{WHERE}.extra_args[{i}]", f"{flag} would put a secret in the config and the manifests; secrets "
                  "are read from the environment (name the variable in sampling.server.api_key_env)")
        if self.continuous_batching:
            check(self.mode == "managed", f"{WHERE}.continuous_batching",
                  "is only for mode managed (the loop starts one server per sampling setting); an external "
                  "server's batching is its own business")
            check(self.engine in ("auto", "transformers"), f"{WHERE}.continuous_batching",
                  f"is for transformers serve only (vLLM batches continuously by itself), got engine {self.engine!r}")

    def requests_at_once(self, engine: str) -> int:
        """The concurrency to use against a server of ``engine`` (see the field's help)."""
        if self.concurrency is not None:
            return self.concurrency
        if engine == "transformers":
            return CB_CONCURRENCY if self.continuous_batching else 1
        return 64


CB_CONCURRENCY = 48  # per server: on 2 CPU cores 48 in flight kept a tiny policy's batches full (bench_sampling.py)

_CB_REFUSED = ("--continuous-batching is refused as an extra argument: in transformers 5.24 the continuous "
               "batching worker keeps the sampling settings of the first request it saw (every later request, "
               "greedy evaluation included, is sampled at that temperature); set sampling.server.continuous_batching: "
               "true instead (one server per sampling setting), or use vLLM")


def refuse_continuous_batching(engine: str, extra_args: list[str], continuous_batching: bool = False) -> None:
    """The same refusals once ``engine: auto`` has been resolved (to vllm when it is installed)."""
    if engine == "transformers" and "--continuous-batching" in extra_args:
        raise ConfigError(f"{WHERE}.extra_args", _CB_REFUSED)
    if continuous_batching and engine != "transformers":
        raise ConfigError(f"{WHERE}.continuous_batching", f"is for transformers serve only, but the engine is "
                          f"{engine} (it batches continuously by itself); remove continuous_batching")
