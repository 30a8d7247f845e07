"""Preference pairs: the (chosen, rejected) rows DPO trains on, including the dropped ones and why.

Browsing must stay fast at a million rows, so every read is one filtered scan over columns DuckDB keeps zone
maps for, with a composite index on (run_id, iteration, kept) for the common "this iteration's kept pairs"
lookup. Pages are ordered by ``pair_id``; pass the last id of a page as ``after`` (keyset paging) to skip
straight to the next one, or use ``offset`` for random access. Chosen and rejected texts are model output: anything
key-shaped in them is stored as ``[redacted]`` (see secrets_guard).

    rows = store.pairs.page(run_id="r-01", iteration=2, kept=False, drop_reason="tie", limit=50)
    rows = store.pairs.page(run_id="r-01", iteration=2, after=rows[-1]["pair_id"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from store.bulk import insert_rows
from store.db import Repository
from store.query import where_clause
from store.secrets_guard import redact_rows

PAIR_COLUMNS = ("pair_id", "run_id", "iteration", "prompt_id", "prompt", "chosen", "rejected", "chosen_candidate",
                "rejected_candidate", "chosen_score", "rejected_score", "kept", "drop_reason", "source",
                "rubric_version", "judge_id", "confidence", "created_at")
#: Columns a model produced: redacted, never refused.
MODEL_OUTPUT_COLUMNS = ("chosen", "rejected")
_SEARCH = ("contains(lower(prompt), ?) OR contains(lower(chosen), ?) OR contains(lower(rejected), ?)"
           " OR contains(lower(prompt_id), ?)")


@dataclass(frozen=True)
class PairFilter:
    """The filters shared by ``page``, ``count`` and ``table``; None means "any"."""

    run_id: str | None = None
    iteration: int | None = None
    kept: bool | None = None
    drop_reason: str | None = None
    search: str | None = None  # case-insensitive substring of prompt, chosen, rejected or prompt_id

    def query(self, after: str | None = None) -> dict[str, Any]:
        """These filters (and keyset ``after``) as keyword arguments of ``where_clause`` / ``Repository._rows``."""
        where_sql, where_args = [], []
        if self.search:
            where_sql.append(_SEARCH)
            where_args.extend([self.search.lower()] * 4)
        if after is not None:
            where_sql.append("pair_id > ?")
            where_args.append(after)
        equals = {"run_id": self.run_id, "iteration": self.iteration, "kept": self.kept,
                  "drop_reason": self.drop_reason}
        return {"where": equals, "where_sql": where_sql, "where_args": where_args}

    def where(self) -> tuple[str, list]:
        return where_clause(**self.query())


class PairsRepository(Repository):
    # ---- writes

    def add_many(self, rows: list[dict[str, Any]]) -> int:
        """Insert all rows or none (Arrow bulk insert); a dropped pair (kept=False) needs a drop_reason. Returns
        how many key-shaped strings were redacted from chosen/rejected."""
        rows, redacted = redact_rows(rows, MODEL_OUTPUT_COLUMNS)
        self._db.write(lambda cur: insert_rows(cur, "pairs", rows, columns=PAIR_COLUMNS, id_column="pair_id"))
        return redacted

    # ---- reads

    def page(
        self,
        *,
        run_id: str | None = None,
        iteration: int | None = None,
        kept: bool | None = None,
        drop_reason: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of pairs ordered by pair_id; ``after`` (a pair_id) continues after that row."""
        filters = PairFilter(run_id, iteration, kept, drop_reason, search)
        return self._rows("pairs", **filters.query(after), order_by="pair_id", limit=limit, offset=offset)

    def count(
        self,
        *,
        run_id: str | None = None,
        iteration: int | None = None,
        kept: bool | None = None,
        drop_reason: str | None = None,
        search: str | None = None,
    ) -> int:
        filters = PairFilter(run_id, iteration, kept, drop_reason, search)
        return self._rows("pairs", **filters.query(), select="count(*) AS n")[0]["n"]

    def drop_reasons(self, run_id: str, iteration: int | None = None) -> dict[str, int]:
        """How many pairs each filter dropped, most frequent first."""
        rows = self._rows("pairs", **PairFilter(run_id, iteration, kept=False).query(),
                          select="drop_reason, count(*) AS n", group_by="drop_reason", order_by="n DESC, drop_reason")
        return {row["drop_reason"]: row["n"] for row in rows}

    def prompt_text(self, run_id: str | None, prompt_id: str | None) -> str | None:
        """The question a run's prompt id stands for: from the run's training then held-out dataset, else the prompt
        of one of its pairs (a run imported without datasets); None when nothing names it."""
        if not run_id or not prompt_id:
            return None
        rows = self._db.fetch_all(
            "SELECT p.prompt FROM runs r JOIN prompts p ON p.prompt_id = ?"
            " AND p.dataset_id IN (r.train_dataset_id, r.eval_dataset_id) WHERE r.run_id = ?"
            " ORDER BY p.dataset_id = r.train_dataset_id DESC LIMIT 1", [prompt_id, run_id])
        if rows:
            return rows[0]["prompt"]
        row = self._row("pairs", key={"run_id": run_id, "prompt_id": prompt_id}, select="prompt")
        return row["prompt"] if row else None

    def table(self, filters: PairFilter) -> pa.Table:
        """Every matching pair as an Arrow table (for export to JSONL/Parquet), ordered by pair_id."""
        where, params = filters.where()
        with self._db.connected():
            return self._db.cursor().sql(f"SELECT * FROM pairs {where} ORDER BY pair_id",
                                         params=params).to_arrow_table()
