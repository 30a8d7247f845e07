"""Anchor labels and adjudications: append-only, so the history of every decision stays inspectable.

A relabel is a new row; ``latest`` returns the newest row per (item, annotator), which is the one that counts.
Labels are in the item's original orientation (A = response_a) whatever side the annotator saw it on.

    store.labels.add({"item_id": item_id, "annotator": "ana", "annotator_kind": "human", "label": "A",
                      "shown_left": "b"})
    store.labels.latest("as-1f2e...", split="tuning", kinds=("human",))
"""

from __future__ import annotations

from typing import Any, Sequence

from store.anchors import split_relation
from store.bulk import insert_rows
from store.db import Repository

LABEL_COLUMNS = ("label_id", "item_id", "annotator", "annotator_kind", "label", "shown_left", "note", "created_at")
ADJUDICATION_COLUMNS = ("adjudication_id", "item_id", "adjudicator", "label", "method", "note", "created_at")


class LabelsRepository(Repository):
    # ---- writes (append only: there is no update and no delete)

    def add(self, row: dict[str, Any]) -> str:
        """Append one label; return its id."""
        return self.add_many([row])[0]

    def add_many(self, rows: list[dict[str, Any]]) -> list[str]:
        from store.bulk import new_ids

        ids = iter(new_ids(len(rows)))
        rows = [row if row.get("label_id") else {**row, "label_id": next(ids)} for row in rows]
        self._db.write(lambda cur: insert_rows(cur, "anchor_labels", rows, columns=LABEL_COLUMNS))
        return [row["label_id"] for row in rows]

    def add_adjudications(self, rows: list[dict[str, Any]]) -> None:
        """Append adjudications; an override must carry a note (its reason), a CHECK constraint enforces it."""
        self._db.write(lambda cur: insert_rows(cur, "adjudications", rows, columns=ADJUDICATION_COLUMNS,
                                               id_column="adjudication_id"))

    # ---- reads

    def latest(self, anchor_set_id: str, split: str = "all", kinds: Sequence[str] | None = None,
               annotator: str | None = None) -> list[dict[str, Any]]:
        """The label that counts per (item, annotator): the newest row, ordered by item position then annotator."""
        where, params = ["i.anchor_set_id = ?"], [anchor_set_id]
        if kinds:
            where.append(f"l.annotator_kind IN ({', '.join('?' * len(kinds))})")
            params.extend(kinds)
        if annotator is not None:
            where.append("l.annotator = ?")
            params.append(annotator)
        return self._db.fetch_all(
            "SELECT l.*, i.slice, i.position FROM anchor_labels l"
            f" JOIN {split_relation(split)} i USING (item_id) WHERE {' AND '.join(where)}"
            " QUALIFY row_number() OVER (PARTITION BY l.item_id, l.annotator ORDER BY l.label_id DESC) = 1"
            " ORDER BY i.position, l.annotator",
            params,
        )

    def history(self, item_id: str, annotator: str | None = None) -> list[dict[str, Any]]:
        """Every label of an item (optionally of one annotator), oldest first."""
        where, params = "WHERE item_id = ?", [item_id]
        if annotator is not None:
            where += " AND annotator = ?"
            params.append(annotator)
        return self._db.fetch_all(f"SELECT * FROM anchor_labels {where} ORDER BY label_id", params)

    def annotators(self, anchor_set_id: str) -> list[dict[str, Any]]:
        """Who labelled this set: annotator, kind, and how many items they have a (latest) label on."""
        return self._db.fetch_all(
            "SELECT annotator, annotator_kind, count(*) AS n_items,"
            " count(*) FILTER (WHERE label = 'skip') AS n_skipped FROM ("
            "  SELECT l.* FROM anchor_labels l JOIN anchor_items i USING (item_id) WHERE i.anchor_set_id = ?"
            "  QUALIFY row_number() OVER (PARTITION BY l.item_id, l.annotator ORDER BY l.label_id DESC) = 1)"
            " GROUP BY annotator, annotator_kind ORDER BY annotator_kind, annotator",
            [anchor_set_id],
        )

    def adjudications(self, anchor_set_id: str, split: str = "all", method: str | None = None,
                      latest: bool = True) -> list[dict[str, Any]]:
        """Adjudications of a set's items; with ``latest`` only the newest per item (per method if given)."""
        where, params = ["i.anchor_set_id = ?"], [anchor_set_id]
        if method is not None:
            where.append("a.method = ?")
            params.append(method)
        qualify = (" QUALIFY row_number() OVER (PARTITION BY a.item_id ORDER BY a.adjudication_id DESC) = 1"
                   if latest else "")
        return self._db.fetch_all(
            f"SELECT a.*, i.slice FROM adjudications a JOIN {split_relation(split)} i USING (item_id)"
            f" WHERE {' AND '.join(where)}{qualify} ORDER BY i.position, a.adjudication_id",
            params,
        )
