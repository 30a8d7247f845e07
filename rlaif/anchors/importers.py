"""Import anchor pairs from the files users already have, never losing a label on the way.

Files: JSONL, CSV, Parquet or JSON, gzip-compressed or not, UTF-8 with or without a byte-order mark
(:mod:`rlaif.anchors.formats.readers`). Shapes, detected from the first record or named with ``format``:

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
   ``label_<annotator>`` columns, and any other column mapped with ``ImportOptions.label_columns`` (the CLI's
   ``--label-column COLUMN[=ANNOTATOR]``). Values A, B, tie or skip (any case; left/right and equal/draw too),
   empty or null for "not labelled"; ``note_<annotator>`` holds an optional note. Annotators starting ``oracle:`` or
   ``dataset:`` are machine oracles (kind ``oracle``), all others people. A column that looks like a label but is not
   mapped refuses the file (:mod:`rlaif.anchors.formats.columns` has the rule). ``export`` writes this shape, so an
   export imports back unchanged.
4. **Label Studio** JSON exports of pairwise/ranking projects (:mod:`rlaif.anchors.formats.labelstudio`).
5. **Argilla 2.x** record exports, nested or flattened (:mod:`rlaif.anchors.formats.argilla`).

Optional columns in (1)-(3), and task data / record fields in (4)-(5): ``slice`` (else ``cohort``, else "default"),
``source``, ``reference`` (the golden answer verifier judges need). ``item_id``, ``anchor_set_id``, ``is_holdout`` and
``position`` (written by ``export --with-ids``) are ignored: the holdout is drawn at import, never taken from a file.
Anything else is kept in the item's ``extra``.

Errors name the file, the place and the field: ``anchors.jsonl: line 7: field 'chosen': ...``, ``anchors.csv: row 4``
(the header is row 1), ``anchors.parquet: row 3`` (data rows from 1), ``export.json: task 3 (id 17): field
'annotations[0].result[0].value': ...`` (Label Studio), ``records.json: record 2 (id r2): ...`` (Argilla). The whole
file is validated before anything is written, and the write is one transaction: a bad record N leaves nothing stored.

    result = import_anchor_file(store, "votes.csv", options=ImportOptions(label_columns=["ana", "bo_label=bo"]))
    result.label_counts   # {"ana": 40, "bo": 38}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rlaif.anchors.formats.argilla import is_argilla, parse_argilla
from rlaif.anchors.formats.columns import LABEL_WORDS, looks_like_label, plan_label_columns
from rlaif.anchors.formats.errors import AnchorImportError
from rlaif.anchors.formats.fields import annotator_kind
from rlaif.anchors.formats.guide import FORMAT_GUIDE
from rlaif.anchors.formats.labelstudio import is_labelstudio, parse_labelstudio
from rlaif.anchors.formats.options import FORMATS, ImportOptions
from rlaif.anchors.formats.readers import FILE_TYPES, file_type_of, read_records, type_suffix
from rlaif.anchors.formats.tabular import (
    detect_table_format,
    parse_hh,
    parse_pairwise,
    parse_preference,
    render_messages,
    split_hh_transcripts,
)
from rlaif.anchors.holdout import DEFAULT_HOLDOUT_FRACTION
from rlaif.anchors.sets import AnchorDraft, create_anchor_set

__all__ = [
    "FILE_TYPES", "FORMATS", "FORMAT_GUIDE", "LABEL_WORDS", "AnchorImportError", "ImportOptions", "ImportResult",
    "ParsedFile", "annotator_kind", "detect_format", "file_type_of", "import_anchor_file", "looks_like_label",
    "parse_anchor_file", "render_messages", "resolve_anchor_set", "split_hh_transcripts", "store_parsed_file",
]


@dataclass(frozen=True)
class ParsedFile:
    path: str
    file_type: str  # jsonl | csv | parquet | json
    format: str  # preference | hh | pairwise | labelstudio | argilla
    drafts: list[AnchorDraft]

    @property
    def annotators(self) -> list[str]:
        return sorted({lab.annotator for d in self.drafts for lab in d.labels})

    @property
    def label_counts(self) -> dict[str, int]:
        """Labels per annotator, as the file holds them (skips included), by annotator name."""
        return dict(sorted(Counter(lab.annotator for d in self.drafts for lab in d.labels).items()))


@dataclass(frozen=True)
class ImportResult:
    anchor_set_id: str
    created: bool
    n_items: int
    n_holdout: int
    n_labels: int  # labels written: 0 when the set was already stored
    format: str
    annotators: list[str]
    label_counts: dict[str, int] = field(default_factory=dict)  # labels in the file, per annotator


# ---------------------------------------------------------------------------------------------------------------------
# Public API


def import_anchor_file(store, path: str | Path, *, name: str | None = None, format: str | None = None,
                       holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, holdout_seed: int = 0,
                       options: ImportOptions | None = None) -> ImportResult:
    """Parse and validate the whole file, then store it as one anchor set in one transaction."""
    parsed = parse_anchor_file(path, format=format, options=options)
    return store_parsed_file(store, parsed, name=name, holdout_fraction=holdout_fraction, holdout_seed=holdout_seed)


def store_parsed_file(store, parsed: ParsedFile, *, name: str | None = None,
                      holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, holdout_seed: int = 0) -> ImportResult:
    """Store an already validated file as one anchor set (the CLI parses before it opens, so a refused file does not
    even create a store)."""
    created = create_anchor_set(store, name or _stem(Path(parsed.path)), parsed.drafts, source=parsed.path,
                                holdout_fraction=holdout_fraction, holdout_seed=holdout_seed)
    return ImportResult(created.anchor_set_id, created.created, created.n_items, created.n_holdout,
                        created.n_labels, parsed.format, parsed.annotators, parsed.label_counts)


def parse_anchor_file(path: str | Path, *, format: str | None = None,
                      options: ImportOptions | None = None) -> ParsedFile:
    """Read ``path`` (type by extension) into drafts; raise AnchorImportError at the first problem."""
    path = Path(path)
    options = options or ImportOptions()
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    chosen = format or options.format
    file_type, records = read_records(path)
    if not records:
        raise AnchorImportError(path, None, None, "no records")
    detected = chosen or detect_format(records[0][1], path, records[0][0])
    if detected != "pairwise" and (options.label_columns or options.extra_columns):
        flag = "--label-column" if options.label_columns else "--extra-column"
        raise AnchorImportError(path, None, None, f"{flag} applies to pairwise files; this file is {detected}")
    if detected == "labelstudio":
        drafts = parse_labelstudio(records, path, options)
    elif detected == "argilla":
        drafts = parse_argilla(records, path, options)
    elif detected == "pairwise":
        plan = plan_label_columns(records, options, path)
        drafts = [parse_pairwise(record, path, place, plan) for place, record in records]
    else:
        parse = {"preference": parse_preference, "hh": parse_hh}[detected]
        drafts = [parse(record, path, place) for place, record in records]
    return ParsedFile(str(path), file_type, detected, drafts)


def detect_format(record: dict[str, Any], path: str | Path = "<record>", place: str | None = None) -> str:
    """Which shape a record (the first of a file) has: a tool export's structure, else its columns."""
    if is_labelstudio(record):
        return "labelstudio"
    if is_argilla(record):
        return "argilla"
    return detect_table_format(record, path, place)


def resolve_anchor_set(store, anchor_set: str, resolve: Callable[[str], Path | None] = Path,
                       holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION) -> str:
    """The anchor set id for a config value: a stored id as is, a file imported (idempotently) first."""
    if store.anchors.get_set(anchor_set) is not None:
        return anchor_set
    path = resolve(anchor_set)
    if path is not None and file_type_of(path) is not None:
        return import_anchor_file(store, path, holdout_fraction=holdout_fraction).anchor_set_id
    raise ValueError(f"calibration.anchor_set: {anchor_set!r} is neither an anchor set in the store nor an "
                     f"anchor file ({', '.join(sorted(FILE_TYPES))})")


def _stem(path: Path) -> str:
    """The default set name: the file name without its type suffix (``votes.csv.gz`` -> ``votes``)."""
    suffix = type_suffix(path)
    return (path.name[: -len(suffix)] or path.name) if suffix else path.stem
