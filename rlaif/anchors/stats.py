"""What an anchor set holds: items, holdout, slices, who labelled what, adjudications, inter-annotator agreement.

One dict for ``rlaif anchors stats`` and the calibration page, computed from the store (no judge is run).

    stats = anchor_set_stats(store, "as-1f2e...")
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rlaif.anchors.agreement import inter_annotator_agreement
from rlaif.anchors.labelling import consensus


def anchor_set_stats(store, anchor_set_id: str) -> dict[str, Any]:
    anchor_set = store.anchors.get_set(anchor_set_id)
    if anchor_set is None:
        raise ValueError(f"no anchor set {anchor_set_id!r}")
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
    return {
        "anchor_set_id": anchor_set_id, "name": anchor_set["name"], "source": anchor_set["source"],
        "n_items": len(items), "n_holdout": sum(int(i["is_holdout"]) for i in items),
        "holdout_fraction": anchor_set["holdout_fraction"], "slices": dict(sorted(slices.items())),
        "annotators": store.labels.annotators(anchor_set_id),
        "human_coverage": {"labelled_1+": len(votes), "labelled_2+": sum(len(v) >= 2 for v in votes.values())},
        "adjudications": dict(Counter(a["method"] for a in adjudications)),
        "unresolved_conflicts": len(conflicts),
        "inter_annotator": inter_annotator_agreement(human).to_dict() if len(human) >= 2 else None,
    }
