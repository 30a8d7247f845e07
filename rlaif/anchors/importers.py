"""Import anchor pairs from the files users already have: JSONL, CSV or Parquet, in three shapes.

1. **Preference pairs** ``{prompt, chosen, rejected}`` as TRL takes them: strings, or chat message lists
   (``[{"role": "user", "content": ...}, ...]``). A message-list prompt is rendered as text for annotators (the
   original list is kept in ``extra.prompt_messages``); a message-list chosen/rejected contributes its last turn,
   which must be the assistant's. Without a ``prompt`` column, message-list chosen/rejected share their earlier
   turns, which become the prompt (TRL's "implicit prompt"). Which of chosen/rejected becomes A is a coin flip
   seeded by the pair's content; the known preference is stored as a label of the annotator ``dataset:<file name>``
   (kind ``oracle``), so imported preference data can calibrate a judge without being mistaken for a person.
2. **HH-RLHF transcripts**: ``chosen`` and ``rejected`` are whole dialogues ("\\n\\nHuman: ... \\n\\nAssistant: ...")
   sharing a prefix; the prompt is that common prefix up to and including its last ``Assistant:``, the responses
   are what follows. Labelled like (1).
3. **Pairwise files** ``{prompt, response_a, response_b}`` with any number of label columns, one per annotator:

   * ``label_<annotator>``: ``A``, ``B``, ``tie`` or ``skip`` (any case), empty or null for "not labelled";
   * ``note_<annotator>``: an optional note for that label;
   * annotator names starting ``oracle:`` or ``dataset:`` are machine oracles (kind ``oracle``), all others people
     (kind ``human``). This is the format ``export`` writes, so an export imports back unchanged.

Optional columns in every shape: ``slice`` (else ``cohort``, else "default"), ``source``, ``reference`` (the golden
answer verifier judges need). ``item_id``, ``anchor_set_id``, ``is_holdout`` and ``position`` (written by
``export --with-ids``) are ignored: the holdout is drawn at import, never taken from a file. Any other column is
kept in the item's ``extra``.

Errors name the file, the place and the field: ``anchors.jsonl: line 7: field 'chosen': ...`` (JSONL: physical line
N, blank lines counted), ``anchors.csv: row 4: ...`` (CSV: the header is row 1, the first data row is row 2; a text
with line breaks still counts as one row), ``anchors.parquet: row 3: ...`` (Parquet: data rows from 1). The whole file
is validated before anything is written, and the write is one transaction: a bad line N leaves nothing stored.

    result = import_anchor_file(store, "hh_sample.jsonl", name="hh-sample")
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from rlaif.anchors.holdout import DEFAULT_HOLDOUT_FRACTION
from rlaif.anchors.sets import DEFAULT_SLICE, AnchorDraft, DraftLabel, chosen_goes_first, create_anchor_set
from rlaif.datasets import DatasetError

FORMATS = ("preference", "hh", "pairwise")
FILE_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
ORACLE_PREFIXES = ("oracle:", "dataset:")
IGNORED_COLUMNS = ("item_id", "anchor_set_id", "is_holdout", "position")
_LABEL_VALUES = {"a": "A", "b": "B", "tie": "tie", "skip": "skip"}
_LABEL_COLUMN = re.compile(r"^label_(.+)$")
_NOTE_COLUMN = re.compile(r"^note_(.+)$")
_ASSISTANT = "Assistant:"


class AnchorImportError(DatasetError):
    """A file cannot be imported; the message names file, place (line/row N) and field."""

    def __init__(self, path: str | Path, place: str | None, field: str | None, problem: str):
        self.path, self.place, self.field, self.problem = str(path), place, field, problem
        self.line = int(place.split()[-1]) if place else None
        parts = [str(path)] + ([place] if place else []) + ([f"field {field!r}"] if field else []) + [problem]
        ValueError.__init__(self, ": ".join(parts))


@dataclass(frozen=True)
class ParsedFile:
    path: str
    file_type: str  # jsonl | csv | parquet
    format: str  # preference | hh | pairwise
    drafts: list[AnchorDraft]

    @property
    def annotators(self) -> list[str]:
        return sorted({lab.annotator for d in self.drafts for lab in d.labels})


@dataclass(frozen=True)
class ImportResult:
    anchor_set_id: str
    created: bool
    n_items: int
    n_holdout: int
    n_labels: int
    format: str
    annotators: list[str]


# ---------------------------------------------------------------------------------------------------------------------
# Public API


def import_anchor_file(store, path: str | Path, *, name: str | None = None, format: str | None = None,
                       holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, holdout_seed: int = 0) -> ImportResult:
    """Parse and validate the whole file, then store it as one anchor set in one transaction."""
    parsed = parse_anchor_file(path, format=format)
    created = create_anchor_set(store, name or Path(path).stem, parsed.drafts, source=str(path),
                                holdout_fraction=holdout_fraction, holdout_seed=holdout_seed)
    return ImportResult(created.anchor_set_id, created.created, created.n_items, created.n_holdout,
                        created.n_labels, parsed.format, parsed.annotators)


def parse_anchor_file(path: str | Path, *, format: str | None = None) -> ParsedFile:
    """Read ``path`` (type by extension: .jsonl, .csv, .parquet) into drafts; raise AnchorImportError at the first
    problem."""
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    file_type = FILE_TYPES.get(path.suffix.lower())
    if file_type is None:
        supported = ", ".join(sorted(FILE_TYPES))
        raise AnchorImportError(path, None, None, f"unsupported file type {path.suffix!r}; use {supported}")
    if not path.is_file():
        raise AnchorImportError(path, None, None, "file not found")
    reader = {"jsonl": _jsonl_records, "csv": _csv_records, "parquet": _parquet_records}[file_type]
    drafts: list[AnchorDraft] = []
    detected = format
    for place, record in reader(path):
        if detected is None:
            detected = detect_format(record, path, place)
        drafts.append(_PARSERS[detected](record, path, place))
    if not drafts:
        raise AnchorImportError(path, None, None, "no records")
    return ParsedFile(str(path), file_type, detected, drafts)


def detect_format(record: dict[str, Any], path: str | Path = "<record>", place: str | None = None) -> str:
    """Which of the three shapes a record (the first of a file) has, from its columns."""
    columns = set(record)
    if {"response_a", "response_b"} <= columns:
        return "pairwise"
    if {"chosen", "rejected"} <= columns:
        if "prompt" in columns or isinstance(record.get("chosen"), list):
            return "preference"
        return "hh"
    raise AnchorImportError(
        path, place, None,
        f"unrecognised columns {sorted(columns)}: expected prompt + chosen + rejected (preference pairs), "
        "chosen + rejected (HH-RLHF transcripts), or prompt + response_a + response_b [+ label_<annotator>...] "
        "(pairwise)")


def render_messages(messages: list[dict[str, Any]]) -> str:
    """A chat prompt as annotators read it: a lone user turn is its text; otherwise "Role: text" blocks."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def split_hh_transcripts(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen response, rejected response) of two HH-RLHF dialogues sharing a prefix.

    The prompt is the common prefix up to and including its last "Assistant:" (leading blank lines dropped); each
    response is the rest of its dialogue without the one space that follows "Assistant:".
    """
    common = os.path.commonprefix([chosen, rejected])
    cut = common.rfind(_ASSISTANT)
    if cut < 0:
        raise ValueError("chosen and rejected share no dialogue prefix ending in 'Assistant:'")
    cut += len(_ASSISTANT)
    prompt = chosen[:cut].lstrip("\r\n")

    def response(text: str) -> str:
        rest = text[cut:]
        return rest[1:] if rest.startswith(" ") else rest

    return prompt, response(chosen), response(rejected)


# ---------------------------------------------------------------------------------------------------------------------
# Readers: (place, record) per data row, the place as errors name it


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise AnchorImportError(path, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    # split on "\n" only: str.splitlines() would also break on U+2028 and friends, which JSON strings may contain
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        place = f"line {number}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise AnchorImportError(path, place, None, f"invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(obj, dict):
            raise AnchorImportError(path, place, None, f"expected a JSON object, got {type(obj).__name__}")
        yield place, obj


def _csv_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts: the default 128 KiB cell limit is too small
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise AnchorImportError(path, None, None, "no header row")
            duplicates = sorted({c for c in header if header.count(c) > 1})
            if duplicates:
                raise AnchorImportError(path, "row 1", None, f"duplicate column(s) {duplicates}")
            for number, values in enumerate(reader, start=2):
                place = f"row {number}"
                if not values:
                    continue
                if len(values) > len(header):
                    raise AnchorImportError(path, place, None,
                                            f"{len(values)} values but the header has {len(header)} columns")
                # CSV has no null: an empty cell reads as "" and optional fields treat "" as absent
                yield place, dict(zip(header, values))
    except UnicodeDecodeError as err:
        raise AnchorImportError(path, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise AnchorImportError(path, None, None, f"malformed CSV: {err}") from None


def _parquet_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise AnchorImportError(path, None, None, f"not a readable Parquet file: {err}") from None
    for number, record in enumerate(table.to_pylist(), start=1):
        yield f"row {number}", record


# ---------------------------------------------------------------------------------------------------------------------
# Record parsers, one per shape


def _text(record: dict[str, Any], key: str, path, place, *, required: bool = True) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise AnchorImportError(path, place, key, "missing or empty" if key in record else "missing")
        return None
    if not isinstance(value, str):
        raise AnchorImportError(path, place, key, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise AnchorImportError(path, place, key, "must not be blank")
    return value


def _response(record: dict[str, Any], key: str, path, place) -> str:
    """A response may be empty (real preference data has empty replies) but must be present and a string."""
    if key not in record:
        raise AnchorImportError(path, place, key, "missing")
    value = record[key]
    if not isinstance(value, str):
        raise AnchorImportError(path, place, key, f"must be a string, got {type(value).__name__}")
    return value


def _messages(value: Any, path, place, key: str) -> list[dict[str, str]]:
    if not value:
        raise AnchorImportError(path, place, key, "an empty message list")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise AnchorImportError(path, place, f"{key}[{i}]",
                                    "a chat message must be an object with string 'role' and 'content'")
    return value


def _common(record: dict[str, Any], consumed: set[str], path, place) -> dict[str, Any]:
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
    return {"slice": slice_value, "source": _text(record, "source", path, place, required=False),
            "reference": _text(record, "reference", path, place, required=False),
            "extra": {k: v for k, v in record.items() if k not in used}}


def _preference_label(path: Path, a_is_chosen: bool) -> tuple[DraftLabel, ...]:
    return (DraftLabel(f"dataset:{path.name}", "A" if a_is_chosen else "B", "oracle"),)


def _parse_preference(record: dict[str, Any], path: Path, place: str) -> AnchorDraft:
    for key in ("chosen", "rejected"):
        if record.get(key) is None or record[key] == []:
            raise AnchorImportError(path, place, key, "missing or empty")
    responses, earlier = {}, {}
    for key in ("chosen", "rejected"):
        value = record[key]
        if isinstance(value, str):
            responses[key], earlier[key] = value, None
        elif isinstance(value, list):
            messages = _messages(value, path, place, key)
            if messages[-1]["role"] != "assistant":
                raise AnchorImportError(path, place, key, f"the last message must be the assistant's, "
                                                          f"got role {messages[-1]['role']!r}")
            responses[key], earlier[key] = messages[-1]["content"], messages[:-1]
        else:
            raise AnchorImportError(path, place, key, f"must be a string or a list of chat messages, "
                                                      f"got {type(value).__name__}")
    extra: dict[str, Any] = {}
    prompt_value = record.get("prompt")
    if prompt_value in (None, "", []):
        if "prompt" in record:
            raise AnchorImportError(path, place, "prompt", "missing or empty")
        if not earlier["chosen"]:
            raise AnchorImportError(path, place, "chosen", "without a prompt column, chosen must be a conversation "
                                                           "whose earlier turns are the prompt")
        if earlier["chosen"] != earlier["rejected"]:
            raise AnchorImportError(path, place, "rejected", "its turns before the last differ from chosen's; "
                                                             "the shared turns are the prompt")
        prompt, extra["prompt_messages"] = render_messages(earlier["chosen"]), earlier["chosen"]
    elif isinstance(prompt_value, str):
        if not prompt_value.strip():
            raise AnchorImportError(path, place, "prompt", "must not be blank")
        prompt = prompt_value
    elif isinstance(prompt_value, list):
        messages = _messages(prompt_value, path, place, "prompt")
        prompt, extra["prompt_messages"] = render_messages(messages), messages
    else:
        raise AnchorImportError(path, place, "prompt", f"must be a string or a list of chat messages, "
                                                       f"got {type(prompt_value).__name__}")
    common = _common(record, {"prompt", "chosen", "rejected"}, path, place)
    chosen, rejected = responses["chosen"], responses["rejected"]
    first = chosen_goes_first(prompt, chosen, rejected)
    return AnchorDraft(prompt, chosen if first else rejected, rejected if first else chosen, common["slice"],
                       common["source"], common["reference"], {**common["extra"], **extra},
                       _preference_label(path, first))


def _parse_hh(record: dict[str, Any], path: Path, place: str) -> AnchorDraft:
    chosen = _text(record, "chosen", path, place)
    rejected = _text(record, "rejected", path, place)
    try:
        prompt, chosen_response, rejected_response = split_hh_transcripts(chosen, rejected)
    except ValueError as err:
        raise AnchorImportError(path, place, "chosen", str(err)) from None
    common = _common(record, {"chosen", "rejected"}, path, place)
    first = chosen_goes_first(prompt, chosen_response, rejected_response)
    a, b = (chosen_response, rejected_response) if first else (rejected_response, chosen_response)
    return AnchorDraft(prompt, a, b, common["slice"], common["source"], common["reference"], common["extra"],
                       _preference_label(path, first))


def annotator_kind(annotator: str) -> str:
    """``oracle`` for names starting ``oracle:``/``dataset:`` (machines), else ``human``."""
    return "oracle" if annotator.startswith(ORACLE_PREFIXES) else "human"


def _parse_pairwise(record: dict[str, Any], path: Path, place: str) -> AnchorDraft:
    prompt = _text(record, "prompt", path, place)
    a = _response(record, "response_a", path, place)
    b = _response(record, "response_b", path, place)
    if "label" in record:
        raise AnchorImportError(path, place, "label", "name label columns after their annotator: "
                                                      "label_<annotator> (e.g. label_alice)")
    labels, consumed = [], {"prompt", "response_a", "response_b"}
    notes = {m.group(1): key for key in record if (m := _NOTE_COLUMN.match(key))}
    for key in record:
        match = _LABEL_COLUMN.match(key)
        if not match:
            continue
        consumed.add(key)
        annotator, value = match.group(1), record[key]
        note = _text(record, notes[annotator], path, place, required=False) if annotator in notes else None
        if value is None or value == "":
            if note is not None:
                raise AnchorImportError(path, place, notes[annotator], "a note without a label")
            continue
        if not isinstance(value, str) or value.strip().lower() not in _LABEL_VALUES:
            raise AnchorImportError(path, place, key, f"label must be A, B, tie or skip, got {value!r}")
        labels.append(DraftLabel(annotator, _LABEL_VALUES[value.strip().lower()], annotator_kind(annotator), note))
    for annotator, key in notes.items():
        consumed.add(key)
        if f"label_{annotator}" not in record:
            raise AnchorImportError(path, place, key, f"a note column without a label_{annotator} column")
    common = _common(record, consumed, path, place)
    return AnchorDraft(prompt, a, b, common["slice"], common["source"], common["reference"], common["extra"],
                       tuple(labels))


_PARSERS = {"preference": _parse_preference, "hh": _parse_hh, "pairwise": _parse_pairwise}


def resolve_anchor_set(store, anchor_set: str, resolve: Callable[[str], Path | None] = Path,
                       holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION) -> str:
    """The anchor set id for a config value: a stored id as is, a file imported (idempotently) first."""
    if store.anchors.get_set(anchor_set) is not None:
        return anchor_set
    path = resolve(anchor_set)
    if path is not None and Path(path).suffix.lower() in FILE_TYPES:
        return import_anchor_file(store, path, holdout_fraction=holdout_fraction).anchor_set_id
    raise ValueError(f"calibration.anchor_set: {anchor_set!r} is neither an anchor set in the store nor an "
                     f"anchor file ({', '.join(sorted(FILE_TYPES))})")
