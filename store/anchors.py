"""Anchor sets: the (prompt, response A, response B) items humans label, the judge verdicts measured on them, and
the kappa reports the calibration gate decided on.

An anchor set is written once, items and initial labels together in one transaction, so a bad import leaves
nothing. Its holdout flags are set at that moment and never updated. Reads take a ``split``: ``"tuning"`` goes
through the ``anchor_tuning_items`` view, which cannot return a holdout item; ``"holdout"`` is for reporting only.
A set is deleted whole (``delete_set``: items, labels, adjudications, verdicts and kappa reports in one
transaction); whether a run still names it is :meth:`AnchorsRepository.referencing_manifests`, and the decision to
delete anyway belongs to the engine (``rlaif.anchors.sets.delete_anchor_set``), never to this layer.

    created = store.anchors.create_set(set_row, item_rows, label_rows)
    items = store.anchors.items("as-1f2e...", split="tuning")
"""

from __future__ import annotations

from typing import Any

from store.anchor_tables import ITEM_COLUMNS, LABEL_COLUMNS, SET_COLUMNS, VERDICT_COLUMNS, split_relation
from store.bulk import insert_rows, new_id, to_json
from store.db import Repository
from store.query import where_clause

#: What a set owns, children before parents: (table, whether its rows reach the set through their item_id).
SET_TABLES = (("judge_anchor_verdicts", True), ("anchor_labels", True), ("adjudications", True),
              ("kappa_reports", False), ("anchor_items", False), ("anchor_sets", False))
#: Tables added later (migration 009) that hold rows of a set: deleted with it, reported only when they had rows,
#: so the report of a set without undos or assignments reads as it always did.
SET_SIDE_TABLES = (("anchor_label_retractions", True), ("anchor_assignments", False))
# the calibration gate's record in a run manifest (rlaif.anchors.gate.GateResult.to_dict, stored by the pipeline)
_GATE_SET_ID = "json_extract_string(body, '$.calibration_gate.anchor_set_id') = ?"


class AnchorsRepository(Repository):
    # ---- writes

    def create_set(self, set_row: dict[str, Any], items: list[dict[str, Any]],
                   labels: list[dict[str, Any]] = ()) -> bool:
        """Write a set with its items and labels, all or nothing; False when this set id exists already."""

        def write(cur) -> bool:
            if self._row("anchor_sets", key={"anchor_set_id": set_row["anchor_set_id"]}, select="1 AS found"):
                return False
            insert_rows(cur, "anchor_sets", [set_row], columns=SET_COLUMNS)
            insert_rows(cur, "anchor_items", items, columns=ITEM_COLUMNS, json_columns=("extra",))
            insert_rows(cur, "anchor_labels", list(labels), columns=LABEL_COLUMNS, id_column="label_id")
            return True

        return self._db.write(write)

    def save_verdicts(self, rows: list[dict[str, Any]]) -> None:
        """Store judge verdicts on anchor items; a newer verdict for (item, judge, rubric version) replaces one."""
        self._db.write(lambda cur: insert_rows(cur, "judge_anchor_verdicts", rows, columns=VERDICT_COLUMNS,
                                               on_conflict="replace"))

    def add_kappa_report(self, row: dict[str, Any]) -> str:
        report_id = row.get("report_id") or new_id()
        body = to_json(row["body"], "kappa_reports.body")
        columns = ["report_id", "anchor_set_id", "judge_id", "rubric_version", "annotators", "n", "kappa", "ci_low",
                   "ci_high", "threshold", "passed", "override", "override_reason"]
        values = [report_id] + [row.get(c) for c in columns[1:]]
        values[columns.index("override")] = bool(row.get("override"))
        self._db.execute(
            f"INSERT INTO kappa_reports ({', '.join(columns)}, body) VALUES ({', '.join('?' * len(columns))}, ?)",
            [*values, body],
        )
        return report_id

    def delete_set(self, anchor_set_id: str) -> dict[str, int]:
        """Delete a set and every row keyed to it, all or nothing; rows removed per table (``SET_TABLES`` names).

        LookupError when there is no such set. Manifests are not touched: they are the record of what ran.
        """

        def delete(cur) -> dict[str, int]:
            if not self._row("anchor_sets", key={"anchor_set_id": anchor_set_id}, select="1 AS found"):
                raise LookupError(f"no anchor set {anchor_set_id!r} to delete (store.anchors.list_sets() lists them)")
            where, params = where_clause(key={"anchor_set_id": anchor_set_id})
            removed = {}
            for table, by_item in (*SET_SIDE_TABLES, *SET_TABLES):
                target = f"WHERE item_id IN (SELECT item_id FROM anchor_items {where})" if by_item else where
                removed[table] = int(cur.execute(f"DELETE FROM {table} {target}", params).fetchone()[0])
            side = {table for table, _ in SET_SIDE_TABLES}
            return {table: n for table, n in removed.items() if n or table not in side}

        return self._db.write(delete)

    def set_assignments(self, anchor_set_id: str, rows: list[dict[str, Any]], overlap: int,
                        assigned_by: str | None = None) -> int:
        """Replace the set's per-annotator queue plan with ``rows`` ({item_id, annotator}), all or nothing."""

        def write(cur) -> int:
            cur.execute("DELETE FROM anchor_assignments WHERE anchor_set_id = ?", [anchor_set_id])
            insert_rows(cur, "anchor_assignments", [{**r, "anchor_set_id": anchor_set_id, "overlap": overlap,
                                                     "assigned_by": assigned_by} for r in rows],
                        columns=("anchor_set_id", "item_id", "annotator", "overlap", "assigned_by"))
            return len(rows)

        return self._db.write(write)

    # ---- reads

    def assignments(self, anchor_set_id: str, annotator: str | None = None) -> list[dict[str, Any]]:
        """The set's queue plan: item_id, annotator, overlap (and position), in item order then annotator."""
        return self._rows("anchor_assignments a JOIN anchor_items i USING (item_id)",
                          key={"a.anchor_set_id": anchor_set_id}, where={"a.annotator": annotator},
                          select="a.item_id, a.annotator, a.overlap, a.assigned_by, i.position",
                          order_by="i.position, a.annotator")

    def get_set(self, anchor_set_id: str) -> dict[str, Any] | None:
        return self._row("anchor_sets", key={"anchor_set_id": anchor_set_id})

    def list_sets(self) -> list[dict[str, Any]]:
        """Anchor sets, newest first."""
        return self._rows("anchor_sets", order_by="created_at DESC, anchor_set_id")

    def items(self, anchor_set_id: str, split: str = "all", slices: list[str] | None = None) -> list[dict[str, Any]]:
        """The items of a set in import order; ``split`` is all | tuning | holdout."""
        return self._rows(split_relation(split), key={"anchor_set_id": anchor_set_id},
                          where={"slice": tuple(slices) if slices else None}, order_by="position")

    def item(self, item_id: str) -> dict[str, Any] | None:
        return self._row("anchor_items", key={"item_id": item_id})

    def verdicts(self, anchor_set_id: str, split: str = "all", judge_id: str | None = None,
                 rubric_version: str | None = None) -> list[dict[str, Any]]:
        """Stored judge verdicts on the items of one split, with each item's slice."""
        return self._rows(
            f"judge_anchor_verdicts v JOIN {split_relation(split)} i USING (item_id)",
            key={"i.anchor_set_id": anchor_set_id}, where={"v.judge_id": judge_id, "v.rubric_version": rubric_version},
            select="v.*, i.slice", order_by="i.position, v.judge_id, v.rubric_version",
        )

    def referencing_manifests(self, anchor_set_id: str) -> list[dict[str, Any]]:
        """Run manifests whose calibration gate decided on this set: manifest_id, run_id, iteration."""
        return self._rows("manifests", where_sql=_GATE_SET_ID, where_args=[anchor_set_id],
                          select="manifest_id, run_id, iteration",
                          order_by="run_id, iteration NULLS FIRST, manifest_id")

    def kappa_reports(self, anchor_set_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._rows("kappa_reports", where={"anchor_set_id": anchor_set_id or None}, order_by="report_id DESC",
                          limit=limit)
