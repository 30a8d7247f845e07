"""The JSON Schema verifier: does a structured-output candidate parse, fit the schema, and equal the expected value?

Criteria:

* ``json_parses`` — the candidate (stripped), or else the first fenced block tagged ``json`` (or untagged), is one
  strict JSON document (``NaN``/``Infinity`` are refused: they are not JSON).
* ``json_schema_valid`` — it validates against the schema under Draft 2020-12 (formats checked unless
  ``check_formats: false``); error messages name the JSON path (``$.items[0].price: -1 is less than the minimum
  of 0``). Present only when the prompt has a schema.
* ``json_matches_reference`` — it equals the expected document (key order ignored, ``1 == 1.0``, but ``true != 1``).
  Present only when the prompt has an expected document.

Where the schema and the expected document come from (``reference`` option; a prompt's ``reference`` is one string):

* ``expected`` (the default when the options give ``schema`` or ``schema_file``): one schema for the whole task,
  from the options; each prompt's reference is its expected JSON document.
* ``schema``: each prompt's reference is its own JSON Schema; no expected-value check.
* ``envelope`` (the default without an options schema): each reference is ``{"schema": {...}, "expected": ...}``,
  both keys optional; a missing ``schema`` falls back to the options' schema.

Remote ``$ref``s are never fetched: ``jsonschema``'s *default* registry downloads them (with a DeprecationWarning),
so the validator gets an explicit registry without a retriever. An unresolvable reference or an invalid schema is a
``reference_error``, which fails ``json_schema_valid`` for every candidate alike.

    JsonSchemaVerifier(JsonSchemaOptions(schema={"required": ["id"]})).verify('{"id": 1}', '{"id": 1}').passed
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry

from rlaif.verifiers.base import (
    Verifier,
    VerifierOptionError,
    VerifierResult,
    check_number,
    extract_fenced,
    resolve_path,
)

REFERENCE_MODES = ("expected", "schema", "envelope")


@dataclass
class JsonSchemaOptions:
    schema: dict[str, Any] | bool | None = field(default=None, metadata={"help": "The task's JSON Schema, inline."})
    schema_file: str | None = field(default=None, metadata={
        "help": "A JSON (or YAML) file holding the task's schema, relative to the config file's folder."})
    reference: str | None = field(default=None, metadata={
        "help": "What a prompt's reference holds: expected, schema or envelope (see the module docstring). "
                "Default: expected with an options schema, else envelope."})
    check_formats: bool = field(default=True, metadata={
        "help": "Check `format` keywords (date, email, ...), which Draft 2020-12 only annotates by default."})
    max_errors: int = field(default=3, metadata={"help": "Schema errors kept in the result's message."})
    max_chars: int = field(default=200_000, metadata={
        "help": "Longer candidates fail json_parses without being parsed (bounds parse time and memory)."})

    def __post_init__(self):
        if self.schema is not None and self.schema_file is not None:
            raise VerifierOptionError("schema", "give schema or schema_file, not both")
        if self.schema is not None and not isinstance(self.schema, (dict, bool)):
            raise VerifierOptionError("schema", f"must be a JSON Schema object, got {type(self.schema).__name__}")
        if self.reference is not None and self.reference not in REFERENCE_MODES:
            raise VerifierOptionError("reference", f"must be one of {', '.join(REFERENCE_MODES)}, "
                                                   f"got {self.reference!r}")
        if self.reference == "schema" and (self.schema is not None or self.schema_file is not None):
            raise VerifierOptionError("reference", "is 'schema' (each prompt brings its schema), so the options "
                                                   "must not give one too")
        if not isinstance(self.check_formats, bool):
            raise VerifierOptionError("check_formats", f"must be true or false, got {self.check_formats!r}")
        check_number("max_errors", self.max_errors, 0, integer=True)
        check_number("max_chars", self.max_chars, 0, integer=True)

    def load_schema(self, base_dir: Path) -> Any:
        """The options' schema, reading ``schema_file`` relative to ``base_dir``; ``None`` without one."""
        if self.schema_file is None:
            return self.schema
        path = resolve_path(self.schema_file, base_dir)
        if not path.is_file():
            raise VerifierOptionError("schema_file", f"file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise VerifierOptionError("schema_file", f"{path}: not valid YAML: {err}") from None
        try:
            return json.loads(text)
        except ValueError as err:
            raise VerifierOptionError("schema_file", f"{path}: not valid JSON: {err}") from None


# ---------------------------------------------------------------------------------------------------------------------
# parsing and comparing


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    """Strict JSON: raises ValueError on anything else, including NaN/Infinity and over-deep nesting."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nesting too deep") from None


def extract_json(candidate_text: str) -> tuple[Any, str]:
    """(document, where it came from: ``whole`` or ``fence``); raises ValueError naming the whole-text error."""
    text = (candidate_text or "").strip()
    try:
        return parse_json(text), "whole"
    except ValueError as whole_err:
        body = extract_fenced(text, ("json", "jsonc"))
        if body is None:
            raise ValueError(f"not JSON: {whole_err}") from None
        try:
            return parse_json(body), "fence"
        except ValueError as fence_err:
            raise ValueError(f"the ```json block is not JSON: {fence_err}") from None


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: objects ignore key order, numbers compare by value (1 == 1.0), booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------------------------------------------------
# the verifier


class JsonSchemaVerifier(Verifier):
    """Thread-safe; a compiled validator is kept per distinct schema (the options' one is compiled up front)."""

    kind = "json_schema"
    Options = JsonSchemaOptions

    @classmethod
    def open(cls, options: JsonSchemaOptions, base_dir: Path) -> AbstractContextManager["JsonSchemaVerifier"]:
        return nullcontext(cls(options, base_dir=base_dir))  # schema_file resolves against the config's folder

    def __init__(self, options: JsonSchemaOptions | None = None, base_dir: Path | str = "."):
        self.options = options or JsonSchemaOptions()
        self.schema = self.options.load_schema(Path(base_dir))
        self.mode = self.options.reference or ("expected" if self.schema is not None else "envelope")
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()
        if self.schema is not None:
            try:
                self._validator(self.schema)
            except SchemaError as err:
                where = "schema_file" if self.options.schema_file else "schema"
                raise VerifierOptionError(where, f"not a valid Draft 2020-12 schema: {err.message}") from None

    def _validator(self, schema: Any):
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            validator = self._validators.get(key)
        if validator is None:
            Draft202012Validator.check_schema(schema)
            fmt = Draft202012Validator.FORMAT_CHECKER if self.options.check_formats else None
            # An explicit (empty) registry: jsonschema's default one *fetches* remote $refs over HTTP (with only a
            # DeprecationWarning); ours resolves the bundled meta-schemas and refs inside the schema, nothing else.
            validator = Draft202012Validator(schema, format_checker=fmt, registry=Registry())
            with self._lock:
                self._validators[key] = validator
        return validator

    def _task(self, reference: str | None) -> tuple[Any, Any, bool, str | None]:
        """(schema or None, expected or None, has_expected, reference_error) for one prompt's reference."""
        if self.mode == "expected":
            if reference is None:
                return self.schema, None, False, None
            try:
                return self.schema, parse_json(reference), True, None
            except ValueError as err:
                return self.schema, None, True, f"the reference is not JSON: {err}"
        if reference is None:
            return self.schema, None, False, "no reference: this verifier expects one per prompt"
        try:
            ref = parse_json(reference)
        except ValueError as err:
            return self.schema, None, False, f"the reference is not JSON: {err}"
        if self.mode == "schema":
            return ref, None, False, None
        if not isinstance(ref, dict) or not set(ref) <= {"schema", "expected"}:
            return self.schema, None, False, 'the reference must be an object {"schema": ..., "expected": ...}'
        return ref.get("schema", self.schema), ref.get("expected"), "expected" in ref, None

    def verify(self, candidate_text: str, reference: str | None) -> VerifierResult:
        t0 = time.perf_counter()
        schema, expected, has_expected, reference_error = self._task(reference)
        checks: dict[str, bool] = {"json_parses": False}
        if schema is not None:
            checks["json_schema_valid"] = False
        if has_expected:
            checks["json_matches_reference"] = False
        error = error_kind = None
        details: dict[str, Any] = {}

        def done() -> VerifierResult:
            return VerifierResult("json_schema", checks, error, error_kind, (time.perf_counter() - t0) * 1000,
                                  reference_error, details)

        text = candidate_text or ""
        if len(text) > self.options.max_chars:
            error, error_kind = f"candidate longer than {self.options.max_chars} characters", "too_large"
            return done()
        try:
            doc, details["source"] = extract_json(text)
        except ValueError as err:
            error, error_kind = str(err), "parse"
            return done()
        checks["json_parses"] = True

        if schema is not None:
            try:
                validator = self._validator(schema)
                errors = sorted(validator.iter_errors(doc), key=lambda e: (e.json_path, e.message))
            except SchemaError as err:
                reference_error = reference_error or f"the schema is invalid: {err.message}"
                errors = None
            except Exception as err:  # an unresolvable $ref (never fetched) and the like: the reference's fault
                reference_error = reference_error or f"the schema could not be applied: {type(err).__name__}: {err}"
                errors = None
            if errors is not None:
                checks["json_schema_valid"] = not errors
                if errors:
                    shown = [f"{e.json_path}: {e.message}" for e in errors[: self.options.max_errors]]
                    more = len(errors) - len(shown)
                    error = "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")
                    error_kind = "schema"
                    details["schema_errors"] = len(errors)

        if has_expected and reference_error is None:
            checks["json_matches_reference"] = json_equal(doc, expected)
            if not checks["json_matches_reference"] and error is None:
                error, error_kind = "differs from the expected document", "mismatch"
        return done()
