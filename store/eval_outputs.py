"""Held-out outputs per (run, iteration, prompt): what the policy answered, for eval-judge comparisons and resume.

    store.eval_outputs.add_many([{"run_id": "r", "iteration": 1, "prompt_id": "q1", "output": "SELECT 1;"}])
"""

from __future__ import annotations

from typing import Any

from store.bulk import insert_rows
from store.db import Repository

COLUMNS = ("run_id", "iteration", "prompt_id", "cohort", "output", "n_tokens", "checks")


class EvalOutputsRepository(Repository):
    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert or replace: a resumed iteration re-evaluates and its outputs replace any partial ones."""
        self._db.write(lambda cur: insert_rows(cur, "eval_outputs", rows, columns=COLUMNS, json_columns=("checks",),
                                               on_conflict="replace"))

    def for_iteration(self, run_id: str, iteration: int) -> dict[str, dict[str, Any]]:
        rows = self._rows("eval_outputs", key={"run_id": run_id, "iteration": iteration})
        return {r["prompt_id"]: r for r in rows}
