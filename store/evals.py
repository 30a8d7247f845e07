"""Held-out evaluation metrics, one value per (run, iteration, metric, cohort); cohort ``all`` is the total.

Re-writing a metric replaces it (INSERT OR REPLACE): a resumed iteration recomputes its evaluation, and the
stored value must be the latest computation rather than a duplicate-key failure.

    store.evals.add_many([{"run_id": "r-01", "iteration": 1, "metric": "exact_match", "cohort": "all",
                           "value": 0.42, "n": 50}])
"""

from __future__ import annotations

from typing import Any

from store.bulk import insert_rows
from store.db import Repository

EVAL_COLUMNS = ("run_id", "iteration", "metric", "cohort", "value", "n")


class EvalsRepository(Repository):
    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert or replace all rows at once; rows without ``cohort`` count as ``all``."""
        rows = [{**row, "cohort": row.get("cohort") or "all"} for row in rows]
        self._db.write(lambda cur: insert_rows(cur, "evals", rows, columns=EVAL_COLUMNS, on_conflict="replace"))

    def for_run(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("evals", key={"run_id": run_id}, order_by="iteration, metric, cohort = 'all' DESC, cohort")
