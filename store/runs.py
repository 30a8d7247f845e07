"""Runs: one row per loop started, carrying its config, its lifecycle status and the recommended checkpoint.

Status is a small state machine the pages read to decide what to show: ``running`` until the loop ends as
``completed`` / ``stopped`` (regression gate) / ``failed`` / ``cancelled``, or ``interrupted`` when the process
died under it. Every state but ``running`` is terminal and stamps ``finished_at``.

A run records its owner process (``host:pid:start``, see ``store.process``) when it starts or resumes. Nothing can
write "interrupted" when a process is killed, so readers check: ``get`` and ``list`` turn a ``running`` run whose
owner is gone into ``interrupted`` (and record it, with the pid in ``error``) before returning it. That is why
``rlaif runs`` run after a ``kill -9`` says interrupted, and why resume accepts it.

    store.runs.create("r-01", "baseline", config, config_hash, "stub", rubric_version, train_id, eval_id)
    store.runs.set_status("r-01", "stopped")
"""

from __future__ import annotations

from typing import Any

from store.bulk import to_json
from store.db import Repository
from store.process import PROCESS_OWNER, owner_alive, parse_owner
from store.secrets_guard import redact_secrets

RUN_STATUSES = ("running", "completed", "stopped", "failed", "cancelled", "interrupted")


class RunsRepository(Repository):
    # ---- writes

    def create(
        self,
        run_id: str,
        name: str,
        config: dict[str, Any],
        config_hash: str,
        judge_id: str | None,
        rubric_version: str | None,
        train_dataset_id: str | None,
        eval_dataset_id: str | None,
    ) -> None:
        """Insert a run in status ``running`` owned by this process; a config holding an API key is refused."""
        self._db.execute(
            "INSERT INTO runs (run_id, name, config, config_hash, judge_id, rubric_version,"
            " train_dataset_id, eval_dataset_id, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, name, to_json(config, "config"), config_hash, judge_id, rubric_version,
             train_dataset_id, eval_dataset_id, PROCESS_OWNER],
        )

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"run status {status!r} is not one of {RUN_STATUSES}")
        finished = "NULL" if status == "running" else "current_timestamp"
        values = {"status": status, "error": redact_secrets(error)}
        if status == "running":  # a resume: this process owns the run now
            values["owner"] = PROCESS_OWNER
        self._update("runs", key={"run_id": run_id}, values=values,
                     set_sql=[f"finished_at = {finished}"], missing=f"no run {run_id!r}")

    def set_recommended(self, run_id: str, iteration: int | None) -> None:
        """Record the iteration whose checkpoint the run recommends (the best before any regression)."""
        self._update("runs", key={"run_id": run_id}, values={"recommended_iteration": iteration},
                     missing=f"no run {run_id!r}")

    # ---- reads

    def get(self, run_id: str) -> dict[str, Any] | None:
        row = self._row("runs", key={"run_id": run_id})
        return self._checked([row])[0] if row else None

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Runs, newest first."""
        return self._checked(self._rows("runs", order_by="created_at DESC, run_id", limit=limit))

    def _checked(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Mark ``running`` rows whose owner process is gone ``interrupted`` (in the store and in ``rows``)."""
        for row in rows:
            if row["status"] != "running" or owner_alive(row.get("owner")):
                continue
            parsed = parse_owner(row.get("owner"))
            who = f"pid {parsed[1]} on {parsed[0]}" if parsed else "an unrecorded process"
            error = f"the process running it ({who}) ended without finishing it"
            marked = self._db.write(lambda cur, run_id=row["run_id"]: cur.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = current_timestamp, error = ?"
                " WHERE run_id = ? AND status = 'running' AND owner IS NOT DISTINCT FROM ? RETURNING finished_at",
                [error, run_id, row.get("owner")]).fetchall())
            if marked:
                row.update(status="interrupted", error=error, finished_at=marked[0][0])
        return rows
