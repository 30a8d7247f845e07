"""Anchor labels and adjudications: append-only, so the history of every decision stays inspectable.

A relabel is a new row; ``latest`` returns the newest row per (item, annotator), which is the one that counts.
Labels are in the item's original orientation (A = response_a) whatever side the annotator saw it on. An undo is
a row too (``retract``: a retraction of one label id, migration 009): every read here leaves retracted labels out,
so the label before the undone one counts again and agreement, gates and exports never see the undone press.

    store.labels.add({"item_id": item_id, "annotator": "ana", "annotator_kind": "human", "label": "A",
                      "shown_left": "b"})
    store.labels.latest("as-1f2e...", split="tuning", kinds=("human",))
    store.labels.retract(store.labels.last_label("as-1f2e...", "ana")["label_id"], retracted_by="ana")   # undo
"""

from __future__ import annotations

from typing import Any, Sequence

from store.anchor_tables import ADJUDICATION_COLUMNS, LABEL_COLUMNS, split_relation
from store.bulk import insert_rows, new_ids
from store.db import Repository
from store.query import where_clause

# The label that counts per (item, annotator) is the newest row; label ids are time-ordered (store.bulk.new_ids).
_LATEST_LABEL = "QUALIFY row_number() OVER (PARTITION BY l.item_id, l.annotator ORDER BY l.label_id DESC) = 1"


# A label counts only while no retraction names it (an undo appends the retraction; see the module docstring).
_LIVE = "l.label_id NOT IN (SELECT label_id FROM anchor_label_retractions)"


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

    def retract(self, label_id: str, retracted_by: str) -> None:
        """Undo one label by appending its retraction; LookupError when there is no such label, ValueError when it
        was retracted already (a second undo of the same press must not look like it undid something else)."""
        if not retracted_by or not retracted_by.strip():
            raise ValueError("a retraction needs the name of who undid the label")

        def write(cur) -> None:
            row = cur.execute("SELECT item_id FROM anchor_labels WHERE label_id = ?", [label_id]).fetchone()
            if row is None:
                raise LookupError(f"no label {label_id!r} to undo")
            if cur.execute("SELECT 1 FROM anchor_label_retractions WHERE label_id = ?", [label_id]).fetchone():
                raise ValueError(f"label {label_id} was undone already")
            cur.execute("INSERT INTO anchor_label_retractions (label_id, item_id, retracted_by) VALUES (?, ?, ?)",
                        [label_id, row[0], retracted_by.strip()])

        self._db.write(write)

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
                                            "l.annotator": annotator}, where_sql=_LIVE)
        return self._db.fetch_all(
            f"SELECT l.*, i.slice, i.position FROM anchor_labels l JOIN {split_relation(split)} i USING (item_id)"
            f" {where} {_LATEST_LABEL} ORDER BY i.position, l.annotator",
            params,
        )

    def last_label(self, anchor_set_id: str, annotator: str, kinds: Sequence[str] = ("human",)
                   ) -> dict[str, Any] | None:
        """This annotator's newest label on the set that is not undone (what "undo" takes back), or None."""
        where, params = where_clause(key={"i.anchor_set_id": anchor_set_id, "l.annotator": annotator},
                                     where={"l.annotator_kind": tuple(kinds)}, where_sql=_LIVE)
        rows = self._db.fetch_all(
            f"SELECT l.*, i.position FROM anchor_labels l JOIN anchor_items i USING (item_id) {where}"
            " ORDER BY l.label_id DESC LIMIT 1", params)
        return rows[0] if rows else None

    def history(self, item_id: str, annotator: str | None = None) -> list[dict[str, Any]]:
        """Every label of an item (optionally of one annotator), oldest first, undone ones included and marked
        (``retracted``: True when an undo took the label back)."""
        where, params = where_clause(key={"l.item_id": item_id}, where={"l.annotator": annotator})
        return self._db.fetch_all(
            "SELECT l.*, r.label_id IS NOT NULL AS retracted FROM anchor_labels l"
            f" LEFT JOIN anchor_label_retractions r USING (label_id) {where} ORDER BY l.label_id", params)

    def annotators(self, anchor_set_id: str) -> list[dict[str, Any]]:
        """Who labelled this set: annotator, kind, and how many items they have a (latest) label on."""
        where, params = where_clause(key={"i.anchor_set_id": anchor_set_id}, where_sql=_LIVE)
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
