"""Prompt datasets, content-addressed so that a run's manifest pins exactly the prompts it saw.

The dataset id is the sha256 of the canonical JSON of the records, so importing the same file twice (or the
same records under another name) is a no-op that returns the same id, and a changed prompt yields a new id.

    dataset_id = store.datasets.import_prompts("sql-train", records, source_path="sample_data/train.jsonl")
"""

from __future__ import annotations

from typing import Any

from store.bulk import insert_rows
from store.content_hash import content_hash
from store.db import Repository

_KNOWN_FIELDS = ("prompt_id", "id", "prompt", "reference", "cohort", "extra")
PROMPT_COLUMNS = ("dataset_id", "prompt_id", "prompt", "reference", "cohort", "extra", "position")


class DatasetsRepository(Repository):
    # ---- writes

    def import_prompts(
        self, name: str, records: list[dict[str, Any]], source_path: str | None, kind: str = "prompts"
    ) -> str:
        """Store ``records`` in one transaction and return the dataset id.

        A record is a dict with ``prompt`` and optionally ``prompt_id`` (or ``id``, as ``PromptRecord.to_dict()``
        gives it), ``reference``, ``cohort`` and ``extra``; any other keys are kept in ``extra``.
        """
        dataset_id = content_hash(records)
        rows = [_prompt_row(dataset_id, position, record) for position, record in enumerate(records)]
        seen: set[str] = set()
        for row in rows:
            if row["prompt_id"] in seen:
                raise ValueError(f"dataset {name!r}: prompt_id {row['prompt_id']!r} appears twice")
            seen.add(row["prompt_id"])

        def write(cur) -> None:
            if self._row("datasets", key={"dataset_id": dataset_id}, select="1 AS found"):
                return  # identical content already imported
            cur.execute(
                "INSERT INTO datasets (dataset_id, name, kind, source_path, n_items) VALUES (?, ?, ?, ?, ?)",
                [dataset_id, name, kind, source_path, len(rows)],
            )
            insert_rows(cur, "prompts", rows, columns=PROMPT_COLUMNS, json_columns=("extra",))

        self._db.write(write)
        return dataset_id

    # ---- reads

    def get(self, dataset_id: str) -> dict[str, Any] | None:
        return self._row("datasets", key={"dataset_id": dataset_id})

    def prompts(self, dataset_id: str) -> list[dict[str, Any]]:
        """The prompts of a dataset in their original order."""
        return self._rows("prompts", key={"dataset_id": dataset_id},
                          select="prompt_id, prompt, reference, cohort, extra, position", order_by="position")

    def list(self) -> list[dict[str, Any]]:
        return self._rows("datasets", order_by="created_at DESC, name")


def _prompt_row(dataset_id: str, position: int, record: dict[str, Any]) -> dict[str, Any]:
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"record {position}: 'prompt' must be a non-empty string")
    extra = dict(record.get("extra") or {})
    extra.update({k: v for k, v in record.items() if k not in _KNOWN_FIELDS})
    return {
        "dataset_id": dataset_id,
        # records without an id get a stable one from their position, so re-imports keep the same ids
        "prompt_id": str(_first_present(record.get("prompt_id"), record.get("id"), f"p{position:06d}")),
        "prompt": prompt,
        "reference": record.get("reference"),
        "cohort": record.get("cohort"),
        "extra": extra or None,
        "position": position,
    }


def _first_present(*values: Any) -> Any:
    return next(v for v in values if v is not None and v != "")
