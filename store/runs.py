"""Runs: one row per loop started, carrying its config, its lifecycle status and the recommended checkpoint.

Status is a small state machine the pages read to decide what to show: ``running`` until the loop ends as
``completed`` / ``stopped`` (regression gate) / ``failed`` / ``cancelled``, or ``interrupted`` when the process
died under it. Every state but ``running`` is terminal and stamps ``finished_at``.

    store.runs.create("r-01", "baseline", config, config_hash, "stub", rubric_version, train_id, eval_id)
    store.runs.set_status("r-01", "stopped")
"""

from __future__ import annotations

from typing import Any

from store.bulk import to_json
from store.db import Repository
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
        """Insert a run in status ``running``; a config holding an API key is refused (ValueError)."""
        self._db.execute(
            "INSERT INTO runs (run_id, name, config, config_hash, judge_id, rubric_version,"
            " train_dataset_id, eval_dataset_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, name, to_json(config, "config"), config_hash, judge_id, rubric_version,
             train_dataset_id, eval_dataset_id],
        )

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"run status {status!r} is not one of {RUN_STATUSES}")
        finished = "NULL" if status == "running" else "current_timestamp"
        self._update("runs", key={"run_id": run_id}, values={"status": status, "error": redact_secrets(error)},
                     set_sql=[f"finished_at = {finished}"], missing=f"no run {run_id!r}")

    def set_recommended(self, run_id: str, iteration: int | None) -> None:
        """Record the iteration whose checkpoint the run recommends (the best before any regression)."""
        self._update("runs", key={"run_id": run_id}, values={"recommended_iteration": iteration},
                     missing=f"no run {run_id!r}")

    # ---- reads

    def get(self, run_id: str) -> dict[str, Any] | None:
        return self._row("runs", key={"run_id": run_id})

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Runs, newest first."""
        return self._rows("runs", order_by="created_at DESC, run_id", limit=limit)
