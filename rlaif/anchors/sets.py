"""Anchor sets from drafts: content-addressed ids, the locked holdout, and one all-or-nothing write; and deletion.

Importers and the run sampler both produce :class:`AnchorDraft` items; :func:`create_anchor_set` gives the set an id
that is the hash of its name, holdout settings and content (re-importing the same file under the same name is a
no-op returning the same id), draws the holdout once, and writes set, items and labels in one transaction.

:func:`delete_anchor_set` removes a set whole. A run whose calibration gate decided on the set blocks it: that run's
manifest names the set, and deleting the evidence behind a recorded decision should be a deliberate act
(``force=True``). Forced or not, manifests are never modified, so they keep verifying against their ids.

    result = create_anchor_set(store, "hh-sample", drafts, source="hh.jsonl")
    result.anchor_set_id, result.created
    delete_anchor_set(store, result.anchor_set_id).deleted   # {"anchor_items": 40, "anchor_labels": 80, ...}
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from rlaif.anchors.holdout import DEFAULT_HOLDOUT_FRACTION, draw_holdout
from store.content_hash import content_hash

LABEL_VALUES = ("A", "B", "tie", "skip")
ANNOTATOR_KINDS = ("human", "oracle", "adjudicator")
DEFAULT_SLICE = "default"


@dataclass(frozen=True)
class DraftLabel:
    annotator: str
    label: str  # A | B | tie | skip, in the item's orientation
    annotator_kind: str = "human"
    note: str | None = None

    def __post_init__(self):
        if self.label not in LABEL_VALUES:
            raise ValueError(f"label must be one of {LABEL_VALUES}, got {self.label!r}")
        if self.annotator_kind not in ANNOTATOR_KINDS:
            raise ValueError(f"annotator_kind must be one of {ANNOTATOR_KINDS}, got {self.annotator_kind!r}")
        if not self.annotator:
            raise ValueError("annotator must not be empty")


@dataclass(frozen=True)
class AnchorDraft:
    prompt: str
    response_a: str
    response_b: str
    slice: str = DEFAULT_SLICE
    source: str | None = None
    reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    labels: tuple[DraftLabel, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CreatedSet:
    anchor_set_id: str
    created: bool  # False: an identical set (same name, settings and content) was already stored
    n_items: int
    n_holdout: int
    n_labels: int


def chosen_goes_first(prompt: str, chosen: str, rejected: str, salt: str = "") -> bool:
    """Whether the preferred response becomes A: a coin flip seeded by the pair's content, so a file's known
    preferences are balanced across A and B (no position shortcut) and the same file always imports the same way."""
    digest = hashlib.sha256("\x1f".join(("sides", salt, prompt, chosen, rejected)).encode("utf-8")).digest()
    return digest[0] % 2 == 0


def anchor_set_id_for(name: str, drafts: Sequence[AnchorDraft], holdout_fraction: float, holdout_seed: int) -> str:
    body = {"name": name, "holdout_fraction": holdout_fraction, "holdout_seed": holdout_seed,
            "items": [d.to_dict() for d in drafts]}
    return "as-" + content_hash(body)[:16]


def create_anchor_set(store, name: str, drafts: Sequence[AnchorDraft], *, source: str | None = None,
                      holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, holdout_seed: int = 0) -> CreatedSet:
    """Store ``drafts`` as a new anchor set (all or nothing) and return its id and counts."""
    if not name or not name.strip():
        raise ValueError("anchor set name must not be empty")
    if not drafts:
        raise ValueError("an anchor set needs at least one item")
    if not 0 <= holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    drafts = list(drafts)
    anchor_set_id = anchor_set_id_for(name, drafts, holdout_fraction, holdout_seed)
    item_ids = [f"{anchor_set_id}-{position:06d}" for position in range(len(drafts))]
    held = draw_holdout([(item_id, d.slice, "\x1f".join((d.prompt, d.response_a, d.response_b)))
                         for item_id, d in zip(item_ids, drafts)], holdout_fraction, holdout_seed)
    items, labels = [], []
    for position, (item_id, d) in enumerate(zip(item_ids, drafts)):
        items.append({"item_id": item_id, "anchor_set_id": anchor_set_id, "prompt": d.prompt,
                      "response_a": d.response_a, "response_b": d.response_b, "slice": d.slice or DEFAULT_SLICE,
                      "source": d.source, "reference": d.reference, "is_holdout": item_id in held,
                      "position": position, "extra": d.extra or None})
        labels.extend({"item_id": item_id, "annotator": lab.annotator, "annotator_kind": lab.annotator_kind,
                       "label": lab.label, "shown_left": None, "note": lab.note} for lab in d.labels)
    set_row = {"anchor_set_id": anchor_set_id, "name": name, "source": source, "holdout_fraction": holdout_fraction,
               "holdout_seed": holdout_seed, "n_items": len(items)}
    created = store.anchors.create_set(set_row, items, labels)
    return CreatedSet(anchor_set_id, created, len(items), len(held), len(labels) if created else 0)


@dataclass(frozen=True)
class DeleteResult:
    """What a delete removed. ``deleted`` counts rows per table (anchor_sets, anchor_items, anchor_labels,
    adjudications, judge_anchor_verdicts, kappa_reports); ``kept_manifests`` are the run manifests
    ({manifest_id, run_id, iteration}) that still name the set, left untouched because the delete was forced."""

    anchor_set_id: str
    name: str
    deleted: dict[str, int]
    kept_manifests: tuple[dict[str, Any], ...] = ()

    @property
    def forced(self) -> bool:
        """True when ``force`` was needed: the delete went past manifests that name the set."""
        return bool(self.kept_manifests)

    def to_dict(self) -> dict[str, Any]:
        return {"anchor_set_id": self.anchor_set_id, "name": self.name, "deleted": dict(self.deleted),
                "kept_manifests": [dict(m) for m in self.kept_manifests], "forced": self.forced}


def _runs_named(manifests: Sequence[dict[str, Any]]) -> str:
    iterations: dict[str, list[str]] = {}
    for m in manifests:
        iterations.setdefault(m["run_id"], []).append(str(m["iteration"]))
    return ", ".join(f"{run} (iteration {', '.join(its)})" for run, its in iterations.items())


def delete_anchor_set(store, anchor_set_id: str, *, force: bool = False) -> DeleteResult:
    """Delete a set with its items, labels, adjudications, judge verdicts and kappa reports, in one transaction.

    Refuses (ValueError naming the runs) while a run manifest's calibration gate names the set, unless ``force``;
    LookupError when there is no such set. The check and the delete share the transaction, so a run cannot start
    naming the set between them.
    """
    with store.transaction():
        anchor_set = store.anchors.get_set(anchor_set_id)
        if anchor_set is None:
            raise LookupError(f"no anchor set {anchor_set_id!r} to delete (store.anchors.list_sets() lists them)")
        manifests = store.anchors.referencing_manifests(anchor_set_id)
        if manifests and not force:
            raise ValueError(
                f"anchor set {anchor_set_id!r} ({anchor_set['name']}) is named by the calibration gate of run(s) "
                f"{_runs_named(manifests)}; delete it with force=True (`rlaif anchors delete --force`) to remove it "
                "anyway: those manifests stay as they are, naming a set that is gone")
        deleted = store.anchors.delete_set(anchor_set_id)
    return DeleteResult(anchor_set_id, anchor_set["name"], deleted, tuple(manifests))
