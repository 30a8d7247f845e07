"""Rubric editing helpers: what changed between two versions, and which verdicts the change flips.

Why "which verdicts flip": a rubric edit is only worth a new version if it changes decisions. Re-judging a sample of
stored pairs under both versions with the same judge shows exactly the pairs whose winner moved, before anyone spends
a full run on the new wording.

    diff = diff_rubrics(old, new); flips = rejudge_flips(store, judge, run_id, old, new, sample=20)
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any

from rlaif.judges import Comparison, Judge
from rlaif.rubric import Criterion, Rubric

_FIELDS = ("description", "weight", "hard", "verifier")


@dataclass(frozen=True)
class CriterionChange:
    criterion: str
    change: str  # added | removed | changed | same
    fields: dict[str, tuple[Any, Any]]  # field -> (old, new), only for changed


@dataclass(frozen=True)
class RubricDiff:
    criteria: list[CriterionChange]
    principles_added: list[str]
    principles_removed: list[str]
    description: tuple[str, str] | None  # (old, new) when the rubric's own description changed
    side_by_side: list[tuple[str, str, str]]  # (old line, new line, tag: equal | replace | delete | insert)

    @property
    def changed(self) -> bool:
        return bool(self.principles_added or self.principles_removed or self.description
                    or any(c.change != "same" for c in self.criteria))

    def rows(self) -> list[dict[str, Any]]:
        """One row per criterion, for a table."""
        return [{"criterion": c.criterion, "change": c.change,
                 "details": "; ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in c.fields.items())}
                for c in self.criteria]


def _criterion_fields(c: Criterion) -> dict[str, Any]:
    return {k: v for k, v in asdict(c).items() if k in _FIELDS}


def diff_rubrics(old: Rubric, new: Rubric) -> RubricDiff:
    old_by_name = {c.name: c for c in old.criteria}
    new_by_name = {c.name: c for c in new.criteria}
    changes = []
    for name in [c.name for c in old.criteria] + [c.name for c in new.criteria if c.name not in old_by_name]:
        if name not in new_by_name:
            changes.append(CriterionChange(name, "removed", {}))
        elif name not in old_by_name:
            changes.append(CriterionChange(name, "added", {}))
        else:
            a, b = _criterion_fields(old_by_name[name]), _criterion_fields(new_by_name[name])
            fields = {k: (a[k], b[k]) for k in _FIELDS if a[k] != b[k]}
            changes.append(CriterionChange(name, "changed" if fields else "same", fields))
    return RubricDiff(changes, [p for p in new.principles if p not in old.principles],
                      [p for p in old.principles if p not in new.principles],
                      (old.description, new.description) if old.description != new.description else None,
                      side_by_side(old.render(), new.render()))


def side_by_side(old_text: str, new_text: str) -> list[tuple[str, str, str]]:
    """Aligned line pairs of two texts, tagged like difflib's opcodes."""
    a, b = old_text.splitlines(), new_text.splitlines()
    rows = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        left, right = a[i1:i2], b[j1:j2]
        for k in range(max(len(left), len(right))):
            rows.append((left[k] if k < len(left) else "", right[k] if k < len(right) else "", tag))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# re-judging


@dataclass(frozen=True)
class Rejudged:
    pair_id: str
    prompt_id: str | None
    prompt: str
    a: str  # the pair's chosen side
    b: str  # the pair's rejected side
    winner_old: str
    winner_new: str
    rationale_old: str
    rationale_new: str

    @property
    def flipped(self) -> bool:
        return self.winner_old != self.winner_new


def sample_comparisons(store, run_id: str, iteration: int | None = None,
                       sample: int = 20) -> list[tuple[str, Comparison]]:
    """Up to ``sample`` kept pairs of a run as comparisons (A = chosen), with the raw prompt and its reference.

    Pair ids are hashes, so the first ids in order are a fair sample. The candidates' texts are used when the store
    has them (the pair's own text carries the policy's template); otherwise the pair's text is.
    """
    run = store.runs.get(run_id)
    if run is None:
        raise LookupError(f"no run {run_id!r}")
    pairs = store.pairs.page(run_id=run_id, iteration=iteration, kept=True, limit=sample)
    prompts = {p["prompt_id"]: p for p in store.datasets.prompts(run["train_dataset_id"])} \
        if run.get("train_dataset_id") else {}
    candidates: dict[str, str] = {}
    for it in sorted({p["iteration"] for p in pairs}):
        candidates.update({c["candidate_id"]: c["text"] for c in store.candidates.list(run_id, iteration=it)})
    out = []
    for p in pairs:
        source = prompts.get(p["prompt_id"], {})
        a = candidates.get(p.get("chosen_candidate") or "", p["chosen"])
        b = candidates.get(p.get("rejected_candidate") or "", p["rejected"])
        out.append((p["pair_id"], Comparison(source.get("prompt", p["prompt"]), a, b, source.get("reference"),
                                             p["prompt_id"])))
    return out


def rejudge_flips(judge: Judge, comparisons: list[tuple[str, Comparison]], old: Rubric, new: Rubric) -> list[Rejudged]:
    """Judge every comparison under both rubric versions (one batched call each) and pair up the verdicts."""
    items = [c for _, c in comparisons]
    before = judge.compare(items, old) if items else []
    after = judge.compare(items, new) if items else []
    return [Rejudged(pair_id, c.prompt_id, c.prompt, c.a, c.b, v0.winner, v1.winner, v0.rationale, v1.rationale)
            for (pair_id, c), v0, v1 in zip(comparisons, before, after)]
