"""The parent side of the SQL sandbox's worker processes: start them, talk to them under a deadline, kill them.

Why ``subprocess`` with a fresh interpreter (the ``spawn`` way) and never ``fork``: the workbench runs the loop in a
thread and ``verify_many`` verifies from several threads at once, and a forked child of a multi-threaded parent may
inherit a lock held by another thread (DuckDB's, the allocator's) and hang. The child is ``python -I`` (no
``PYTHON*`` variables, no user site), in its own session, with a minimal environment, ``MALLOC_ARENA_MAX=2`` (glibc
reserves 64 MB of address space per arena and thread, which would eat the ``RLIMIT_AS`` budget before any query)
and its working directory, ``HOME`` and ``TMPDIR`` in the sandbox's private scratch folder. Its first act, before
DuckDB or any of our code is imported, is ``setrlimit(RLIMIT_AS)`` (and no core dumps); see ``_BOOT``.

A request's deadline is the query's ``timeout_s`` plus ``kill_grace_s``: DuckDB's own ``max_execution_time``
normally ends a slow query first and the worker stays; when nothing comes back in time (a scalar call DuckDB cannot
interrupt) the worker is killed with SIGKILL and replaced on next use. A worker that dies on its own is classed by
how: killed by a signal or exited after a ``MemoryError`` is ``memory`` (the address-space limit or the kernel's
OOM killer; nothing else ends it mid-query).

    pool = WorkerPool(spawn=lambda: WorkerProcess(setup, memory_bytes, folder, max_line_bytes=2 << 20), size=2)
    with pool.worker() as w:
        w.send({"op": "run", "sql": "SELECT 1", "enforce": True}); w.read(deadline)
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

_HERE = Path(__file__).resolve().parent
_WORKER_FILE = str(_HERE / "sql_worker.py")
_PARSE_FILE = str(_HERE / "sql_parse.py")

# argv: memory limit in bytes, sql_parse.py, sql_worker.py. Loaded by path so the worker imports neither the rlaif
# package (and everything its __init__ pulls in) nor anything from the working directory.
_BOOT = """\
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
import importlib.util
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
load("rlaif_sql_parse", sys.argv[2])
load("rlaif_sql_worker", sys.argv[3]).main()
"""

_READ_CHUNK = 1 << 16
_MEMORY_SIGNALS = {signal.SIGKILL, signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS}


class WorkerTimeout(Exception):
    """No (complete) reply before the deadline."""


class WorkerStartError(RuntimeError):
    """A worker process could not be started (or refused to serve: hardening not applied, limit too small)."""


class WorkerDied(Exception):
    """The worker process ended or its reply could not be used; ``kind`` is the verdict's error kind."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class WorkerProcess:
    """One worker process: send a request line, read reply lines under a deadline and a size cap."""

    def __init__(self, setup: dict[str, Any], memory_bytes: int, folder: Path, *, max_line_bytes: int,
                 start_timeout_s: float = 60.0):
        self.memory_bytes = memory_bytes
        self.max_line_bytes = max_line_bytes
        self.killed = False
        self.from_idle = False  # set by the pool: this checkout reused a worker that had waited idle
        self.replied = False  # whether the current request got any reply line yet
        self._log = folder / f"worker-{time.monotonic_ns()}.log"
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, str(memory_bytes), _PARSE_FILE, _WORKER_FILE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=folder,
                env={"PATH": os.defpath, "LC_ALL": "C.UTF-8", "HOME": str(folder), "TMPDIR": str(folder),
                     "MALLOC_ARENA_MAX": "2"},
                start_new_session=True, close_fds=True)
        self._buffer = bytearray()
        self._poll = select.poll()
        self._poll.register(self.proc.stdout.fileno(), select.POLLIN)
        try:
            self.send(setup)
            hello = self.read(time.monotonic() + start_timeout_s)
        except (WorkerTimeout, WorkerDied, OSError) as exc:
            self.kill()
            raise WorkerStartError(f"the SQL worker process did not start: {exc}{self._stderr_tail()}") from None
        if "fatal" in hello:
            self.kill()
            raise WorkerStartError(f"the SQL worker process did not start: {hello['fatal']}")
        self._log.unlink(missing_ok=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return not self.killed and self.proc.poll() is None

    def send(self, obj: dict[str, Any]) -> None:
        self.replied = False
        try:
            self.proc.stdin.write(json.dumps(obj).encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise self._died() from None

    def read(self, deadline: float) -> dict[str, Any]:
        """The next reply line; raises ``WorkerTimeout`` or ``WorkerDied`` (the caller then kills the worker)."""
        fd = self.proc.stdout.fileno()
        scanned = 0  # the buffer before this offset holds no newline
        while True:
            newline = self._buffer.find(b"\n", scanned)
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                try:
                    reply = json.loads(line)
                except ValueError:
                    raise WorkerDied("the SQL worker sent a malformed reply", "runtime") from None
                if not isinstance(reply, dict):
                    raise WorkerDied("the SQL worker sent a malformed reply", "runtime")
                self.replied = True
                return reply
            scanned = len(self._buffer)
            if scanned > self.max_line_bytes:
                raise WorkerDied(f"the result is larger than {self.max_line_bytes} bytes", "too_large")
            left = deadline - time.monotonic()
            if left <= 0 or not self._poll.poll(left * 1000):  # poll, not select: fds above 1024 are fine
                raise WorkerTimeout()
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                raise self._died()
            self._buffer += chunk

    def _died(self) -> WorkerDied:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        limit_mb = self.memory_bytes // (1024 * 1024)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if -code in _MEMORY_SIGNALS:
                return WorkerDied(f"the query's worker process was killed ({name}); most likely it ran out of "
                                  f"memory (limit {limit_mb} MB)", "memory")
            return WorkerDied(f"the query's worker process was killed ({name})", "runtime")
        if code == 3:
            return WorkerDied(f"the query ran out of memory (limit {limit_mb} MB)", "memory")
        return WorkerDied(f"the query's worker process exited unexpectedly (code {code})", "memory")

    def _stderr_tail(self) -> str:
        try:
            tail = self._log.read_bytes()[-2000:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"\n{tail}" if tail else ""

    def kill(self) -> None:
        """SIGKILL the worker (idempotent) and reap it."""
        self.killed = True
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not wait for anything
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._log.unlink(missing_ok=True)


class PoolClosedError(RuntimeError):
    """The pool was closed before or while a worker was being used."""


class WorkerPool:
    """At most ``size`` worker processes, reused; a worker that failed is killed and the next use starts a fresh one.

    ``restarts`` counts the workers started to replace one that was killed or died (the bench and tests read it).
    """

    def __init__(self, spawn: Callable[[], WorkerProcess], size: int):
        if size < 1:
            raise ValueError("the pool needs at least one worker")
        self._spawn = spawn
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[WorkerProcess] = []
        self._live: set[WorkerProcess] = set()
        self._closed = False
        self.size = size
        self.started = 0
        self.restarts = 0

    def prestart(self) -> None:
        """Start one worker now (and keep it idle), so a bad configuration fails at construction."""
        with self.worker():
            pass

    @contextmanager
    def worker(self) -> Iterator[WorkerProcess]:
        """A worker for one request. If the body raises or leaves the worker killed, it is not reused."""
        self._slots.acquire()
        proc: WorkerProcess | None = None
        try:
            with self._lock:
                if self._closed:
                    raise PoolClosedError("the SQL worker pool is closed")
                while self._idle and proc is None:
                    candidate = self._idle.pop()
                    if candidate.alive():
                        proc = candidate
                        proc.from_idle = True
                    else:  # died while idle (e.g. its parent-watch saw a reparenting): replace quietly
                        self._live.discard(candidate)
                        candidate.kill()
            if proc is None:
                try:
                    proc = self._spawn()
                except OSError as exc:  # fork/exec failed: out of processes or memory
                    raise WorkerStartError(f"the SQL worker process did not start: {exc}") from exc
                proc.from_idle = False
                with self._lock:
                    self.started += 1
                    if self._closed:
                        proc.kill()
                        raise PoolClosedError("the SQL worker pool is closed")
                    self._live.add(proc)
            yield proc
        except BaseException:
            if proc is not None:
                proc.kill()
            raise
        finally:
            if proc is not None:
                with self._lock:
                    if proc.alive() and not self._closed:
                        self._idle.append(proc)
                    else:
                        self._live.discard(proc)
                        if not self._closed:
                            self.restarts += 1
                if not proc.alive():
                    proc.kill()
            self._slots.release()

    @property
    def closed(self) -> bool:
        return self._closed

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(p.pid for p in self._live)

    def close(self) -> None:
        """Kill every worker, idle or busy (a busy caller then sees ``PoolClosedError``); idempotent."""
        with self._lock:
            self._closed = True
            workers = list(self._live)
            self._live.clear()
            self._idle.clear()
        for proc in workers:
            proc.kill()
