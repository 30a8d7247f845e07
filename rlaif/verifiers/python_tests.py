"""The Python unit-test verifier: run the prompt's tests against the candidate's code, in a locked-down subprocess.

Criteria: ``py_compiles`` (the candidate's code compiles) and ``py_tests_pass`` (the prompt's tests all pass). The
candidate's code is the first fenced block tagged ``python``/``py`` (or untagged), else the whole text; it is written
to ``solution.py``. The prompt's **reference is the test code**, written to ``test_solution.py`` and run with
``unittest``: ``TestCase`` classes, plain ``def test_*()`` functions with ``assert``, or module-level asserts only
(HumanEval/MBPP style, which then count as one test). The solution's names are pre-loaded into the test module, so
tests may call ``add(1, 2)`` directly or ``from solution import add``.

The sandbox, kernel-enforced layers first:

* a **fresh temporary directory** per candidate, the working directory, removed afterwards whatever happened;
* a separate ``python -I -S -B -X utf8`` interpreter (isolated: no ``PYTHON*`` variables, no user or site packages,
  no bytecode written), started in a **new session** so the whole process group is killed at the end;
* a **minimal environment** (``PATH``, ``HOME``/``TMPDIR`` = the temp dir, ``LANG``): nothing of ours, so no API key;
* **limits** set with ``setrlimit`` by the runner before any candidate code is imported (inherited by anything it
  starts): address space (``memory_mb``, a 2 GB allocation is a ``MemoryError``), CPU seconds, the size of any file
  written (``max_output_bytes``: the captured output cannot fill the disk) and no core dumps. Why not
  ``preexec_fn``: Python documents it as unsafe in a multi-threaded parent (the workbench runs the loop in a worker
  thread, and ``verify_many`` starts several at once); the runner's first statements have the same effect;
* a **wall-clock timeout** (``timeout_s``): the process group is killed with SIGKILL;
* **no network**: with ``network: auto`` (default) the interpreter runs under ``unshare -rn`` (a new, empty network
  namespace, so even loopback is unreachable) when this kernel allows unprivileged user namespaces (probed once);
  ``netns`` insists on it; ``guard`` skips it. And unless ``guard: false`` (allowed only with a namespace, for tests
  that must start processes) a ``sys.addaudithook`` guard is installed before the candidate is imported: it refuses
  socket creation (except socket pairs), connect/bind/send and DNS, process creation (``subprocess``,
  ``os.system``, ``fork``, ``exec``, ``posix_spawn``), ``ctypes``, signalling other processes, raising its own
  limits (which a process running as real root could), and writes, removals and renames outside the temp dir.
  Audit hooks are not a security boundary (PEP 578), which is why the network namespace is used whenever it can be;
  they stop the ordinary ways candidate code reaches the network, the parent or the project. The tests check each
  layer alone against a real loopback listener.

What it does not protect: reads of files the user can read (the child's output is stored, truncated), and a
candidate written to subvert ``unittest`` from inside the same interpreter. The runner reports through a private pipe
with a per-run nonce, so a candidate that merely exits early (``sys.exit(0)``, ``os._exit(0)``) does not pass.

Error kinds: ``syntax``, ``import`` (the solution raised while importing), ``test_failure``, ``runtime`` (the tests
raised at module level), ``memory``, ``timeout``, ``cpu_time``, ``output_limit``, ``exit`` (the process ended without
reporting), ``too_large``, ``sandbox`` (the sandbox could not start); a broken test file is a ``reference_error``.

    PythonTestsVerifier().verify("def add(a, b):\\n    return a + b\\n", "assert add(1, 2) == 3").passed
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.verifiers.base import (
    Verifier,
    VerifierOptionError,
    VerifierResult,
    check_number,
    extract_fenced,
    resolve_path,
)

NETWORK_MODES = ("auto", "netns", "guard")
SOLUTION_FILE_MODULE = "solution"
TESTS_FILE = "test_solution.py"


@dataclass
class PythonTestsOptions:
    timeout_s: float = field(default=10.0, metadata={"help": "Wall-clock limit per candidate, start-up included."})
    cpu_s: int | None = field(default=None, metadata={"help": "CPU-seconds limit; default ceil(timeout_s) + 1."})
    memory_mb: int = field(default=512, metadata={"help": "Address-space limit of the test process (RLIMIT_AS)."})
    max_output_bytes: int = field(default=1 << 20, metadata={
        "help": "Largest file the test process may write, its captured output included (RLIMIT_FSIZE)."})
    max_output_chars: int = field(default=4000, metadata={"help": "Captured output kept in the result."})
    max_chars: int = field(default=100_000, metadata={"help": "Longer candidates fail without being run."})
    network: str = field(default="auto", metadata={
        "help": "auto (a network namespace when available), netns (required) or guard (the audit guard alone)."})
    guard: bool = field(default=True, metadata={
        "help": "Install the audit-hook guard (sockets, processes, ctypes, signals, writes outside the temp dir). "
                "Turn it off only for tests that must start processes, and only with a network namespace."})
    module: str = field(default=SOLUTION_FILE_MODULE, metadata={"help": "Module name the tests import."})
    site_packages: bool = field(default=False, metadata={
        "help": "Let the tests import installed packages (drops -S). Off: the standard library only."})
    tmp_root: str | None = field(default=None, metadata={"help": "Where temp dirs are made; default the system's."})

    def __post_init__(self):
        check_number("timeout_s", self.timeout_s)
        if self.cpu_s is not None:
            check_number("cpu_s", self.cpu_s, 0, integer=True)
        check_number("memory_mb", self.memory_mb, 64, integer=True)
        check_number("max_output_bytes", self.max_output_bytes, 1023, integer=True)
        check_number("max_output_chars", self.max_output_chars, -1, integer=True)
        check_number("max_chars", self.max_chars, 0, integer=True)
        if self.network not in NETWORK_MODES:
            raise VerifierOptionError("network", f"must be one of {', '.join(NETWORK_MODES)}, got {self.network!r}")
        if not isinstance(self.module, str) or not self.module.isidentifier() or self.module == "test_solution":
            raise VerifierOptionError("module", f"must be a Python identifier other than test_solution, "
                                                f"got {self.module!r}")
        if not isinstance(self.guard, bool):
            raise VerifierOptionError("guard", f"must be true or false, got {self.guard!r}")
        if not self.guard and self.network == "guard":
            raise VerifierOptionError("guard", "is false with network: guard, which would leave the network open")
        if not isinstance(self.site_packages, bool):
            raise VerifierOptionError("site_packages", f"must be true or false, got {self.site_packages!r}")


# ---------------------------------------------------------------------------------------------------------------------
# the runner: the first code the child interpreter executes (python -c RUNNER CONFIG_JSON)

RUNNER = r'''
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
sys.argv[:] = ["test_solution.py"]


def _limit(which, soft, hard=None):
    hard = soft if hard is None else hard
    _, cur_hard = resource.getrlimit(which)
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(which, (soft, hard))


_limit(resource.RLIMIT_AS, cfg["memory_bytes"])
_limit(resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1)
_limit(resource.RLIMIT_FSIZE, cfg["fsize_bytes"])
_limit(resource.RLIMIT_CORE, 0)

import errno, importlib, traceback, types, unittest

_fd, _nonce = cfg["report_fd"], cfg["nonce"]
_home = os.path.realpath(os.getcwd())


def _send(**msg):
    msg["nonce"] = _nonce
    os.write(_fd, (json.dumps(msg) + "\n").encode())


def _tail(text, n=1500):
    return text if len(text) <= n else "..." + text[-n:]


def _exc(err):
    return _tail("".join(traceback.format_exception_only(type(err), err)).strip())


def _finish(**msg):
    _send(**msg)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


with open(cfg["solution_file"], encoding="utf-8") as f:
    _src = f.read()
with open("test_solution.py", encoding="utf-8") as f:
    _tests_src = f.read()
try:
    compile(_src, cfg["solution_file"], "exec")
except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
    _finish(stage="compile", ok=False, error=_exc(err))
_send(stage="compile", ok=True)
try:
    _tests_code = compile(_tests_src, "test_solution.py", "exec")
except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
    _finish(stage="reference", error=_exc(err))

# ---- the guard (audit hook): installed before any candidate code runs, cannot be removed
import socket as _socket_mod

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_REFUSED = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
            "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.sethostname",
            "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
            "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata",
            "ctypes.call_function", "resource.setrlimit", "resource.prlimit"}
_PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.symlink": (1,),
                "os.link": (1,), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,),
                "shutil.rmtree": (0,), "os.mkfifo": (0,), "os.mknod": (0,)}


def _inside(path):
    if isinstance(path, int):
        return True
    try:
        path = os.fsdecode(path)
        full = os.path.realpath(os.path.join(os.getcwd(), path))
    except Exception:
        return False
    return full == _home or full.startswith(_home + os.sep) or full == os.devnull


def _guard(event, args):
    if event in _REFUSED:
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "socket.__new__" and len(args) > 1 and args[1] not in (-1, _socket_mod.AF_UNIX):
        raise PermissionError("sandbox: network sockets are not allowed")
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        if writes and not _inside(path):
            raise PermissionError(f"sandbox: writing outside the working directory is not allowed: {path!r}")
    elif event in _PATH_EVENTS:
        for i in _PATH_EVENTS[event]:
            if i < len(args) and not _inside(args[i]):
                raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")


if cfg["guard"]:
    sys.addaudithook(_guard)
sys.path.insert(0, _home)


def _kind(err, default):
    if isinstance(err, MemoryError):
        return "memory"
    if isinstance(err, OSError) and err.errno == errno.EFBIG:  # RLIMIT_FSIZE (Python ignores SIGXFSZ)
        return "output_limit"
    return default


try:
    _module = importlib.import_module(cfg["module"])
except BaseException as err:
    _finish(stage="tests", ok=False, kind=_kind(err, "import"), run=0, failures=0, errors=1,
            error="importing the solution raised " + _exc(err))

_ns = types.ModuleType("test_solution")
_ns.__file__ = os.path.join(_home, "test_solution.py")
_ns.__dict__.update({k: v for k, v in vars(_module).items() if not k.startswith("__")})
sys.modules["test_solution"] = _ns
try:
    exec(_tests_code, _ns.__dict__)
except BaseException as err:
    _finish(stage="tests", ok=False, kind=_kind(err, "test_failure" if isinstance(err, AssertionError) else "runtime"),
            run=1, failures=int(isinstance(err, AssertionError)), errors=int(not isinstance(err, AssertionError)),
            error="the tests raised at module level: " + _exc(err))

_suite = unittest.TestSuite()
_loader = unittest.TestLoader()
for _name, _obj in list(vars(_ns).items()):
    if getattr(_obj, "__module__", None) != "test_solution":
        continue
    if isinstance(_obj, type) and issubclass(_obj, unittest.TestCase):
        _suite.addTests(_loader.loadTestsFromTestCase(_obj))
    elif _name.startswith("test") and isinstance(_obj, types.FunctionType):
        _suite.addTest(unittest.FunctionTestCase(_obj))
if _suite.countTestCases() == 0:  # module-level asserts only, and they passed
    _finish(stage="tests", ok=True, kind=None, run=1, failures=0, errors=0, module_level=True)

_result = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(_suite)
_problems = [(t, tb) for t, tb in _result.failures + _result.errors] + \
            [(t, "unexpected success") for t in _result.unexpectedSuccesses]
_ok = _result.wasSuccessful() and _result.testsRun > 0
_kind_out = None
if not _ok:
    _last = [tb.strip().splitlines()[-1] for _, tb in _problems if tb.strip()]
    _kind_out = "memory" if any("MemoryError" in x for x in _last) else \
        "output_limit" if any("File too large" in x for x in _last) else "test_failure"
_finish(stage="tests", ok=_ok, kind=_kind_out, run=_result.testsRun, failures=len(_result.failures),
        errors=len(_result.errors), skipped=len(_result.skipped),
        error="; ".join(f"{t}: {_tail(tb, 600)}" for t, tb in _problems[:3]) or None)
'''


# ---------------------------------------------------------------------------------------------------------------------
# the network namespace probe

_probe_lock = threading.Lock()
_netns: dict[str, list[str] | None] = {}


def netns_prefix() -> list[str] | None:
    """``[unshare, -rn]`` when an unprivileged network namespace can be made here (probed once), else ``None``."""
    with _probe_lock:
        if "prefix" not in _netns:
            prefix = None
            exe = shutil.which("unshare")
            if exe and sys.platform.startswith("linux"):
                try:
                    probe = subprocess.run([exe, "-rn", sys.executable, "-I", "-S", "-c", "pass"],
                                           env=_minimal_env(tempfile.gettempdir()), capture_output=True, timeout=10)
                    prefix = [exe, "-rn"] if probe.returncode == 0 else None
                except (OSError, subprocess.SubprocessError):
                    prefix = None
            _netns["prefix"] = prefix
        return _netns["prefix"]


def _minimal_env(home: str) -> dict[str, str]:
    """The child's whole environment: nothing inherited, so no API key or token can leak into candidate code."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8"}


def extract_code(candidate_text: str) -> str:
    """The first ```python (or untagged) fenced block, else the whole text."""
    body = extract_fenced(candidate_text or "", ("python", "py", "python3"))
    return body if body is not None else (candidate_text or "")


def _read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the session's group: the child and anything it managed to start
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# ---------------------------------------------------------------------------------------------------------------------
# the verifier


class PythonTestsVerifier(Verifier):
    """Stateless apart from the one-time namespace probe: safe to call from several threads."""

    kind = "python_tests"
    Options = PythonTestsOptions

    @classmethod
    def open(cls, options: PythonTestsOptions, base_dir: Path) -> AbstractContextManager["PythonTestsVerifier"]:
        if options.tmp_root is not None:
            options = dataclasses.replace(options, tmp_root=str(resolve_path(options.tmp_root, base_dir)))
        return nullcontext(cls(options))

    def __init__(self, options: PythonTestsOptions | None = None):
        self.options = options or PythonTestsOptions()
        self._prefix: list[str] = []
        if self.options.network != "guard":
            prefix = netns_prefix()
            if prefix is None and (self.options.network == "netns" or not self.options.guard):
                why = "network is netns" if self.options.network == "netns" else "guard is false"
                raise VerifierOptionError("network", f"{why}, but `unshare -rn` cannot create a network namespace "
                                                     "here (use network: auto or guard, with the guard on)")
            self._prefix = prefix or []
        #: how the network is cut off, for the record: "netns+guard", "netns" or "guard"
        self.isolation = "+".join(x for x, on in (("netns", bool(self._prefix)), ("guard", self.options.guard)) if on)

    def _command(self, config: dict[str, Any]) -> list[str]:
        flags = ["-I", "-B", "-X", "utf8"] + ([] if self.options.site_packages else ["-S"])
        return [*self._prefix, sys.executable, *flags, "-c", RUNNER, json.dumps(config)]

    def verify(self, candidate_text: str, reference: str | None) -> VerifierResult:
        t0 = time.perf_counter()
        opts = self.options
        checks = {"py_compiles": False, "py_tests_pass": False}
        details: dict[str, Any] = {"isolation": self.isolation}

        def done(error=None, error_kind=None, reference_error=None) -> VerifierResult:
            return VerifierResult("python_tests", checks, error, error_kind, (time.perf_counter() - t0) * 1000,
                                  reference_error, details)

        if reference is None or not reference.strip():
            return done(reference_error="no tests: the prompt's reference must hold the test code")
        code = extract_code(candidate_text)
        if len(code) > opts.max_chars:
            return done(f"candidate code longer than {opts.max_chars} characters", "too_large")

        with tempfile.TemporaryDirectory(prefix="rlaif_pytests_", dir=opts.tmp_root,
                                         ignore_cleanup_errors=True) as tmp:
            details["workdir"] = tmp
            solution_file = f"{opts.module}.py"
            Path(tmp, solution_file).write_text(code, encoding="utf-8")
            Path(tmp, TESTS_FILE).write_text(reference, encoding="utf-8")
            nonce = secrets.token_hex(16)
            read_fd, write_fd = os.pipe()
            config = {"report_fd": write_fd, "nonce": nonce, "module": opts.module, "solution_file": solution_file,
                      "memory_bytes": opts.memory_mb << 20, "cpu_s": opts.cpu_s or math.ceil(opts.timeout_s) + 1,
                      "fsize_bytes": opts.max_output_bytes, "guard": opts.guard}
            output_path = os.path.join(tmp, ".output")
            timed_out = False
            try:
                with open(output_path, "wb") as output:
                    try:
                        proc = subprocess.Popen(self._command(config), cwd=tmp, env=_minimal_env(tmp),
                                                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                                pass_fds=(write_fd,), start_new_session=True)
                    except OSError as err:
                        return done(f"could not start the test process: {err}", "sandbox")
                    finally:
                        os.close(write_fd)
                    try:
                        proc.wait(timeout=opts.timeout_s)
                    except subprocess.TimeoutExpired:
                        timed_out = True
                    finally:
                        _killpg(proc)
                report = _read_available(read_fd)
            finally:
                os.close(read_fd)
            with open(output_path, "rb") as f:
                raw = f.read(opts.max_output_chars * 4 + 4)
        details["output"] = _truncate(raw.decode("utf-8", errors="replace"), opts.max_output_chars)
        details["returncode"] = proc.returncode

        messages: dict[str, dict[str, Any]] = {}
        for line in report.splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("nonce") == nonce:
                messages.setdefault(msg.get("stage"), msg)  # the runner's own first word on each stage counts

        compiled = messages.get("compile")
        if compiled is not None:
            checks["py_compiles"] = bool(compiled.get("ok"))
            if not compiled.get("ok"):
                return done(compiled.get("error"), "syntax")
        if "reference" in messages:
            return done(reference_error=f"the test code does not compile: {messages['reference'].get('error')}")
        tests = messages.get("tests")
        if tests is not None:
            checks["py_tests_pass"] = bool(tests.get("ok"))
            details.update({k: tests[k] for k in ("run", "failures", "errors", "skipped", "module_level")
                            if k in tests})
            return done(tests.get("error"), tests.get("kind"))
        return done(*self._death(proc.returncode, timed_out, details["output"]))

    def _death(self, returncode: int, timed_out: bool, output: str) -> tuple[str, str]:
        """(error, error_kind) for a process that ended without reporting its tests."""
        if timed_out:
            return f"the tests did not finish within {self.options.timeout_s:g} s", "timeout"
        if returncode == -signal.SIGXCPU:
            return "the CPU-time limit was exceeded", "cpu_time"
        if returncode == -signal.SIGXFSZ:
            return f"the output exceeded {self.options.max_output_bytes} bytes", "output_limit"
        if "MemoryError" in output:
            return f"the memory limit ({self.options.memory_mb} MB) was exceeded", "memory"
        return f"the test process ended (status {returncode}) before reporting its tests", "exit"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... [truncated: {len(text) - limit}+ more characters]"
