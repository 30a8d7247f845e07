"""The pieces every config dataclass is built from: a field with a help text, a check that names the field, and the
error both raise. Kept apart from ``rlaif.config`` so stage configs living beside their engines (the calibration
gate's, say) can use them without an import cycle.

    threshold: float = help_field("Minimum judge-human kappa.", 0.72)
    check(0 <= self.threshold <= 1, "calibration.threshold", "must be in [0, 1]")
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the field."""

    def __init__(self, field_path: str, problem: str, source: str | None = None):
        self.field_path = field_path
        self.problem = problem
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{field_path}: {problem}")


def help_field(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    """A dataclass field whose help text the CLI, the Runs page and ``describe_fields`` show."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def check(condition: bool, field_path: str, problem: str) -> None:
    if not condition:
        raise ConfigError(field_path, problem)
