"""Real processes for tests about owners: one that has exited, so its ``host:pid:start`` names a dead owner."""

from __future__ import annotations

import subprocess

from store.process import owner_of


def dead_process_owner() -> str:
    """The owner string of a real process that has since exited (recorded while it was alive)."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        owner = owner_of(child.pid)
    finally:
        child.kill()
        child.wait()
    return owner
