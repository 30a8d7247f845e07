"""The judge cache: verdicts by content-addressed key (the key is computed by ``rlaif.judges.cache``).

Writes go through the secrets guard like every JSON column, so a verdict can never smuggle an API key into the
database; a key seen twice keeps its first verdict (``INSERT OR IGNORE``), so concurrent runs cannot flap it.

    store.judge_cache.put_many([(key, "openai:gpt-4o", verdict.to_dict())]); store.judge_cache.get_many([key])
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from store.bulk import insert_rows
from store.db import Repository
from store.query import where_clause

_IN_CHUNK = 500  # keys per IN (...) lookup


class JudgeCacheRepository(Repository):
    # ---- writes

    def put_many(self, entries: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
        """Store (cache_key, judge_id, verdict dict) entries; keys already present are left as they are."""
        rows = [{"cache_key": k, "judge_id": j, "verdict": v} for k, j, v in entries]
        self._db.write(lambda cur: insert_rows(cur, "judge_cache", rows, columns=("cache_key", "judge_id", "verdict"),
                                               json_columns=("verdict",), on_conflict="ignore"))
        return len(rows)

    def clear(self, judge_id: str | None = None) -> None:
        """Forget cached verdicts (of one judge id, or all)."""
        where, params = where_clause(where={"judge_id": judge_id})
        self._db.execute(f"DELETE FROM judge_cache {where}", params)

    # ---- reads

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Verdict dicts by key, for the keys present."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = keys[start:start + _IN_CHUNK]
            for row in self._rows("judge_cache", key={"cache_key": chunk}, select="cache_key, verdict"):
                found[row["cache_key"]] = row["verdict"]
        return found

    def count(self, judge_id: str | None = None) -> int:
        return self._rows("judge_cache", where={"judge_id": judge_id}, select="count(*) AS n")[0]["n"]
