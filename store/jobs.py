"""Background jobs: how a worker thread reports progress to pages that poll, and how a page asks it to stop.

A worker never touches the UI; it writes ``stage/step/total/message`` and a heartbeat here, and a page polls
``get``. Each job records the process that owns it (its pid, and a token unique to that process's lifetime),
so after a crash or restart ``mark_interrupted_on_startup`` can tell a job whose process is gone
(-> ``interrupted``, together with its run) from one still running: a Streamlit rerun must not interrupt its own
jobs, and since stores are shared between processes (see ``store.db``) another live server's jobs are left alone
too. The owner is ``host:pid:start`` (``store.process``), not the pid alone, because a restarted container hands
the new process the old pid.

    job_id = store.jobs.create("run_loop", {"config_path": "configs/sample.yaml"}, run_id="r-01")
    store.jobs.update(job_id, status="running", stage="judge", step=3, total=40)
"""

from __future__ import annotations

import os
from typing import Any

from store.bulk import new_id, to_json
from store.db import Repository
from store.process import PROCESS_OWNER, owner_alive
from store.query import where_clause
from store.secrets_guard import redact_secrets

JOB_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
TERMINAL_JOB_STATUSES = ("completed", "failed", "cancelled", "interrupted")
_UPDATABLE = ("status", "run_id", "stage", "step", "total", "message", "params", "error")
# Unique to this process's lifetime (a new pid alone is not: containers restart with the same pids).
PROCESS_TOKEN = PROCESS_OWNER


class JobsRepository(Repository):
    # ---- writes

    def create(self, kind: str, params: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        """Queue a job owned by this process and return its id."""
        job_id = new_id()
        self._db.execute(
            "INSERT INTO jobs (job_id, kind, run_id, params, pid, owner) VALUES (?, ?, ?, ?, ?, ?)",
            [job_id, kind, run_id, to_json(params, "job.params"), os.getpid(), PROCESS_TOKEN],
        )
        return job_id

    def update(self, job_id: str, **fields: Any) -> None:
        """Set any of status, run_id, stage, step, total, message, params, error.

        Every non-terminal update also stamps heartbeat_at; moving to ``running`` takes ownership for this
        process and stamps started_at (once); a terminal status stamps finished_at.
        """
        unknown = set(fields) - set(_UPDATABLE)
        if unknown:
            raise ValueError(f"jobs.update: unknown field(s) {sorted(unknown)}; allowed: {_UPDATABLE}")
        status = fields.get("status")
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"job status {status!r} is not one of {JOB_STATUSES}")
        if "params" in fields:
            fields["params"] = to_json(fields["params"], "job.params")
        for text_field in ("message", "error"):
            if text_field in fields:
                fields[text_field] = redact_secrets(fields[text_field])
        if status == "running":  # whoever runs the job owns it from now on
            fields.update(pid=os.getpid(), owner=PROCESS_TOKEN)
        if status in TERMINAL_JOB_STATUSES:
            stamps = ["finished_at = current_timestamp"]
        else:  # any progress report is also a sign of life
            stamps = ["heartbeat_at = current_timestamp"]
        if status == "running":
            stamps.append("started_at = coalesce(started_at, current_timestamp)")
        self._set(job_id, fields, stamps)

    def heartbeat(self, job_id: str) -> None:
        self._set(job_id, {}, ["heartbeat_at = current_timestamp"])

    def request_cancel(self, job_id: str) -> None:
        """Ask the worker to stop; it sees ``cancel_requested`` on its next poll and ends as ``cancelled``."""
        self._set(job_id, {"cancel_requested": True}, [])

    def mark_interrupted_on_startup(self) -> list[str]:
        """Mark queued/running jobs of other (ended) processes ``interrupted``, and their running runs too.

        Safe to call on every Streamlit rerun: jobs of this process are left alone. Returns the ids marked.
        """
        orphans = [row["job_id"] for row in self._rows(
            "jobs", key={"status": ("queued", "running")}, where_sql="owner IS DISTINCT FROM ?",
            where_args=[PROCESS_TOKEN], select="job_id, owner",
        ) if not owner_alive(row["owner"])]
        if not orphans:
            return []
        # Several rows, two tables, one transaction, and no row is "missing": specific SQL, shared WHERE.
        of_orphans, params = where_clause(key={"job_id": orphans})

        def write(cur) -> None:
            cur.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = current_timestamp WHERE status = 'running'"
                f" AND run_id IN (SELECT run_id FROM jobs {of_orphans})",
                params,
            )
            cur.execute(
                "UPDATE jobs SET status = 'interrupted', finished_at = current_timestamp,"
                f" error = coalesce(error, 'the process running this job ended') {of_orphans}",
                params,
            )

        self._db.write(write)
        return orphans

    def _set(self, job_id: str, values: dict[str, Any], stamps: list[str]) -> None:
        self._update("jobs", key={"job_id": job_id}, values=values, set_sql=stamps, missing=f"no job {job_id!r}")

    # ---- reads

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self._row("jobs", key={"job_id": job_id})

    def cancel_requested(self, job_id: str) -> bool:
        row = self._row("jobs", key={"job_id": job_id}, select="cancel_requested")
        return bool(row and row["cancel_requested"])

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        """Jobs, newest first, optionally only those in one status."""
        return self._rows("jobs", where={"status": status}, order_by="created_at DESC, job_id")

    def started_by(self, run_ids: list[str]) -> dict[str, str]:
        """Who started each run, from the first job that ran it (its ``params.started_by``); runs started outside
        the workbench (the CLI) have no job and are absent. Why not a column on ``runs``: the job already records
        it, and a resume job keeps the original starter."""
        if not run_ids:
            return {}
        rows = self._rows("jobs", key={"run_id": tuple(run_ids)},
                          select="run_id, json_extract_string(params, '$.started_by') AS started_by",
                          order_by="created_at, job_id")
        out: dict[str, str] = {}
        for row in rows:
            if row["started_by"]:
                out.setdefault(row["run_id"], row["started_by"])
        return out
