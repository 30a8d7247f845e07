"""The Python verifier's jails against hostile candidates, and its two-process protocol on honest ones.

Every attack is a real candidate run through the verifier with a **wrong** ``add`` (so any pass is forged), and each
run is checked concretely: no file appeared in a canary folder or the host's /tmp, this process and its parent are
alive, no process of the run is left, a fake API key set in our environment is nowhere in the result, and neither a
loopback TCP listener nor a Unix socket listener accepted anything.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from rlaif.verifiers import VerifierOptionError
from rlaif.verifiers import python_tests as python_tests_module
from rlaif.verifiers.python_jail import probe_backend
from rlaif.verifiers.python_runner import ProtocolError, decode, encode
from rlaif.verifiers.python_tests import PythonTestsOptions, PythonTestsVerifier

SECRET = "sk-test-JAILSECRET0123456789"
WRONG_ADD = "\ndef add(a, b):\n    return a - b\n"
TESTS = "# TESTS_ARE_SECRET\ndef test_add():\n    assert add(1, 2) == 3\n    assert add(2, 2) == 4\n"
BACKENDS = [b for b in ("bwrap", "unshare") if probe_backend(b)]
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no OS jail (bubblewrap or unshare) can be made here")

# attacks: name -> candidate code (run at import time; {canary}, {port}, {sock}, {pid}, {ppid} filled in)
ATTACKS = {
    "pidfd_kill_parent": "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), 9)\n",
    "pidfd_kill_host_pid": "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({pid}), 9)\n",
    "kill_host_parent": "import os\nos.kill({ppid}, 9)\n",
    "kill_host_pid": "import os\nos.kill({pid}, 9)\n",
    "kill_minus_one": "import os\nos.kill(-1, 9)\n",
    "signal_pid_1": "import os\nos.kill(1, 9)\n",
    "write_canary": "open({canary!r} + '/pwned.txt', 'w').write('x')\n",
    "dir_fd_create": "import os\nd = os.open({canary!r}, os.O_RDONLY)\nos.open('pwned', os.O_CREAT | os.O_WRONLY, dir_fd=d)\n",
    "dir_fd_parent": "import os\nd = os.open('/', os.O_RDONLY)\nos.open('tmp/pwned-JAILMARK', os.O_CREAT | os.O_WRONLY, "
                     "dir_fd=d)\nopen('/tmp/pwned-JAILMARK', 'w').write('x')\n",
    "hard_link": "import os\nos.link('/jail/in/runner.py', {canary!r} + '/pwned')\n",
    "hard_link_in_jail": "import os\nos.link('/jail/in/runner.py', 'runner-link')\nopen('runner-link', 'a').write('x')\n",
    "symlink_escape": "import os\nos.symlink({canary!r}, 'esc')\nopen('esc/pwned', 'w').write('x')\n",
    "rewrite_runner": "open('/jail/in/runner.py', 'w').write('print(1)')\n",
    "read_tests": "print(open('/jail/in/test_solution.py').read())\n",
    "main_state_rewrite": "import __main__\nfor k in list(vars(__main__)):\n    setattr(__main__, k, None)\n",
    "forge_finish_call": "import __main__, os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{{\"stage\": "
                         "\"tests\", \"ok\": true, \"run\": 1, \"nonce\": \"x\"}}\\n')\n    except OSError:\n"
                         "        pass\n__main__.run_tester({{'report_fd': 3, 'nonce': 'x', 'budget_s': 1}})\n",
    "forge_frame": "import os, json, struct\nb = json.dumps({{'ready': {{}}}}).encode()\nos.write(3, struct.pack('>I', "
                   "len(b)) + b)\n",
    "unix_socket": "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({sock!r})\n",
    "tcp_loopback": "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n",
    "setsid_daemon": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n",
    "fork_bomb": "import os\nfor _ in range(300):\n    os.fork()\n",
    "subprocess_sleep": "import subprocess\nsubprocess.Popen(['sleep', '60'], start_new_session=True)\n",
    "environ_self": "import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ').read())\n",
    "environ_pid1": "print(open('/proc/1/environ').read())\n",
    "environ_host_parent": "print(open('/proc/{pid}/environ').read())\nprint(open('/proc/{ppid}/environ').read())\n",
    "proc_sys_write": "open('/proc/sys/kernel/hostname', 'w').write('pwned')\n",
    "proc_self_write": "open('/proc/self/oom_score_adj', 'w').write('-1000')\nopen('/proc/self/comm', 'w')"
                       ".write('x')\n",
    "sethostname": "import socket\nsocket.sethostname('pwned')\n",
    "ptrace_pid1": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.ptrace(16, 1, 0, 0) == 0, "
                   "ctypes.get_errno()\n",
    "chroot": "import os\nos.mkdir('x')\nos.chroot('x')\n",
    "mount": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.mount(b'none', b'/usr', b'tmpfs', 0, "
             "None) == 0, ctypes.get_errno()\n",
    "unshare_userns": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.unshare(0x10020000) == 0, "
                      "ctypes.get_errno()\n",
    "raise_rlimit": "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n",
    "fill_tmp": "for i in range(100):\n    open(f'/tmp/f{{i}}', 'wb').write(b'x' * (1 << 20))\n",
    "unittest_patch": "import unittest\nunittest.TestCase.run = lambda self, result=None: None\n"
                      "unittest.TestResult.wasSuccessful = lambda self: True\n",
    "sys_modules_poison": "import sys, types\nsys.modules['unittest'] = types.ModuleType('unittest')\n",
    "builtins_patch": "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {{}})\n"
                      "builtins.int = str\n",
}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """The canary folder, listeners and secret one attack may reach; ``check`` asserts all of them untouched."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("keep")
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    sock_path = str(tmp_path / "s.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(sock_path)
    unix.listen(8)
    unix.setblocking(False)
    host_tmp_before = set(os.listdir("/tmp"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    fill = {"canary": str(canary), "port": tcp.getsockname()[1], "sock": sock_path, "pid": os.getpid(),
            "ppid": os.getppid()}

    def accepted(server) -> bool:
        try:
            conn, _ = server.accept()
        except (BlockingIOError, socket.timeout):
            return False
        conn.close()
        return True

    def check(result) -> None:
        dumped = json.dumps(result.to_dict())
        assert SECRET not in dumped
        assert sorted(p.name for p in canary.iterdir()) == ["keep.txt"] and (canary / "keep.txt").read_text() == "keep"
        assert not [n for n in set(os.listdir("/tmp")) - host_tmp_before if "JAILMARK" in n or "pwned" in n]
        assert socket.gethostname() != "pwned"
        os.kill(os.getppid(), 0)  # our parent is alive (we obviously are)
        assert not accepted(tcp) and not accepted(unix)
        deadline = time.monotonic() + 3
        while _processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _processes_mentioning(str(tmp_path)), "a process of the run outlived the verdict"
        assert not list(scratch.iterdir()), "the scratch folder was not removed"

    yield fill, check, scratch
    tcp.close()
    unix.close()


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def _verifier(backend: str, scratch: Path, **kw) -> PythonTestsVerifier:
    return PythonTestsVerifier(PythonTestsOptions(isolation=backend, timeout_s=kw.pop("timeout_s", 5),
                                                  tmp_root=str(scratch), **kw))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_contained(world, name):
    fill, check, scratch = world
    code = "try:\n" + "".join(f"    {line}\n" for line in ATTACKS[name].format(**fill).splitlines()) + \
           "except BaseException as err:\n    print('blocked:', type(err).__name__, err)\n" + WRONG_ADD
    result = _verifier(BACKENDS[0], scratch).verify(code, TESTS)
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": False}, result.to_dict()
    assert "TESTS_ARE_SECRET" not in result.details.get("output", "")
    check(result)


RUNTIME_ATTACKS = {
    "rigged_eq": ("class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
                  "    def __bool__(self):\n        return True\n\ndef add(a, b):\n    return Liar()\n", None),
    "rigged_int_subclass": ("class I(int):\n    def __eq__(self, other):\n        return True\n"
                            "    __hash__ = int.__hash__\n\ndef add(a, b):\n    return I(a - b)\n", None),
    "rigged_list_subclass": ("class L(list):\n    def __eq__(self, other):\n        return True\n\n"
                             "def add(a, b):\n    return L([0])\n", None),
    "kill_self": ("import os\n\ndef add(a, b):\n    os.kill(os.getpid(), 9)\n", "exit"),
    "exit_in_call": ("import os\n\ndef add(a, b):\n    os._exit(0)\n", "exit"),
    "sys_exit_in_call": ("import sys\n\ndef add(a, b):\n    sys.exit(0)\n", "test_failure"),
    "hang": ("def add(a, b):\n    while True:\n        pass\n", "timeout"),
    "huge_allocation": ("def add(a, b):\n    return len(bytearray(4 * 1024 ** 3))\n", "memory"),
    "infinite_output": ("def add(a, b):\n    while True:\n        print('x' * 10000)\n", "output_limit"),
    "deep_recursion": ("def add(a, b):\n    return add(a, b)\n", "test_failure"),
    "huge_answer": ("def add(a, b):\n    return 'x' * (64 << 20)\n", "test_failure"),
    "deep_answer": ("def add(a, b):\n    x = []\n    for _ in range(5000):\n        x = [x]\n    return x\n",
                    "test_failure"),
    "forged_frames_in_call": ("import os, json, struct\n\ndef add(a, b):\n"
                              "    m = json.dumps({'ok': ['i', '3']}).encode()\n"
                              "    os.write(3, struct.pack('>I', len(m)) + m)\n    return 0\n", None),
    "import_exit": ("import sys\nsys.exit(0)\n", None),
}


@pytest.mark.parametrize("name", sorted(RUNTIME_ATTACKS))
def test_runtime_attack_is_contained(world, name):
    fill, check, scratch = world
    code, kind = RUNTIME_ATTACKS[name]
    timeout = 3 if name == "hang" else 5
    started = time.perf_counter()
    result = _verifier(BACKENDS[0], scratch, timeout_s=timeout, memory_mb=256,
                       max_output_bytes=1 << 16).verify(code, TESTS)
    assert time.perf_counter() - started < timeout + 3
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": False}, result.to_dict()
    if kind is not None:
        assert result.error_kind == kind, result.to_dict()
    check(result)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["write_canary", "tcp_loopback", "environ_host_parent", "kill_host_parent",
                                  "forge_finish_call", "setsid_daemon", "mount"])
def test_key_attacks_on_every_backend(world, backend, name):
    fill, check, scratch = world
    code = "try:\n" + "".join(f"    {line}\n" for line in ATTACKS[name].format(**fill).splitlines()) + \
           "except BaseException as err:\n    print('blocked:', type(err).__name__, err)\n" + WRONG_ADD
    result = _verifier(backend, scratch).verify(code, TESTS)
    assert not result.passed and result.details["isolation"] == backend
    check(result)


# ---------------------------------------------------------------------------------------------------------------------
# honest candidates


ADD = "def add(a, b):\n    return a + b\n"
HONEST = [
    (ADD, "assert add(1, 2) == 3\n"),
    (ADD, "from solution import add\n\ndef test_add():\n    assert add(2, 2) == 4\n"),
    (ADD, "import unittest\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(1, 1), 2)\n"),
    ("class Solution:\n    def twice(self, xs):\n        return [x * 2 for x in xs]\n",
     "def test_solution():\n    s = Solution()\n    assert s.twice([1, 2]) == [2, 4]\n    assert s.twice([]) == []\n"),
    ("def sort_in_place(xs, d):\n    xs.sort()\n    d['done'] = True\n",
     "xs, d = [3, 1, 2], {}\nassert sort_in_place(xs, d) is None\nassert xs == [1, 2, 3] and d == {'done': True}\n"),
    ("def root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x ** 0.5\n",
     "import unittest\n\nclass T(unittest.TestCase):\n    def test_neg(self):\n        with self.assertRaises(ValueError):\n"
     "            root(-1)\n        self.assertEqual(root(4), 2.0)\n"),
    ("class Broke(ValueError):\n    pass\n\ndef pay(n):\n    raise Broke(f'short by {n}')\n",
     "import unittest\n\nclass T(unittest.TestCase):\n    def test_pay(self):\n"
     "        with self.assertRaisesRegex(Broke, 'short by 3'):\n            pay(3)\n"
     "        with self.assertRaises(ValueError):\n            pay(1)\n"),
    ("import math\n\ndef values():\n    return [None, True, 2 ** 100, -1.5, math.inf, 1j, 'é\\ud800', b'\\x00', (1,), {1},"
     " frozenset({2}), {'k': [1]}]\n",
     "import math\nv = values()\nassert v[:4] == [None, True, 2 ** 100, -1.5] and v[4] == math.inf and v[5] == 1j\n"
     "assert v[6:] == ['é\\ud800', b'\\x00', (1,), {1}, frozenset({2}), {'k': [1]}]\n"),
    ("class Counter:\n    def __init__(self):\n        self.n = 0\n    def bump(self):\n        self.n += 1\n"
     "        return self\n    def __len__(self):\n        return self.n\n    def __iter__(self):\n"
     "        return iter(range(self.n))\n\ndef gen(n):\n    yield from range(n)\n",
     "c = Counter()\nassert c.bump().bump() is c\nassert c.n == 2 and len(c) == 2 and list(c) == [0, 1]\n"
     "assert list(gen(3)) == [0, 1, 2]\nassert c == c and c != Counter()\n"),
]


@pytest.mark.parametrize("code, tests", HONEST)
def test_honest_candidates_pass(tmp_path, code, tests):
    result = _verifier(BACKENDS[0], tmp_path).verify(f"```python\n{code}```", tests)
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": True}, result.to_dict()
    assert result.error_kind is None


def test_failures_have_their_kinds(tmp_path):
    verifier = _verifier(BACKENDS[0], tmp_path)
    wrong = verifier.verify(WRONG_ADD, TESTS)
    assert wrong.error_kind == "test_failure" and "assert add(1, 2) == 3" in wrong.error
    syntax = verifier.verify("def add(a, b) return a", TESTS)
    assert syntax.criteria() == {"py_compiles": False, "py_tests_pass": False} and syntax.error_kind == "syntax"
    raising = verifier.verify("raise RuntimeError('boom')\n", TESTS)
    assert raising.error_kind == "import" and "boom" in raising.error
    assert verifier.verify(ADD, "def (").reference_error.startswith("the test code does not compile")
    module_level = verifier.verify(ADD, "assert add(1, 2) == 3\nundefined_name\n")
    assert module_level.error_kind == "runtime"
    lambdas = verifier.verify("def apply(f, x):\n    return f(x)\n", "assert apply(lambda x: x, 1) == 1\n")
    assert not lambdas.passed and "cannot pass a function" in lambdas.error  # the documented limitation


def test_refuses_to_run_without_a_jail(tmp_path, monkeypatch):
    monkeypatch.setattr(python_tests_module, "probe_backend", lambda isolation: "none" if isolation == "none" else None)
    with pytest.raises(VerifierOptionError, match=r"verifier.options.isolation: .*install bubblewrap.*isolation: none"):
        PythonTestsVerifier(PythonTestsOptions(timeout_s=5))
    accepted = PythonTestsVerifier(PythonTestsOptions(timeout_s=5, isolation="none", tmp_root=str(tmp_path)))
    result = accepted.verify(ADD, "assert add(1, 2) == 3\n")
    assert result.passed and result.details["isolation"] == "none"
    assert not accepted.verify(WRONG_ADD, TESTS).passed
    with pytest.raises(VerifierOptionError, match="verifier.options.isolation"):
        PythonTestsOptions(isolation="guard")


def test_codec_round_trips_data_and_refuses_the_rest():
    value = [None, True, -(2 ** 200), 1.5, float("inf"), 2j, "s\ud800", b"b", bytearray(b"ba"), (1, (2,)), {3},
             frozenset({4}), {"k": {(1, 2): [5]}}]
    wire = json.loads(json.dumps(encode(value)))
    back = decode(wire)
    assert back == value and [type(x) for x in back] == [type(x) for x in value]
    with pytest.raises(TypeError, match="cannot pass"):
        encode(object())
    for bad in (["x"], ["i", 5], ["l", "notalist"], "bare", ["h", 1, "T"], ["d", [[["l", []], ["n"]]]]):
        with pytest.raises(ProtocolError):
            decode(bad)
    deep = ["n"]
    for _ in range(200):
        deep = ["l", [deep]]
    with pytest.raises(ProtocolError, match="too deep"):
        decode(deep)


def test_a_python_under_tmp_stays_visible_in_the_jail(monkeypatch):
    """A checkout (and its .venv) under /tmp, as CI clones may be: the jail's /tmp tmpfs must be mounted before the
    read-only binds of the Python prefixes, or it hides them and no jail can start (found in a fresh clone)."""
    from rlaif.verifiers import python_jail

    monkeypatch.setattr(python_jail, "python_prefixes", lambda: ["/tmp/ci/.venv", "/opt/python"])
    argv = python_jail.bwrap_argv("/tmp/in", ["python"], 1 << 20)
    tmpfs_at = argv.index("--tmpfs", 0)
    assert argv[tmpfs_at + 1] == "/tmp"
    binds = [i for i, a in enumerate(argv) if a == "--ro-bind" and argv[i + 1] in ("/tmp/ci/.venv", "/opt/python")]
    assert len(binds) == 2 and tmpfs_at < min(binds)
    script = python_jail.UNSHARE_SETUP
    assert script.index("jailtmp tmp") < script.index('mount --rbind "$1"')
