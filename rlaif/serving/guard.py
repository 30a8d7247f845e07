"""Run a server command that dies with the process that started it: ``python -m rlaif.serving.guard PID -- CMD...``.

Why: a managed inference server runs in its own process group (so stopping it stops its workers too), which also
means nothing stops it if the loop is SIGKILLed. This launcher asks Linux to send the server SIGTERM when its parent
dies (``PR_SET_PDEATHSIG``, kept across exec), then execs the command: one process, no wrapper left behind. Being a
fresh single-threaded process, it can do this safely (``preexec_fn`` in a threaded loop could deadlock). Elsewhere
(macOS) it just execs; the loop's atexit handler and its ``finally`` blocks still stop the server.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent, sep, *command = argv
    if sep != "--" or not command:
        raise SystemExit("usage: python -m rlaif.serving.guard PARENT_PID -- COMMAND [ARGS...]")
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != int(parent):  # the parent died before the request took effect
            raise SystemExit(0)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
