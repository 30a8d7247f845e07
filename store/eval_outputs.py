"""Held-out outputs per (run, iteration, prompt): what the policy answered, for eval-judge comparisons and resume.
Model output, so anything key-shaped in an answer or its checks is stored as ``[redacted]`` (see secrets_guard).

    store.eval_outputs.add_many([{"run_id": "r", "iteration": 1, "prompt_id": "q1", "output": "SELECT 1;"}])
"""

from __future__ import annotations

from typing import Any

from store.bulk import insert_rows
from store.db import Repository
from store.secrets_guard import redact_rows

COLUMNS = ("run_id", "iteration", "prompt_id", "cohort", "output", "n_tokens", "checks")
MODEL_OUTPUT_COLUMNS = ("output", "checks")


class EvalOutputsRepository(Repository):
    def add_many(self, rows: list[dict[str, Any]]) -> int:
        """Insert or replace: a resumed iteration re-evaluates and its outputs replace any partial ones. Returns
        how many key-shaped strings were redacted."""
        rows, redacted = redact_rows(rows, MODEL_OUTPUT_COLUMNS)
        self._db.write(lambda cur: insert_rows(cur, "eval_outputs", rows, columns=COLUMNS, json_columns=("checks",),
                                               on_conflict="replace"))
        return redacted

    def for_iteration(self, run_id: str, iteration: int) -> dict[str, dict[str, Any]]:
        rows = self._rows("eval_outputs", key={"run_id": run_id, "iteration": iteration})
        return {r["prompt_id"]: r for r in rows}

    def for_prompt(self, run_id: str, prompt_id: str) -> dict[int, dict[str, Any]]:
        """What every iteration answered to one held-out prompt, by iteration (0 = the base model)."""
        rows = self._rows("eval_outputs", key={"run_id": run_id, "prompt_id": prompt_id}, order_by="iteration")
        return {r["iteration"]: r for r in rows}

    def prompt_ids(self, run_id: str) -> list[str]:
        """The held-out prompt ids the run has outputs for, in id order."""
        return [r["prompt_id"] for r in self._rows("eval_outputs", key={"run_id": run_id},
                                                   select="DISTINCT prompt_id", order_by="prompt_id")]
