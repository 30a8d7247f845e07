"""Export an anchor set as a pairwise file (JSONL, CSV or Parquet) that imports back unchanged.

The columns are those of the importers' pairwise shape: ``prompt, response_a, response_b, slice`` (+ ``source`` and
``reference`` when any item has one), the item's extra columns, then ``label_<annotator>`` (the latest label of each
annotator, oracles included) and ``note_<annotator>`` where notes exist. Adjudications are not exported as labels:
they are decisions about labels, not labels. ``with_ids`` prepends ``item_id`` and ``is_holdout`` (the importers
ignore both: a holdout is drawn at import, never read from a file).

    n = export_anchor_set(store, "as-1f2e...", "anchors.parquet")
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rlaif.anchors.importers import FILE_TYPES

_ABSENT = object()  # an extra column this item does not have (JSONL omits the key; CSV/Parquet write empty/null)


def anchor_records(store, anchor_set_id: str, *, split: str = "all",
                   with_ids: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of the export; absent extra values are the ``_ABSENT`` marker."""
    if store.anchors.get_set(anchor_set_id) is None:
        raise ValueError(f"no anchor set {anchor_set_id!r}")
    items = store.anchors.items(anchor_set_id, split=split)
    labels: dict[str, dict[str, dict[str, Any]]] = {}
    for row in store.labels.latest(anchor_set_id, split=split):
        labels.setdefault(row["item_id"], {})[row["annotator"]] = row
    annotators = sorted({a for per_item in labels.values() for a in per_item})
    noted = sorted({a for per_item in labels.values() for a, row in per_item.items() if row["note"] is not None})
    extra_columns: list[str] = []
    for item in items:
        for key in item["extra"] or {}:
            if key not in extra_columns:
                extra_columns.append(key)
    optional = [c for c in ("source", "reference") if any(item[c] is not None for item in items)]
    columns = ((["item_id", "is_holdout"] if with_ids else []) + ["prompt", "response_a", "response_b", "slice"]
               + optional + extra_columns + [f"label_{a}" for a in annotators] + [f"note_{a}" for a in noted])
    rows = []
    for item in items:
        extra = item["extra"] or {}
        row = {c: item[c] for c in columns[: len(columns) - len(extra_columns) - len(annotators) - len(noted)]}
        row.update({key: extra.get(key, _ABSENT) for key in extra_columns})
        mine = labels.get(item["item_id"], {})
        row.update({f"label_{a}": mine[a]["label"] if a in mine else None for a in annotators})
        row.update({f"note_{a}": mine[a]["note"] if a in mine else None for a in noted})
        rows.append(row)
    return columns, rows


def export_anchor_set(store, anchor_set_id: str, path: str | Path, *, file_type: str | None = None,
                      split: str = "all", with_ids: bool = False) -> int:
    """Write the set to ``path`` (type from the extension unless given); return the number of items written."""
    path = Path(path)
    file_type = file_type or FILE_TYPES.get(path.suffix.lower())
    if file_type not in ("jsonl", "csv", "parquet"):
        raise ValueError(f"cannot tell the export format of {path}; use .jsonl, .csv or .parquet")
    columns, rows = anchor_records(store, anchor_set_id, split=split, with_ids=with_ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    {"jsonl": _write_jsonl, "csv": _write_csv, "parquet": _write_parquet}[file_type](tmp, columns, rows)
    tmp.replace(path)  # a reader never sees half a file
    return len(rows)


def _write_jsonl(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            record = {c: row[c] for c in columns if row[c] is not _ABSENT}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _csv_cell(value: Any) -> str:
    if value is None or value is _ABSENT:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row[c]) for c in columns])


def _write_parquet(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for c in columns:
        values = [None if row[c] is _ABSENT else row[c] for row in rows]
        try:
            arrays[c] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in one extra column: keep them as JSON text
            arrays[c] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                  for v in values], type=pa.string())
    pq.write_table(pa.table(arrays), path)
