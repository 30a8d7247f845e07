"""OS jails for the Python verifier: a fresh process in its own user, PID, mount, network, IPC and UTS namespaces.

Why not an in-process guard: audit hooks and the like live in the candidate's own interpreter, so the candidate can
switch them off (it did: it rewrote the guard's state from ``__main__``, then wrote files, reached a Unix socket,
killed its parent). Namespaces are enforced by the kernel. Backends, picked once per process by ``isolation``:

* ``bwrap`` (bubblewrap): a read-only view of ``/usr`` and the Python prefixes only, fresh ``/proc`` (its own PID
  namespace: the parent is invisible), a few device nodes, size-capped tmpfs ``/tmp`` and work dir, an empty network
  namespace, a cleared environment, ``--die-with-parent`` and ``--new-session``;
* ``unshare`` (util-linux), when bwrap is missing: the same namespaces, with the file system built by a small shell
  script (tmpfs root, read-only binds, ``pivot_root``) and every capability dropped by ``setpriv`` before Python
  starts;
* ``none``: a plain subprocess, accepted only when a config says so explicitly.

In every mode the runner (``python_runner``) sets rlimits and loads a seccomp filter (no new processes, namespaces,
mounts or ptrace) before any candidate code runs, and the host kills the jail's process group at the deadline (the
PID namespace's init dies with it, which kills everything inside).

    backend = probe_backend("auto")          # "bwrap", "unshare" or None
    argv = jail_argv(backend, in_dir, ["python3", "-I", "runner.py"], tmp_mb=32)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from rlaif.core.scratch import scratch_dir

ISOLATION_MODES = ("auto", "bwrap", "unshare", "none")
JAIL_IN = "/jail/in"  # the read-only folder holding the runner and its inputs
JAIL_WORK = "/jail/work"  # the writable, size-capped working directory
MINIMAL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": JAIL_WORK, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8"}
DEVICES = ("null", "zero", "full", "random", "urandom")

_probe_lock = threading.Lock()
_probed: dict[str, str | None] = {}


def python_prefixes() -> list[str]:
    """The folders the interpreter needs: its own prefix and, for a venv, the base installation's (real paths)."""
    paths = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        for candidate in (p, os.path.realpath(p)):
            if candidate and candidate not in paths and not candidate.startswith("/usr/"):
                paths.append(candidate)
    return paths


def _system_links() -> list[str]:
    """bwrap arguments recreating /bin, /lib, /lib64, /sbin as on the host (symlinks into /usr, or binds)."""
    args = []
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        host = f"/{name}"
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    return args


def bwrap_argv(in_dir: str, command: list[str], tmp_bytes: int) -> list[str]:
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
            "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
            "--hostname", "jail", "--ro-bind", "/usr", "/usr", *_system_links(),
            # /tmp before the Python prefixes: bwrap mounts in order, and a checkout (its .venv) may live under /tmp
            "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    for prefix in python_prefixes():
        args += ["--ro-bind", prefix, prefix]
    args += ["--proc", "/proc", "--dir", "/dev"]
    for dev in DEVICES:
        args += ["--dev-bind", f"/dev/{dev}", f"/dev/{dev}"]
    args += ["--symlink", "/proc/self/fd", "/dev/fd",
             "--size", str(tmp_bytes), "--tmpfs", JAIL_WORK, "--ro-bind", in_dir, JAIL_IN,
             "--remount-ro", "/", "--chdir", JAIL_WORK]
    for key, value in MINIMAL_ENV.items():
        args += ["--setenv", key, value]
    return [*args, "--", *command]


# The unshare backend's set-up, run as root of the new user namespace (which is nobody outside it): a tmpfs root with
# read-only binds of /usr and the Python prefixes, pivot_root into it, then setpriv drops every capability so the
# candidate cannot undo the read-only mounts.
UNSHARE_SETUP = r'''
set -e
PATH=/usr/sbin:/usr/bin:/sbin:/bin
R="$1"; IN="$2"; TMPB="$3"; shift 3
mount -t tmpfs -o size=16m,mode=755 jailroot "$R"
cd "$R"
mkdir -p usr proc dev tmp jail/in jail/work
mount --rbind /usr usr
mount -o remount,bind,ro usr
for l in bin lib lib64 lib32 sbin; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$l"; elif [ -d "/$l" ]; then
    mkdir "$l"; mount --rbind "/$l" "$l"; mount -o remount,bind,ro "$l"; fi
done
mount -t tmpfs -o "size=$TMPB" jailtmp tmp
while [ "$1" != "--" ]; do
  mkdir -p ".$1"; mount --rbind "$1" ".$1"; mount -o remount,bind,ro ".$1"; shift
done
shift
mount --bind "$IN" jail/in
mount -o remount,bind,ro jail/in
mount -t tmpfs -o "size=$TMPB" jailwork jail/work
for d in null zero full random urandom; do touch "dev/$d"; mount --bind "/dev/$d" "dev/$d"; done
ln -s /proc/self/fd dev/fd
mount -t proc proc proc
mkdir .old
pivot_root . .old
umount -l /.old
rmdir /.old
mount -o remount,bind,ro /
cd /jail/work
PATH=/usr/bin:/bin
exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$@"
'''


def unshare_argv(in_dir: str, root_dir: str, command: list[str], tmp_bytes: int) -> list[str]:
    env = [f"{k}={v}" for k, v in MINIMAL_ENV.items()]
    return [shutil.which("unshare") or "unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child",
            "--mount", "--net", "--ipc", "--uts", "--propagation", "private",
            "/usr/bin/env", "-i", *env, "/bin/sh", "-c", UNSHARE_SETUP, "jail", root_dir, in_dir, str(tmp_bytes),
            *python_prefixes(), "--", *command]


def jail_argv(backend: str, in_dir: str, root_dir: str, command: list[str], tmp_bytes: int) -> list[str]:
    """The full argv running ``command`` (paths as seen inside) in a fresh jail of ``backend``."""
    if backend == "bwrap":
        return bwrap_argv(in_dir, command, tmp_bytes)
    if backend == "unshare":
        return unshare_argv(in_dir, root_dir, command, tmp_bytes)
    return command


def _probe(backend: str) -> bool:
    """Run ``python -c`` in a jail of ``backend`` and check it came up isolated (pid 1 namespace, no network)."""
    tool = "bwrap" if backend == "bwrap" else "unshare"
    if not sys.platform.startswith("linux") or shutil.which(tool) is None:
        return False
    if backend == "unshare" and (shutil.which("setpriv") is None or shutil.which("mount") is None):
        return False
    work = scratch_dir("pytests")
    try:
        (work / "in").mkdir()
        (work / "root").mkdir()
        code = "import os, socket; print(os.getpid() < 10, len(socket.if_nameindex()) <= 1)"
        argv = jail_argv(backend, str(work / "in"), str(work / "root"),
                         [sys.executable, "-I", "-S", "-c", code], 1 << 20)
        proc = subprocess.run(argv, env=dict(MINIMAL_ENV), capture_output=True, timeout=20,
                              stdin=subprocess.DEVNULL, cwd=str(work))
        return proc.returncode == 0 and proc.stdout.split() == [b"True", b"True"]
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(work, ignore_errors=True)


def probe_backend(isolation: str) -> str | None:
    """The backend for ``isolation`` (probed once per process and backend): ``"bwrap"``, ``"unshare"``, ``"none"``
    or ``None`` when the requested kind of jail cannot be made here."""
    if isolation == "none":
        return "none"
    wanted = ("bwrap", "unshare") if isolation == "auto" else (isolation,)
    with _probe_lock:
        for backend in wanted:
            if backend not in _probed:
                _probed[backend] = backend if _probe(backend) else None
            if _probed[backend]:
                return backend
    return None


def kill_jail(proc: subprocess.Popen) -> None:
    """SIGKILL the jail's process group (bwrap/unshare and, through --die-with-parent/--kill-child and the PID
    namespace, everything inside), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def copy_runner(dest: Path) -> None:
    """Put the runner script into a jail's input folder (it runs there as a file, not from the rlaif package)."""
    shutil.copyfile(Path(__file__).with_name("python_runner.py"), dest / "runner.py")
