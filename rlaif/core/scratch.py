"""Scratch folders that name their owner, so the next start can sweep what a killed process left behind.

A verifier that is killed with its run (SIGKILL, OOM, a pulled plug) never reaches its ``finally``; its temporary
folder would stay in ``/tmp`` forever (a long RL run makes thousands). So every scratch folder is created here with
the owning process in its name (``rlaif-<kind>-<pid>-<start>-<random>``) and ``sweep_dead_scratch`` removes the
ones whose process is gone (see ``store.process``); runs call it when they start.

    path = scratch_dir("sql")        # /tmp/rlaif-sql-4242-918273-k2j3h4
    sweep_dead_scratch()             # -> number of folders of dead processes removed
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from store.process import HOST, owner_alive, process_start

_NAME = re.compile(r"^rlaif-[a-z0-9_]+-(\d+)-(\d+)-")


def scratch_dir(kind: str, root: str | os.PathLike | None = None) -> Path:
    """A new private (0700) folder under ``root`` (default the system temp dir) that names this process."""
    if not re.fullmatch(r"[a-z0-9_]+", kind):
        raise ValueError(f"scratch kind {kind!r}: use lower-case letters, digits and _")
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"rlaif-{kind}-{pid}-{process_start(pid) or 0}-", dir=root))


def sweep_dead_scratch(root: str | os.PathLike | None = None) -> int:
    """Remove the scratch folders under ``root`` whose owning process has exited; return how many."""
    base = Path(root or tempfile.gettempdir())
    removed = 0
    try:
        entries = list(base.iterdir())
    except OSError:
        return 0
    for path in entries:
        match = _NAME.match(path.name)
        if not match or not path.is_dir() or path.is_symlink():
            continue
        if owner_alive(f"{HOST}:{match.group(1)}:{match.group(2)}"):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += not path.exists()
    return removed
