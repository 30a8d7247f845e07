"""Which columns of a pairwise file are whose labels, and the refusal that keeps a label from being dropped unseen.

Why a refusal: a CSV whose label columns were named ``ana`` and ``bo_label`` once imported as "0 labels from no
annotators" with exit code 0, every human label gone. Now a column is a label column when it is named
``label_<annotator>`` or mapped with ``--label-column COLUMN[=ANNOTATOR]``; any other column that *looks like* a label
refuses the whole file, naming the columns and the flag to pass. A column looks like a label when

* one of the words of its name (split at ``_``, ``-``, spaces, dots and camelCase) is one of :data:`LABEL_WORDS`
  (``label``, ``preference``, ``winner``, ``choice``, ``rating``, ``annotator``, ...: ``label``, ``Labels``,
  ``ana_label``, ``human preference``, ``winnerModel``), or
* every non-empty value it has, in the whole file, is one of :data:`LABEL_LOOKALIKES` (A, B, tie, skip, left, right,
  equal, draw, in any case), and it has at least one.

Digits never make a column label-like (counts and ids are 1s and 2s). A column that only looks like a label (a letter
grade, say) is kept as item data with ``--extra-column COLUMN``.

    plan = plan_label_columns(records, options, path)   # plan.labels == {"ana_label": "ana", "label_bo": "bo"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rlaif.anchors.formats.errors import AnchorImportError
from rlaif.anchors.formats.fields import IGNORED_COLUMNS, LABEL_SYNONYMS
from rlaif.anchors.formats.options import ImportOptions

LABEL_WORDS = frozenset({
    "label", "labels", "labelled", "labeled", "preference", "preferences", "preferred", "pref", "winner", "choice",
    "rating", "ratings", "verdict", "vote", "votes", "annotator", "annotators", "annotation", "annotations", "rater",
    "judgement", "judgment", "better"})
LABEL_LOOKALIKES = frozenset(LABEL_SYNONYMS)
PAIRWISE_COLUMNS = ("prompt", "response_a", "response_b")
_LABEL_COLUMN = re.compile(r"^label_(.+)$")
_NOTE_COLUMN = re.compile(r"^note_(.+)$")


@dataclass(frozen=True)
class LabelPlan:
    labels: dict[str, str]  # column -> annotator
    notes: dict[str, str]  # annotator -> note column

    @property
    def consumed(self) -> set[str]:
        return set(self.labels) | set(self.notes.values())


def name_words(column: str) -> list[str]:
    """The words of a column name: ``"humanPreference_v2"`` -> ``["human", "preference", "v2"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def looks_like_label(column: str, values: list[Any]) -> bool:
    """The rule in the module docstring: a label word in the name, or only label-like values."""
    if LABEL_WORDS.intersection(name_words(column)):
        return True
    present = [v for v in values if v is not None and v != ""]
    return bool(present) and all(isinstance(v, str) and v.strip().lower() in LABEL_LOOKALIKES for v in present)


def plan_label_columns(records: list[tuple[str, dict[str, Any]]], options: ImportOptions, path) -> LabelPlan:
    """Label and note columns of a pairwise file; refuse unknown mapped columns and unmapped label-like ones."""
    columns: dict[str, list[Any]] = {}
    for _, record in records:
        for key, value in record.items():
            columns.setdefault(key, []).append(value)
    for column in [*options.label_columns, *options.extra_columns]:
        if column not in columns:
            flag = "--label-column" if column in options.label_columns else "--extra-column"
            raise AnchorImportError(path, None, None, f"{flag} {column}: no such column; the file has "
                                                      f"{sorted(columns)}")
    labels = {c: m.group(1) for c in columns if (m := _LABEL_COLUMN.match(c)) and c not in options.extra_columns}
    labels.update(options.label_columns)
    seen: dict[str, str] = {}
    for column, annotator in labels.items():
        if annotator in seen:
            raise AnchorImportError(path, None, None, f"columns {seen[annotator]!r} and {column!r} both hold the "
                                                      f"labels of {annotator!r}; map one to another annotator")
        seen[annotator] = column
    notes = {}
    for column in columns:
        match = _NOTE_COLUMN.match(column)
        if not match or column in labels:
            continue
        if match.group(1) not in seen:
            raise AnchorImportError(path, None, column, f"a note column without a label column of "
                                                        f"{match.group(1)!r} (label_{match.group(1)}, or "
                                                        f"--label-column COLUMN={match.group(1)})")
        notes[match.group(1)] = column
    plan = LabelPlan(labels, notes)
    known = set(PAIRWISE_COLUMNS) | plan.consumed | {"slice", "cohort", "source", "reference", *IGNORED_COLUMNS}
    unmapped = [c for c, values in columns.items()
                if c not in known and c not in options.extra_columns and looks_like_label(c, values)]
    if unmapped:
        example = unmapped[0]
        raise AnchorImportError(
            path, None, None,
            f"column(s) {unmapped} look like labels but are not mapped to annotators, so their labels would be lost; "
            f"nothing was imported. Map each with --label-column COLUMN=ANNOTATOR (e.g. --label-column "
            f"{example}=<who labelled it>; plain --label-column {example} names the annotator {example!r}), or keep "
            f"a column that is not a label as item data with --extra-column COLUMN")
    return plan
