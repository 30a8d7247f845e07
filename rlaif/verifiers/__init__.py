"""Verifiers: executable hard checks on a candidate against a prompt's reference, one shape for every task.

Kinds: ``sql`` (a hardened read-only DuckDB sandbox; ``sql``, ``sql_sandbox``, ``sql_parse``), ``json_schema``,
``regex`` (matches in a killable worker process) and ``python_tests`` (unit tests in a jailed subprocess). The table
of kinds and the criteria each produces is :data:`rlaif.verifiers.base.CRITERIA`.

    with open_verifier("json_schema", {"schema": {"type": "object"}}, base_dir=Path(".")) as v:
        v.verify('{"a": 1}', '{"a": 1}').criteria()   # {'json_parses': True, 'json_schema_valid': True, ...}
"""

from rlaif.verifiers.base import (
                                  CRITERIA,
                                  CRITERION_NAMES,
                                  KINDS,
                                  SUCCESS_CRITERIA,
                                  Verifier,
                                  VerifierOptionError,
                                  VerifierResult,
                                  extract_fenced,
                                  task_success,
                                  verify_many,
)
from rlaif.verifiers.registry import VERIFIERS, open_verifier, validate_options, verifier_options

__all__ = ["CRITERIA", "CRITERION_NAMES", "KINDS", "SUCCESS_CRITERIA", "VERIFIERS", "Verifier",
           "VerifierOptionError", "VerifierResult", "extract_fenced", "open_verifier", "task_success",
           "validate_options", "verifier_options", "verify_many"]
