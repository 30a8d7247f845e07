"""Human blend: mix a fraction of labelled anchor pairs (never the holdout) into an iteration's DPO data.

Why: seed 002 recommends a 20-40% human-labelled core in every RLAIF round so that the policy keeps being pulled
towards what people prefer, not only towards what the judge rewards. Rows are tagged with their source
(``human`` or ``oracle``) so exports and manifests show what came from where.

    rows = blend_rows(store, anchor_set_id, "human", fraction=0.2, n_rlaif=180, seed=0, rendering=policy.rendering)
"""

from __future__ import annotations

import hashlib
from typing import Any

from rlaif.anchors.labelling import resolved_labels
from rlaif.policy import Rendering


def blend_count(fraction: float, n_rlaif: int) -> int:
    """How many anchor rows make ``fraction`` of the final mix of n_rlaif + blend rows."""
    if fraction <= 0 or n_rlaif <= 0:
        return 0
    return round(fraction / (1 - fraction) * n_rlaif)


def blend_rows(store, anchor_set_id: str, annotators: str, *, fraction: float, n_rlaif: int, seed: int,
               rendering: Rendering) -> list[dict[str, Any]]:
    """(prompt, chosen, rejected) rows from the tuning split's decisive labels (A or B), chosen deterministically and
    rendered exactly as the iteration's RLAIF pairs were."""
    want = blend_count(fraction, n_rlaif)
    if want == 0:
        return []
    labels = resolved_labels(store, anchor_set_id, annotators=annotators, split="tuning")
    items = {i["item_id"]: i for i in store.anchors.items(anchor_set_id, split="tuning")}
    decisive = [(item_id, lab) for item_id, lab in labels.items() if lab.label in ("A", "B") and item_id in items]
    decisive.sort(key=lambda x: hashlib.sha256(f"{seed}:{x[0]}".encode()).hexdigest())
    rows = []
    for item_id, lab in decisive[:want]:
        item = items[item_id]
        chosen, rejected = ((item["response_a"], item["response_b"]) if lab.label == "A"
                            else (item["response_b"], item["response_a"]))
        source = "oracle" if lab.method == "oracle" else "human"
        rows.append({"anchor_item_id": item_id, "prompt": rendering.pair_prompt(item["prompt"]),
                     "chosen": rendering.completion(chosen.strip()), "rejected": rendering.completion(rejected.strip()),
                     "source": source})
    return rows
