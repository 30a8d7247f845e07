"""Judge verdicts: one row per pairwise call, with its cost, latency and the raw reply.

The raw reply is kept because an ``invalid`` verdict (an unparseable reply) must be inspectable, never
silently turned into a winner; the cache key lets the judges' cache be audited against stored verdicts. Rationale,
criteria and raw reply are model output: anything key-shaped in them is stored as ``[redacted]`` (see secrets_guard).

    store.judgements.add_many([{"run_id": "r-01", "iteration": 0, "prompt_id": "q1", "candidate_a": a,
                                "candidate_b": b, "judge_id": "stub", "winner": "a", "confidence": 0.9}])
    store.judgements.count_by_winner("r-01", 0)   # {"a": 120, "b": 95, "tie": 10, "invalid": 2}
"""

from __future__ import annotations

from typing import Any

from store.bulk import insert_rows
from store.db import Repository
from store.secrets_guard import redact_rows

JUDGEMENT_COLUMNS = ("judgement_id", "run_id", "iteration", "prompt_id", "candidate_a", "candidate_b", "judge_id",
                     "winner", "confidence", "rationale", "criteria", "raw_reply", "tokens_in", "tokens_out",
                     "cost_usd", "latency_ms", "cache_key", "created_at")
WINNERS = ("a", "b", "tie", "invalid")
#: Columns the judge model produced: redacted, never refused.
MODEL_OUTPUT_COLUMNS = ("rationale", "criteria", "raw_reply")


class JudgementsRepository(Repository):
    # ---- writes

    def add_many(self, rows: list[dict[str, Any]]) -> int:
        """Insert all rows or none; ``winner`` must be one of a/b/tie/invalid (a CHECK constraint). Returns how
        many key-shaped strings were redacted from the judge's output."""
        rows, redacted = redact_rows(rows, MODEL_OUTPUT_COLUMNS)
        self._db.write(lambda cur: insert_rows(
            cur, "judgements", rows, columns=JUDGEMENT_COLUMNS, json_columns=("criteria",),
            id_column="judgement_id",
        ))
        return redacted

    # ---- reads

    def list(
        self, run_id: str | None = None, iteration: int | None = None, limit: int = 1000, offset: int = 0
    ) -> list[dict[str, Any]]:
        return self._rows("judgements", where={"run_id": run_id, "iteration": iteration},
                          order_by="created_at, judgement_id", limit=limit, offset=offset)

    def count_by_winner(self, run_id: str | None, iteration: int | None = None) -> dict[str, int]:
        """Verdict counts with every winner present (zeros included), so charts need no special cases."""
        rows = self._rows("judgements", where={"run_id": run_id, "iteration": iteration},
                          select="winner, count(*) AS n", group_by="winner")
        return {**{w: 0 for w in WINNERS}, **{r["winner"]: r["n"] for r in rows}}

    def by_cache_key(self, cache_key: str) -> dict[str, Any] | None:
        """The newest stored verdict with this cache key, if any."""
        return self._row("judgements", key={"cache_key": cache_key}, order_by="created_at DESC")
