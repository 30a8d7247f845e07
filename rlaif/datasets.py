"""Prompt sets from JSONL: every record has an id, a prompt, an optional reference answer and a cohort.

Why strict: a bad line found half-way through an import would otherwise leave half a dataset in the store. The whole
file is parsed and validated first; an error names the file and the line; only a fully valid file is returned. What
editors save is accepted as is: a UTF-8 byte-order mark, CRLF line ends, U+2028 inside a JSON string.

    prompts = load_prompts("sample_data/harbor_sql/train.jsonl")
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from store.content_hash import content_hash


class DatasetError(ValueError):
    """A dataset file is unreadable or a record is malformed; the message names file and line."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class PromptRecord:
    id: str
    prompt: str
    reference: str | None = None
    cohort: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


REQUIRED = ("id", "prompt")
KNOWN = ("id", "prompt", "reference", "cohort")


def parse_record(obj: Any, path: str | Path, line: int) -> PromptRecord:
    if not isinstance(obj, dict):
        raise DatasetError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    for key in REQUIRED:
        if key not in obj:
            raise DatasetError(path, line, f"missing field {key!r}")
    if not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool) or str(obj["id"]).strip() == "":
        raise DatasetError(path, line, f"field 'id' must be a non-empty string, got {obj['id']!r}")
    if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
        raise DatasetError(path, line, "field 'prompt' must be a non-empty string")
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise DatasetError(path, line, f"field 'reference' must be a string, got {type(reference).__name__}")
    cohort = obj.get("cohort", "default")
    if not isinstance(cohort, str) or not cohort:
        raise DatasetError(path, line, f"field 'cohort' must be a non-empty string, got {cohort!r}")
    extra = {k: v for k, v in obj.items() if k not in KNOWN}
    return PromptRecord(id=str(obj["id"]), prompt=obj["prompt"], reference=reference, cohort=cohort, extra=extra)


def load_prompts(path: str | Path, limit: int | None = None) -> list[PromptRecord]:
    """Parse a whole JSONL file; raise DatasetError naming the first bad line. Nothing is returned partially."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, None, "file not found")
    records: list[PromptRecord] = []
    seen: dict[str, int] = {}
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(path, None, f"cannot read the file: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DatasetError(path, line, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    # split on "\n" only: str.splitlines() would also break on U+2028 and friends, which JSON strings may contain
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        obj = parse_json_line(raw, path, number)
        record = parse_record(obj, path, number)
        if record.id in seen:
            raise DatasetError(path, number, f"duplicate id {record.id!r} (first on line {seen[record.id]})")
        seen[record.id] = number
        records.append(record)
    if not records:
        raise DatasetError(path, None, "no records")
    return records[:limit] if limit else records


def parse_json_line(raw: str, path: str | Path, line: int) -> Any:
    """One JSONL line; a syntax error or nesting too deep for the parser (``[[[[...]]]]``) names file and line."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise DatasetError(path, line, f"invalid JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise DatasetError(path, line, "invalid JSON: nested too deeply (arrays or objects inside each other "
                                       "more levels deep than the parser allows)") from None


def dataset_hash(records: list[PromptRecord] | list[dict[str, Any]]) -> str:
    """Content hash of a record list: the same prompts in the same order give the same id everywhere."""
    return content_hash([r.to_dict() if isinstance(r, PromptRecord) else r for r in records])


def records_from_store(rows: list[dict[str, Any]]) -> list[PromptRecord]:
    """Prompt records from the store's ``prompts`` rows: the same records (and so the same dataset hash) as imported."""
    return [PromptRecord(id=r["prompt_id"], prompt=r["prompt"], reference=r.get("reference"),
                         cohort=r.get("cohort") or "default", extra=r.get("extra") or {}) for r in rows]
