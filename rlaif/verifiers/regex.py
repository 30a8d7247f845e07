"""The regex verifier: does the candidate match the task's pattern?

Criterion ``regex_match``: ``re.fullmatch`` (default), ``re.search`` or ``re.match`` of the pattern on the candidate
(stripped of surrounding whitespace unless ``strip: false``). The pattern is the options' ``pattern`` when given (one
pattern for the task; the prompts' references are then not used), else each prompt's reference.

Why the match runs in a worker *process*: Python's ``re`` backtracks, and a pattern as innocent as ``(a|aa)*b`` takes
exponential time on a 40-character candidate, so no length cap makes it safe (the cap only bounds the linear cases).
A match inside ``re`` cannot be interrupted, and a worker thread cannot be killed, so the match runs in one long-lived
``python -I -S`` worker (memory-limited with ``RLIMIT_AS``) fed over a pipe; when an answer does not come within
``timeout_s`` the worker is killed, the candidate fails with ``error_kind="timeout"`` and the next call starts a fresh
worker. A round trip costs about 0.1 ms; a restart about 30 ms, paid only after a timeout. ``max_chars`` (default
10,000) still caps the candidate: it bounds the pipe traffic and the worker's memory, and keeps even linear patterns
quick. Patterns are compiled once: in this process to reject a bad one early, and once in the worker.

    with RegexVerifier(RegexOptions(pattern=r"\\d{4}-\\d{2}-\\d{2}")) as v: v.verify("2024-05-01", None).passed
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.verifiers.base import Verifier, VerifierOptionError, VerifierResult, check_number

MODES = ("fullmatch", "search", "match")
FLAGS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL, "VERBOSE": re.VERBOSE,
         "ASCII": re.ASCII}


@dataclass
class RegexOptions:
    pattern: str | None = field(default=None, metadata={
        "help": "The task's pattern; without it each prompt's reference is its pattern."})
    mode: str = field(default="fullmatch", metadata={"help": "fullmatch, search or match."})
    flags: list[str] = field(default_factory=list, metadata={
        "help": "re flags by name: IGNORECASE, MULTILINE, DOTALL, VERBOSE, ASCII."})
    strip: bool = field(default=True, metadata={"help": "Strip surrounding whitespace from the candidate first."})
    timeout_s: float = field(default=1.0, metadata={"help": "Wall-clock limit of one match, in the worker."})
    max_chars: int = field(default=10_000, metadata={"help": "Longer candidates fail without being matched."})
    memory_mb: int = field(default=256, metadata={"help": "Address-space limit of the worker process."})

    def __post_init__(self):
        if self.pattern is not None and not isinstance(self.pattern, str):
            raise VerifierOptionError("pattern", f"must be a string, got {type(self.pattern).__name__}")
        if self.mode not in MODES:
            raise VerifierOptionError("mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not isinstance(self.flags, list) or any(f not in FLAGS for f in self.flags):
            raise VerifierOptionError("flags", f"must be a list of {', '.join(FLAGS)}, got {self.flags!r}")
        if not isinstance(self.strip, bool):
            raise VerifierOptionError("strip", f"must be true or false, got {self.strip!r}")
        check_number("timeout_s", self.timeout_s)
        check_number("max_chars", self.max_chars, 0, integer=True)
        check_number("memory_mb", self.memory_mb, 32, integer=True)
        if self.pattern is not None:
            try:
                re.compile(self.pattern, self.flag_bits)
            except re.error as err:
                raise VerifierOptionError("pattern", f"not a valid regular expression: {err}") from None

    @property
    def flag_bits(self) -> int:
        bits = 0
        for name in self.flags:
            bits |= FLAGS[name]
        return bits


# ---------------------------------------------------------------------------------------------------------------------
# the worker process

_WORKER = r"""
import json, re, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
compiled = {}
for line in sys.stdin.buffer:
    try:
        req = json.loads(line)
        key = (req["p"], req["f"])
        rx = compiled.get(key)
        if rx is None:
            if len(compiled) > 512:
                compiled.clear()
            rx = compiled[key] = re.compile(req["p"], req["f"])
        m = getattr(rx, req["m"])(req["t"])
        reply = {"match": m is not None, "span": list(m.span()) if m else None}
    except Exception as err:
        reply = {"error": type(err).__name__ + ": " + str(err)[:500]}
    sys.stdout.buffer.write(json.dumps(reply).encode() + b"\n")
    sys.stdout.buffer.flush()
"""


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass


class _Worker:
    def __init__(self, memory_bytes: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WORKER, str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"}, start_new_session=True, close_fds=True)
        self._buffer = b""

    def ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """The worker's reply, or ``None`` when none came in time (the caller kills the worker)."""
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BrokenPipeError("the regex worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


# ---------------------------------------------------------------------------------------------------------------------
# the verifier


class RegexVerifier(Verifier):
    """Thread-safe (matches are serialised through one worker). Use as a context manager, or call :meth:`close`."""

    kind = "regex"
    Options = RegexOptions

    @classmethod
    def open(cls, options: RegexOptions, base_dir: Path) -> "RegexVerifier":
        return cls(options)  # its own context manager: the worker process is killed on exit

    def __init__(self, options: RegexOptions | None = None):
        self.options = options or RegexOptions()
        self._compiled: dict[str, str | None] = {}  # pattern -> compile error (None: compiles)
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._finalizer: weakref.finalize | None = None  # kills the worker if the verifier is dropped unclosed
        self.restarts = 0

    def _pattern_error(self, pattern: str) -> str | None:
        if pattern not in self._compiled:
            try:
                re.compile(pattern, self.options.flag_bits)
                self._compiled[pattern] = None
            except re.error as err:
                self._compiled[pattern] = f"the pattern is not a valid regular expression: {err}"
        return self._compiled[pattern]

    def _match(self, request: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            if self._worker is None or self._worker.proc.poll() is not None:
                if self._worker is not None:
                    _kill(self._worker.proc)
                    self.restarts += 1
                self._worker = _Worker(self.options.memory_mb * 1024 * 1024)
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._finalizer = weakref.finalize(self, _kill, self._worker.proc)
            try:
                reply = self._worker.ask(request, self.options.timeout_s)
            except (BrokenPipeError, OSError, ValueError):
                reply = {"error": "the regex worker died (memory limit?)", "crashed": True}
            if reply is None or reply.get("crashed"):
                _kill(self._worker.proc)
            return reply

    def verify(self, candidate_text: str, reference: str | None) -> VerifierResult:
        t0 = time.perf_counter()
        pattern = self.options.pattern if self.options.pattern is not None else reference
        text = candidate_text or ""
        text = text.strip() if self.options.strip else text
        checks = {"regex_match": False}
        details: dict[str, Any] = {"mode": self.options.mode}

        def done(error=None, error_kind=None, reference_error=None) -> VerifierResult:
            return VerifierResult("regex", checks, error, error_kind, (time.perf_counter() - t0) * 1000,
                                  reference_error, details)

        if pattern is None:
            return done(reference_error="no pattern: set options.pattern or give each prompt a reference")
        bad = self._pattern_error(pattern)
        if bad:
            return done(reference_error=bad)
        if len(text) > self.options.max_chars:
            return done(f"candidate longer than {self.options.max_chars} characters", "too_large")
        reply = self._match({"p": pattern, "f": self.options.flag_bits, "m": self.options.mode, "t": text})
        if reply is None:
            return done(f"the match took longer than {self.options.timeout_s:g} s (catastrophic backtracking?)",
                        "timeout")
        if "error" in reply:
            return done(reply["error"], "crash" if reply.get("crashed") else "runtime")
        checks["regex_match"] = bool(reply["match"])
        details["span"] = reply["span"]
        return done(None if reply["match"] else f"no {self.options.mode} of the pattern",
                    None if reply["match"] else "no_match")

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                _kill(self._worker.proc)
                self._worker = None
            if self._finalizer is not None:
                self._finalizer.detach()

    def __enter__(self) -> "RegexVerifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
