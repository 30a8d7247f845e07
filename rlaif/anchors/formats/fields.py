"""What every anchor format shares: reading a text field, a label value, an annotator's kind, and the optional columns.

Why here: the same rule must hold in every shape. A prompt must be non-blank text; a response may be empty but must
be text; ``slice`` (else ``cohort``), ``source`` and ``reference`` are optional everywhere; anything unrecognised is
kept in the item's ``extra``; a label value reads the same whether it came from a CSV column or a tool export.

    prompt = text(record, "prompt", path, place)
    label = read_label(" Tie ")   # "tie"
"""

from __future__ import annotations

from typing import Any

from rlaif.anchors.formats.errors import AnchorImportError
from rlaif.anchors.sets import DEFAULT_SLICE

ORACLE_PREFIXES = ("oracle:", "dataset:")
IGNORED_COLUMNS = ("item_id", "anchor_set_id", "is_holdout", "position")
#: Accepted label values (any case, surrounding spaces ignored). left/right: response_a is the left (first) one.
LABEL_SYNONYMS = {"a": "A", "b": "B", "tie": "tie", "skip": "skip", "left": "A", "right": "B", "equal": "tie",
                  "draw": "tie"}


def annotator_kind(annotator: str) -> str:
    """``oracle`` for names starting ``oracle:``/``dataset:`` (machines), else ``human``."""
    return "oracle" if annotator.startswith(ORACLE_PREFIXES) else "human"


def read_label(value: Any) -> str | None:
    """A, B, tie or skip for an accepted label value (see LABEL_SYNONYMS), else None."""
    if not isinstance(value, str):
        return None
    return LABEL_SYNONYMS.get(value.strip().lower())


def text(record: dict[str, Any], key: str, path, place, *, required: bool = True,
         label: str | None = None) -> str | None:
    """A string field; required ones must be present and non-blank. ``label`` names the field in errors."""
    name = label or key
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise AnchorImportError(path, place, name, "missing or empty" if key in record else "missing")
        return None
    if not isinstance(value, str):
        raise AnchorImportError(path, place, name, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise AnchorImportError(path, place, name, "must not be blank")
    return value


def response(record: dict[str, Any], key: str, path, place, *, label: str | None = None) -> str:
    """A response may be empty (real preference data has empty replies) but must be present and a string."""
    name = label or key
    if key not in record:
        raise AnchorImportError(path, place, name, "missing")
    value = record[key]
    if not isinstance(value, str):
        raise AnchorImportError(path, place, name, f"must be a string, got {type(value).__name__}")
    return value


def common(record: dict[str, Any], consumed: set[str], path, place) -> dict[str, Any]:
    """slice, source, reference and the extra columns shared by every shape."""
    slice_key = "slice" if record.get("slice") not in (None, "") else "cohort"
    slice_value = record.get(slice_key)
    if slice_value in (None, ""):
        slice_value = DEFAULT_SLICE
    elif isinstance(slice_value, (int, float)) and not isinstance(slice_value, bool):
        slice_value = str(slice_value)
    elif not isinstance(slice_value, str):
        raise AnchorImportError(path, place, slice_key, f"must be a string, got {type(slice_value).__name__}")
    used = consumed | {"slice", "source", "reference", *IGNORED_COLUMNS}
    if slice_key == "cohort" and "cohort" in record:
        used.add("cohort")
    return {"slice": slice_value, "source": text(record, "source", path, place, required=False),
            "reference": text(record, "reference", path, place, required=False),
            "extra": {k: v for k, v in record.items() if k not in used}}
