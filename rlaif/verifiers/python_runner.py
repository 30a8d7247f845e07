"""The code that runs *inside* the Python verifier's jails: the tester (T), the candidate server (C) and the codec.

Why two processes: a verdict decided in the interpreter that runs the candidate's code can be forged by that code
(it can call the harness's own report function, patch ``unittest`` or rewrite any guard's state). So the candidate's
code runs in its own jail (C) and only ever answers requests; the prompt's tests run in another jail (T), which alone
decides and reports the verdict. Only *data* crosses the socket between them: C encodes values with the tagged codec
below and T decodes them with size and depth limits, never unpickling or evaluating anything. Objects that are not
plain data cross as handles: T's proxies forward attribute access, calls, items, ``len``, iteration, ``repr``/``str``,
but **not** comparisons, ``hash`` or truthiness (a handle equals only itself and is always true), so an object with a
rigged ``__eq__`` cannot make ``assert f(1) == 3`` pass.

Limitations (documented for test authors): callables and other non-data objects from the tests cannot be passed to
the candidate (a ``key=lambda ...`` argument raises ``TypeError``); ``isinstance`` against a candidate class is
false; arithmetic on handles is unsupported; in-place changes are written back only for top-level list, dict, set and
bytearray arguments. Exceptions cross by name: built-in types are raised as themselves (a candidate subclass of
``ValueError`` is raised as a local class of the same name derived from ``ValueError``), so ``assertRaises`` works.

This file is copied into the jails and run as a script: standard library only, no imports from ``rlaif``.

    python -I -S -B runner.py '{"role": "tester", ...}'
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys

MAX_FRAME = 16 << 20  # bytes of one encoded message
MAX_DEPTH = 100  # nesting of one encoded value
MAX_ITEMS = 1_000_000  # containers' elements in one encoded value
HEADER = struct.Struct(">I")

# ---------------------------------------------------------------------------------------------------------------------
# limits and the system-call filter, applied before any candidate or test code runs


def apply_limits(cfg: dict) -> None:
    def limit(which, soft, hard=None):
        hard = soft if hard is None else hard
        _, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(which, (soft, hard))

    limit(resource.RLIMIT_AS, cfg["memory_bytes"])
    limit(resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1)
    limit(resource.RLIMIT_FSIZE, cfg["fsize_bytes"])
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_NOFILE, 256)
    if cfg.get("nproc"):  # counted per user namespace; the seccomp filter is what really stops forks
        limit(resource.RLIMIT_NPROC, cfg["nproc"])


# syscall numbers per audit architecture: what the filter refuses (process creation, namespaces, mounts, tracing)
_ARCHES = {
    "x86_64": (0xC000003E, {"clone": 56, "clone3": 435, "fork": 57, "vfork": 58},
               [272, 308, 165, 166, 155, 161, 101, 321, 298, 323, 425, 250, 248, 249, 310, 311, 246, 320]),
    "aarch64": (0xC00000B7, {"clone": 220, "clone3": 435},
                [97, 268, 40, 39, 41, 51, 117, 280, 241, 282, 425, 219, 217, 218, 270, 271, 104, 294]),
}
_CLONE_THREAD = 0x00010000


def seccomp_program(machine: str) -> bytes | None:
    """A classic-BPF seccomp filter: threads yes, new processes, namespaces, mounts, ptrace, bpf, kexec no."""
    if machine not in _ARCHES:
        return None
    arch, proc, blocked = _ARCHES[machine]
    allow, eperm, eagain, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 11, 0x00050000 | 38
    prog: list[tuple[int, int, int, int]] = []  # (code, jt, jf, k) with jt/jf as absolute targets, fixed below
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    # labels: A=allow, P=eperm, G=eagain, N=enosys, C=check clone flags
    prog.append((ld, 0, 0, 4))
    prog.append((jeq, "next", "A", arch))
    prog.append((ld, 0, 0, 0))
    prog.append((jge, "P", "next", 0x40000000))  # the x32 ABI: refused outright
    for nr in blocked:
        prog.append((jeq, "P", "next", nr))
    for name in ("fork", "vfork"):
        if name in proc:
            prog.append((jeq, "G", "next", proc[name]))
    prog.append((jeq, "N", "next", proc["clone3"]))  # glibc falls back to clone(), whose flags can be read
    prog.append((jeq, "C", "A", proc["clone"]))
    labels = {"C": len(prog)}
    prog.append((ld, 0, 0, 16))  # low 32 bits of args[0] (little-endian)
    prog.append((jset, "A", "G", _CLONE_THREAD))
    for name, value in (("A", allow), ("P", eperm), ("G", eagain), ("N", enosys)):
        labels[name] = len(prog)
        prog.append((ret, 0, 0, value))
    out = []
    for i, (code, jt, jf, k) in enumerate(prog):
        def rel(target):
            if target == "next":
                return 0
            if isinstance(target, str):
                return labels[target] - i - 1
            return target
        out.append(struct.pack("=HBBI", code, rel(jt), rel(jf), k))
    return b"".join(out)


def install_seccomp() -> bool:
    """Load the filter into this process (inherited by its threads); False where it cannot be loaded."""
    import ctypes
    import platform

    program = seccomp_program(platform.machine())
    if program is None:
        return False

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_char_p))
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    return libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


# ---------------------------------------------------------------------------------------------------------------------
# framing and the codec


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message within the limits."""


def send_frame(fd: int, msg) -> None:
    data = json.dumps(msg, separators=(",", ":")).encode()
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_FRAME}")
    data = HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def recv_frame(fd: int, deadline: float | None = None):
    """One message; EOFError when the other side is gone, TimeoutError past ``deadline`` (time.monotonic())."""
    header = _recv_exact(fd, HEADER.size, deadline)
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"message of {size} bytes exceeds {MAX_FRAME}")
    try:
        return json.loads(_recv_exact(fd, size, deadline))
    except (ValueError, RecursionError) as err:
        raise ProtocolError(f"malformed message: {err}") from None


def _recv_exact(fd: int, n: int, deadline: float | None) -> bytes:
    import select
    import time

    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("the candidate did not answer in time")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the candidate's process is gone")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


_SCALARS = {bool: "T", int: "i", float: "f", str: "s", complex: "c", bytes: "b", bytearray: "ba"}


def encode(value, handle_of=None, depth: int = 0, budget: list | None = None):
    """A JSON-able tagged form of ``value``; non-data objects become ``["h", id, type]`` via ``handle_of``."""
    budget = budget if budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise ProtocolError("value too deep or too large to send")
    if value is None:
        return ["n"]
    if isinstance(value, bool):
        return ["T", bool(value)]
    if isinstance(value, int):
        return ["i", format(int(value), "x")]  # hex: exempt from the int/str digit limit, and exact for big ints
    if isinstance(value, float):
        return ["f", float.__repr__(float(value))]
    if isinstance(value, complex):
        return ["c", float.__repr__(value.real), float.__repr__(value.imag)]
    if isinstance(value, str):
        return ["s", str.__str__(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["ba" if isinstance(value, bytearray) else "b", bytes(value).hex()]
    for typ, tag in ((list, "l"), (tuple, "t"), (set, "S"), (frozenset, "F")):
        if isinstance(value, typ):
            items = list(typ.__iter__(value))
            return [tag, [encode(v, handle_of, depth + 1, budget) for v in items]]
    if isinstance(value, dict):
        return ["d", [[encode(k, handle_of, depth + 1, budget), encode(v, handle_of, depth + 1, budget)]
                      for k, v in list(dict.items(value))]]
    if handle_of is None:
        raise TypeError(f"cannot pass a {type(value).__name__} to the candidate (only plain data can cross)")
    return handle_of(value)


def decode(data, handle=None, depth: int = 0, budget: list | None = None):
    """The value of an encoded form; strict: anything unexpected is a ProtocolError. Builds only built-in types."""
    budget = budget if budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise ProtocolError("value too deep or too large")
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ProtocolError("malformed value")
    tag, rest = data[0], data[1:]
    try:
        if tag == "n" and not rest:
            return None
        if tag == "T" and isinstance(rest[0], bool):
            return bool(rest[0])
        if tag == "i" and isinstance(rest[0], str) and len(rest[0]) < 200_000:
            return int(rest[0], 16)
        if tag == "f" and isinstance(rest[0], str) and len(rest[0]) < 40:
            return float(rest[0])
        if tag == "c" and all(isinstance(x, str) and len(x) < 40 for x in rest[:2]):
            return complex(float(rest[0]), float(rest[1]))
        if tag == "s" and isinstance(rest[0], str):
            return str(rest[0])
        if tag in ("b", "ba") and isinstance(rest[0], str):
            return (bytes if tag == "b" else bytearray)(bytes.fromhex(rest[0]))
        if tag in ("l", "t", "S", "F") and isinstance(rest[0], list):
            items = [decode(v, handle, depth + 1, budget) for v in rest[0]]
            return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "d" and isinstance(rest[0], list):
            out = {}
            for pair in rest[0]:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ProtocolError("malformed dict item")
                out[decode(pair[0], handle, depth + 1, budget)] = decode(pair[1], handle, depth + 1, budget)
            return out
        if tag in ("h", "E") and handle is not None:
            return handle(data)
    except (IndexError, TypeError, ValueError, OverflowError) as err:
        raise ProtocolError(f"malformed {tag!r} value: {err}") from None
    raise ProtocolError(f"unexpected value tag {tag!r}")


# ---------------------------------------------------------------------------------------------------------------------
# C: the candidate server


def run_candidate(cfg: dict) -> None:
    """Import the candidate's module, then answer T's requests until T hangs up. Reports nothing to the host."""
    import builtins
    import importlib
    import traceback
    import types

    fd = cfg["channel_fd"]
    objects: dict[int, object] = {}
    ids: dict[int, int] = {}

    def handle_of(obj):
        key = id(obj)
        if key not in ids:
            ids[key] = len(objects) + 1
            objects[ids[key]] = obj
        hid = ids[key]
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ != "builtins":
            return ["E", hid, obj.__name__, _builtin_base(obj).__name__]
        return ["h", hid, type(obj).__name__]

    def _builtin_base(cls):
        for base in cls.__mro__:
            if getattr(builtins, base.__name__, None) is base and issubclass(base, Exception):
                return base
        return Exception

    def lookup(data):
        if data[0] == "h" and data[1] in objects:
            return objects[data[1]]
        if data[0] == "E" and data[1] in objects:
            return objects[data[1]]
        raise ProtocolError("unknown handle")

    def error_reply(err):
        cls = type(err)
        reply = {"exc": cls.__name__, "msg": _short(str(err) if not isinstance(err, KeyError) else repr(err.args[0])
                                                     if err.args else ""),
                 "base": _builtin_base(cls).__name__ if isinstance(err, Exception) else None,
                 "trace": _short("".join(traceback.format_exception(cls, err, err.__traceback__)[-3:]), 1500)}
        if cls.__module__ != "builtins":
            reply["cls"] = handle_of(cls)
        return reply

    sys.path.insert(0, cfg["in_dir"])
    try:
        module = importlib.import_module(cfg["module"])
    except BaseException as err:  # noqa: BLE001 - the candidate's import may raise anything, exits included
        send_frame(fd, {"import_error": error_reply(err)})
        return
    names = {}
    for name, value in list(vars(module).items()):
        if name.startswith("__") or isinstance(value, types.ModuleType):
            continue
        try:
            names[name] = encode(value, handle_of)
        except Exception:  # noqa: BLE001 - a module-level value too big to send is left out
            continue
    send_frame(fd, {"ready": names})

    while True:
        try:
            req = recv_frame(fd)
        except (EOFError, OSError):
            return
        try:
            reply = _serve(req, decode, lookup, encode, handle_of)
        except BaseException as err:  # noqa: BLE001 - anything the candidate's code raised goes back as data
            reply = error_reply(err)
        try:
            send_frame(fd, reply)
        except ProtocolError as err:
            send_frame(fd, error_reply(ValueError(f"the candidate's answer cannot be sent: {err}")))


def _serve(req, decode_, lookup, encode_, handle_of) -> dict:
    op = req["op"]
    target = lookup(req["target"])
    args = [decode(a, lookup) for a in req.get("args", [])]
    kwargs = {str(k): decode(v, lookup) for k, v in req.get("kwargs", {}).items()}
    if op == "call":
        value = target(*args, **kwargs)
    elif op == "getattr":
        value = getattr(target, args[0])
    elif op == "setattr":
        setattr(target, args[0], args[1])
        value = None
    elif op == "getitem":
        value = target[args[0]]
    elif op == "setitem":
        target[args[0]] = args[1]
        value = None
    elif op == "delitem":
        del target[args[0]]
        value = None
    elif op == "len":
        value = int(len(target))
    elif op == "iter":
        value = iter(target)
    elif op == "next":
        value = next(target)
    elif op == "contains":
        value = bool(args[0] in target)
    elif op == "repr":
        value = _short(str(repr(target)), 2000)
    elif op == "str":
        value = str.__str__(str(target))
    else:
        raise ProtocolError(f"unknown operation {op!r}")
    reply = {"ok": encode_(value, handle_of)}
    after = {}
    for key, arg in [*enumerate(args), *kwargs.items()]:
        if type(arg) in (list, dict, set, bytearray):
            after[str(key)] = encode_(arg, handle_of)
    if after:
        reply["after"] = after
    return reply


def _short(text: str, n: int = 600) -> str:
    return text if len(text) <= n else text[:n] + "..."


# ---------------------------------------------------------------------------------------------------------------------
# T: the tester


class RemoteError(Exception):
    """The candidate raised an exception that has no local equivalent, or its process stopped answering."""


class CandidateTimeout(RemoteError):
    """The candidate did not answer one request within the time left."""


class CandidateGone(RemoteError):
    """The candidate's process ended, or broke the protocol; every later request fails too."""


class Channel:
    """T's end of the socket: requests out, data back; the only way the tests reach the candidate."""

    def __init__(self, fd: int, deadline: float):
        self.fd, self.deadline, self.dead = fd, deadline, None
        self.proxies: dict[int, Remote] = {}
        self.exc_classes: dict[int, type] = {}
        self.events: set[str] = set()

    def handle(self, data):
        if data[0] == "E":
            hid, name, base = data[1], str(data[2]), str(data[3])
            if hid not in self.exc_classes:
                import builtins

                base_cls = getattr(builtins, base, None)
                if not (isinstance(base_cls, type) and issubclass(base_cls, Exception)):
                    base_cls = Exception
                self.exc_classes[hid] = type(name, (base_cls,), {"__module__": "solution"})
            return self.exc_classes[hid]
        hid = data[1]
        if not isinstance(hid, int):
            raise ProtocolError("malformed handle")
        if hid not in self.proxies:
            self.proxies[hid] = Remote(self, hid, str(data[2]))
        return self.proxies[hid]

    def request(self, op: str, target, *args, **kwargs):
        import time

        if self.dead:
            raise CandidateGone(self.dead)
        ref = ["h", target._hid, ""] if isinstance(target, Remote) else target
        enc_args = [encode(a, _local_handle) for a in args]
        enc_kwargs = {k: encode(v, _local_handle) for k, v in kwargs.items()}
        try:
            send_frame(self.fd, {"op": op, "target": ref, "args": enc_args, "kwargs": enc_kwargs})
            reply = recv_frame(self.fd, self.deadline)
            if not isinstance(reply, dict):
                raise ProtocolError("malformed reply")
            if "ok" in reply:
                value = decode(reply["ok"], self.handle)
                for key, enc in (reply.get("after") or {}).items():
                    original = args[int(key)] if key.isdigit() else kwargs.get(key)
                    _write_back(original, decode(enc, self.handle))
                return value
        except TimeoutError:
            self.dead = "the candidate did not answer in time"
            self.events.add("timeout")
            raise CandidateTimeout(f"{self.dead} ({max(0.0, self.deadline - time.monotonic()):.1f} s left)") \
                from None
        except (EOFError, OSError) as err:
            self.dead = f"the candidate's process ended ({err})"
            self.events.add("exit")
            raise CandidateGone(self.dead) from None
        except ProtocolError as err:
            self.dead = f"the candidate broke the protocol: {err}"
            self.events.add("protocol")
            raise CandidateGone(self.dead) from None
        raise self.exception(reply)

    def exception(self, reply: dict) -> BaseException:
        """The local exception for the candidate's error reply: a built-in type by name, else RemoteError."""
        import builtins

        name, msg = str(reply.get("exc", "Exception")), str(reply.get("msg", ""))
        cls_data = reply.get("cls")
        if isinstance(cls_data, list) and cls_data and cls_data[0] == "E":
            try:
                return self.handle(cls_data)(msg)
            except ProtocolError:
                pass
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
            if name == "MemoryError":
                self.events.add("memory")
            if issubclass(cls, OSError) and "File too large" in msg:
                self.events.add("output_limit")
            try:
                return cls(msg)
            except Exception:  # noqa: BLE001 - an exception type whose constructor wants other arguments
                return RemoteError(f"{name}: {msg}")
        return RemoteError(f"{name}: {msg}\n{reply.get('trace', '')}")


def _local_handle(value):
    if isinstance(value, Remote):
        return ["h", value._hid, ""]
    raise TypeError(f"cannot pass a {type(value).__name__} to the candidate (only plain data and the candidate's "
                    "own objects can cross)")


def _write_back(original, new) -> None:
    if type(original) is not type(new):
        return
    if isinstance(original, (list, bytearray)):
        original[:] = new
    elif isinstance(original, (dict, set)):
        original.clear()
        original.update(new)


class Remote:
    """T's stand-in for one of the candidate's objects. Equality, hashing and truth are local (identity, True):
    a candidate object never decides a comparison."""

    __slots__ = ("_chan", "_hid", "_type")

    def __init__(self, chan: Channel, hid: int, type_name: str):
        object.__setattr__(self, "_chan", chan)
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_type", type_name)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._chan.request("getattr", self, name)

    def __setattr__(self, name, value):
        self._chan.request("setattr", self, name, value)

    def __call__(self, *args, **kwargs):
        return self._chan.request("call", self, *args, **kwargs)

    def __getitem__(self, key):
        return self._chan.request("getitem", self, key)

    def __setitem__(self, key, value):
        self._chan.request("setitem", self, key, value)

    def __delitem__(self, key):
        self._chan.request("delitem", self, key)

    def __len__(self):
        n = self._chan.request("len", self)
        if type(n) is not int or n < 0:
            raise TypeError("the candidate's __len__ did not return a length")
        return n

    def __iter__(self):
        return self._chan.request("iter", self)

    def __next__(self):
        return self._chan.request("next", self)

    def __contains__(self, item):
        return self._chan.request("contains", self, item) is True

    def __bool__(self):
        return True

    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    def __repr__(self):
        try:
            text = self._chan.request("repr", self)
        except Exception:  # noqa: BLE001 - a repr must not fail a test report
            text = None
        return text if isinstance(text, str) else f"<candidate {self._type} #{self._hid}>"

    def __str__(self):
        text = self._chan.request("str", self)
        return text if isinstance(text, str) else repr(self)


def run_tester(cfg: dict) -> None:
    """Compile the candidate, build the proxy module, run the tests and report the verdict to the host."""
    import time
    import traceback
    import types
    import unittest

    started = time.monotonic()
    deadline = started + cfg["budget_s"]
    report_fd, nonce = cfg["report_fd"], cfg["nonce"]

    def send(**msg):
        msg["nonce"] = nonce
        os.write(report_fd, (json.dumps(msg) + "\n").encode())

    def finish(**msg):
        send(stage="tests", **msg)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(0)

    def exc_text(err, n=1500):
        return _short("".join(traceback.format_exception_only(type(err), err)).strip(), n)

    with open(os.path.join(cfg["in_dir"], "candidate.txt"), encoding="utf-8") as f:
        src = f.read()
    tests_path = os.path.join(cfg["in_dir"], "test_solution.py")
    with open(tests_path, encoding="utf-8") as f:
        tests_src = f.read()
    try:
        compile(src, cfg["module"] + ".py", "exec", dont_inherit=True)  # compiled, never executed here
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        send(stage="compile", ok=False, error=exc_text(err))
        os._exit(0)
    send(stage="compile", ok=True)
    try:
        tests_code = compile(tests_src, tests_path, "exec", dont_inherit=True)  # full path: tracebacks show lines
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        send(stage="reference", error=exc_text(err))
        os._exit(0)

    chan = Channel(cfg["channel_fd"], deadline)
    try:
        hello = recv_frame(chan.fd, deadline)
        if not isinstance(hello, dict):
            raise ProtocolError("malformed greeting")
        if "import_error" in hello:
            err = chan.exception(hello["import_error"])
            kind = "memory" if "memory" in chan.events else "output_limit" if "output_limit" in chan.events \
                else "import"
            finish(ok=False, kind=kind, run=0, failures=0, errors=1,
                   error="importing the solution raised " + exc_text(err))
        names = {str(k): decode(v, chan.handle) for k, v in dict(hello["ready"]).items()}
    except TimeoutError:
        finish(ok=False, kind="timeout", run=0, failures=0, errors=1,
               error="importing the solution did not finish in time")
    except (EOFError, OSError):
        finish(ok=False, kind="exit", run=0, failures=0, errors=1,
               error="the candidate's process ended while importing the solution")
    except (ProtocolError, TypeError, ValueError, KeyError, AttributeError) as err:
        finish(ok=False, kind="import", run=0, failures=0, errors=1, error=f"the candidate broke the protocol: {err}")

    proxy = types.ModuleType(cfg["module"])
    proxy.__dict__.update(names)
    sys.modules[cfg["module"]] = proxy
    ns = types.ModuleType("test_solution")
    ns.__file__ = tests_path
    ns.__dict__.update(names)
    sys.modules["test_solution"] = ns

    def kind_of(default):
        for event in ("timeout", "memory", "output_limit", "exit"):
            if event in chan.events:
                return event
        return default

    try:
        exec(tests_code, ns.__dict__)
    except BaseException as err:  # noqa: BLE001 - the module-level tests may raise anything
        failed = isinstance(err, AssertionError)
        finish(ok=False, kind=kind_of("test_failure" if failed else "runtime"), run=1, failures=int(failed),
               errors=int(not failed), error="the tests raised at module level: " + exc_text(err))

    suite, loader = unittest.TestSuite(), unittest.TestLoader()
    for name, obj in list(vars(ns).items()):
        if getattr(obj, "__module__", None) != "test_solution":
            continue
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase):
            suite.addTests(loader.loadTestsFromTestCase(obj))
        elif name.startswith("test") and isinstance(obj, types.FunctionType):
            suite.addTest(unittest.FunctionTestCase(obj))
    if suite.countTestCases() == 0:  # module-level asserts only, and they passed
        finish(ok=True, kind=None, run=1, failures=0, errors=0, module_level=True)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(suite)
    problems = [(t, tb) for t, tb in result.failures + result.errors] + \
               [(t, "unexpected success") for t in result.unexpectedSuccesses]
    ok = result.wasSuccessful() and result.testsRun > 0 and not chan.dead
    finish(ok=ok, kind=None if ok else kind_of("test_failure"), run=result.testsRun,
           failures=len(result.failures), errors=len(result.errors), skipped=len(result.skipped),
           error="; ".join(f"{t}: {_short(tb, 600)}" for t, tb in problems[:3]) or chan.dead or None)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    apply_limits(cfg)
    if cfg.get("seccomp") and not install_seccomp():
        sys.stderr.write("sandbox: the system-call filter could not be installed\n")
        os._exit(70)
    sys.argv[:] = [cfg["role"]]
    if cfg["role"] == "tester":
        run_tester(cfg)
    else:
        run_candidate(cfg)
    os._exit(0)


if __name__ == "__main__":
    main()
