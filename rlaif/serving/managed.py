"""An inference server the loop starts itself: ``vllm serve`` when vLLM is installed, else ``transformers serve``.

Why the loop owns it: sampling N candidates per prompt is the slow part of an iteration, and a serving engine
(continuous batching, paged attention, tensor parallelism) does it far faster on a GPU than ``model.generate``. The
server is started on one checkpoint on a free loopback port, in its own process group (its workers stop with it),
under a guard that SIGTERMs it if the loop dies (``rlaif.serving.guard``); it is stopped on exit from its ``with``
block, at interpreter exit, and by the project before training, so nothing is left running.

    with ManagedServer("runs/r1/iteration-01/model", options, log_dir=Path("runs/servers")) as server:
        server.base_url  # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

from rlaif.core.fields import ConfigError
from rlaif.serving.options import ServerOptions, refuse_continuous_batching

GUARD = Path(__file__).with_name("guard.py")


class ServerError(ConfigError):
    """An inference server could not be started, reached or handed a checkpoint: one line naming the config field
    that points at it (``sampling.server.base_urls: ...``). A ConfigError, so every command prints it as one line
    (``error: ...``) instead of a traceback."""


def resolve_engine(engine: str) -> str:
    """``auto`` for a managed server: vllm when it is installed here, else transformers serve."""
    if engine != "auto":
        return engine
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def engine_version(engine: str) -> str | None:
    try:
        return metadata.version({"vllm": "vllm", "transformers": "transformers"}[engine])
    except (KeyError, metadata.PackageNotFoundError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _executable(name: str) -> str:
    """The console script beside this interpreter (a virtualenv's), else the one on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        raise ServerError("sampling.server.engine", f"`{name}` is not installed here (pip install "
                          f"{'vllm' if name == 'vllm' else 'transformers[serving]'}), or choose another engine")
    return found


# Continuous batching's KV cache, unless extra_args size it: left alone, transformers sizes it from free memory
# (80-90% of the host's RAM on CPU), so two servers side by side are killed for memory. 32-token pages waste little
# on short completions; 1024 of them hold ~48 requests of a few hundred tokens; 512 tokens per forward step.
CB_CACHE_ARGS = {"--cb-block-size": "32", "--cb-num-blocks": "1024", "--cb-max-batch-tokens": "512"}


def continuous_batching_args(extra_args: list[str]) -> list[str]:
    """``--continuous-batching`` and the cache sizes extra_args does not set itself."""
    given = {a.split("=", 1)[0] for a in extra_args}
    return ["--continuous-batching", *(x for k, v in CB_CACHE_ARGS.items() if k not in given for x in (k, v))]


def server_command(engine: str, model_path: str, port: int, extra_args: list[str], *,
                   continuous_batching: bool = False) -> list[str]:
    """The command line that serves ``model_path`` on 127.0.0.1:``port``; requests then name ``model_path``."""
    if engine == "vllm":
        return [_executable("vllm"), "serve", model_path, "--host", "127.0.0.1", "--port", str(port), *extra_args]
    if engine == "transformers":
        # the model is preloaded (health means loaded) and never unloaded while the server lives
        cb = continuous_batching_args(extra_args) if continuous_batching else []
        return [_executable("transformers"), "serve", model_path, "--host", "127.0.0.1", "--port", str(port),
                *cb, *extra_args]
    raise ServerError("sampling.server.engine", f"a managed server is vllm or transformers, got {engine!r}")


def log_tail(path: Path, lines: int = 3, width: int = 400) -> str:
    """The last non-empty lines of a server log, joined into one line (for a one-line error)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return (" | ".join(tail) or "(empty log)")[-width:]


def is_healthy(base: str, timeout: float = 2.0) -> bool:
    """GET ``base``/health answers 200 (vLLM, transformers serve and SGLang all have it)."""
    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/health", timeout=timeout) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def root_of(base_url: str) -> str:
    """http://host:port/v1 -> http://host:port (where /health lives)."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


class ManagedServer:
    def __init__(self, model_path: str | Path, options: ServerOptions, *, log_dir: Path, label: str = ""):
        self.model_path = str(model_path)
        self.options = options
        self.engine = resolve_engine(options.engine)
        refuse_continuous_batching(self.engine, list(options.extra_args), options.continuous_batching)
        self.label = label  # continuous batching: the sampling setting this server is fixed to (in its log name)
        self.version = engine_version(self.engine)
        self.log_dir = Path(log_dir)
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def pids(self) -> list[int]:
        """As ``SettingServers.pids``: every server process this stands for."""
        return [self.pid] if self.pid is not None else []

    # ---- lifecycle

    def start(self) -> "ManagedServer":
        self.launch()
        try:
            deadline = time.monotonic() + self.options.startup_timeout_s
            while not self.healthy(deadline):
                time.sleep(0.25)
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start the process, without waiting for it. Call it from the thread that lives as long as the server:
        the guard's parent-death signal follows the launching *thread* (a pool thread's exit would stop it)."""
        self.port = free_port()
        command = server_command(self.engine, self.model_path, self.port, list(self.options.extra_args),
                                 continuous_batching=self.options.continuous_batching)
        env = dict(os.environ)
        if self.options.cpu_threads is not None:
            env["OMP_NUM_THREADS"] = str(self.options.cpu_threads)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.engine}-serve{'-' + self.label if self.label else ''}-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, str(GUARD), str(os.getpid()), "--", *command],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, start_new_session=True)
        _LIVE[self.process.pid] = self

    def healthy(self, deadline: float) -> bool:
        """Whether the launched server answers /health yet; ServerError if it exited or ``deadline`` passed."""
        if is_healthy(root_of(self.base_url)):
            return True
        code = self.process.poll()
        if code is not None:
            raise ServerError("sampling.server", f"{self.engine} serve exited with code {code} before it was "
                              f"healthy (log {self.log_path}): {log_tail(self.log_path)}")
        if time.monotonic() > deadline:
            raise ServerError("sampling.server.startup_timeout_s", f"{self.engine} serve was not healthy after "
                              f"{self.options.startup_timeout_s:g} s (log {self.log_path}): "
                              f"{log_tail(self.log_path)}")
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``grace_s``; safe to call twice."""
        proc = self.process
        if proc is None:
            return
        _LIVE.pop(proc.pid, None)
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)  # the group: vLLM's engine workers too
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # workers that outlived the leader
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process = None

    def __enter__(self) -> "ManagedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_LIVE: dict[int, ManagedServer] = {}
_LOCK = threading.Lock()


def stop_all_servers() -> None:
    """Stop every managed server still running (at interpreter exit: nothing is left behind)."""
    with _LOCK:
        for server in list(_LIVE.values()):
            server.stop(grace_s=5.0)


atexit.register(stop_all_servers)
