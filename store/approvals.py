"""Approved pair sets: a person signs off on a selection of kept pairs before it leaves the workbench.

Approvals are append-only: re-approving the same selection records a second row (a second person, a later
time); nothing is updated in place, so the record of who approved what survives every later edit. An approval
may leave out pairs a person rejected one by one (``rejected_pairs``: their ids); ``same_selection`` finds earlier
approvals of the same run, iteration and filters, so a page can warn before a duplicate.

    approval_id = store.approvals.add(run_id="r-01", iteration=2, filters={...}, approved_by="ana",
                                      n_pairs=180, pairs_digest=digest)
"""

from __future__ import annotations

from typing import Any

from store.bulk import new_id, to_json
from store.db import Repository


class ApprovalsRepository(Repository):
    # ---- writes

    def add(self, *, run_id: str, iteration: int | None, filters: dict[str, Any], approved_by: str, n_pairs: int,
            pairs_digest: str, rejected_pairs: list[str] | None = None) -> str:
        """``rejected_pairs``: ids of pairs the filters select that the approver left out (None or [] for none)."""
        if not approved_by or not approved_by.strip():
            raise ValueError("an approval needs the name of who approved it")
        approval_id = new_id()
        self._db.execute(
            "INSERT INTO approvals (approval_id, run_id, iteration, filters, approved_by, n_pairs, pairs_digest,"
            " rejected_pairs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [approval_id, run_id, iteration, to_json(filters, "approval.filters"), approved_by.strip(), n_pairs,
             pairs_digest, to_json(sorted(rejected_pairs or []), "approval.rejected_pairs")],
        )
        return approval_id

    # ---- reads

    def get(self, approval_id: str) -> dict[str, Any] | None:
        return self._row("approvals", key={"approval_id": approval_id})

    def list(self, run_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Approvals, newest first, optionally of one run."""
        return self._rows("approvals", where={"run_id": run_id}, order_by="approved_at DESC, approval_id DESC",
                          limit=limit)

    def same_selection(self, run_id: str, iteration: int | None, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Earlier approvals of exactly this run, iteration and filters (newest first): a second one is a duplicate
        unless someone means it. Filters compare as parsed JSON, so key order does not matter."""
        rows = self._rows("approvals", key={"run_id": run_id}, order_by="approved_at DESC, approval_id DESC")
        return [r for r in rows if r["iteration"] == iteration and r["filters"] == filters]
