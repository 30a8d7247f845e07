"""Read an anchor file into numbered records: JSONL, CSV, Parquet or JSON, gzip-compressed or not.

Why one reader per file type, all yielding ``(place, record)``: every error downstream names the place as a user
finds it in an editor. JSONL: ``line N`` (physical lines, blank ones counted); CSV: ``row N`` (the header is row 1, a
text with line breaks still counts as one row); Parquet: ``row N`` (data rows from 1); JSON (an array of objects, as
Label Studio and Argilla export): ``record N`` (from 1). Text is UTF-8, with or without a byte-order mark (Excel
writes one); a UTF-16 file with its byte-order mark is read too. ``.gz`` files are decompressed on the fly.

    file_type, records = read_records(Path("export.json.gz"))   # ("json", [("record 1", {...}), ...])
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import zlib
from pathlib import Path
from typing import Any

from rlaif.anchors.formats.errors import AnchorImportError

FILE_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
              ".json": "json", ".jsonl.gz": "jsonl", ".ndjson.gz": "jsonl", ".csv.gz": "csv", ".json.gz": "json"}
Records = list[tuple[str, dict[str, Any]]]


def type_suffix(path: str | Path) -> str | None:
    """The FILE_TYPES suffix a file name ends with, the longest first (``.csv.gz`` before ``.gz``), else None."""
    name = Path(path).name.lower()
    return next((suffix for suffix in sorted(FILE_TYPES, key=len, reverse=True) if name.endswith(suffix)), None)


def file_type_of(path: str | Path) -> str | None:
    """jsonl | csv | parquet | json from the file name (compound ``.csv.gz`` suffixes included), else None."""
    suffix = type_suffix(path)
    return FILE_TYPES[suffix] if suffix else None


def read_records(path: Path) -> tuple[str, Records]:
    """(file type, every record with its place); raise AnchorImportError for an unknown type or unreadable file."""
    file_type = file_type_of(path)
    if file_type is None:
        supported = ", ".join(sorted(FILE_TYPES))
        suffix = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix
        raise AnchorImportError(path, None, None, f"unsupported file type {suffix!r}; use {supported}")
    if not path.is_file():
        raise AnchorImportError(path, None, None, "not a file" if path.exists() else "file not found")
    if file_type == "parquet":
        return file_type, _parquet_records(path)
    text = _read_text(path)
    return file_type, {"jsonl": _jsonl_records, "csv": _csv_records, "json": _json_records}[file_type](path, text)


# ---------------------------------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise AnchorImportError(path, None, None, f"cannot read the file: {err.strerror or err}") from None
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise AnchorImportError(path, None, None, f"not a readable gzip file: {err}") from None
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"  # both drop the byte-order mark
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise AnchorImportError(path, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None


_TOO_DEEP = ("invalid JSON: nested too deeply (arrays or objects inside each other more levels deep than the parser "
             "allows)")


def _jsonl_records(path: Path, text: str) -> Records:
    records = []
    # split on "\n" only: str.splitlines() would also break on U+2028 and friends, which JSON strings may contain
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        place = f"line {number}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise AnchorImportError(path, place, None, f"invalid JSON: {err.msg} (column {err.colno})") from None
        except RecursionError:
            raise AnchorImportError(path, place, None, _TOO_DEEP) from None
        if not isinstance(obj, dict):
            raise AnchorImportError(path, place, None, f"expected a JSON object, got {type(obj).__name__}")
        records.append((place, obj))
    return records


def _json_records(path: Path, text: str) -> Records:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":
            hint = " (one object per line is JSONL: name the file .jsonl)"
        else:
            hint = ""
        raise AnchorImportError(path, f"line {err.lineno}", None,
                                f"invalid JSON: {err.msg} (column {err.colno}){hint}") from None
    except RecursionError:
        raise AnchorImportError(path, None, None, _TOO_DEEP) from None
    if isinstance(obj, dict):
        obj = [obj]  # one task/record on its own
    if not isinstance(obj, list):
        raise AnchorImportError(path, None, None, f"expected a JSON array of objects, got {type(obj).__name__}")
    records = []
    for number, item in enumerate(obj, start=1):
        if not isinstance(item, dict):
            raise AnchorImportError(path, f"record {number}", None,
                                    f"expected a JSON object, got {type(item).__name__}")
        records.append((f"record {number}", item))
    return records


def _csv_records(path: Path, text: str) -> Records:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts: the default 128 KiB cell limit is too small
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if not header:
            raise AnchorImportError(path, None, None, "no header row")
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise AnchorImportError(path, "row 1", None, f"duplicate column(s) {duplicates}")
        records = []
        for number, values in enumerate(reader, start=2):
            place = f"row {number}"
            if not values:
                continue
            if len(values) > len(header):
                raise AnchorImportError(path, place, None,
                                        f"{len(values)} values but the header has {len(header)} columns")
            # CSV has no null: an empty cell reads as "" and optional fields treat "" as absent
            records.append((place, dict(zip(header, values))))
        return records
    except csv.Error as err:
        raise AnchorImportError(path, None, None, f"malformed CSV: {err}") from None


def _parquet_records(path: Path) -> Records:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise AnchorImportError(path, None, None, f"not a readable Parquet file: {err}") from None
    return [(f"row {number}", record) for number, record in enumerate(table.to_pylist(), start=1)]
