"""What every verifier shares: the protocol, the one result type, the table of criteria each kind produces, and the
small helpers the kinds have in common.

Why one shape: the verifier judge, the pair builder, the store and evaluation only ever call
``verify(candidate_text, reference)`` and read ``.criteria()`` (criterion name -> passed) and ``.to_dict()`` off the
result, whatever the task. Why one table: the rubric validates ``verifier:`` names against it, evaluation reads the
success criterion from it, and the workbench lists it; a kind's criteria are written here and nowhere else.

    result = verifier.verify('{"a": 1}', '{"a": 1}'); result.criteria()   # {'json_parses': True, ...}
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from rlaif.core.fields import ConfigError

#: Criterion keys each verifier kind produces, in rubric order: the one table of kinds and their criteria.
CRITERIA: dict[str, tuple[str, ...]] = {
    "sql": ("sql_executes", "sql_result_matches", "sql_allowlisted_views", "sql_format"),
    "json_schema": ("json_parses", "json_schema_valid", "json_matches_reference"),
    "regex": ("regex_match",),
    "python_tests": ("py_compiles", "py_tests_pass"),
}
KINDS = tuple(CRITERIA)
#: Every criterion a rubric may attach with ``verifier:``.
CRITERION_NAMES = frozenset(name for names in CRITERIA.values() for name in names)
#: The criterion that says "the task was solved", by preference: what evaluation's execution_accuracy should read.
SUCCESS_CRITERIA = ("sql_result_matches", "py_tests_pass", "json_matches_reference", "json_schema_valid",
                    "regex_match")


def task_success(checks: Mapping[str, bool]) -> bool | None:
    """Whether the candidate solved the task, from the first success criterion present; ``None`` without any."""
    for name in SUCCESS_CRITERIA:
        if name in checks:
            return bool(checks[name])
    return None


class VerifierOptionError(ConfigError):
    """A verifier option is unknown, missing or out of range; the message names it (``verifier.options.x``)."""

    def __init__(self, name: str, problem: str, source: str | None = None):
        path = name if name.startswith("verifier") else (f"verifier.options.{name}" if name else "verifier.options")
        super().__init__(path, problem, source)


@dataclass(frozen=True)
class VerifierResult:
    """One verifier's verdict on one candidate.

    ``checks`` holds only the criteria that could be assessed for this prompt (a JSON task without an expected value
    has no ``json_matches_reference``); the rubric scores the criteria present. ``error``/``error_kind`` describe
    why the candidate failed (``None`` when it passed); ``reference_error`` says the *reference* was unusable, which
    fails the dependent criteria for every candidate alike. ``details`` are kind-specific and JSON-serialisable
    (the SQL verifier's ``sql`` and ``relations``, the unit-test verifier's output).
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


class Verifier(ABC):
    """A kind of hard check. Subclasses set ``kind`` and ``Options`` (a dataclass with help texts) and implement
    ``verify``; ``open`` yields a ready verifier and releases what it holds (a sandbox, a worker process)."""

    kind: ClassVar[str]
    Options: ClassVar[type]

    @classmethod
    def open(cls, options: Any, base_dir: Path) -> AbstractContextManager["Verifier"]:
        """A context manager yielding a verifier for ``options``; paths in them resolve against ``base_dir``."""
        return nullcontext(cls(options))  # type: ignore[call-arg]

    @abstractmethod
    def verify(self, candidate_text: str, reference: str | None) -> VerifierResult:
        """The criteria of one candidate against its prompt's reference; never raises for a bad candidate."""


def verify_many(verifier: Verifier, pairs: Sequence[tuple[str, str | None]], max_workers: int = 4
                ) -> list[VerifierResult]:
    """Verify ``(candidate_text, reference)`` pairs on ``max_workers`` threads; results in input order."""
    pairs = list(pairs)
    if max_workers <= 1 or len(pairs) <= 1:
        return [verifier.verify(c, r) for c, r in pairs]
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"verify-{verifier.kind}") as pool:
        return list(pool.map(lambda p: verifier.verify(*p), pairs))


# ---------------------------------------------------------------------------------------------------------------------
# helpers the kinds share

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_fenced(text: str, languages: tuple[str, ...]) -> str | None:
    """The body of the first fenced block whose info string is one of ``languages`` (case-insensitive) or empty."""
    for m in _FENCE.finditer(text or ""):
        if m.group(1).lower() in languages or not m.group(1):
            return m.group(2)
    return None


def check_number(name: str, value: Any, minimum: float = 0.0, integer: bool = False) -> None:
    """Raise unless ``value`` is a number (an int when ``integer``) strictly above ``minimum``."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > minimum:
        raise VerifierOptionError(name, f"must be {'an integer' if integer else 'a number'} > {minimum:g}, "
                                        f"got {value!r}")


def resolve_path(path: str, base_dir: Path) -> Path:
    """A path from the options, relative to the config file's folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p
