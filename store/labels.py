"""Anchor labels and adjudications: append-only, so the history of every decision stays inspectable.

A relabel is a new row; ``latest`` returns the newest row per (item, annotator), which is the one that counts.
Labels are in the item's original orientation (A = response_a) whatever side the annotator saw it on.

    store.labels.add({"item_id": item_id, "annotator": "ana", "annotator_kind": "human", "label": "A",
                      "shown_left": "b"})
    store.labels.latest("as-1f2e...", split="tuning", kinds=("human",))
"""

from __future__ import annotations

from typing import Any, Sequence

from store.anchor_tables import ADJUDICATION_COLUMNS, LABEL_COLUMNS, split_relation
from store.bulk import insert_rows, new_ids
from store.db import Repository
from store.query import where_clause

# The label that counts per (item, annotator) is the newest row; label ids are time-ordered (store.bulk.new_ids).
_LATEST_LABEL = "QUALIFY row_number() OVER (PARTITION BY l.item_id, l.annotator ORDER BY l.label_id DESC) = 1"


class LabelsRepository(Repository):
    # ---- writes (append only: there is no update and no delete)

    def add(self, row: dict[str, Any]) -> str:
        """Append one label; return its id."""
        return self.add_many([row])[0]

    def add_many(self, rows: list[dict[str, Any]]) -> list[str]:
        ids = iter(new_ids(len(rows)))
        rows = [row if row.get("label_id") else {**row, "label_id": next(ids)} for row in rows]
        self._db.write(lambda cur: insert_rows(cur, "anchor_labels", rows, columns=LABEL_COLUMNS))
        return [row["label_id"] for row in rows]

    def add_adjudications(self, rows: list[dict[str, Any]]) -> None:
        """Append adjudications; an override must carry a note (its reason), a CHECK constraint enforces it."""
        self._db.write(lambda cur: insert_rows(cur, "adjudications", rows, columns=ADJUDICATION_COLUMNS,
                                               id_column="adjudication_id"))

    # ---- reads (the window queries keep their own SQL; their WHERE comes from the shared builder)

    def latest(self, anchor_set_id: str, split: str = "all", kinds: Sequence[str] | None = None,
               annotator: str | None = None) -> list[dict[str, Any]]:
        """The label that counts per (item, annotator): the newest row, ordered by item position then annotator."""
        where, params = where_clause(key={"i.anchor_set_id": anchor_set_id},
                                     where={"l.annotator_kind": tuple(kinds) if kinds else None,
                                            "l.annotator": annotator})
        return self._db.fetch_all(
            f"SELECT l.*, i.slice, i.position FROM anchor_labels l JOIN {split_relation(split)} i USING (item_id)"
            f" {where} {_LATEST_LABEL} ORDER BY i.position, l.annotator",
            params,
        )

    def history(self, item_id: str, annotator: str | None = None) -> list[dict[str, Any]]:
        """Every label of an item (optionally of one annotator), oldest first."""
        return self._rows("anchor_labels", key={"item_id": item_id}, where={"annotator": annotator},
                          order_by="label_id")

    def annotators(self, anchor_set_id: str) -> list[dict[str, Any]]:
        """Who labelled this set: annotator, kind, and how many items they have a (latest) label on."""
        where, params = where_clause(key={"i.anchor_set_id": anchor_set_id})
        return self._db.fetch_all(
            "SELECT annotator, annotator_kind, count(*) AS n_items,"
            " count(*) FILTER (WHERE label = 'skip') AS n_skipped FROM ("
            f"  SELECT l.* FROM anchor_labels l JOIN anchor_items i USING (item_id) {where} {_LATEST_LABEL})"
            " GROUP BY annotator, annotator_kind ORDER BY annotator_kind, annotator",
            params,
        )

    def adjudications(self, anchor_set_id: str, split: str = "all", method: str | None = None,
                      latest: bool = True) -> list[dict[str, Any]]:
        """Adjudications of a set's items; with ``latest`` only the newest per item (per method if given)."""
        where, params = where_clause(key={"i.anchor_set_id": anchor_set_id}, where={"a.method": method})
        qualify = (" QUALIFY row_number() OVER (PARTITION BY a.item_id ORDER BY a.adjudication_id DESC) = 1"
                   if latest else "")
        return self._db.fetch_all(
            f"SELECT a.*, i.slice FROM adjudications a JOIN {split_relation(split)} i USING (item_id)"
            f" {where}{qualify} ORDER BY i.position, a.adjudication_id",
            params,
        )
