"""The entry point each rank of an ``accelerate launch`` runs: ``python -m rlaif.training_worker JOB.json``.

Why a module of its own: every rank executes it (``rlaif.training_launch`` starts them), and it must do exactly
what the in-process path does, so it only reads the job the parent wrote and calls ``train_dpo`` or
``train_reward_model``. Rank 0 appends ``{"step", "total"}`` lines to ``progress.jsonl`` after each step (the parent
tails it) and writes ``result.json`` last (written then renamed: its existence means the model is saved). Every
rank leaves ``ranks/rank-<N>.json`` (rank, world size, steps) as evidence it trained; a rank that fails writes its
exception in one line to ``error-rank<N>.txt`` before the traceback goes to the log. If the process that launched
the job is gone (killed), training stops at the next step instead of writing into a folder a resume will redo.

    python -m accelerate.commands.launch --num_processes 2 --multi_gpu -m rlaif.training_worker out/launch/job.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlaif.config import TrainingConfig
from rlaif.reward_model import RewardConfig, train_reward_model
from rlaif.training import train_dpo
from rlaif.training_launch import ERROR_PREFIX, PROGRESS_FILE, RANKS_DIR, RESULT_FILE


def _rank() -> tuple[int, int]:
    """(rank, world size) as torchrun / accelerate set them; (0, 1) for a single process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _backend() -> str | None:
    """The torch.distributed backend the ranks talked over (gloo on CPU, nccl on GPUs); None for one process."""
    import torch.distributed as dist

    return str(dist.get_backend()) if dist.is_available() and dist.is_initialized() else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _parent_alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_job(job_file: Path) -> dict[str, Any]:
    """Train as the job says; returns what rank 0 writes to ``result.json``."""
    job = json.loads(job_file.read_text(encoding="utf-8"))
    launch = job_file.parent
    rank, world = _rank()
    progress = launch / PROGRESS_FILE
    parent = job.get("parent_pid")

    def on_step(done: int, total: int) -> None:
        if not _parent_alive(parent):
            print(f"rank {rank}: the launching process {parent} is gone; stopping", file=sys.stderr, flush=True)
            os._exit(3)  # no merge, no save: the iteration is redone on resume
        if rank == 0:
            with progress.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": done, "total": total}) + "\n")

    rows = _read_jsonl(launch / job["rows"])
    common = dict(seed=job["seed"], device=job["device"], on_step=on_step)
    if job["kind"] == "dpo":
        result = dataclasses.asdict(train_dpo(job["base_model_path"], rows, TrainingConfig(**job["config"]),
                                              job["output_dir"], **common))
    elif job["kind"] == "reward":
        heldout = _read_jsonl(launch / job["heldout"]) if job.get("heldout") else []
        result = train_reward_model(job["base_model_path"], rows, RewardConfig(**job["config"]), job["output_dir"],
                                    heldout=heldout, **common).to_dict()
    else:
        raise ValueError(f"{job_file}: unknown job kind {job['kind']!r}")
    result["world_size"], result["backend"] = world, _backend()
    _write_atomically(launch / RANKS_DIR / f"rank-{rank}.json", {"rank": rank, "world_size": world,
                                                                  "backend": result["backend"],
                                                                  "steps": result["steps"], "pid": os.getpid()})
    if rank == 0:
        _write_atomically(launch / RESULT_FILE, result)  # last: its existence means the model is saved
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rlaif.training_worker JOB.json (written by rlaif.training_launch)", file=sys.stderr)
        return 2
    job_file = Path(args[0]).resolve()
    try:
        run_job(job_file)
    except BaseException as err:
        rank, _ = _rank()
        message = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
        (job_file.parent / f"{ERROR_PREFIX}{rank}.txt").write_text(f"rank {rank}: {message}\n", encoding="utf-8")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
