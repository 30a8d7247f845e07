"""Argilla 2.x record exports: one anchor per record, one label per submitted answer to the preference question.

Both export shapes of the Argilla 2.x SDK are read (argilla ``records/_resource.py`` ``Record.to_dict`` and
``records/_io/_generic.py`` ``GenericIO.to_list``; docs.argilla.io "Importing and exporting datasets and records"):

* nested, from ``dataset.records.to_json(path)`` / ``to_list(flatten=False)`` (a JSON array)::

    {"id": "r1", "fields": {"prompt": "...", "response_a": "...", "response_b": "..."}, "metadata": {...},
     "responses": {"preference": [{"value": "response_a", "user_id": "9c1f...", "status": "submitted"}]},
     "suggestions": {...}, "vectors": {...}, "status": "completed", "_server_id": "..."}

* flattened, from ``to_list(flatten=True)`` and the Hugging Face Hub export ``to_datasets()``/``to_hub()`` (JSON,
  JSONL or Parquet): fields and metadata as top-level columns, and per question ``<q>.responses`` (values),
  ``<q>.responses.users`` and ``<q>.responses.status`` as parallel lists.

An answer counts when its status is ``submitted`` or absent (the nested export leaves it out); ``draft`` and
``discarded`` answers do not. Values: a LabelQuestion's label (a response field's name such as ``response_a``, or
A/B/tie/skip/left/right); a RankingQuestion's ranking, either the SDK's list of options best first or the API's
``[{"value": ..., "rank": 1}, ...]`` (equal ranks are a tie). The preference question is ``question`` when given,
else the one question whose every counted answer reads as a side. Annotators are ``user-<user_id>``; suggestions
(model predictions) are not labels.

    drafts = parse_argilla(records, Path("records.json"), ImportOptions(question="preference"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.anchors.formats.errors import AnchorImportError
from rlaif.anchors.formats.fields import common, response, text
from rlaif.anchors.formats.options import ImportOptions
from rlaif.anchors.formats.tabular import render_messages
from rlaif.anchors.formats.tool_fields import read_side, rename, require_prompt_key, response_keys
from rlaif.anchors.sets import AnchorDraft, DraftLabel

COUNTED = (None, "submitted")
NOT_COUNTED = ("draft", "discarded")
_RECORD_KEYS = ("id", "status", "_server_id")
_FLAT = ".responses"


def is_argilla(record: dict[str, Any]) -> bool:
    nested = isinstance(record.get("fields"), dict) and "responses" in record
    return nested or any(isinstance(k, str) and k.endswith(_FLAT) for k in record)


def parse_argilla(records: list[tuple[str, dict[str, Any]]], path: Path,
                  options: ImportOptions) -> list[AnchorDraft]:
    rows = [_normalize(record, path, place) for place, record in records]
    items = [_item(row, path, options) for row in rows]
    question = _preference_question(rows, items, path, options)
    return [_draft(row, item, question, path, options) for row, item in zip(rows, items)]


# ---------------------------------------------------------------------------------------------------------------------


def _normalize(record: dict[str, Any], path: Path, place: str) -> dict[str, Any]:
    """{place, id, fields, metadata, answers: {question: [(field, value, user, status, status field)]}}."""
    if record.get("id") is not None:
        place = f"{place} (id {record['id']})"
    if not is_argilla(record):
        raise AnchorImportError(path, place, "fields", "not an Argilla record: expected 'fields' and 'responses' "
                                                       "(or flattened '<question>.responses' columns)")
    answers: dict[str, list[tuple[str, Any, Any, Any, str]]] = {}
    if isinstance(record.get("fields"), dict):
        fields, metadata = record["fields"], record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise AnchorImportError(path, place, "metadata", f"must be an object, got {type(metadata).__name__}")
        responses = record.get("responses") or {}
        if not isinstance(responses, dict):
            raise AnchorImportError(path, place, "responses", f"must be an object of question -> answers, "
                                                              f"got {type(responses).__name__}")
        for q, listed in responses.items():
            if not isinstance(listed, list):
                raise AnchorImportError(path, place, f"responses.{q}", "must be a list of answers")
            for i, a in enumerate(listed):
                if not isinstance(a, dict) or "value" not in a:
                    raise AnchorImportError(path, place, f"responses.{q}[{i}]", "an answer needs a 'value'")
                answers.setdefault(q, []).append((f"responses.{q}[{i}]", a["value"], a.get("user_id"),
                                                  a.get("status"), f"responses.{q}[{i}].status"))
    else:
        questions = [k[: -len(_FLAT)] for k in record if k.endswith(_FLAT)]
        taken = {"vectors", *_RECORD_KEYS}
        for q in questions:
            values, users, statuses = (record.get(q + s) for s in (_FLAT, _FLAT + ".users", _FLAT + ".status"))
            taken |= {q + _FLAT, q + _FLAT + ".users", q + _FLAT + ".status"}
            values, users = values or [], users or []
            statuses = statuses or [None] * len(values)
            if not (isinstance(values, list) and isinstance(users, list) and isinstance(statuses, list)) or not (
                    len(values) == len(users) == len(statuses)):
                raise AnchorImportError(path, place, q + _FLAT, f"{q}.responses, {q}.responses.users and "
                                                                f"{q}.responses.status must be lists of one length")
            for i, (v, u, s) in enumerate(zip(values, users, statuses)):
                answers.setdefault(q, []).append((f"{q}.responses[{i}]", v, u, s, f"{q}.responses.status[{i}]"))
        suggestion_keys = {k for k in record for q in questions if k.startswith(q + ".suggestion")}
        fields = {k: v for k, v in record.items() if k not in taken and k not in suggestion_keys}
        metadata = {}
    return {"place": place, "id": record.get("id"), "fields": fields, "metadata": metadata, "answers": answers}


def _item(row: dict[str, Any], path: Path, options: ImportOptions) -> dict[str, Any]:
    """prompt, the two responses and the keys they came from."""
    fields, place = row["fields"], row["place"]
    key = require_prompt_key(fields, options, path, place, "fields")
    value = fields[key]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):  # a ChatField
        value = render_messages([{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
                                 for m in value])
        prompt = text({key: value}, key, path, place, label=f"fields.{key}")
    else:
        prompt = text(fields, key, path, place, label=f"fields.{key}")
    keys = response_keys([k for k in fields if k != key], options)
    if keys is None:
        raise AnchorImportError(path, place, "fields", f"no pair of responses among the fields {sorted(fields)}: "
                                                       "pass --response-fields LEFT,RIGHT (the key shown left first)")
    a = response(fields, keys[0], path, place, label=f"fields.{keys[0]}")
    b = response(fields, keys[1], path, place, label=f"fields.{keys[1]}")
    return {"prompt": prompt, "a": a, "b": b, "keys": keys, "consumed": {key, *keys}}


def read_answer(value: Any, keys: tuple[str, str]) -> str | None:
    """A/B/tie/skip of a LabelQuestion label or a RankingQuestion ranking; None when it is neither."""
    if isinstance(value, str):
        return read_side(value, keys)
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, dict) and "value" in v for v in value):  # the API's [{"value", "rank"}]
        ranks = {}
        for position, v in enumerate(value):
            side = read_side(v["value"], keys)
            rank = v.get("rank", position + 1)
            if side in ("A", "B") and isinstance(rank, (int, float)) and not isinstance(rank, bool):
                ranks.setdefault(side, rank)
        if set(ranks) != {"A", "B"}:
            return None
        return "tie" if ranks["A"] == ranks["B"] else ("A" if ranks["A"] < ranks["B"] else "B")
    if all(isinstance(v, str) for v in value):  # the SDK's ranking, best first (or a one-label multi-label answer)
        sides = [read_side(v, keys) for v in value]
        if len(sides) == 1:
            return sides[0]
        return next((s for s in sides if s in ("A", "B")), None) if {"A", "B"} <= set(sides) else None
    return None


def _counted(row: dict[str, Any], question: str, path: Path) -> list[tuple[str, Any, Any]]:
    out = []
    for field, value, user, status, status_field in row["answers"].get(question, []):
        if status in NOT_COUNTED:
            continue
        if status not in COUNTED:
            raise AnchorImportError(path, row["place"], status_field,
                                    f"unknown status {status!r}: expected submitted, draft or discarded")
        out.append((field, value, user))
    return out


def _preference_question(rows, items, path: Path, options: ImportOptions) -> str | None:
    questions = list(dict.fromkeys(q for row in rows for q in row["answers"]))
    if options.question is not None:
        if options.question not in questions:
            raise AnchorImportError(path, None, None, f"--question {options.question}: no answers to it; the export "
                                                      f"has {questions or 'no answered questions'}")
        return options.question
    readable, unread = [], []
    for q in questions:
        bad = next(((row["place"], field, value) for row, item in zip(rows, items)
                    for field, value, _ in _counted(row, q, path) if read_answer(value, item["keys"]) is None), None)
        counted = any(_counted(row, q, path) for row in rows)
        if bad is None and counted:
            readable.append(q)
        elif bad is not None:
            unread.append(f"{q} ({bad[0]}: {bad[1]} = {bad[2]!r})")
    if len(readable) == 1:
        return readable[0]
    if len(readable) > 1:
        raise AnchorImportError(path, None, None, f"several questions read as preferences: {readable}; "
                                                  "pass --question NAME")
    if unread:
        raise AnchorImportError(path, None, None, "no question whose submitted answers all read as A, B, tie or a "
                                                  f"response field: {'; '.join(unread)}; pass --question NAME to "
                                                  "see the first answer that cannot be read")
    return None  # no submitted answers at all: the items import unlabelled


def _draft(row, item, question: str | None, path: Path, options: ImportOptions) -> AnchorDraft:
    labels, seen = [], set()
    for field, value, user in (_counted(row, question, path) if question else []):
        side = read_answer(value, item["keys"])
        if side is None:
            raise AnchorImportError(path, row["place"], field, f"{value!r} is not a preference: expected a response "
                                                               f"field ({', '.join(item['keys'])}), A, B, tie, skip, "
                                                               "or a ranking of the two")
        if user in (None, ""):
            raise AnchorImportError(path, row["place"], field, "an answer without a user_id")
        annotator = rename(f"user-{user}", options)
        if annotator in seen:
            raise AnchorImportError(path, row["place"], field, f"{annotator} answered {question!r} twice")
        seen.add(annotator)
        labels.append(DraftLabel(annotator, side, "human"))
    flat = {**row["metadata"], **{k: v for k, v in row["fields"].items() if k not in item["consumed"]}}
    if row["id"] is not None:
        flat["argilla_record_id"] = row["id"]
    shared = common(flat, set(), path, row["place"])
    return AnchorDraft(item["prompt"], item["a"], item["b"], shared["slice"], shared["source"], shared["reference"],
                       shared["extra"], tuple(labels))
