"""The pieces every option dataclass is built from: a field with a help text, a check that names the field, the error
both raise, and the one way a mapping from YAML becomes such a dataclass.

Why one module: the loop config, each judge's options and each verifier's options are all dataclasses read from YAML
by name. A user's typo must get the same answer everywhere (``judge.options.modle: unknown option (did you mean
'model'?)``), and a bad value must name its full path, however deeply the option was nested.

    threshold: float = help_field("Minimum judge-human kappa.", 0.72)
    check(0 <= self.threshold <= 1, "calibration.threshold", "must be in [0, 1]")
    opts = build_options(LocalJudgeOptions, {"batch_size": 8}, "judge.options")
"""

from __future__ import annotations

import dataclasses
import difflib
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


def build_options(cls: type[T], data: Mapping[str, Any] | None, where: str,
                  error_type: type[ConfigError] = ConfigError) -> T:
    """``cls(**data)`` for an options dataclass, with every problem named under ``where``.

    Unknown keys are refused with the closest known name; a ``ConfigError`` raised by the class's ``__post_init__``
    (whose ``field_path`` is the bare field name) comes back prefixed with ``where``.
    """
    data = dict(data or {})
    names = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    for key in data:
        if key not in names:
            err = unknown_key(str(key), names, where)
            raise error_type(err.field_path, err.problem)
    try:
        return cls(**data)
    except ConfigError as err:
        if where and err.field_path.startswith(where):  # the class named its full path already
            raise
        raise err.under(where) from None
    except TypeError as err:  # a required field is missing
        missing = [f for f in dataclasses.fields(cls) if f.name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            name, why = missing[0].name, missing[0].metadata.get("help")
            raise ConfigError(f"{where}.{name}" if where else name, "is required" + (f" ({why})" if why else "")) \
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
