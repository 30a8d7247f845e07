"""The three table shapes: preference pairs (TRL's), HH-RLHF transcripts, and pairwise files with label columns.

Why together: all three are one record per row of a JSONL/CSV/Parquet file, told apart by their columns
(:func:`detect_table_format`), and each record becomes one :class:`~rlaif.anchors.sets.AnchorDraft` on its own. The
rules of each shape are in :mod:`rlaif.anchors.importers`' docstring; which pairwise columns are labels is decided
once per file by :mod:`rlaif.anchors.formats.columns`.

    draft = parse_preference({"prompt": "q", "chosen": "good", "rejected": "bad"}, Path("p.jsonl"), "line 1")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rlaif.anchors.formats.columns import LabelPlan
from rlaif.anchors.formats.errors import AnchorImportError
from rlaif.anchors.formats.fields import annotator_kind, common, read_label, response, text
from rlaif.anchors.sets import AnchorDraft, DraftLabel, chosen_goes_first

_ASSISTANT = "Assistant:"


def detect_table_format(record: dict[str, Any], path: str | Path = "<record>", place: str | None = None) -> str:
    """Which of the three table shapes a record (the first of a file) has, from its columns."""
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
        "chosen + rejected (HH-RLHF transcripts), prompt + response_a + response_b [+ label columns] (pairwise), "
        "a Label Studio JSON export (data + annotations) or an Argilla export (fields + responses); "
        "see `rlaif anchors import --help`")


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
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(_ASSISTANT)
    if cut < 0:
        raise ValueError("chosen and rejected share no dialogue prefix ending in 'Assistant:'")
    cut += len(_ASSISTANT)
    prompt = chosen[:cut].lstrip("\r\n")

    def rest_of(dialogue: str) -> str:
        return dialogue[cut:].removeprefix(" ")

    return prompt, rest_of(chosen), rest_of(rejected)


# ---------------------------------------------------------------------------------------------------------------------
# preference pairs and HH-RLHF transcripts: the known preference is a label of the oracle "dataset:<file name>"


def _messages(value: Any, path, place, key: str) -> list[dict[str, str]]:
    if not value:
        raise AnchorImportError(path, place, key, "an empty message list")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise AnchorImportError(path, place, f"{key}[{i}]",
                                    "a chat message must be an object with string 'role' and 'content'")
    return value


def _preference_label(path: Path, a_is_chosen: bool) -> tuple[DraftLabel, ...]:
    return (DraftLabel(f"dataset:{path.name}", "A" if a_is_chosen else "B", "oracle"),)


def _prompt_of(record: dict[str, Any], earlier: dict[str, Any], path, place) -> tuple[str, dict[str, Any]]:
    """The prompt text (and the original message list, kept in extra) of a preference record."""
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
        return render_messages(earlier["chosen"]), {"prompt_messages": earlier["chosen"]}
    if isinstance(prompt_value, str):
        if not prompt_value.strip():
            raise AnchorImportError(path, place, "prompt", "must not be blank")
        return prompt_value, {}
    if isinstance(prompt_value, list):
        messages = _messages(prompt_value, path, place, "prompt")
        return render_messages(messages), {"prompt_messages": messages}
    raise AnchorImportError(path, place, "prompt", f"must be a string or a list of chat messages, "
                                                   f"got {type(prompt_value).__name__}")


def parse_preference(record: dict[str, Any], path: Path, place: str) -> AnchorDraft:
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
    prompt, extra = _prompt_of(record, earlier, path, place)
    shared = common(record, {"prompt", "chosen", "rejected"}, path, place)
    chosen, rejected = responses["chosen"], responses["rejected"]
    first = chosen_goes_first(prompt, chosen, rejected)
    return AnchorDraft(prompt, chosen if first else rejected, rejected if first else chosen, shared["slice"],
                       shared["source"], shared["reference"], {**shared["extra"], **extra},
                       _preference_label(path, first))


def parse_hh(record: dict[str, Any], path: Path, place: str) -> AnchorDraft:
    chosen = text(record, "chosen", path, place)
    rejected = text(record, "rejected", path, place)
    try:
        prompt, chosen_response, rejected_response = split_hh_transcripts(chosen, rejected)
    except ValueError as err:
        raise AnchorImportError(path, place, "chosen", str(err)) from None
    shared = common(record, {"chosen", "rejected"}, path, place)
    first = chosen_goes_first(prompt, chosen_response, rejected_response)
    a, b = (chosen_response, rejected_response) if first else (rejected_response, chosen_response)
    return AnchorDraft(prompt, a, b, shared["slice"], shared["source"], shared["reference"], shared["extra"],
                       _preference_label(path, first))


# ---------------------------------------------------------------------------------------------------------------------
# pairwise files: labels in the columns the plan names


def parse_pairwise(record: dict[str, Any], path: Path, place: str, plan: LabelPlan) -> AnchorDraft:
    prompt = text(record, "prompt", path, place)
    a = response(record, "response_a", path, place)
    b = response(record, "response_b", path, place)
    labels = []
    for column, annotator in plan.labels.items():
        value = record.get(column)
        note_column = plan.notes.get(annotator)
        note = text(record, note_column, path, place, required=False) if note_column else None
        if value is None or value == "":
            if note is not None:
                raise AnchorImportError(path, place, note_column, "a note without a label")
            continue
        label = read_label(value)
        if label is None:
            raise AnchorImportError(path, place, column, f"label must be A, B, tie or skip, got {value!r}")
        labels.append(DraftLabel(annotator, label, annotator_kind(annotator), note))
    shared = common(record, {"prompt", "response_a", "response_b"} | plan.consumed, path, place)
    return AnchorDraft(prompt, a, b, shared["slice"], shared["source"], shared["reference"], shared["extra"],
                       tuple(labels))
