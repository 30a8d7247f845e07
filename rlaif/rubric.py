"""Rubrics: weighted criteria (hard or soft, optionally backed by a verifier) and constitution principles.

A rubric is a versioned artifact: its version is the hash of its content, so a verdict, a pair and a manifest can
name exactly which wording produced them, and editing one word makes a new version (the judge cache misses).

    rubric = load_rubric("sample_data/harbor_sql/rubric.yaml"); rubric.version
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlaif.verifiers.base import CRITERION_NAMES
from store.content_hash import content_hash


class RubricError(ValueError):
    """A rubric file or body is malformed; the message names the file and field."""


@dataclass(frozen=True)
class Criterion:
    name: str
    description: str
    weight: float = 1.0
    hard: bool = False
    verifier: str | None = None


@dataclass(frozen=True)
class Rubric:
    name: str
    criteria: tuple[Criterion, ...]
    principles: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "criteria": [asdict(c) for c in self.criteria],
            "principles": list(self.principles),
        }

    @property
    def version(self) -> str:
        """sha256 of the canonical JSON body: the same id the store files it under."""
        return content_hash(self.to_dict())

    @property
    def hard_verifiers(self) -> set[str]:
        return {c.verifier for c in self.criteria if c.hard and c.verifier}

    @property
    def verifier_weights(self) -> dict[str, float]:
        return {c.verifier: c.weight for c in self.criteria if c.verifier}

    def score(self, checks: dict[str, bool]) -> float:
        """Graded score in [0, 1] from verifier checks, for ranking candidates.

        Any candidate passing every hard criterion scores above 0.5 and any candidate failing one scores below it,
        so correctness always outranks polish; within each band the weighted share of satisfied criteria orders them.
        Criteria without a verifier (judged by an LLM) are ignored here.
        """
        scored = [c for c in self.criteria if c.verifier and c.verifier in checks]
        if not scored:
            return 0.5
        total = sum(c.weight for c in scored) or float(len(scored))
        share = sum((c.weight if total else 1.0) for c in scored if checks[c.verifier]) / total
        hard_ok = all(checks[c.verifier] for c in scored if c.hard)
        return 0.5 + 0.5 * share if hard_ok else 0.5 * share

    def render(self) -> str:
        """The rubric as a judge prompt shows it: numbered criteria, then principles."""
        lines = [f"Rubric: {self.name}"] + ([self.description] if self.description else [])
        for i, c in enumerate(self.criteria, start=1):
            kind = "hard requirement" if c.hard else f"weight {c.weight:g}"
            lines.append(f"R{i}. {c.name} ({kind}): {c.description}")
        if self.principles:
            lines.append("Principles:")
            lines.extend(f"- {p}" for p in self.principles)
        return "\n".join(lines)


def rubric_from_dict(data: Any, source: str = "<rubric>") -> Rubric:
    if not isinstance(data, dict):
        raise RubricError(f"{source}: must be a mapping with name and criteria")
    unknown_top = set(data) - {"name", "description", "criteria", "principles"}
    if unknown_top:
        raise RubricError(f"{source}: unknown field(s) {sorted(unknown_top)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RubricError(f"{source}: name: must be a non-empty string")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise RubricError(f"{source}: description: must be a string")
    raw_criteria = data.get("criteria")
    if not isinstance(raw_criteria, list) or not raw_criteria:
        raise RubricError(f"{source}: criteria: must be a non-empty list")
    criteria = []
    seen = set()
    for i, c in enumerate(raw_criteria):
        where = f"{source}: criteria[{i}]"
        if not isinstance(c, dict):
            raise RubricError(f"{where}: must be a mapping")
        unknown = set(c) - {"name", "description", "weight", "hard", "verifier"}
        if unknown:
            raise RubricError(f"{where}: unknown field(s) {sorted(unknown)}")
        cname = c.get("name")
        if not isinstance(cname, str) or not cname.strip():
            raise RubricError(f"{where}.name: must be a non-empty string")
        if cname in seen:
            raise RubricError(f"{where}.name: duplicate criterion {cname!r}")
        seen.add(cname)
        desc = c.get("description", "")
        if not isinstance(desc, str):
            raise RubricError(f"{where}.description: must be a string")
        weight = c.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise RubricError(f"{where}.weight: must be a number >= 0, got {weight!r}")
        hard = c.get("hard", False)
        if not isinstance(hard, bool):
            raise RubricError(f"{where}.hard: must be true or false, got {hard!r}")
        verifier = c.get("verifier")
        if verifier is not None and verifier not in CRITERION_NAMES:
            raise RubricError(f"{where}.verifier: unknown verifier {verifier!r}; one of {sorted(CRITERION_NAMES)}")
        criteria.append(Criterion(cname, desc, float(weight), hard, verifier))
    principles = data.get("principles") or []
    if not isinstance(principles, list) or not all(isinstance(p, str) for p in principles):
        raise RubricError(f"{source}: principles: must be a list of strings")
    return Rubric(name=name, criteria=tuple(criteria), principles=tuple(principles), description=description.strip())


def load_rubric(path: str | Path) -> Rubric:
    path = Path(path)
    if not path.is_file():
        raise RubricError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RubricError(f"{path}: invalid YAML: {err}") from None
    return rubric_from_dict(data, source=str(path))


DEFAULT_RUBRIC = Rubric(
    name="default",
    criteria=(Criterion("helpful", "Answers the prompt correctly and completely.", 1.0, False, None),),
)
