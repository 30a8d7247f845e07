"""Judge verdicts: one row per pairwise call, with its cost, latency and the raw reply.

The raw reply is kept because an ``invalid`` verdict (an unparseable reply) must be inspectable, never
silently turned into a winner; the cache key lets the judges' cache be audited against stored verdicts. Rationale,
criteria and raw reply are model output: anything key-shaped in them is stored as ``[redacted]`` (see secrets_guard).

    store.judgements.add_many([{"run_id": "r-01", "iteration": 0, "prompt_id": "q1", "candidate_a": a,
                                "candidate_b": b, "judge_id": "stub", "winner": "a", "confidence": 0.9}])
    store.judgements.count_by_winner("r-01", 0)   # {"a": 120, "b": 95, "tie": 10, "invalid": 2}
"""

from __future__ import annotations

from typing import Any, Sequence

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
        self, run_id: str | None = None, iteration: int | None = None, limit: int = 1000, offset: int = 0,
        prompt_id: str | None = None, candidate: str | None = None,
    ) -> list[dict[str, Any]]:
        """Verdicts in the order they were made; ``candidate``: only matches that candidate took part in."""
        return self._rows("judgements", **_filters(run_id, iteration, prompt_id, candidate),
                          order_by="created_at, judgement_id", limit=limit, offset=offset)

    def between(self, run_id: str, iteration: int, prompt_id: str, candidates: Sequence[str]) -> list[dict[str, Any]]:
        """The matches between two (or more) candidates of one prompt, in either order: the verdicts that decided a
        pair made of them (a judge asked both orders has two rows)."""
        ids = tuple(c for c in candidates if c)
        return self._rows("judgements", key={"run_id": run_id, "iteration": iteration, "prompt_id": prompt_id,
                                             "candidate_a": ids, "candidate_b": ids},
                          order_by="created_at, judgement_id")

    def count_by_winner(self, run_id: str | None, iteration: int | None = None, prompt_id: str | None = None,
                        candidate: str | None = None) -> dict[str, int]:
        """Verdict counts with every winner present (zeros included), so charts need no special cases."""
        rows = self._rows("judgements", **_filters(run_id, iteration, prompt_id, candidate),
                          select="winner, count(*) AS n", group_by="winner")
        return {**{w: 0 for w in WINNERS}, **{r["winner"]: r["n"] for r in rows}}

    def by_cache_key(self, cache_key: str) -> dict[str, Any] | None:
        """The newest stored verdict with this cache key, if any."""
        return self._row("judgements", key={"cache_key": cache_key}, order_by="created_at DESC")


def _filters(run_id, iteration, prompt_id, candidate) -> dict[str, Any]:
    """``Repository._rows`` keyword arguments for the list filters (None = any)."""
    return {"where": {"run_id": run_id, "iteration": iteration, "prompt_id": prompt_id},
            "where_sql": ["candidate_a = ? OR candidate_b = ?"] if candidate else [],
            "where_args": [candidate, candidate] if candidate else []}
