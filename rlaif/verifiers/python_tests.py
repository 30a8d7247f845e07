"""The Python unit-test verifier: run the prompt's tests against the candidate's code, each in its own OS jail.

Criteria: ``py_compiles`` (the candidate's code compiles) and ``py_tests_pass`` (the prompt's tests all pass). The
candidate's code is the first fenced block tagged ``python``/``py`` (or untagged), else the whole text. The prompt's
**reference is the test code**: ``unittest`` ``TestCase`` classes, plain ``def test_*()`` functions with ``assert``,
or module-level asserts only (HumanEval/MBPP style, which then count as one test). The solution's names are
pre-loaded into the test module, so tests may call ``add(1, 2)`` directly or ``from solution import add``.

Why two jails per candidate (see ``python_runner``): a verdict decided in the interpreter that runs the candidate can
be forged by it (it once called the harness's own ``_finish``). So the **candidate server** (C) imports the code and
answers requests, and the **tester** (T) runs our runner and the tests against a proxy module, decides and reports
the verdict through its own pipe with a per-run nonce. C and T run in separate jails (separate PID namespaces: neither
can see, trace or signal the other) joined only by a socket pair the host made; only plain data crosses it, and
handles to candidate objects compare by identity, never by the candidate's ``__eq__``. C's output is kept (truncated)
as the result's output but never read for a verdict; the candidate never sees the test code. A candidate that
crashes, hangs, exits or kills itself fails the tests. What cannot cross: callables and other non-data objects
passed from the tests; ``isinstance`` against candidate classes (see ``python_runner``).

The jails (see ``python_jail``): user, PID, mount, network, IPC and UTS namespaces via bubblewrap (``isolation:
bwrap``) or ``unshare`` plus remounts (``unshare``); ``auto`` takes the first that works here (probed once per
process) and **refuses to run** when neither does, unless the config says ``isolation: none`` (a plain subprocess:
use it only for trusted candidates). In every mode, before any candidate code runs: rlimits (address space
``memory_mb``, CPU seconds, file size ``max_output_bytes``, no core dumps, open files, processes), a seccomp filter
(no new processes, namespaces, mounts or ptrace), a cleared environment (no API key); and at ``timeout_s`` the host
kills both jails' process groups. Host-side files live in a ``scratch_dir("pytests")`` removed afterwards.

Error kinds: ``syntax``, ``import`` (the solution raised while importing), ``test_failure``, ``runtime`` (the tests
raised at module level), ``memory``, ``timeout``, ``cpu_time``, ``output_limit``, ``exit`` (a process ended without
reporting, or the candidate's process died mid-test), ``too_large``, ``sandbox`` (a jail could not start); a broken
test file is a ``reference_error``.

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
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.core.scratch import scratch_dir
from rlaif.verifiers.base import (
    Verifier,
    VerifierOptionError,
    VerifierResult,
    check_number,
    extract_fenced,
    resolve_path,
)
from rlaif.verifiers.python_jail import (
    ISOLATION_MODES,
    JAIL_IN,
    MINIMAL_ENV,
    copy_runner,
    jail_argv,
    kill_jail,
    probe_backend,
)

SOLUTION_FILE_MODULE = "solution"
TESTS_FILE = "test_solution.py"


@dataclass
class PythonTestsOptions:
    timeout_s: float = field(default=10.0, metadata={"help": "Wall-clock limit per candidate, start-up included."})
    cpu_s: int | None = field(default=None, metadata={"help": "CPU-seconds limit; default ceil(timeout_s) + 1."})
    memory_mb: int = field(default=512, metadata={"help": "Address-space limit of each jailed process (RLIMIT_AS)."})
    max_output_bytes: int = field(default=1 << 20, metadata={
        "help": "Largest file a jailed process may write, its captured output included (RLIMIT_FSIZE); also the "
                "size of its /tmp and work-dir tmpfs."})
    max_output_chars: int = field(default=4000, metadata={"help": "Captured output kept in the result."})
    max_chars: int = field(default=100_000, metadata={"help": "Longer candidates fail without being run."})
    isolation: str = field(default="auto", metadata={
        "help": "auto (bubblewrap, else unshare; refuses to run when neither works), bwrap, unshare, or none (no OS "
                "jail: a plain subprocess with rlimits; only for trusted candidates)."})
    module: str = field(default=SOLUTION_FILE_MODULE, metadata={"help": "Module name the tests import."})
    site_packages: bool = field(default=False, metadata={
        "help": "Let the tests and the candidate import installed packages (drops -S). Off: the standard library."})
    tmp_root: str | None = field(default=None, metadata={"help": "Where host-side scratch folders are made; default "
                                                                 "the system's temp dir."})

    def __post_init__(self):
        check_number("timeout_s", self.timeout_s)
        if self.cpu_s is not None:
            check_number("cpu_s", self.cpu_s, 0, integer=True)
        check_number("memory_mb", self.memory_mb, 64, integer=True)
        check_number("max_output_bytes", self.max_output_bytes, 1023, integer=True)
        check_number("max_output_chars", self.max_output_chars, -1, integer=True)
        check_number("max_chars", self.max_chars, 0, integer=True)
        if self.isolation not in ISOLATION_MODES:
            raise VerifierOptionError("isolation", f"must be one of {', '.join(ISOLATION_MODES)}, "
                                                   f"got {self.isolation!r}")
        if not isinstance(self.module, str) or not self.module.isidentifier() or \
                self.module in ("test_solution", "runner"):
            raise VerifierOptionError("module", f"must be a Python identifier other than test_solution and runner, "
                                                f"got {self.module!r}")
        if not isinstance(self.site_packages, bool):
            raise VerifierOptionError("site_packages", f"must be true or false, got {self.site_packages!r}")


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


def _exit_signal(returncode: int | None) -> int | None:
    """The signal that ended a jailed process: -N from Popen, or 128+N as bwrap/unshare pass it on."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    return returncode - 128 if 128 < returncode < 160 else None


class PythonTestsVerifier(Verifier):
    """Stateless apart from the one-time jail probe: safe to call from several threads."""

    kind = "python_tests"
    Options = PythonTestsOptions

    @classmethod
    def open(cls, options: PythonTestsOptions, base_dir: Path) -> AbstractContextManager["PythonTestsVerifier"]:
        if options.tmp_root is not None:
            options = dataclasses.replace(options, tmp_root=str(resolve_path(options.tmp_root, base_dir)))
        return nullcontext(cls(options))

    def __init__(self, options: PythonTestsOptions | None = None):
        self.options = options or PythonTestsOptions()
        backend = probe_backend(self.options.isolation)
        if backend is None:
            tried = "bubblewrap or unshare" if self.options.isolation == "auto" else self.options.isolation
            raise VerifierOptionError("isolation", f"is {self.options.isolation}, but no {tried} jail (user, PID, "
                                                   "mount and network namespaces) can be made here; install "
                                                   "bubblewrap (scripts/setup.sh does), or set isolation: none to run "
                                                   "candidates without an OS jail (trusted code only)")
        #: how candidates are isolated, for the record: "bwrap", "unshare" or "none"
        self.isolation = backend

    def _command(self, cfg: dict[str, Any]) -> list[str]:
        flags = ["-I", "-B", "-u", "-X", "utf8"] + ([] if self.options.site_packages else ["-S"])
        in_dir = JAIL_IN if self.isolation != "none" else cfg["in_dir"]
        return [sys.executable, *flags, f"{in_dir}/runner.py", json.dumps({**cfg, "in_dir": in_dir})]

    def _start(self, work: Path, role: str, cfg: dict[str, Any], output, fds: tuple[int, ...]) -> subprocess.Popen:
        in_dir, root = work / f"{role}_in", work / f"{role}_root"
        root.mkdir(exist_ok=True)
        argv = jail_argv(self.isolation, str(in_dir), str(root), self._command({**cfg, "in_dir": str(in_dir)}),
                         max(self.options.max_output_bytes, 1 << 20))
        env = dict(MINIMAL_ENV, HOME=str(in_dir), TMPDIR=str(in_dir)) if self.isolation == "none" else dict(MINIMAL_ENV)
        return subprocess.Popen(argv, cwd=str(in_dir), env=env, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, pass_fds=fds, start_new_session=True)

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

        work = scratch_dir("pytests", opts.tmp_root)
        try:
            outcome = self._run(work, code, reference, t0)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report, nonce, outputs, returncodes, timed_out = outcome
        if report is None:
            return done(*outputs)  # could not start: (error, "sandbox")
        details["output"] = _truncate(outputs["candidate"] + outputs["tests"], opts.max_output_chars)
        details["returncode"] = returncodes["tests"]

        messages: dict[str, dict[str, Any]] = {}
        for line in report.splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("nonce") == nonce:
                messages.setdefault(msg.get("stage"), msg)  # the runner's first word on each stage counts

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
            kind = tests.get("kind")
            if kind == "exit":  # the candidate's process died: say why when its exit status tells
                kind = self._death(returncodes["candidate"], False, outputs["candidate"])[1]
            return done(tests.get("error"), kind)
        return done(*self._death(returncodes["tests"], timed_out, details["output"]))

    def _run(self, work: Path, code: str, reference: str, t0: float):
        """Start C and T, wait for T (at most until the deadline), kill both; the raw material of the verdict."""
        opts = self.options
        for role in ("candidate", "tester"):
            (work / f"{role}_in").mkdir()
            copy_runner(work / f"{role}_in")
        (work / "candidate_in" / f"{opts.module}.py").write_text(code, encoding="utf-8")
        (work / "tester_in" / "candidate.txt").write_text(code, encoding="utf-8")
        (work / "tester_in" / TESTS_FILE).write_text(reference, encoding="utf-8")
        for path in work.rglob("*"):  # readable by the jail's user, whoever that maps to
            path.chmod(0o755 if path.is_dir() else 0o644)
        work.chmod(0o755)

        nonce = secrets.token_hex(16)
        base = {"memory_bytes": opts.memory_mb << 20, "cpu_s": opts.cpu_s or math.ceil(opts.timeout_s) + 1,
                "fsize_bytes": opts.max_output_bytes, "module": opts.module, "job": str(work),
                "seccomp": True, "nproc": 64 if self.isolation != "none" else 0}
        t_sock, c_sock = socket.socketpair()
        report_r, report_w = os.pipe()
        procs: dict[str, subprocess.Popen] = {}
        timed_out = False
        with ExitStack() as stack:
            stack.callback(os.close, report_r)
            outs = {role: stack.enter_context(open(work / f"{role}.out", "wb")) for role in ("candidate", "tests")}
            try:
                try:
                    procs["candidate"] = self._start(work, "candidate", {**base, "role": "candidate",
                                                                         "channel_fd": c_sock.fileno()},
                                                     outs["candidate"], (c_sock.fileno(),))
                    budget = opts.timeout_s - (time.perf_counter() - t0) - 0.5
                    procs["tests"] = self._start(work, "tester", {
                        **base, "role": "tester", "channel_fd": t_sock.fileno(), "report_fd": report_w,
                        "nonce": nonce, "budget_s": max(budget, 0.1)}, outs["tests"], (t_sock.fileno(), report_w))
                except OSError as err:
                    return None, nonce, (f"could not start the jail: {err}", "sandbox"), {}, False
                finally:
                    c_sock.close()
                    t_sock.close()
                    os.close(report_w)
                try:
                    procs["tests"].wait(timeout=max(0.0, opts.timeout_s - (time.perf_counter() - t0)))
                except subprocess.TimeoutExpired:
                    timed_out = True
            finally:
                for proc in procs.values():
                    kill_jail(proc)
            report = _read_available(report_r)
        outputs = {}
        for role in ("candidate", "tests"):
            with open(work / f"{role}.out", "rb") as f:
                outputs[role] = f.read(opts.max_output_chars * 4 + 4).decode("utf-8", errors="replace")
        returncodes = {role: proc.returncode for role, proc in procs.items()}
        return report, nonce, outputs, returncodes, timed_out

    def _death(self, returncode: int | None, timed_out: bool, output: str) -> tuple[str, str]:
        """(error, error_kind) for a process that ended without reporting its tests."""
        if timed_out:
            return f"the tests did not finish within {self.options.timeout_s:g} s", "timeout"
        sig = _exit_signal(returncode)
        if sig == signal.SIGXCPU:
            return "the CPU-time limit was exceeded", "cpu_time"
        if sig == signal.SIGXFSZ or "File too large" in output:
            return f"the output exceeded {self.options.max_output_bytes} bytes", "output_limit"
        if "MemoryError" in output:
            return f"the memory limit ({self.options.memory_mb} MB) was exceeded", "memory"
        if "sandbox:" in output:
            return "the jail could not be set up: " + output.strip()[-300:], "sandbox"
        return f"the process ended (status {returncode}) before the tests finished", "exit"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... [truncated: {len(text) - limit}+ more characters]"
