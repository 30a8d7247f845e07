"""Rubric versions: immutable, content-addressed bodies linked to the version they were edited from.

The version is the sha256 of the canonical JSON body, so saving an unchanged rubric is a no-op and two
verdicts made under "the same" rubric provably used the same text. The name is a label, not part of the hash.

    version = store.rubrics.save("sql-correctness", body, parent_version=previous)
"""

from __future__ import annotations

from typing import Any

from store.bulk import to_json
from store.content_hash import content_hash
from store.db import Repository


class RubricsRepository(Repository):
    # ---- writes

    def save(self, name: str, body: dict[str, Any], parent_version: str | None = None) -> str:
        """Store ``body`` unless this exact body is stored already; return its version."""
        encoded = to_json(body, "rubric.body")  # refuses secrets before anything else
        version = content_hash(body)
        self._db.execute(
            "INSERT OR IGNORE INTO rubrics (rubric_version, name, body, parent_version) VALUES (?, ?, ?, ?)",
            [version, name, encoded, parent_version],
        )
        return version

    # ---- reads

    def get(self, version: str) -> dict[str, Any] | None:
        return self._row("rubrics", key={"rubric_version": version})

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        """Rubric versions, newest first, optionally of one name."""
        return self._rows("rubrics", where={"name": name}, order_by="created_at DESC, rubric_version")
