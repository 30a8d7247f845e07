"""Sampled candidates: every completion the policy produced, with its sampling settings and verifier result.

Kept so that a pair or a verdict can always be traced back to the exact text, temperature and seed.

    store.candidates.add_many([{"run_id": "r-01", "iteration": 0, "prompt_id": "q1", "text": "SELECT 1",
                                "temperature": 0.7, "seed": 3, "sample_index": 0, "verification": {...}}])
"""

from __future__ import annotations

from typing import Any

from store.bulk import insert_rows
from store.db import Repository

CANDIDATE_COLUMNS = ("candidate_id", "run_id", "iteration", "prompt_id", "text", "temperature", "seed",
                     "sample_index", "n_tokens", "verification", "score")


class CandidatesRepository(Repository):
    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert all rows or none; rows without ``candidate_id`` get a random one."""
        self._db.write(lambda cur: insert_rows(
            cur, "candidates", rows, columns=CANDIDATE_COLUMNS, json_columns=("verification",),
            id_column="candidate_id",
        ))

    def list(self, run_id: str, iteration: int | None = None, prompt_id: str | None = None) -> list[dict[str, Any]]:
        where, params = ["run_id = ?"], [run_id]
        if iteration is not None:
            where.append("iteration = ?")
            params.append(iteration)
        if prompt_id is not None:
            where.append("prompt_id = ?")
            params.append(prompt_id)
        return self._db.fetch_all(
            f"SELECT * FROM candidates WHERE {' AND '.join(where)}"
            " ORDER BY iteration, prompt_id, sample_index, candidate_id",
            params,
        )
