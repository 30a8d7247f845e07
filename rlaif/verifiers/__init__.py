"""Verifiers: executable hard checks on a candidate against a prompt's reference, one shape for every task.

Why one shape: the verifier judge, the pair builder, the store and evaluation only ever call
``verify(candidate_text, reference)`` and read ``.criteria()`` (criterion name -> passed) and ``.to_dict()`` off the
result. The SQL verifier (``rlaif.sql_verifier``) already has that shape; the JSON Schema, regex and Python unit-test
verifiers here return a :class:`VerifierResult`, which mirrors it.

    with open_verifier("json_schema", {"schema": {"type": "object"}}, base_dir=Path(".")) as v:
        v.verify('{"a": 1}', '{"a": 1}').criteria()   # {'json_parses': True, 'json_schema_valid': True, ...}

Criteria by kind (the names rubric criteria attach with ``verifier:``): see :data:`CRITERIA`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "CRITERIA",
    "KINDS",
    "SUCCESS_CRITERIA",
    "VerifierOptionError",
    "VerifierResult",
    "extract_fenced",
    "open_verifier",
    "options_from_dict",
    "task_success",
    "validate_options",
]

#: Criterion keys each verifier kind can produce, in rubric order.
CRITERIA: dict[str, tuple[str, ...]] = {
    "sql": ("sql_executes", "sql_result_matches", "sql_allowlisted_views", "sql_format"),
    "json_schema": ("json_parses", "json_schema_valid", "json_matches_reference"),
    "regex": ("regex_match",),
    "python_tests": ("py_compiles", "py_tests_pass"),
}
KINDS = tuple(CRITERIA)
#: The criterion that says "the task was solved", by preference: what evaluation's execution_accuracy should read.
SUCCESS_CRITERIA = ("sql_result_matches", "py_tests_pass", "json_matches_reference", "json_schema_valid",
                    "regex_match")


def task_success(checks: Mapping[str, bool]) -> bool | None:
    """Whether the candidate solved the task, from the first success criterion present; ``None`` without any."""
    for name in SUCCESS_CRITERIA:
        if name in checks:
            return bool(checks[name])
    return None


class VerifierOptionError(ValueError):
    """A verifier option is unknown, missing or out of range; the message names it (``verifier.options.x``)."""

    def __init__(self, name: str, problem: str):
        self.field_path = f"verifier.options.{name}" if name else "verifier.options"
        self.problem = problem
        super().__init__(f"{self.field_path}: {problem}")


@dataclass(frozen=True)
class VerifierResult:
    """One verifier's verdict on one candidate.

    ``checks`` holds only the criteria that could be assessed for this prompt (a JSON task without an expected value
    has no ``json_matches_reference``); the rubric scores the criteria present. ``error``/``error_kind`` describe
    why the candidate failed (``None`` when it passed); ``reference_error`` says the *reference* was unusable, which
    fails the dependent criteria for every candidate alike. ``details`` are kind-specific and JSON-serialisable.
    """

    kind: str
    checks: Mapping[str, bool]
    error: str | None = None
    error_kind: str | None = None
    elapsed_ms: float = 0.0
    reference_error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def criteria(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in self.checks.items()}

    @property
    def passed(self) -> bool:
        """Every assessed criterion holds."""
        return all(self.criteria().values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "passed": self.passed,
            "error": self.error,
            "error_kind": self.error_kind,
            "elapsed_ms": round(float(self.elapsed_ms), 3),
            "reference_error": self.reference_error,
            "details": dict(self.details),
            "criteria": self.criteria(),
        }


# ---------------------------------------------------------------------------------------------------------------------
# shared helpers

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_fenced(text: str, languages: tuple[str, ...]) -> str | None:
    """The body of the first fenced block whose info string is one of ``languages`` (case-insensitive) or empty."""
    for m in _FENCE.finditer(text or ""):
        if m.group(1).lower() in languages or not m.group(1):
            return m.group(2)
    return None


def options_from_dict(cls, data: Mapping[str, Any] | None):
    """Build an options dataclass from a config mapping; an unknown key is an error that suggests the right one."""
    data = dict(data or {})
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise VerifierOptionError(str(key), f"unknown option{hint}; known: {', '.join(names)}")
    return cls(**data)


def check_number(name: str, value: Any, minimum: float = 0.0, integer: bool = False) -> None:
    """Raise unless ``value`` is a number (an int when ``integer``) strictly above ``minimum``."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > minimum:
        raise VerifierOptionError(name, f"must be {'an integer' if integer else 'a number'} > {minimum:g}, "
                                        f"got {value!r}")


def validate_options(kind: str, options: Mapping[str, Any] | None) -> None:
    """Check a verifier's options without opening anything (for config validation); raises VerifierOptionError."""
    from rlaif.verifiers.factory import options_class

    options_from_dict(options_class(kind), options)


def __getattr__(name: str):  # open_verifier lives in factory.py, which imports the verifiers, which import us
    if name == "open_verifier":
        from rlaif.verifiers.factory import open_verifier

        return open_verifier
    raise AttributeError(f"module 'rlaif.verifiers' has no attribute {name!r}")
