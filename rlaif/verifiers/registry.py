"""Verifier kinds by the name the config gives them, and the one way to open one.

Why a context manager for all of them: the SQL verifier holds a sandbox (a private DuckDB copy in a temp dir) and the
regex verifier a worker process; the loop opens the verifier once per run and must release it even when the run
fails. Options are checked by the kind's own options class (unknown names, types, ranges) and paths resolve against
``base_dir``, the config file's folder.

    with open_verifier("python_tests", {"timeout_s": 5}, base_dir=cfg.base_dir) as verifier:
        verifier.verify(candidate_text, reference).criteria()
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from rlaif.core.fields import build_options
from rlaif.verifiers.base import KINDS, Verifier, VerifierOptionError
from rlaif.verifiers.json_schema import JsonSchemaVerifier
from rlaif.verifiers.python_tests import PythonTestsVerifier
from rlaif.verifiers.regex import RegexVerifier
from rlaif.verifiers.sql import SqlVerifier

VERIFIERS: dict[str, type[Verifier]] = {cls.kind: cls for cls in (SqlVerifier, JsonSchemaVerifier, RegexVerifier,
                                                                  PythonTestsVerifier)}
assert tuple(VERIFIERS) == KINDS, "every kind of the criteria table has exactly one verifier class"


def verifier_class(kind: str) -> type[Verifier]:
    try:
        return VERIFIERS[kind]
    except KeyError:
        raise VerifierOptionError("verifier.kind", f"unknown verifier kind {kind!r}; one of {', '.join(KINDS)}") \
            from None


def verifier_options(kind: str, options: Mapping[str, Any] | None) -> Any:
    """The kind's options object, checked (raises VerifierOptionError naming ``verifier.options.<name>``)."""
    return build_options(verifier_class(kind).Options, options or {}, "verifier.options", VerifierOptionError)


def validate_options(kind: str, options: Mapping[str, Any] | None) -> None:
    """Check a verifier's options without opening anything (config validation)."""
    verifier_options(kind, options)


@contextmanager
def open_verifier(kind: str, options: Mapping[str, Any] | None = None,
                  base_dir: Path | str = ".") -> Iterator[Verifier]:
    """Yield a verifier with ``verify(candidate_text, reference)``; raises VerifierOptionError on bad options."""
    opts = verifier_options(kind, options)
    with verifier_class(kind).open(opts, Path(base_dir)) as verifier:
        yield verifier
