"""Iterations of a run: one row per generate→judge→train→evaluate round, with its gate outcome.

``start`` is an upsert so that resuming an interrupted run can restart the same iteration number; ``finish``
records the checkpoint and whether the regression gate fired.

    store.iterations.start("r-01", 2)
    store.iterations.finish("r-01", 2, status="completed", model_path=p, model_hash=h, regressed=False,
                            gate_decision="continue", pairs_kept=180, pairs_dropped=20)
"""

from __future__ import annotations

from typing import Any

from store.db import Repository


class IterationsRepository(Repository):
    # ---- writes

    def start(self, run_id: str, iteration: int) -> None:
        """Mark an iteration running (again, if it was started before and interrupted)."""
        self._db.execute(
            "INSERT INTO iterations (run_id, iteration) VALUES (?, ?)"
            " ON CONFLICT (run_id, iteration) DO UPDATE SET status = 'running', started_at = now(),"
            " finished_at = NULL, model_path = NULL, model_hash = NULL, regressed = NULL, gate_decision = NULL,"
            " pairs_kept = NULL, pairs_dropped = NULL",
            [run_id, iteration],
        )

    def finish(
        self,
        run_id: str,
        iteration: int,
        *,
        status: str,
        model_path: str | None,
        model_hash: str | None,
        regressed: bool | None,
        gate_decision: str | None,
        pairs_kept: int | None,
        pairs_dropped: int | None,
    ) -> None:
        self._update(
            "iterations", key={"run_id": run_id, "iteration": iteration},
            values={"status": status, "model_path": model_path, "model_hash": model_hash, "regressed": regressed,
                    "gate_decision": gate_decision, "pairs_kept": pairs_kept, "pairs_dropped": pairs_dropped},
            set_sql=["finished_at = current_timestamp"],
            missing=f"iteration {iteration} of run {run_id!r} was never started",
        )

    # ---- reads

    def list(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("iterations", key={"run_id": run_id}, order_by="iteration")
