"""The workbench never serves a non-loopback address with nobody to sign in: ``rlaif workbench`` refuses before it
starts (one line, exit 2), and a direct ``streamlit run app.py --server.address 0.0.0.0`` stops at its first script
run with the reason on stderr instead of serving an error page forever. Loopback, or users, start as before."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rlaif.access import hash_password
from rlaif.cli import main
from rlaif.cli import workbench as launcher

ROOT = Path(__file__).resolve().parent.parent
REFUSED = ("error: the server listens on '0.0.0.0' but no users are configured; set RLAIF_USERS or [auth] in "
           ".streamlit/secrets.toml, or bind 127.0.0.1")


@pytest.fixture
def nobody(tmp_path, monkeypatch):
    """No users anywhere: no RLAIF_USERS, and no secrets.toml in the working directory or the home directory."""
    monkeypatch.delenv("RLAIF_USERS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "streamlit did not start"
        time.sleep(0.3)


def server_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "RLAIF_STORE": str(tmp_path / "wb.duckdb"), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("RLAIF_USERS", None)
    return env


# ---- the launcher


def test_launcher_refuses_an_exposed_address_without_users(nobody, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(os, "execve", lambda *a: started.append(a))
    assert main(["workbench", "--address", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [REFUSED] and not started


def test_launcher_reports_malformed_users_in_one_line(nobody, monkeypatch, capsys):
    monkeypatch.setenv("RLAIF_USERS", "ana:admin:hunter2")
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("must not start"))
    assert main(["workbench", "--address", "0.0.0.0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: user 'ana': password must be a hash")


def test_launcher_starts_streamlit_on_loopback_or_with_users(nobody, monkeypatch):
    started = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: started.append((path, argv, env)))
    assert main(["--store", "team.duckdb", "workbench", "--port", "8600"]) == 0
    path, argv, env = started[0]
    assert path == sys.executable and env["RLAIF_STORE"] == "team.duckdb"
    assert argv == [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
                    "--server.port", "8600", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    assert argv == launcher.streamlit_command("127.0.0.1", 8600)

    (nobody / ".streamlit").mkdir()  # users in the working directory's secrets.toml, as the app reads them
    (nobody / ".streamlit" / "secrets.toml").write_text(
        f'[auth]\nusers = ["ana:admin:{hash_password("pw", iterations=1000)}"]\n')
    assert main(["workbench", "--address", "0.0.0.0"]) == 0
    assert started[1][1][started[1][1].index("--server.address") + 1] == "0.0.0.0"


def test_launcher_really_serves_on_loopback(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rlaif.cli", "--store", str(tmp_path / "wb.duckdb"), "workbench",
                             "--port", str(port)], cwd=ROOT, env=server_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---- streamlit run app.py, directly


def test_direct_streamlit_run_on_an_exposed_address_stops_with_the_reason(tmp_path):
    websockets = pytest.importorskip("websockets")
    from streamlit.proto.BackMsg_pb2 import BackMsg

    port = free_port("0.0.0.0")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "0.0.0.0",
                             "--server.port", str(port), "--server.headless", "true",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=server_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_healthy(port, proc)  # it starts (Streamlit runs no script before a session) ...

        async def open_the_page() -> None:  # ... and stops at the first page view, as a browser would open it
            async with websockets.connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"]) as ws:
                message = BackMsg()
                message.rerun_script.query_string = ""
                message.rerun_script.page_script_hash = ""
                await ws.send(message.SerializeToString())
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                except (websockets.ConnectionClosed, asyncio.TimeoutError):
                    pass

        asyncio.run(open_the_page())
        assert proc.wait(timeout=10) == 2
        _, err = proc.communicate(timeout=10)
        assert REFUSED in err.splitlines() and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
