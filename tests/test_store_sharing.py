"""One store file, several processes: a run, ``rlaif runs`` and the workbench side by side; a killed run shows as
interrupted. Real processes throughout (the CLI as ``python -m rlaif.cli``), because DuckDB's lock is per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from store import Store
from tests.processes import dead_process_owner
from tests.test_cli import tiny_config

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def rlaif(store: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rlaif.cli", "--store", str(store), *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(condition, timeout: float = 120.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def test_a_file_store_is_free_between_calls_and_waits_for_a_short_holder(tmp_path):
    """Between calls the file is not held (another process opens it); a process that holds it briefly makes our open
    wait, say so once, and then succeed with nothing lost."""
    path = tmp_path / "s.duckdb"
    store = Store(path, linger_s=0.05)
    store.runs.create("r1", "one", {}, "h", "stub", None, None, None)
    time.sleep(0.3)  # idle past linger_s: the connection is closed
    other = subprocess.run([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                            "print(c.execute('SELECT count(*) FROM runs').fetchone()[0])", str(path)],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 0 and other.stdout.strip() == "1", other.stderr

    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(1.5)", str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        said: list[str] = []
        store.db._on_wait = said.append
        started = time.monotonic()
        store.runs.create("r2", "two", {}, "h", "stub", None, None, None)  # waits for the holder, then writes
        assert time.monotonic() - started >= 0.5
        assert said and said[0].startswith(f"waiting for the store {path} held by pid {holder.pid}")
    finally:
        holder.wait(timeout=30)
    assert [r["run_id"] for r in store.runs.list()] == ["r2", "r1"]
    store.close()


def test_run_and_runs_and_the_workbench_share_one_store(tmp_path, monkeypatch):
    """While ``rlaif run`` works, ``rlaif runs`` (other processes) lists it and the workbench's Runs page renders it,
    on the same file, with no error; the run ends completed with every row it writes alone."""
    config = tiny_config(tmp_path)
    path = tmp_path / "shared.duckdb"
    run = rlaif(path, "run", str(config), "--judge", "stub", "--iterations", "1", "--no-progress")
    listings: list[subprocess.CompletedProcess] = []
    monkeypatch.setenv("RLAIF_STORE", str(path))
    monkeypatch.delenv("RLAIF_USERS", raising=False)
    monkeypatch.delenv("RLAIF_PROJECTS", raising=False)
    st_config.set_option("server.address", "127.0.0.1")
    pages_seen: list[str] = []
    try:
        while run.poll() is None:
            listing = subprocess.run([sys.executable, "-m", "rlaif.cli", "--store", str(path), "runs"], cwd=ROOT,
                                     env=ENV, capture_output=True, text=True, timeout=120)
            listings.append(listing)
            assert listing.returncode == 0, listing.stderr
            if "running" in listing.stdout and not pages_seen:
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
                assert not at.exception, at.exception
                at.switch_page("pages/runs.py").run()
                assert not at.exception, at.exception
                pages_seen.append("runs")
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
        from rlaif.workbench.stores import close_stores
        close_stores()
    assert run.returncode == 0, err
    assert any("running" in listing.stdout for listing in listings), "no listing saw the run while it ran"
    assert pages_seen == ["runs"]
    with Store(path) as store:
        (row,) = store.runs.list()
        assert row["status"] == "completed" and row["owner"].split(":")[1] == str(run.pid)
        cur = store.cursor()
        per_iteration = dict(cur.execute("SELECT iteration, count(*) FROM eval_outputs GROUP BY 1").fetchall())
        assert per_iteration == {0: 5, 1: 5}  # max_eval_prompts 5, both iterations: no lost row
        assert cur.execute("SELECT count(*) FROM candidates WHERE iteration = 1").fetchone()[0] == 6 * 2
        assert cur.execute("SELECT count(*) FROM manifests").fetchone()[0] == 2
    assert "manifest " in out


def test_a_run_killed_with_sigkill_is_listed_as_interrupted_and_resumes(tmp_path):
    config = tiny_config(tmp_path)
    path = tmp_path / "killed.duckdb"
    run = rlaif(path, "run", str(config), "--judge", "stub", "--iterations", "1", "--no-progress")
    try:
        def running():
            try:
                with duckdb.connect(str(path), read_only=True) as conn:
                    return conn.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()
            except (duckdb.IOException, duckdb.CatalogException):
                return None  # held by the run for a moment, or not migrated yet

        (run_id,), = wait_for(running)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == -signal.SIGKILL
    listing = subprocess.run([sys.executable, "-m", "rlaif.cli", "--store", str(path), "runs"], cwd=ROOT, env=ENV,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and run_id in listing.stdout and "interrupted" in listing.stdout, listing
    with Store(path) as store:
        row = store.runs.get(run_id)
        assert row["status"] == "interrupted" and row["finished_at"] is not None
        assert f"pid {run.pid} on " in row["error"]
    planted = tempfile.gettempdir() / Path(f"rlaif-sql-{dead_process_owner().split(':', 1)[1].replace(':', '-')}-x")
    planted.mkdir()  # a scratch folder of another dead process (real pid and start time)
    left = [p for p in Path(tempfile.gettempdir()).glob(f"rlaif-*-{run.pid}-*")]
    resumed = rlaif(path, "resume", run_id, "--no-progress")
    out, err = resumed.communicate(timeout=300)
    assert not planted.exists() and not any(p.exists() for p in left)  # swept when the resumed run started
    assert resumed.returncode == 0, err
    assert f"resuming {run_id} (interrupted)" in out
    with Store(path) as store:
        assert store.runs.get(run_id)["status"] == "completed"


def test_threads_share_the_on_demand_connection_and_an_idle_store_closes(tmp_path):
    """Many threads reading and writing at once open the file once between them; once idle it is closed."""
    store = Store(tmp_path / "t.duckdb", linger_s=0.2)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                store.runs.create(f"r{n}-{i}", "x", {}, "h", "stub", None, None, None)
                assert store.runs.get(f"r{n}-{i}")["status"] == "running"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(store.runs.list(limit=500)) == 80
    wait_for(lambda: store.db._conn is None, timeout=10, every=0.05)
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.runs.list()
