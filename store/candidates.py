"""Sampled candidates: every completion the policy produced, with its sampling settings and verifier result.

Kept so that a pair or a verdict can always be traced back to the exact text, temperature and seed. The text and
the verifier's result are model output: anything key-shaped in them is stored as ``[redacted]`` (see secrets_guard),
and ``add_many`` says how many such strings it replaced.

    store.candidates.add_many([{"run_id": "r-01", "iteration": 0, "prompt_id": "q1", "text": "SELECT 1",
                                "temperature": 0.7, "seed": 3, "sample_index": 0, "verification": {...}}])
"""

from __future__ import annotations

from typing import Any, Sequence

from store.bulk import insert_rows
from store.db import Repository
from store.secrets_guard import redact_rows

CANDIDATE_COLUMNS = ("candidate_id", "run_id", "iteration", "prompt_id", "text", "temperature", "seed",
                     "sample_index", "n_tokens", "verification", "score")
#: Columns a model produced: redacted, never refused (a completion that looks like a key must not fail a run).
MODEL_OUTPUT_COLUMNS = ("text", "verification")


class CandidatesRepository(Repository):
    def add_many(self, rows: list[dict[str, Any]]) -> int:
        """Insert all rows or none; rows without ``candidate_id`` get a random one. Returns how many key-shaped
        strings were redacted from the model's output."""
        rows, redacted = redact_rows(rows, MODEL_OUTPUT_COLUMNS)
        self._db.write(lambda cur: insert_rows(
            cur, "candidates", rows, columns=CANDIDATE_COLUMNS, json_columns=("verification",),
            id_column="candidate_id",
        ))
        return redacted

    def list(self, run_id: str, iteration: int | None = None, prompt_id: str | None = None,
             limit: int | None = None, offset: int | None = None) -> list[dict[str, Any]]:
        return self._rows("candidates", key={"run_id": run_id},
                          where={"iteration": iteration, "prompt_id": prompt_id},
                          order_by="iteration, prompt_id, sample_index, candidate_id", limit=limit, offset=offset)

    def count(self, run_id: str, iteration: int | None = None, prompt_id: str | None = None) -> int:
        """How many candidates ``list`` would return without a limit (a page says "showing n of N")."""
        return self._rows("candidates", key={"run_id": run_id}, where={"iteration": iteration, "prompt_id": prompt_id},
                          select="count(*) AS n")[0]["n"]

    def get_many(self, candidate_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Candidates by id (ids not stored are absent from the result)."""
        ids = tuple(c for c in candidate_ids if c)
        return {r["candidate_id"]: r for r in self._rows("candidates", key={"candidate_id": ids})} if ids else {}
