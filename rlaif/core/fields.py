"""The pieces every option dataclass is built from: a field with a help text, a check that names the field, the error
both raise, and the one way a mapping from YAML becomes such a dataclass.

Why one module: the loop config, each judge's options and each verifier's options are all dataclasses read from YAML
by name. A user's typo must get the same answer everywhere (``judge.options.modle: unknown option (did you mean
'model'?)``), and a bad value must name its full path, however deeply the option was nested.

    threshold: float = help_field("Minimum judge-human kappa.", 0.72)
    check(0 <= self.threshold <= 1, "calibration.threshold", "must be in [0, 1]")
    opts = build_options(LocalJudgeOptions, {"batch_size": 8}, "judge.options")
    cfg = build_options(RunConfig, yaml.safe_load(text), "", what="field")
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import field
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the field."""

    def __init__(self, field_path: str, problem: str, source: str | None = None):
        self.field_path = field_path
        self.problem = problem
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{field_path}: {problem}")

    def under(self, prefix: str) -> "ConfigError":
        """The same error for an option nested under ``prefix`` (``judge.options`` + ``model``)."""
        path = f"{prefix}.{self.field_path}" if prefix and self.field_path else (prefix or self.field_path)
        err = type(self).__new__(type(self))  # keeps the subclass (VerifierOptionError, say)
        ConfigError.__init__(err, path, self.problem, self.source)
        return err


def help_field(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    """A dataclass field whose help text the CLI, the Runs page and ``describe_fields`` show."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def check(condition: bool, field_path: str, problem: str) -> None:
    if not condition:
        raise ConfigError(field_path, problem)


def unknown_key(key: str, known: list[str], where: str, what: str = "option") -> ConfigError:
    """The error for a key no dataclass field has, suggesting the closest one."""
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}.{key}" if where else str(key), f"unknown {what}{hint}; known: {', '.join(known)}")


def type_ok(value: Any, annotation: Any) -> bool:
    """Whether a value read from YAML fits a field's annotation (bools are not numbers; ints are floats)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and all(type_ok(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def build_options(cls: type[T], data: Any, where: str, error_type: type[ConfigError] = ConfigError,
                  what: str = "option") -> T:
    """``cls(**data)`` for an options dataclass, every value checked against its annotation and every problem named
    under ``where``; nested dataclass fields are built the same way from nested mappings.

    Unknown keys are refused with the closest known name; a ``ConfigError`` raised by the class's ``__post_init__``
    with a bare field name comes back prefixed with ``where`` (one that names its full path is left alone); a missing
    required field says so with its help text.
    """
    if not isinstance(data, Mapping):
        raise error_type(where or "<root>", f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            err = unknown_key(str(key), list(known), where, what)
            raise error_type(err.field_path, err.problem)
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = build_options(annotation, value if value is not None else {}, path, error_type, what)
            continue
        if isinstance(value, str) and annotation in (float, float | None):
            try:  # YAML reads 5e-4 as a string
                value = float(value)
            except ValueError:
                pass
        if not type_ok(value, annotation):
            raise error_type(path, f"expected {_type_name(annotation)}, got {value!r}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if where and (err.field_path == where or err.field_path.startswith(where + ".")):
            raise  # the class named its full path already
        raise err.under(where) from None
    except TypeError:  # a required field is missing
        missing = [f for f in dataclasses.fields(cls) if f.name not in kwargs
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            name, why = missing[0].name, missing[0].metadata.get("help")
            raise error_type(f"{where}.{name}" if where else name, "is required" + (f" ({why})" if why else "")) \
                from None
        raise


def field_help(cls: type) -> list[tuple[str, str, Any]]:
    """(name, help, default) of every field of an options dataclass, for ``--help`` texts and forms."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        rows.append((f.name, f.metadata.get("help", ""), default))
    return rows
