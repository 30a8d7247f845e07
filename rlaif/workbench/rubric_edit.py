"""Rubric editing helpers: what changed between two versions, and which verdicts the change flips.

Why "which verdicts flip": a rubric edit is only worth a new version if it changes decisions. Re-judging a sample of
stored pairs under both versions with the same judge shows exactly the pairs whose winner moved, before anyone spends
a full run on the new wording. Why the page also asks :func:`rubric_reading` first: a judge that never reads the
rubric's wording (the verifier, the stub) reports "0 of N flipped" for any wording edit, and that must not read as
"the edit changes nothing".

    diff = diff_rubrics(old, new); flips = rejudge_flips(judge, sample_comparisons(store, run_id), old, new)
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from rlaif.config import RunConfig
from rlaif.judges import Comparison, Judge, JudgeSpec
from rlaif.judges.base import BuildContext
from rlaif.judges.pricing import JudgeCost, estimate_tokens
from rlaif.judges.prompting import estimate_prompt_tokens, render_judge_prompt, render_rubric
from rlaif.judges.registry import KINDS
from rlaif.loop.project import Project, judge_options, judge_spec
from rlaif.rubric import Criterion, Rubric

#: Judge kinds whose provider settings (model, base_url) the Rubrics page lets a user type in.
API_JUDGES = ("anthropic", "openai")

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
                      side_by_side(render_rubric(old), render_rubric(new)))


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


def rejudge_flips(judge: Judge, comparisons: list[tuple[str, Comparison]], old: Rubric, new: Rubric, *,
                  chunk: int | None = None, on_progress: Callable[[int, int], None] | None = None) -> list[Rejudged]:
    """Judge every comparison under both rubric versions and pair up the verdicts.

    ``chunk`` comparisons at a time (all at once by default, one batched call per version), calling
    ``on_progress(done, total)`` after each chunk so a page can show a bar while a slow (local, API) judge works.
    A judge that answers through a batch API gets whole lists anyway (``wants_whole_rounds``).
    """
    items = [c for _, c in comparisons]
    step = len(items) if not chunk or judge.wants_whole_rounds else chunk
    total, done = 2 * len(items), 0
    verdicts: dict[str, list] = {"old": [], "new": []}
    for start in range(0, len(items), max(step, 1)):
        part = items[start:start + step]
        for key, rubric in (("old", old), ("new", new)):
            verdicts[key] += judge.compare(part, rubric)
            done += len(part)
            if on_progress is not None:
                on_progress(done, total)
    return [Rejudged(pair_id, c.prompt_id, c.prompt, c.a, c.b, v0.winner, v1.winner, v0.rationale, v1.rationale)
            for (pair_id, c), v0, v1 in zip(comparisons, verdicts["old"], verdicts["new"])]


# ---------------------------------------------------------------------------------------------------------------------
# which judge, what it reads, what it costs


def rejudge_spec(cfg: RunConfig, name: str, api: dict[str, Any] | None = None) -> JudgeSpec:
    """The checked spec of judge ``name`` for re-judging: the config's options for it, with the provider settings a
    user typed on the page (``model``, ``base_url``: empty ones left out) on top. ConfigError names a bad field.

    Kinds that cache by default (API judges) get the verdict cache, as in a run: re-judging the same sample under the
    old version again, or pairs a run already judged under it, costs nothing twice."""
    options = judge_options(cfg, name)
    if name in API_JUDGES:
        options.update({k: v.strip() if isinstance(v, str) else v for k, v in (api or {}).items()
                        if v not in (None, "") and not (isinstance(v, str) and not v.strip())})
    return judge_spec(cfg, name, options).with_cache_default()


def picker_label(cfg: RunConfig, name: str) -> str:
    """How the re-judge picker names judge ``name``: marked when it ignores rubric text, so "0 of N flipped" is
    expected before anyone re-judges."""
    try:
        reads_text = rubric_reading(rejudge_spec(cfg, name))[0]
    except ValueError:  # e.g. an API judge the config gives no model yet: its kind decides
        reads_text = KINDS[name].reads_rubric_text
    return name if reads_text else f"{name} (ignores rubric text)"


def rubric_reading(spec: JudgeSpec) -> tuple[bool, str]:
    """(whether the judge reads the rubric's wording, what it reads in words), from the spec alone.

    A judge built of judges (ensemble, tiered, auto) reads the wording when any judge in it does; the wrappers
    (cache, debias, verifier_first) change nothing here.
    """
    leaves: list[JudgeSpec] = []

    def walk(s: JudgeSpec) -> None:
        if s.nested:
            for inner in s.nested.values():
                walk(inner)
        else:
            leaves.append(s)

    walk(spec)
    readers = [s for s in leaves if s.kind.reads_rubric_text]
    if readers:
        return True, readers[0].kind.rubric_reads
    kinds = list(dict.fromkeys(s.kind for s in leaves))
    if len(kinds) == 1:
        return False, kinds[0].rubric_reads
    return False, "; ".join(f"{kind.name}: {kind.rubric_reads}" for kind in kinds)


def rejudge_cost(spec: JudgeSpec, comparisons: list[tuple[str, Comparison]], old: Rubric, new: Rubric) -> JudgeCost:
    """What re-judging ``comparisons`` under both versions costs (2 calls each, more with debias), priced from the
    rendered prompts' size; "no estimate" and the reason when the spec cannot be priced here."""
    items = [c for _, c in comparisons]
    if items:
        tokens = max(estimate_tokens(render_judge_prompt(c, r).text) for c in items for r in (old, new))
    else:
        tokens = estimate_prompt_tokens(new)
    try:
        return spec.estimate_cost(2 * len(items), tokens)
    except ValueError as err:
        return JudgeCost(None, [f"no estimate: {err}"])


@contextmanager
def rejudge_judge(cfg: RunConfig, spec: JudgeSpec, store) -> Iterator[Judge]:
    """The built judge of ``spec`` with the project's verifier open (verifier judges need it), closed on exit."""
    with Project.from_config(cfg).open(store, build_judge=False) as parts:
        yield spec.build(BuildContext(verify=parts.verify, store=store))
