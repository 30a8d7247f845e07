"""Run one training job (DPO or a reward model) as an ``accelerate launch`` subprocess and bring its result back.

Why a subprocess: data parallelism (DDP), FSDP and DeepSpeed need one process per device, started by accelerate's
launcher; the loop process cannot become several ranks itself. The parent (this module) writes the job into
``out_dir/launch/`` (``job.json`` + ``rows.jsonl``), starts ``python -m accelerate.commands.launch ... -m
rlaif.training_worker job.json`` in its own process group, tails ``progress.jsonl`` (written by rank 0 after each
step) into ``on_step``, and on success reads ``result.json``. Cancel stops the whole process group (SIGTERM, then
SIGKILL after a grace period); a non-zero exit raises ``TrainingLaunchError`` naming the log file, which stays in
``out_dir/launch/``. Nothing here imports torch: the loop imports it cheaply.

Two or more processes without an accelerate config file are launched with ``--multi_gpu`` (accelerate's
torchrun path: one process per rank on this machine). On a CPU-only machine each rank then runs with
``use_cpu`` and accelerate picks its MULTI_CPU mode with the gloo backend. A single process uses accelerate's
simple launcher.

    result = run_training_job("dpo", base, rows, asdict(cfg), out_dir, LaunchOptions(num_processes=2), seed=1)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rlaif.core.fields import ConfigError

LAUNCH_DIR = "launch"  # under the job's output folder: job, rows, progress, result, log
JOB_FILE, ROWS_FILE, HELDOUT_FILE = "job.json", "rows.jsonl", "heldout.jsonl"
PROGRESS_FILE, RESULT_FILE, LOG_FILE, RANKS_DIR = "progress.jsonl", "result.json", "worker.log", "ranks"
ERROR_PREFIX = "error-rank"  # error-rank<N>.txt: the one-line exception a rank died of
GRACE_S = 10.0  # SIGTERM first (torchrun forwards it to its ranks), SIGKILL whatever is left after this
POLL_S = 0.2


class TrainingLaunchError(RuntimeError):
    """The training subprocess failed; the message is one line (the ranks' error and the log path)."""

    def __init__(self, message: str, log_path: Path, log_tail: str):
        super().__init__(message)
        self.log_path = log_path
        self.log_tail = log_tail


@dataclass(frozen=True)
class LaunchOptions:
    """How ``accelerate launch`` is called: ranks, precision, and an optional accelerate config file."""

    num_processes: int | None = None  # None: the config file's, else 1
    mixed_precision: str = "no"
    config_file: Path | None = None
    field: str = "training.accelerate_config"  # where the user named the config file, for error messages

    def describe(self) -> str:
        """``2 process(es)``, or the config file's, for messages."""
        if self.num_processes is None and self.config_file is not None:
            return f"processes as in {Path(self.config_file).name}"
        return f"{self.num_processes or 1} process(es)"

    def check(self) -> None:
        """A missing or unreadable accelerate config file, named by its field, before anything starts. Sharding
        configs (FSDP, ZeRO-3) are fine: with several ranks the trainers save gathered weights before rank 0 merges."""
        if self.config_file is None:
            return
        path = Path(self.config_file)
        if not path.is_file():
            raise ConfigError(self.field, f"file not found: {path} (write one with "
                                          f"`accelerate config --config_file {path}`)")
        try:
            import yaml

            data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.suffix in (".yaml", ".yml") \
                else json.loads(path.read_text(encoding="utf-8"))
        except Exception as err:  # noqa: BLE001 - any parse problem is the user's file, said in one line
            raise ConfigError(self.field, f"{path}: not a readable accelerate config "
                                          f"({type(err).__name__})") from None
        if not isinstance(data, dict):
            raise ConfigError(self.field, f"{path}: an accelerate config is a mapping "
                                          f"(compute_environment:, distributed_type:, ...)")


def free_port() -> int:
    """A TCP port nobody listens on now, for the ranks' rendezvous (the default 29500 may be taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(options: LaunchOptions, job_file: Path, port: int) -> list[str]:
    """The ``accelerate launch`` command line, with the venv's interpreter (no reliance on PATH)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--main_process_port", str(port)]
    if options.config_file is not None:
        cmd += ["--config_file", str(options.config_file)]
        if options.num_processes is not None:
            cmd += ["--num_processes", str(options.num_processes)]
        if options.mixed_precision != "no":
            cmd += ["--mixed_precision", options.mixed_precision]
    else:
        n = options.num_processes or 1
        cmd += ["--num_processes", str(n), "--mixed_precision", options.mixed_precision, "--dynamo_backend", "no"]
        if n > 1:
            cmd += ["--multi_gpu"]  # torchrun: one process per rank (gloo on CPU, NCCL on GPUs)
    return cmd + ["-m", "rlaif.training_worker", str(job_file)]


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def prepare_job(kind: str, base_model_path: str | Path, rows: Sequence[dict[str, Any]], config: dict[str, Any],
                out_dir: Path, *, seed: int, device: str, heldout: Sequence[dict[str, Any]] = ()) -> Path:
    """Write the job into a fresh ``out_dir/launch`` and return the job file.

    A folder left by a killed earlier attempt (resume redoes the iteration) is cleared first: a stale
    ``result.json`` or half-written ``model/`` must never be mistaken for this attempt's.
    """
    launch = out_dir / LAUNCH_DIR
    for stale in (launch, out_dir / "model"):
        if stale.exists():
            shutil.rmtree(stale)
    (launch / RANKS_DIR).mkdir(parents=True)
    _write_jsonl(launch / ROWS_FILE, rows)
    if heldout:
        _write_jsonl(launch / HELDOUT_FILE, heldout)
    job = {"kind": kind, "base_model_path": str(base_model_path), "config": config, "seed": seed, "device": device,
           "output_dir": str(out_dir.resolve()), "rows": ROWS_FILE, "heldout": HELDOUT_FILE if heldout else None,
           "parent_pid": os.getpid()}
    (launch / JOB_FILE).write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
    return launch / JOB_FILE


def _worker_env() -> dict[str, str]:
    """The parent's environment, with this checkout importable (``-m rlaif.training_worker``) from any cwd."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun would set it anyway (with a warning)
    return env


def _running(p) -> bool:
    """Alive and not a zombie (a killed rank whose parent died waits for init to reap it: it is gone)."""
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_process_group(proc: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM the launcher's whole process group (launcher, torchrun, every rank), SIGKILL what outlives
    ``grace_s``; returns once every process of it is gone."""
    import psutil  # accelerate's own dependency

    try:
        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in procs:  # a rank that left the group still gets the signal
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reaps the launcher, our own child
            procs = [p for p in procs if _running(p)]
            if not procs:
                break
            time.sleep(0.05)
        if not procs:
            break
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass


class _ProgressTail:
    """Reads the lines rank 0 appended to ``progress.jsonl`` since the last call."""

    def __init__(self, path: Path):
        self.path, self.offset, self.step, self.total = path, 0, 0, 0

    def poll(self, on_step: Callable[[int, int], None] | None) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self.offset += end
        for line in data[:end].decode("utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.step, self.total = int(entry["step"]), int(entry["total"])
            if on_step:
                on_step(self.step, self.total)


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _failure(launch: Path, code: int, options: LaunchOptions) -> TrainingLaunchError:
    """One line: what the ranks died of (their error files, else the log's last exception line) and the log."""
    log = launch / LOG_FILE
    tail = _log_tail(log)
    errors = sorted(launch.glob(f"{ERROR_PREFIX}*.txt"))
    reason = errors[0].read_text(encoding="utf-8").strip() if errors else ""
    if not reason:
        candidates = [ln.strip() for ln in tail.splitlines() if "Error" in ln or "Exception" in ln]
        reason = candidates[-1] if candidates else "no error message (killed?)"
    return TrainingLaunchError(
        f"training subprocess (accelerate launch, {options.describe()}) exited with code {code}: "
        f"{reason.splitlines()[0][:500]} (full log: {log})", log, tail)


def run_training_job(kind: str, base_model_path: str | Path, rows: Sequence[dict[str, Any]], config: dict[str, Any],
                     out_dir: str | Path, options: LaunchOptions, *, seed: int = 0, device: str = "auto",
                     heldout: Sequence[dict[str, Any]] = (), on_step: Callable[[int, int], None] | None = None,
                     cancel: threading.Event | None = None) -> dict[str, Any] | None:
    """Run the job; the worker's ``result.json`` as a dict, or None when ``cancel`` stopped it (nothing was saved;
    the caller reports the run as cancelled, as the in-process path does)."""
    options.check()
    out_dir = Path(out_dir)
    job_file = prepare_job(kind, base_model_path, rows, config, out_dir, seed=seed, device=device, heldout=heldout)
    launch = job_file.parent
    tail = _ProgressTail(launch / PROGRESS_FILE)
    with (launch / LOG_FILE).open("wb") as log:
        proc = subprocess.Popen(launch_command(options, job_file, free_port()), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=_worker_env(), start_new_session=True)
        try:
            while proc.poll() is None:
                tail.poll(on_step)
                if cancel is not None and cancel.is_set():
                    stop_process_group(proc)
                    return None
                time.sleep(POLL_S)
        except BaseException:  # KeyboardInterrupt or a failing on_step: never leave ranks running behind us
            stop_process_group(proc)
            raise
    tail.poll(on_step)
    if proc.returncode != 0:
        raise _failure(launch, proc.returncode, options)
    result_file = launch / RESULT_FILE
    if not result_file.is_file():
        raise TrainingLaunchError(f"training subprocess exited cleanly but wrote no {result_file} "
                                  f"(full log: {launch / LOG_FILE})", launch / LOG_FILE, _log_tail(launch / LOG_FILE))
    return json.loads(result_file.read_text(encoding="utf-8"))
