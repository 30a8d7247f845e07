"""Anchor sets: the (prompt, response A, response B) items humans label, the judge verdicts measured on them, and
the kappa reports the calibration gate decided on.

An anchor set is written once, items and initial labels together in one transaction, so a bad import leaves
nothing. Its holdout flags are set at that moment and never updated. Reads take a ``split``: ``"tuning"`` goes
through the ``anchor_tuning_items`` view, which cannot return a holdout item; ``"holdout"`` is for reporting only.

    created = store.anchors.create_set(set_row, item_rows, label_rows)
    items = store.anchors.items("as-1f2e...", split="tuning")
"""

from __future__ import annotations

from typing import Any

from store.bulk import insert_rows, new_id, to_json
from store.db import Repository

SET_COLUMNS = ("anchor_set_id", "name", "source", "created_at", "holdout_fraction", "holdout_seed", "n_items")
ITEM_COLUMNS = ("item_id", "anchor_set_id", "prompt", "response_a", "response_b", "slice", "source", "reference",
                "is_holdout", "position", "extra")
VERDICT_COLUMNS = ("item_id", "judge_id", "rubric_version", "winner", "confidence", "rationale", "created_at")
SPLITS = {"all": "anchor_items", "tuning": "anchor_tuning_items", "holdout": "anchor_holdout_items"}


def split_relation(split: str) -> str:
    """The relation a split reads: tuning code gets the view that excludes the holdout."""
    try:
        return SPLITS[split]
    except KeyError:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}") from None


class AnchorsRepository(Repository):
    # ---- writes

    def create_set(self, set_row: dict[str, Any], items: list[dict[str, Any]],
                   labels: list[dict[str, Any]] = ()) -> bool:
        """Write a set with its items and labels, all or nothing; False when this set id exists already."""
        from store.labels import LABEL_COLUMNS  # labels live in their own repository; the import writes both

        def write(cur) -> bool:
            if cur.execute("SELECT 1 FROM anchor_sets WHERE anchor_set_id = ?", [set_row["anchor_set_id"]]).fetchone():
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

    # ---- reads

    def get_set(self, anchor_set_id: str) -> dict[str, Any] | None:
        return self._db.fetch_one("SELECT * FROM anchor_sets WHERE anchor_set_id = ?", [anchor_set_id])

    def list_sets(self) -> list[dict[str, Any]]:
        """Anchor sets, newest first."""
        return self._db.fetch_all("SELECT * FROM anchor_sets ORDER BY created_at DESC, anchor_set_id")

    def items(self, anchor_set_id: str, split: str = "all", slices: list[str] | None = None) -> list[dict[str, Any]]:
        """The items of a set in import order; ``split`` is all | tuning | holdout."""
        where, params = "WHERE anchor_set_id = ?", [anchor_set_id]
        if slices:
            where += f" AND slice IN ({', '.join('?' * len(slices))})"
            params.extend(slices)
        return self._db.fetch_all(f"SELECT * FROM {split_relation(split)} {where} ORDER BY position", params)

    def item(self, item_id: str) -> dict[str, Any] | None:
        return self._db.fetch_one("SELECT * FROM anchor_items WHERE item_id = ?", [item_id])

    def verdicts(self, anchor_set_id: str, split: str = "all", judge_id: str | None = None,
                 rubric_version: str | None = None) -> list[dict[str, Any]]:
        """Stored judge verdicts on the items of one split, with each item's slice."""
        where, params = ["i.anchor_set_id = ?"], [anchor_set_id]
        for column, value in (("judge_id", judge_id), ("rubric_version", rubric_version)):
            if value is not None:
                where.append(f"v.{column} = ?")
                params.append(value)
        return self._db.fetch_all(
            f"SELECT v.*, i.slice FROM judge_anchor_verdicts v JOIN {split_relation(split)} i USING (item_id)"
            f" WHERE {' AND '.join(where)} ORDER BY i.position, v.judge_id, v.rubric_version",
            params,
        )

    def kappa_reports(self, anchor_set_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE anchor_set_id = ?", [anchor_set_id]) if anchor_set_id else ("", [])
        return self._db.fetch_all(
            f"SELECT * FROM kappa_reports {where} ORDER BY report_id DESC LIMIT ?", [*params, limit]
        )
