"""What the annotation-tool importers share: finding the prompt and the two responses, and reading a choice as a side.

Why shared: Label Studio task data and Argilla record fields are both free-form dictionaries named by whoever built
the project. Both importers look for the same names, in the same order, and read a chosen option the same way: a
choice naming a response's key (``answer1``, ``response_b``, ``Response 1``) picks that response, and the label
words every file may use (A, B, tie, skip, left, right, equal, draw) mean what they mean everywhere.

    keys = response_keys(data.keys(), options)      # ("answer1", "answer2")
    side = read_side("Answer 1", keys)              # "A"
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from rlaif.anchors.formats.errors import AnchorImportError
from rlaif.anchors.formats.fields import read_label
from rlaif.anchors.formats.options import ImportOptions

PROMPT_KEYS = ("prompt", "question", "instruction", "input", "query", "text", "context")
RESPONSE_STEMS = ("response", "answer", "completion", "output", "text", "generation", "reply", "candidate")
SIDE_SUFFIXES = (("a", "b"), ("1", "2"), ("left", "right"), ("0", "1"))
_EXTRA_TIE_WORDS = {"both", "same", "bothequal", "equallygood", "equallybad", "neither", "bothbad", "bothgood"}


def squash(name: str) -> str:
    """A key or option compared loosely: lower case, without spaces, ``_``, ``-`` or dots."""
    return re.sub(r"[\s_\-.]+", "", str(name).lower())


def prompt_key(keys: Iterable[str], options: ImportOptions) -> str | None:
    """The key holding the prompt: the option, else the first of PROMPT_KEYS present (compared loosely)."""
    keys = list(keys)
    if options.prompt_field is not None:
        return options.prompt_field if options.prompt_field in keys else None
    by_squash = {squash(k): k for k in keys}
    return next((by_squash[name] for name in PROMPT_KEYS if name in by_squash), None)


def require_prompt_key(mapping: dict[str, Any], options: ImportOptions, path, place: str, where: str) -> str:
    """:func:`prompt_key` of a task's ``data`` / a record's ``fields`` (``where``), or the error naming the flag."""
    key = prompt_key(mapping, options)
    if key is None:
        wanted = f"{options.prompt_field!r}" if options.prompt_field else "prompt, question, instruction, input, ..."
        raise AnchorImportError(path, place, where, f"no prompt ({wanted}) among the {where} keys {sorted(mapping)}; "
                                                    "pass --prompt-field KEY")
    return key


def response_keys(keys: Iterable[str], options: ImportOptions) -> tuple[str, str] | None:
    """The keys of the left/first and right/second responses: the option, else a detected pair (None if none)."""
    keys = list(keys)
    if options.response_fields is not None:
        return options.response_fields if all(k in keys for k in options.response_fields) else None
    by_squash = {squash(k): k for k in keys}
    if "left" in by_squash and "right" in by_squash:
        return by_squash["left"], by_squash["right"]
    for stem in RESPONSE_STEMS:
        for first, second in SIDE_SUFFIXES:
            if stem + first in by_squash and stem + second in by_squash:
                return by_squash[stem + first], by_squash[stem + second]
            plural = stem + "s"  # responses_1/responses_2 are rare but seen
            if plural + first in by_squash and plural + second in by_squash:
                return by_squash[plural + first], by_squash[plural + second]
    return None


def read_side(value: Any, keys: tuple[str, str] | None) -> str | None:
    """A, B, tie or skip for a chosen option: a response key's name, a label word, a tie synonym; else None."""
    if not isinstance(value, str):
        return None
    word = squash(value)
    if keys is not None:
        names = [squash(k) for k in keys]
        if word == names[0]:
            return "A"
        if word == names[1]:
            return "B"
    label = read_label(value)
    if label is not None:
        return label
    if word in _EXTRA_TIE_WORDS:
        return "tie"
    for stem in RESPONSE_STEMS + ("option", "assistant", "choice"):
        for first, second in SIDE_SUFFIXES[:3]:
            if word == stem + first:
                return "A"
            if word == stem + second:
                return "B"
    return None


def rename(annotator: str, options: ImportOptions) -> str:
    return options.annotator_names.get(annotator, annotator)
