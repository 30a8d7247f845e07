"""``rlaif workbench``: start the Streamlit workbench, after refusing an address it must not serve.

Why a launcher: ``streamlit run app.py --server.address 0.0.0.0`` without users can only notice the mistake once the
first page runs. Here the users are read from the same places the app reads them (``RLAIF_USERS``, ``[auth]`` in
``.streamlit/secrets.toml``) and a non-loopback address without any is one line and exit code 2 before anything
listens (``rlaif.access.check_serving``: its errors are ValueErrors, so one line like every user error). The server
then replaces this process, so Ctrl-C and exit codes are Streamlit's.

    rlaif workbench                                  # http://127.0.0.1:8501, single-user local mode
    RLAIF_USERS=... rlaif workbench --address 0.0.0.0 --port 8080 --store team.duckdb
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rlaif.access import check_serving
from rlaif.cli.common import positive_int, store_option

APP = Path(__file__).resolve().parents[2] / "app.py"


def streamlit_command(address: str, port: int, app: Path = APP) -> list[str]:
    """The server's command line; headless (no browser is opened from a launcher) and without usage statistics."""
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", address,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def cmd_workbench(args) -> int:
    if not APP.is_file():
        raise FileNotFoundError(f"{APP}: the workbench app is not installed with this package (use a checkout)")
    check_serving(args.address)
    command = streamlit_command(args.address, args.port)
    print(f"workbench on http://{args.address}:{args.port} (store {args.store})", file=sys.stderr, flush=True)
    os.execve(sys.executable, command, {**os.environ, "RLAIF_STORE": str(args.store)})
    return 0  # not reached: the server replaced this process


def add_commands(sub) -> None:
    """Register ``workbench`` on the main parser's subparsers."""
    wb = sub.add_parser("workbench", help="start the Streamlit workbench (refuses an exposed address without users)")
    wb.add_argument("--address", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1; anything else needs users to sign in)")
    wb.add_argument("--port", type=positive_int, default=8501, help="port (default 8501)")
    store_option(wb)
    wb.set_defaults(func=cmd_workbench)
