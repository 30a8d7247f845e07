"""The one error every anchor format raises: it names the file, the place (line/row/task/record N) and the field.

Why its own module: every format module raises it and :mod:`rlaif.anchors.importers` re-exports it; defined here, below
all of them, it creates no import loop. It is a :class:`~rlaif.datasets.DatasetError` (a ValueError), so the CLI's
one error handler prints it as one line with exit code 2.

    raise AnchorImportError(path, "line 7", "chosen", "missing")   # anchors.jsonl: line 7: field 'chosen': missing
"""

from __future__ import annotations

import re
from pathlib import Path

from rlaif.datasets import DatasetError

_NUMBERED = re.compile(r"^(?:line|row|task|record) (\d+)")


class AnchorImportError(DatasetError):
    """A file cannot be imported; the message names file, place (line/row/task/record N) and field."""

    def __init__(self, path: str | Path, place: str | None, field: str | None, problem: str):
        self.path, self.place, self.field, self.problem = str(path), place, field, problem
        match = _NUMBERED.match(place or "")
        self.line = int(match.group(1)) if match else None
        parts = [str(path)] + ([place] if place else []) + ([f"field {field!r}"] if field else []) + [problem]
        ValueError.__init__(self, ": ".join(parts))
