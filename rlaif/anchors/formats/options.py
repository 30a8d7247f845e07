"""How to read an anchor file when its layout is not the one the importer expects: one options dataclass.

Why options rather than guesses: a label the importer cannot attribute to an annotator must never be dropped silently,
and a tool export's data keys differ from project to project. When detection is not enough, the user says which
column is whose label, which keys hold the prompt and the two responses, and which question holds the preference.
The CLI flags (``rlaif anchors import --label-column ...``) and the Label page's import form both build this class;
list values are accepted in their flag form (``"COLUMN=ANNOTATOR"``) so neither face parses them itself.

    options = ImportOptions(label_columns=["ana_label=ana", "bo"], response_fields="answer1,answer2")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlaif.core.fields import ConfigError, check, help_field

FORMATS = ("preference", "hh", "pairwise", "labelstudio", "argilla")
TOOL_FORMATS = ("labelstudio", "argilla")


def _mapping(value: Any, field_path: str, *, value_optional: bool) -> dict[str, str]:
    """``{"col": "name"}`` as given, or parsed from flag-style ``["col=name", "col2"]`` (name defaults to the key)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = []
        for spec in value:
            if not isinstance(spec, str) or not spec.strip():
                raise ConfigError(field_path, f"entries must be non-empty strings KEY=NAME, got {spec!r}")
            key, sep, name = spec.rpartition("=") if "=" in spec else (spec, "", "")
            if not sep and not value_optional:
                raise ConfigError(field_path, f"{spec!r} needs the form KEY=NAME")
            items.append((key.strip(), name.strip() or key.strip()))
    else:
        raise ConfigError(field_path, f"must be a mapping or a list of KEY=NAME strings, got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, name in items:
        check(isinstance(key, str) and bool(key.strip()), field_path, f"a key must not be empty (in {key!r}={name!r})")
        check(isinstance(name, str) and bool(name.strip()), field_path, f"{key!r}: the name must not be empty")
        check(key not in out, field_path, f"{key!r} is given twice")
        out[key] = name
    return out


@dataclass
class ImportOptions:
    format: str | None = help_field(
        f"File shape: {', '.join(FORMATS)}. Unset: detected from the first record.", None)
    label_columns: dict[str, str] = help_field(
        "Pairwise files: label columns to import and whose they are, column -> annotator (flag form "
        "'COLUMN=ANNOTATOR', or 'COLUMN' to name the annotator after the column). label_<annotator> columns are "
        "always imported; a label-like column that is neither mapped nor kept as extra refuses the import.",
        factory=dict)
    extra_columns: list[str] = help_field(
        "Pairwise files: columns that look like labels but are item data (a letter grade, say): kept in the "
        "item's extra instead of refusing the import.", factory=list)
    prompt_field: str | None = help_field(
        "Label Studio / Argilla: the task-data key or record field holding the prompt. Unset: the first of prompt, "
        "question, instruction, input, query, text, context.", None)
    response_fields: tuple[str, str] | None = help_field(
        "Label Studio / Argilla: the two keys holding the responses, the left (first) one then the right (second), "
        "as 'LEFT,RIGHT'. Unset: detected (response_a/response_b, answer1/answer2, text1/text2, left/right, ...; "
        "Label Studio Ranker tasks: the first two entries of items).", None)
    question: str | None = help_field(
        "Argilla: the question whose answers are the preference. Unset: the one question whose every submitted "
        "answer reads as A, B or tie.", None)
    annotator_names: dict[str, str] = help_field(
        "Label Studio / Argilla: rename annotators, user -> name (flag form 'USER=NAME'; USER as the import names "
        "them: an e-mail, user-<id>).", factory=dict)

    def __post_init__(self):
        check(self.format is None or self.format in FORMATS, "format",
              f"must be one of {', '.join(FORMATS)}, got {self.format!r}")
        self.label_columns = _mapping(self.label_columns, "label_columns", value_optional=True)
        self.annotator_names = _mapping(self.annotator_names, "annotator_names", value_optional=False)
        self.extra_columns = list(self.extra_columns or [])
        clash = sorted(set(self.extra_columns) & set(self.label_columns))
        check(not clash, "extra_columns", f"{clash} cannot be both label columns and extra columns")
        if isinstance(self.response_fields, str):
            parts = [p.strip() for p in self.response_fields.split(",")]
            check(len(parts) == 2 and all(parts), "response_fields",
                  f"must be two keys 'LEFT,RIGHT', got {self.response_fields!r}")
            self.response_fields = (parts[0], parts[1])
        if self.response_fields is not None:
            check(len(self.response_fields) == 2 and self.response_fields[0] != self.response_fields[1],
                  "response_fields", f"must be two different keys, got {self.response_fields!r}")
            self.response_fields = tuple(self.response_fields)
