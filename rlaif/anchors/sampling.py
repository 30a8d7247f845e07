"""Sample an anchor set from a run: stratified by slice, preferring pairs the judges disagree or are unsure about.

Why disagreement-driven: human labels are the scarce resource. A pair every judge calls confidently the same way tells
us little; a pair where two judges (or one judge in the two A/B orders) disagree, where the verdict was a tie or
invalid, where confidence was low, or that the pair filters dropped as doubtful is where a judge's errors hide.
Why still stratified and random: an anchor set of only hard cases would understate agreement on the easy bulk and
over-represent one slice (seed 002: "stratify anchors across failure modes so agreement numbers are not inflated by
easy FAQs"). So each slice (prompt cohort) gets its share of the sample, and within a slice pairs are drawn without
replacement with weight ``floor + uncertainty`` (Efraimidis-Spirakis keys, seeded): uncertain pairs are strongly
preferred, certain ones still appear.

    result = sample_anchor_set(store, "run-3f2a...", n=100, seed=0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlaif.anchors.holdout import DEFAULT_HOLDOUT_FRACTION
from rlaif.anchors.sets import DEFAULT_SLICE, AnchorDraft, CreatedSet, chosen_goes_first, create_anchor_set
from store.pairs import PairFilter

# drop reasons that mean "the judging of this pair was doubtful" (the pair filters' names)
DOUBTFUL_DROPS = ("tie", "low_confidence", "conflict", "invalid_verdict", "all_invalid", "no_contrast",
                  "low_agreement")


@dataclass
class CandidatePair:
    """One unordered pair of distinct responses to a prompt, with the evidence about how sure the judges were."""

    prompt_id: str
    first: str  # the two texts in sorted order, so (x, y) and (y, x) are one pair
    second: str
    candidate_ids: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, float]] = field(default_factory=list)  # (judge_id, first|second|tie|invalid, conf)
    pair_confidence: float | None = None
    drop_reason: str | None = None

    def uncertainty(self) -> tuple[float, list[str]]:
        """A score in [0, 1] (1 = most worth a human label) and the reasons behind it."""
        scores, reasons = [0.0], []
        winners = [w for _, w, _ in self.verdicts]
        decisive = {w for w in winners if w in ("first", "second")}
        if len(decisive) == 2:
            same_judge = {j for j, w, _ in self.verdicts if w == "first"} & {j for j, w, _ in self.verdicts
                                                                              if w == "second"}
            scores.append(1.0)
            reasons.append("order flip" if same_judge else "judges disagree")
        if winners and "tie" in winners:
            scores.append(max(0.5, winners.count("tie") / len(winners)))
            reasons.append("tie")
        if winners and "invalid" in winners:
            scores.append(max(0.5, winners.count("invalid") / len(winners)))
            reasons.append("invalid verdict")
        confidences = [c for _, w, c in self.verdicts if w in ("first", "second") and c is not None]
        if confidences:
            scores.append(1.0 - sum(confidences) / len(confidences))
            if scores[-1] >= 0.5:
                reasons.append("low confidence")
        if self.pair_confidence is not None:
            scores.append(1.0 - self.pair_confidence)
        if self.drop_reason in DOUBTFUL_DROPS:
            scores.append(0.75)
            reasons.append(f"dropped: {self.drop_reason}")
        return min(1.0, max(scores)), reasons


def collect_candidate_pairs(store, run_id: str, iteration: int | None = None) -> list[CandidatePair]:
    """Every distinct compared pair of a run (from its judgements and its pairs), with the evidence on each."""
    candidates = {c["candidate_id"]: c for c in store.candidates.list(run_id, iteration)}
    pool: dict[tuple[str, str, str], CandidatePair] = {}

    def entry(prompt_id: str, x: str, y: str, ids: tuple[str | None, str | None]) -> tuple[CandidatePair, bool]:
        first, second = sorted((x, y))
        key = (prompt_id, first, second)
        if key not in pool:
            pool[key] = CandidatePair(prompt_id, first, second)
        pair = pool[key]
        for cid in ids:
            if cid and cid not in pair.candidate_ids:
                pair.candidate_ids.append(cid)
        return pair, x == first

    for j in store.judgements.list(run_id, iteration, limit=2**62):
        a, b = candidates.get(j["candidate_a"]), candidates.get(j["candidate_b"])
        if a is None or b is None or a["text"] == b["text"]:
            continue
        pair, a_first = entry(j["prompt_id"], a["text"], b["text"], (a["candidate_id"], b["candidate_id"]))
        winner = j["winner"]
        if winner in ("a", "b"):
            winner = "first" if (winner == "a") == a_first else "second"
        pair.verdicts.append((j["judge_id"], winner, j["confidence"]))
    for p in store.pairs.table(PairFilter(run_id=run_id, iteration=iteration)).to_pylist():
        chosen, rejected = candidates.get(p["chosen_candidate"]), candidates.get(p["rejected_candidate"])
        x = chosen["text"] if chosen else p["chosen"]
        y = rejected["text"] if rejected else p["rejected"]
        if x is None or y is None or x == y:
            continue
        pair, _ = entry(p["prompt_id"], x, y, (p["chosen_candidate"], p["rejected_candidate"]))
        pair.pair_confidence, pair.drop_reason = p["confidence"], p["drop_reason"]
    return [pool[k] for k in sorted(pool)]


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Split ``n`` draws across slices in proportion to their sizes (largest remainders), every slice getting at
    least one when ``n`` allows, none more than it has."""
    total = sum(sizes.values())
    n = min(n, total)
    if n <= 0:
        return {s: 0 for s in sizes}
    quota = {s: n * size / total for s, size in sizes.items()}
    take = {s: min(sizes[s], math.floor(q)) for s, q in quota.items()}
    if n >= len(sizes):
        take = {s: max(t, 1) for s, t in take.items()}
    while sum(take.values()) > n:  # the minimum of one each overshot: take back from the largest
        largest = max(take, key=lambda s: (take[s], s))
        take[largest] -= 1
    while sum(take.values()) < n:
        open_slices = [s for s in sizes if take[s] < sizes[s]]
        best = max(open_slices, key=lambda s: (quota[s] - take[s], s))
        take[best] += 1
    return take


def sample_anchor_set(store, run_id: str, n: int = 100, *, iteration: int | None = None, seed: int = 0,
                      per_prompt: int = 1, floor: float = 0.05, name: str | None = None,
                      holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION) -> CreatedSet:
    """Sample up to ``n`` pairs of a stored run into a new anchor set (unlabelled: humans label it next)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if per_prompt < 1:
        raise ValueError(f"per_prompt must be >= 1, got {per_prompt}")
    if floor <= 0:
        raise ValueError(f"floor must be > 0 (certain pairs must keep a chance), got {floor}")
    run = store.runs.get(run_id)
    if run is None:
        raise ValueError(f"no run {run_id!r}")
    prompts = {p["prompt_id"]: p for p in store.datasets.prompts(run["train_dataset_id"])} \
        if run.get("train_dataset_id") else {}
    pool = collect_candidate_pairs(store, run_id, iteration)
    if not pool:
        raise ValueError(f"run {run_id!r} has no judged pairs of distinct responses to sample from")

    scored = [(pair, *pair.uncertainty()) for pair in pool]
    by_prompt: dict[str, list] = {}
    for entry in scored:
        by_prompt.setdefault(entry[0].prompt_id, []).append(entry)
    slices: dict[str, list] = {}
    for prompt_id, entries in sorted(by_prompt.items()):
        entries.sort(key=lambda e: (-e[1], e[0].first, e[0].second))
        slice_name = (prompts.get(prompt_id) or {}).get("cohort") or DEFAULT_SLICE
        slices.setdefault(slice_name, []).extend(entries[:per_prompt])

    rng = np.random.default_rng(seed)
    chosen = []
    for slice_name, take in sorted(allocate({s: len(e) for s, e in slices.items()}, n).items()):
        entries = slices[slice_name]
        weights = np.array([floor + u for _, u, _ in entries])
        keys = rng.random(len(entries)) ** (1.0 / weights)  # Efraimidis-Spirakis: top keys = weighted draw
        for index in np.argsort(-keys, kind="stable")[:take]:
            chosen.append((slice_name, entries[index]))

    drafts = []
    for slice_name, (pair, u, reasons) in sorted(chosen, key=lambda c: (c[0], c[1][0].prompt_id, c[1][0].first)):
        record = prompts.get(pair.prompt_id) or {}
        prompt = record.get("prompt") or pair.prompt_id
        first_is_a = chosen_goes_first(prompt, pair.first, pair.second, salt=run_id)
        drafts.append(AnchorDraft(
            prompt=prompt, response_a=pair.first if first_is_a else pair.second,
            response_b=pair.second if first_is_a else pair.first, slice=slice_name, source=f"run:{run_id}",
            reference=record.get("reference"),
            extra={"run_id": run_id, "iteration": iteration, "prompt_id": pair.prompt_id,
                   "candidate_ids": pair.candidate_ids,
                   "sampling": {"uncertainty": round(u, 6), "reasons": reasons, "seed": seed}}))
    return create_anchor_set(store, name or f"{run_id}-anchors", drafts, source=f"run:{run_id}",
                             holdout_fraction=holdout_fraction, holdout_seed=seed)
