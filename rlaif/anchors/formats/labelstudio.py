"""Label Studio JSON exports of pairwise and ranking projects: one anchor per task, one label per completed annotation.

The shape, as Label Studio documents it (labelstud.io/guide/task_format, /templates/pairwise_comparison, the
"Human Preference collection for RLHF" and "LLM Ranker" templates, and the Pairwise/Ranker tags' source):

    [{"id": 7, "data": {"prompt": "...", "answer1": "...", "answer2": "..."},
      "annotations": [{"completed_by": 3 or {"id": 3, "email": "ana@x.org"}, "was_cancelled": false,
                       "result": [{"type": "pairwise", "from_name": "comparison", "value": {"selected": "left"}}]}]}]

* **Pairwise** (``<Pairwise toName="answer1,answer2">``): ``selected`` ``left`` is the first response key, A.
* **Choices** (``{"type": "choices", "value": {"choices": ["Answer 1"]}}``): a choice naming a response key, or
  A/B/tie/skip/left/right (any case) and the tie words both/same/neither.
* **Ranker** over a List of two items (``data.items: [{"id", "body"|"text"|"title"}, ...]``,
  ``{"type": "ranker", "value": {"ranker": ["id-best", "id-other"]}}``): the first id is preferred.
* A ``textarea`` result becomes the label's note. Other results are ignored when a preference result is present.

Annotators are named by the e-mail in ``completed_by`` when the export has it, else ``user-<id>``. Cancelled
(skipped) annotations and ``predictions`` are not labels. The left/right keys are detected (see ``tool_fields``) or
given as ``response_fields``; ``question`` restricts the preference to one control (its ``from_name``).

    drafts = parse_labelstudio(records, Path("project-3-at-2024.json"), ImportOptions())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.anchors.formats.errors import AnchorImportError
from rlaif.anchors.formats.fields import common, response, text
from rlaif.anchors.formats.options import ImportOptions
from rlaif.anchors.formats.tool_fields import read_side, rename, require_prompt_key, response_keys
from rlaif.anchors.sets import AnchorDraft, DraftLabel

_ITEM_TEXT_KEYS = ("body", "text", "content", "response", "html", "title")
_SIDES = {"left": "A", "right": "B"}


def is_labelstudio(record: dict[str, Any]) -> bool:
    return isinstance(record.get("data"), dict) and ("annotations" in record or "completions" in record)


def parse_labelstudio(records: list[tuple[str, dict[str, Any]]], path: Path,
                      options: ImportOptions) -> list[AnchorDraft]:
    return [_task(record, path, place.replace("record", "task", 1), options) for place, record in records]


def annotator_of(completed_by: Any) -> str | None:
    """The e-mail of a ``completed_by`` object, else ``user-<id>``; None when there is no user."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or completed_by in (None, ""):
        return None
    if isinstance(completed_by, str) and "@" in completed_by:
        return completed_by.strip()
    if isinstance(completed_by, (int, str)):
        return f"user-{completed_by}"
    return None


# ---------------------------------------------------------------------------------------------------------------------


def _task(task: dict[str, Any], path: Path, place: str, options: ImportOptions) -> AnchorDraft:
    if "id" in task:
        place = f"{place} (id {task['id']})"
    data = task.get("data")
    if not is_labelstudio(task):
        raise AnchorImportError(path, place, "data" if not isinstance(data, dict) else "annotations",
                                "not a Label Studio task: expected an object with 'data' and 'annotations'")
    annotations = task.get("annotations", task.get("completions")) or []
    if not isinstance(annotations, list):
        raise AnchorImportError(path, place, "annotations", f"must be a list, got {type(annotations).__name__}")
    key = require_prompt_key(data, options, path, place, "data")
    prompt = text(data, key, path, place, label=f"data.{key}")
    keys = response_keys([k for k in data if k != key], options)
    items = None
    if keys is not None:
        a = response(data, keys[0], path, place, label=f"data.{keys[0]}")
        b = response(data, keys[1], path, place, label=f"data.{keys[1]}")
        consumed = {key, *keys}
    elif isinstance(data.get("items"), list):
        items = _ranker_items(data["items"], path, place)
        (a, b), consumed = [i[1] for i in items], {key, "items"}
    else:
        raise AnchorImportError(path, place, "data", f"no pair of responses among the data keys {sorted(data)}: "
                                                     "pass --response-fields LEFT,RIGHT (the key shown left first)")
    labels, seen = [], set()
    for j, annotation in enumerate(annotations):
        label = _label(annotation, f"annotations[{j}]", keys, items, path, place, options)
        if label is None:
            continue
        if label.annotator in seen:
            raise AnchorImportError(path, place, f"annotations[{j}].completed_by",
                                    f"{label.annotator} annotated this task twice; keep one annotation")
        seen.add(label.annotator)
        labels.append(label)
    flat = {k: v for k, v in data.items() if k not in consumed}
    if "id" in task:
        flat["labelstudio_task_id"] = task["id"]
    shared = common(flat, set(), path, place)
    return AnchorDraft(prompt, a, b, shared["slice"], shared["source"], shared["reference"], shared["extra"],
                       tuple(labels))


def _ranker_items(items: list[Any], path: Path, place: str) -> list[tuple[Any, str]]:
    """(id, text) of a Ranker's two List items."""
    if len(items) != 2:
        raise AnchorImportError(path, place, "data.items", f"a ranking of {len(items)} responses; anchors are pairs: "
                                                           "export tasks of exactly two items")
    out = []
    for i, item in enumerate(items):
        body = next((item[k] for k in _ITEM_TEXT_KEYS if isinstance(item, dict) and isinstance(item.get(k), str)),
                    None)
        if body is None or "id" not in item:
            raise AnchorImportError(path, place, f"data.items[{i}]", "a List item needs an 'id' and a text "
                                                                     f"({', '.join(_ITEM_TEXT_KEYS)})")
        out.append((item["id"], body))
    return out


def _label(annotation: Any, where: str, keys, items, path: Path, place: str,
           options: ImportOptions) -> DraftLabel | None:
    """The annotation's label, or None for a cancelled (skipped) annotation or one with no result."""
    if not isinstance(annotation, dict):
        raise AnchorImportError(path, place, where, f"must be an object, got {type(annotation).__name__}")
    if annotation.get("was_cancelled"):
        return None
    annotator = annotator_of(annotation.get("completed_by"))
    if annotator is None:
        raise AnchorImportError(path, place, f"{where}.completed_by", "missing: who made this annotation?")
    results = annotation.get("result") or []
    if not isinstance(results, list):
        raise AnchorImportError(path, place, f"{where}.result", f"must be a list, got {type(results).__name__}")
    sides, notes, unread = [], [], None
    for k, result in enumerate(results):
        field = f"{where}.result[{k}]"
        if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
            raise AnchorImportError(path, place, field, "a result must be an object with a 'value' object")
        kind, value = result.get("type"), result["value"]
        if kind == "textarea":
            notes.extend(t for t in value.get("text") or [] if isinstance(t, str) and t.strip())
            continue
        if options.question is not None and result.get("from_name") != options.question:
            continue
        side, problem = _side(kind, value, keys, items)
        if side is not None:
            sides.append((side, field))
        elif problem is not None and unread is None:
            unread = (f"{field}.value", problem)
    if not sides:
        if unread is not None:
            raise AnchorImportError(path, place, *unread)
        return None
    if len({s for s, _ in sides}) > 1:
        raise AnchorImportError(path, place, sides[1][1], f"contradicts {sides[0][1]} ({sides[1][0]} vs "
                                                          f"{sides[0][0]}); pass --question FROM_NAME to pick one")
    return DraftLabel(rename(annotator, options), sides[0][0], "human", "\n".join(notes) or None)


def _side(kind: Any, value: dict[str, Any], keys, items) -> tuple[str | None, str | None]:
    """(A/B/tie/skip, None) for a preference result; (None, why) for one that should be but cannot be read;
    (None, None) for a result that is not about the preference."""
    if kind == "pairwise":
        selected = value.get("selected")
        if selected in _SIDES:
            return _SIDES[selected], None
        return None, f"selected must be left or right, got {selected!r}"
    if kind == "choices":
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            return None, f"choices must be a non-empty list, got {choices!r}"
        read = {read_side(c, keys) for c in choices}
        if None in read or len(read) != 1:
            return None, (f"{choices!r} is not one side: expected a response key ({', '.join(keys or ('A', 'B'))}), "
                          "A, B, tie, skip, left, right, equal or draw")
        return read.pop(), None
    if kind == "ranker":
        ranking = value.get("ranker")
        if isinstance(ranking, dict):
            return None, "Ranker buckets cannot be read as a preference; rank the two items without buckets"
        if items is None:
            return None, "a Ranker result needs data.items (the ranked List)"
        if not isinstance(ranking, list) or not ranking:
            return None, f"ranker must be a non-empty list of item ids, got {ranking!r}"
        ids = [i[0] for i in items]
        if ranking[0] not in ids:
            return None, f"ranks unknown item {ranking[0]!r}; data.items has {ids}"
        return ("A" if ranking[0] == ids[0] else "B"), None
    return None, None
