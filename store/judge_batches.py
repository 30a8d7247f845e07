"""Provider batches of batch-mode judges: which batch holds which requests, and where each one stands.

Why in the store: a batch costs money from the moment it is submitted and may take hours, so the one thing a killed
run must not lose is its batch id. The judge writes a row (``start``) before calling the provider, sets the id right
after (``submitted``), and a later run asks ``open_for`` which pending batches already hold its requests.

    local_id = store.judge_batches.start("anthropic:claude-haiku-4-5", "anthropic", keys)
    store.judge_batches.submitted(local_id, "msgbatch_01..."); store.judge_batches.open_for(judge_id, keys)
"""

from __future__ import annotations

from typing import Any, Sequence

from store.bulk import insert_rows, new_id, to_json
from store.db import Repository

#: Statuses of a batch whose requests will still get results (so they must not be submitted again).
OPEN_STATUSES = ("pending", "ended")
STATUSES = ("submitting", "pending", "ended", "collected", "failed", "abandoned")
_IN_CHUNK = 500


class JudgeBatchesRepository(Repository):
    # ---- writes

    def start(self, judge_id: str, provider: str, custom_ids: Sequence[str]) -> str:
        """Record a batch about to be submitted (status ``submitting``), with its requests; returns its local id."""
        local_id = new_id()

        def write(cur) -> None:
            insert_rows(cur, "judge_batches", [{"local_id": local_id, "provider": provider, "judge_id": judge_id,
                                                "status": "submitting", "n_requests": len(custom_ids)}],
                        columns=("local_id", "provider", "judge_id", "status", "n_requests"))
            insert_rows(cur, "judge_batch_requests", [{"local_id": local_id, "custom_id": c} for c in custom_ids],
                        columns=("local_id", "custom_id"))

        self._db.write(write)
        return local_id

    def submitted(self, local_id: str, batch_id: str, provider_status: str | None = None) -> None:
        """The provider accepted the batch: from now on a re-run polls it instead of submitting again."""
        self._update("judge_batches", key={"local_id": local_id},
                     values={"batch_id": batch_id, "status": "pending", "provider_status": provider_status},
                     set_sql=["updated_at = current_timestamp"])

    def update(self, local_id: str, *, status: str | None = None, provider_status: str | None = None,
               counts: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Set the given fields (None leaves a field as it is) and touch ``updated_at``."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"judge batch status must be one of {STATUSES}, got {status!r}")
        given = {"status": status, "provider_status": provider_status, "error": error}
        values = {k: v for k, v in given.items() if v is not None}
        if counts is not None:
            values["counts"] = to_json(counts, "judge_batches.counts")
        self._update("judge_batches", key={"local_id": local_id}, values=values,
                     set_sql=["updated_at = current_timestamp"])

    # ---- reads

    def get(self, local_id: str) -> dict[str, Any] | None:
        return self._row("judge_batches", key={"local_id": local_id})

    def list(self, judge_id: str | None = None, status: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
        status = list(status) if isinstance(status, (list, tuple)) else status
        return self._rows("judge_batches", where={"judge_id": judge_id, "status": status}, order_by="local_id")

    def custom_ids(self, local_id: str) -> list[str]:
        rows = self._rows("judge_batch_requests", key={"local_id": local_id}, select="custom_id",
                          order_by="custom_id")
        return [r["custom_id"] for r in rows]

    def open_for(self, judge_id: str, custom_ids: Sequence[str]) -> list[dict[str, Any]]:
        """This judge's batches that are pending or ended (not yet collected) and hold any of ``custom_ids``,
        oldest first, each with its ``custom_ids``. ``submitting`` rows are left out: see ``unconfirmed``."""
        wanted = list(dict.fromkeys(custom_ids))
        local_ids: set[str] = set()
        for start in range(0, len(wanted), _IN_CHUNK):
            rows = self._rows("judge_batch_requests", key={"custom_id": wanted[start:start + _IN_CHUNK]},
                              select="DISTINCT local_id")
            local_ids.update(r["local_id"] for r in rows)
        if not local_ids:
            return []
        batches = self._rows("judge_batches", key={"judge_id": judge_id, "local_id": sorted(local_ids),
                                                   "status": list(OPEN_STATUSES)}, order_by="local_id")
        return [{**b, "custom_ids": self.custom_ids(b["local_id"])} for b in batches]

    def unconfirmed(self, judge_id: str) -> list[dict[str, Any]]:
        """Rows left in ``submitting``: the run died between writing the row and hearing back from the provider."""
        return self._rows("judge_batches", key={"judge_id": judge_id, "status": "submitting"}, order_by="local_id")
