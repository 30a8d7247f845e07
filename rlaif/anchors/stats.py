"""What an anchor set holds: items, holdout, slices, who labelled what, adjudications, inter-annotator agreement.

One dict for ``rlaif anchors stats`` and the calibration page, computed from the store (no judge is run). Besides
the counts it says how the label that counts was reached: ``adjudication`` splits the items with 2+ human labels
into unanimous / majority / conflicts (how much adjudication the set needed), and ``label_split`` counts A / B / tie
of the label that counts per item (after adjudication) in the tuning and the holdout split separately, so a set
whose holdout is all "A" (where a judge that always says "A" looks perfect) is visible before anyone trusts it.

    stats = anchor_set_stats(store, "as-1f2e...")
    stats["inter_annotator"]["krippendorff_alpha"], stats["adjudication"], stats["label_split"]["holdout"]
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

from rlaif.anchors.agreement import LABELS, inter_annotator_agreement
from rlaif.anchors.labelling import consensus, resolved_labels


def adjudication_split(votes: Mapping[str, Sequence[str]], adjudications: Sequence[Mapping[str, Any]]
                       ) -> dict[str, int]:
    """How the items with 2+ human votes (skips removed) stand: ``unanimous`` + ``majority`` (a strict majority
    that is not unanimous) + ``conflicts`` (no strict majority) = ``n``; ``overridden`` counts the items whose
    latest adjudication is an adjudicator's override (any item, whatever its votes)."""
    voted = [labels for labels in votes.values() if len(labels) >= 2]
    unanimous = sum(len(set(labels)) == 1 for labels in voted)
    conflicts = sum(consensus(labels) is None for labels in voted)
    return {"n": len(voted), "unanimous": unanimous, "majority": len(voted) - unanimous - conflicts,
            "conflicts": conflicts, "overridden": sum(a["method"] == "override" for a in adjudications)}


def label_split(store, anchor_set_id: str, items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """A / B / tie of the human label that counts per item (adjudication first), and ``unlabelled`` (no label
    counts yet), for the ``tuning`` and ``holdout`` splits."""
    counted = resolved_labels(store, anchor_set_id, annotators="human", split="all")
    out = {}
    for split, held in (("tuning", False), ("holdout", True)):
        part = [i["item_id"] for i in items if bool(i["is_holdout"]) == held]
        tally = Counter(counted[i].label for i in part if i in counted)
        out[split] = {**{label: tally[label] for label in LABELS}, "unlabelled": len(part) - sum(tally.values())}
    return out


def anchor_set_stats(store, anchor_set_id: str, *, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The set's numbers as one JSON-safe dict (``n_resamples`` / ``seed``: the bootstrap of alpha's CI)."""
    anchor_set = store.anchors.get_set(anchor_set_id)
    if anchor_set is None:
        raise ValueError(f"no anchor set {anchor_set_id!r}; `rlaif anchors stats` without an id lists the sets")
    items = store.anchors.items(anchor_set_id)
    slices: dict[str, dict[str, int]] = {}
    for item in items:
        counts = slices.setdefault(item["slice"], {"items": 0, "holdout": 0})
        counts["items"] += 1
        counts["holdout"] += int(item["is_holdout"])
    human: dict[str, dict[str, str]] = {}
    votes: dict[str, list[str]] = {}
    for row in store.labels.latest(anchor_set_id, kinds=("human",)):
        if row["label"] != "skip":
            human.setdefault(row["annotator"], {})[row["item_id"]] = row["label"]
            votes.setdefault(row["item_id"], []).append(row["label"])
    adjudications = store.labels.adjudications(anchor_set_id)
    adjudicated = {a["item_id"] for a in adjudications}
    conflicts = [i for i, v in votes.items() if len(v) >= 2 and consensus(v) is None and i not in adjudicated]
    inter = (inter_annotator_agreement(human, n_resamples=n_resamples, seed=seed).to_dict() if len(human) >= 2
             else None)
    return {
        "anchor_set_id": anchor_set_id, "name": anchor_set["name"], "source": anchor_set["source"],
        "n_items": len(items), "n_holdout": sum(int(i["is_holdout"]) for i in items),
        "holdout_fraction": anchor_set["holdout_fraction"], "slices": dict(sorted(slices.items())),
        "annotators": store.labels.annotators(anchor_set_id),
        "human_coverage": {"labelled_1+": len(votes), "labelled_2+": sum(len(v) >= 2 for v in votes.values())},
        "adjudications": dict(Counter(a["method"] for a in adjudications)),
        "unresolved_conflicts": len(conflicts),
        "adjudication": adjudication_split(votes, adjudications),
        "label_split": label_split(store, anchor_set_id, items),
        "inter_annotator": inter,
    }
