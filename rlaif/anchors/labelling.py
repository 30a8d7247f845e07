"""Blind, randomized pairwise labelling by several annotators, and adjudication of their labels.

Why blind and randomized: an annotator who sees the judge's verdict anchors on it, and one who always sees response A
on the left inherits position bias. So :func:`present` returns only the prompt and the two responses, on sides drawn
per (annotator, item) from a hash (stable across sessions, different between annotators); :func:`record_label`
maps the choice back to the item's original orientation (A = response_a) and appends it. Nothing is overwritten: a
relabel is a new row and the latest one counts (``store.labels.history`` shows the rest).

Which label counts for an item (:func:`resolved_labels`):
* ``human``: the latest adjudication if any (an ``override`` by an adjudicator, or a recorded ``majority``), else
  the strict majority of the annotators' latest human labels (skips do not vote; no majority, no label);
* ``oracle``: the strict majority of the latest oracle labels (machine references such as SQL execution);
* ``any``: the human label where there is one, else the oracle label.

Undo (:func:`undo_last_label`) appends a retraction of the annotator's newest label; every label read leaves it
out, so the item is unlabelled again (or its earlier label counts). Per-annotator queues (:func:`assign_queues`)
spread a set over several annotators with an overlap target, deterministically; an annotator's assigned items come
first in their queue, and :func:`queue_progress` says how many of them they have done.

    p = next_item(store, "as-1f2e...", annotator="ana")
    record_label(store, p, "right", note="left one invents a column")
    undo_last_label(store, "as-1f2e...", "ana")        # the same pair is next again
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from rlaif.anchors.defaults import ANNOTATOR_MODES
from rlaif.anchors.sets import ANNOTATOR_KINDS

CHOICES = ("left", "right", "tie", "skip")


@dataclass(frozen=True)
class Presentation:
    """What an annotator sees: deliberately no verdicts, no other annotators' labels, no extra metadata."""

    item_id: str
    annotator: str
    prompt: str
    left: str
    right: str
    shown_left: str  # which original response is on the left: "a" or "b"


@dataclass(frozen=True)
class ResolvedLabel:
    label: str  # A | B | tie
    method: str  # override | majority (recorded) | consensus (live majority) | oracle
    votes: int


# ---------------------------------------------------------------------------------------------------------------------
# Presenting and recording


def shown_left_for(annotator: str, item_id: str) -> str:
    """The original response ("a" or "b") shown on the left to this annotator for this item."""
    digest = hashlib.sha256(f"sides\x1f{annotator}\x1f{item_id}".encode("utf-8")).digest()
    return "a" if digest[0] % 2 == 0 else "b"


def to_original(choice: str, shown_left: str) -> str:
    """An on-screen choice (left | right | tie | skip) as a label in the original orientation (A | B | tie | skip)."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
    if shown_left not in ("a", "b"):
        raise ValueError(f"shown_left must be 'a' or 'b', got {shown_left!r}")
    if choice in ("tie", "skip"):
        return choice
    left_label = shown_left.upper()
    return left_label if choice == "left" else ("B" if left_label == "A" else "A")


def to_screen(label: str, shown_left: str) -> str:
    """The inverse of :func:`to_original`: where a stored label sits on this annotator's screen."""
    if label in ("tie", "skip"):
        return label
    return "left" if label == shown_left.upper() else "right"


def present(store, item_id: str, annotator: str) -> Presentation:
    item = store.anchors.item(item_id)
    if item is None:
        raise KeyError(f"no anchor item {item_id!r}")
    if not annotator:
        raise ValueError("annotator must not be empty")
    left = shown_left_for(annotator, item_id)
    a, b = item["response_a"], item["response_b"]
    return Presentation(item_id, annotator, item["prompt"], a if left == "a" else b, b if left == "a" else a, left)


def record_label(store, presentation: Presentation, choice: str, note: str | None = None,
                 annotator_kind: str = "human") -> str:
    """Append the annotator's choice, mapped to the original orientation; return the label id."""
    if annotator_kind not in ANNOTATOR_KINDS:
        raise ValueError(f"annotator_kind must be one of {ANNOTATOR_KINDS}, got {annotator_kind!r}")
    label = to_original(choice, presentation.shown_left)
    return store.labels.add({"item_id": presentation.item_id, "annotator": presentation.annotator,
                             "annotator_kind": annotator_kind, "label": label,
                             "shown_left": presentation.shown_left, "note": note or None})


# ---------------------------------------------------------------------------------------------------------------------
# What to label next


def labelling_queue(store, anchor_set_id: str, annotator: str) -> list[str]:
    """Item ids in the order this annotator should label them.

    Items the annotator has not labelled come first, then those they skipped; items already labelled A/B/tie are
    left out. Within each group the most informative first: items whose existing labels or judge verdicts disagree
    (or whose sampling flagged judge uncertainty), then items with fewer human labels (double-labelling first),
    then import order.
    """
    items = store.anchors.items(anchor_set_id)
    latest = store.labels.latest(anchor_set_id, kinds=("human",))
    mine = {r["item_id"]: r["label"] for r in latest if r["annotator"] == annotator}
    others: dict[str, list[str]] = {}
    for r in latest:
        if r["annotator"] != annotator and r["label"] != "skip":
            others.setdefault(r["item_id"], []).append(r["label"])
    verdicts: dict[str, list[str]] = {}
    for v in store.anchors.verdicts(anchor_set_id):
        verdicts.setdefault(v["item_id"], []).append(v["winner"])

    def disagreement(item: dict[str, Any]) -> float:
        votes = others.get(item["item_id"], [])
        human_split = 1.0 if len(set(votes)) > 1 else 0.0
        judged = verdicts.get(item["item_id"], [])
        judge_split = 1.0 if len(set(judged)) > 1 or "tie" in judged or "invalid" in judged else 0.0
        judge_vs_human = 0.0
        if votes and judged:
            majority = Counter(votes).most_common(1)[0][0]
            judge_vs_human = 1.0 if any(w.upper() != majority and w in ("a", "b") for w in judged) else 0.0
        sampled = float(((item["extra"] or {}).get("sampling") or {}).get("uncertainty", 0.0))
        return max(human_split, judge_split, judge_vs_human, sampled)

    assigned = {a["item_id"] for a in store.anchors.assignments(anchor_set_id, annotator)}
    queue = [i for i in items if mine.get(i["item_id"]) in (None, "skip")]
    queue.sort(key=lambda i: (mine.get(i["item_id"]) == "skip", i["item_id"] not in assigned, -disagreement(i),
                              len(others.get(i["item_id"], [])), i["position"]))
    return [i["item_id"] for i in queue]


def next_item(store, anchor_set_id: str, annotator: str, prefer: str | None = None) -> Presentation | None:
    """The next item for this annotator, presented blind; None when they have labelled everything. ``prefer``: an
    item to show first while it is still unlabelled (the pair an undo just reopened)."""
    queue = labelling_queue(store, anchor_set_id, annotator)
    if prefer in queue:
        return present(store, prefer, annotator)
    return present(store, queue[0], annotator) if queue else None


def undo_last_label(store, anchor_set_id: str, annotator: str) -> dict[str, Any] | None:
    """Take back this annotator's newest label on the set (a retraction is appended; nothing is deleted); returns
    the undone label row, or None when there is nothing left to undo."""
    last = store.labels.last_label(anchor_set_id, annotator)
    if last is None:
        return None
    store.labels.retract(last["label_id"], retracted_by=annotator)
    return last


# ---------------------------------------------------------------------------------------------------------------------
# Per-annotator queues


def plan_assignments(item_ids: Sequence[str], annotators: Sequence[str], overlap: int) -> list[dict[str, str]]:
    """Each item to ``overlap`` distinct annotators, round-robin in item order: item k goes to annotators
    k*overlap .. k*overlap+overlap-1 (mod n), so loads differ by at most one and the same inputs give the same plan."""
    names = [a.strip() for a in annotators if a and a.strip()]
    if not names:
        raise ValueError("annotators: name at least one annotator")
    if len(set(names)) != len(names):
        raise ValueError(f"annotators: {sorted({n for n in names if names.count(n) > 1})} named twice")
    if not 1 <= overlap <= len(names):
        raise ValueError(f"overlap must be between 1 and the number of annotators ({len(names)}), got {overlap}")
    return [{"item_id": item_id, "annotator": names[(k * overlap + j) % len(names)]}
            for k, item_id in enumerate(item_ids) for j in range(overlap)]


def assign_queues(store, anchor_set_id: str, annotators: Sequence[str], overlap: int,
                  assigned_by: str | None = None) -> dict[str, int]:
    """Replace the set's per-annotator queues with a plan for every item (see :func:`plan_assignments`); returns
    how many items each annotator got."""
    if store.anchors.get_set(anchor_set_id) is None:
        raise KeyError(f"no anchor set {anchor_set_id!r}")
    rows = plan_assignments([i["item_id"] for i in store.anchors.items(anchor_set_id)], annotators, overlap)
    store.anchors.set_assignments(anchor_set_id, rows, overlap, assigned_by)
    return dict(Counter(r["annotator"] for r in rows))


def queue_progress(store, anchor_set_id: str, annotator: str) -> tuple[int, int] | None:
    """(assigned items this annotator labelled A/B/tie, items assigned to them), or None without an assignment."""
    assigned = {a["item_id"] for a in store.anchors.assignments(anchor_set_id, annotator)}
    if not assigned:
        return None
    done = sum(r["label"] != "skip" and r["item_id"] in assigned
               for r in store.labels.latest(anchor_set_id, kinds=("human",), annotator=annotator))
    return done, len(assigned)


# ---------------------------------------------------------------------------------------------------------------------
# Adjudication and the label that counts


def consensus(labels: Iterable[str]) -> str | None:
    """The strict-majority label among A/B/tie votes (skips do not vote), or None."""
    votes = [label for label in labels if label != "skip"]
    if not votes:
        return None
    label, count = Counter(votes).most_common(1)[0]
    return label if count * 2 > len(votes) else None


@dataclass(frozen=True)
class AdjudicationSummary:
    recorded: list[str]  # items whose majority was recorded now
    conflicts: list[str]  # items with 2+ human labels and no majority: an adjudicator must override
    overridden: list[str]  # items already decided by an override (left alone)


def adjudicate_majority(store, anchor_set_id: str, adjudicator: str = "system:majority",
                        min_labels: int = 2) -> AdjudicationSummary:
    """Record the majority of the latest human labels as an adjudication (method ``majority``) for every item with
    at least ``min_labels`` votes and a strict majority, unless an override decided it or the same majority is
    recorded already. Items without a majority are returned as conflicts for an adjudicator."""
    votes: dict[str, list[str]] = {}
    for r in store.labels.latest(anchor_set_id, kinds=("human",)):
        if r["label"] != "skip":
            votes.setdefault(r["item_id"], []).append(r["label"])
    current = {r["item_id"]: r for r in store.labels.adjudications(anchor_set_id)}
    recorded, conflicts, overridden, rows = [], [], [], []
    for item_id, labels in votes.items():
        if len(labels) < min_labels:
            continue
        if item_id in current and current[item_id]["method"] == "override":
            overridden.append(item_id)
            continue
        label = consensus(labels)
        if label is None:
            conflicts.append(item_id)
        elif item_id not in current or current[item_id]["label"] != label:
            rows.append({"item_id": item_id, "adjudicator": adjudicator, "label": label, "method": "majority",
                         "note": f"majority of {len(labels)} human labels"})
            recorded.append(item_id)
    store.labels.add_adjudications(rows)
    return AdjudicationSummary(recorded, conflicts, overridden)


def override_label(store, item_id: str, adjudicator: str, label: str, reason: str) -> None:
    """An adjudicator's decision, recorded as an override with its reason; it beats any majority."""
    if label not in ("A", "B", "tie"):
        raise ValueError(f"an adjudicated label must be A, B or tie, got {label!r}")
    if not reason or not reason.strip():
        raise ValueError("an override needs a reason")
    if not adjudicator:
        raise ValueError("adjudicator must not be empty")
    if store.anchors.item(item_id) is None:
        raise KeyError(f"no anchor item {item_id!r}")
    store.labels.add_adjudications([{"item_id": item_id, "adjudicator": adjudicator, "label": label,
                                     "method": "override", "note": reason}])


def _consensus_of(latest: Sequence[dict[str, Any]], kind: str, method: str
                  ) -> tuple[dict[str, ResolvedLabel], dict[str, list[str]]]:
    """(the consensus label per item among annotators of ``kind``, each item's votes)."""
    votes: dict[str, list[str]] = {}
    for r in latest:
        if r["annotator_kind"] == kind:
            votes.setdefault(r["item_id"], []).append(r["label"])
    resolved = {}
    for item_id, labels in votes.items():
        label = consensus(labels)
        if label is not None:
            resolved[item_id] = ResolvedLabel(label, method, sum(v != "skip" for v in labels))
    return resolved, votes


def resolved_labels(store, anchor_set_id: str, annotators: str = "human", split: str = "tuning",
                    slices: Sequence[str] | None = None) -> dict[str, ResolvedLabel]:
    """The label that counts per item of ``split`` (default: the tuning view, never the holdout)."""
    if annotators not in ANNOTATOR_MODES:
        raise ValueError(f"annotators must be one of {ANNOTATOR_MODES}, got {annotators!r}")
    wanted = {i["item_id"] for i in store.anchors.items(anchor_set_id, split=split, slices=list(slices or []))}
    latest = store.labels.latest(anchor_set_id, split=split)
    human: dict[str, ResolvedLabel] = {}
    oracle: dict[str, ResolvedLabel] = {}
    if annotators in ("human", "any"):
        human, votes = _consensus_of(latest, "human", "consensus")
        for adj in store.labels.adjudications(anchor_set_id, split=split):
            human[adj["item_id"]] = ResolvedLabel(adj["label"], adj["method"], len(votes.get(adj["item_id"], [])))
    if annotators in ("oracle", "any"):
        oracle, _ = _consensus_of(latest, "oracle", "oracle")
    merged = {**oracle, **human} if annotators == "any" else (human if annotators == "human" else oracle)
    return {item_id: label for item_id, label in merged.items() if item_id in wanted}
