"""Run manifests: content-addressed records of what an iteration used and produced.

A manifest is written LAST in a step (nanochat's rule), so its existence means the step completed; writing the
same manifest id twice is a no-op because the id is the hash of the body.

    store.manifests.write(manifest_id, "r-01", 2, body)
"""

from __future__ import annotations

from typing import Any

from store.bulk import to_json
from store.db import Repository


class ManifestsRepository(Repository):
    def write(self, manifest_id: str, run_id: str, iteration: int | None, body: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO manifests (manifest_id, run_id, iteration, body) VALUES (?, ?, ?, ?)",
            [manifest_id, run_id, iteration, to_json(body, "manifest.body")],
        )

    def get(self, manifest_id: str) -> dict[str, Any] | None:
        return self._row("manifests", key={"manifest_id": manifest_id})

    def for_run(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("manifests", key={"run_id": run_id}, order_by="iteration NULLS FIRST, created_at")
