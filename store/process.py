"""Who owns a row or a folder, and whether that owner is still alive: the one answer runs, jobs and scratch folders use.

Why not the pid alone: pids are reused (a restarted container hands the new process the old pid), so an owner is
``host:pid:start`` where ``start`` is the process's start time in clock ticks since boot (``/proc/<pid>/stat``
field 22). The owner is alive when it is on this host, its pid exists, and that pid started at the same tick. An
owner on another host cannot be checked from here, so it counts as alive: a run on another machine is never marked
interrupted by this one.

    owner = PROCESS_OWNER            # "box:4242:918273"
    owner_alive("box:4242:918273")   # False once that process has exited
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST = socket.gethostname()


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot, or None when no such process (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def owner_of(pid: int) -> str:
    return f"{HOST}:{pid}:{process_start(pid) or 0}"


PROCESS_OWNER = owner_of(os.getpid())


def parse_owner(owner: str | None) -> tuple[str, int, str] | None:
    """(host, pid, start) of an owner string, or None when it is not one (older rows, other formats)."""
    if not owner:
        return None
    host, _, rest = owner.rpartition(":")
    host, _, pid = host.rpartition(":")
    if not host or not pid.isdigit():
        return None
    return host, int(pid), rest


def owner_alive(owner: str | None) -> bool:
    """False only when we can tell the owner is gone: same host, and its pid is dead or belongs to a newer process."""
    parsed = parse_owner(owner)
    if parsed is None:
        return False
    host, pid, start = parsed
    if host != HOST:
        return True
    if pid == os.getpid():
        return owner == PROCESS_OWNER
    now = process_start(pid)
    if now is None:
        return False
    return start in ("0", now)
