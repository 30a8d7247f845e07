"""The locked holdout: a fixed share of each anchor set that no tuning or gate decision ever reads.

Why: a rubric tuned until kappa on the anchors looks good has been fitted to those anchors (seed 002: "training and
measuring on the same 500 prompts inflates kappa; keep a locked holdout"). The holdout is drawn ONCE, at import,
stratified by slice so every slice is represented, and stored as ``anchor_items.is_holdout``; nothing ever re-draws
or updates it. Tuning and gate code read items only through :func:`tuning_view` (the ``anchor_tuning_items`` SQL
view); the holdout is reported separately, never optimised on.

The draw hashes each item's CONTENT (prompt and both responses) with the set's seed, not its id: an id is derived
from the set's name, so keying on it would let an export re-imported under another name put holdout pairs into the
tuning split. Keyed on content, the same file or its export always holds out the same pairs.

    item_ids = draw_holdout([("as-1-000000", "count", "prompt\x1fa\x1fb"), ...], fraction=0.2, seed=0)
    items = tuning_view(store, "as-1f2e...")
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

from rlaif.anchors.defaults import DEFAULT_HOLDOUT_FRACTION


def holdout_key(content: str, seed: int) -> str:
    """The deterministic draw of one item: items with the smallest keys in their slice are held out."""
    return hashlib.sha256(f"holdout:{seed}:{content}".encode("utf-8")).hexdigest()


def draw_holdout(items: Sequence[tuple[str, str, str]], fraction: float = DEFAULT_HOLDOUT_FRACTION,
                 seed: int = 0) -> set[str]:
    """Item ids to hold out from (item_id, slice, content) triples: exactly round(fraction * n) items, shared across
    slices in proportion to their size (largest remainders first), the smallest content keys within each slice
    (identical contents are ordered by item id)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    by_slice: dict[str, list[tuple[str, str]]] = {}
    for item_id, slice_name, content in items:
        by_slice.setdefault(slice_name, []).append((holdout_key(content, seed), item_id))
    total = round(fraction * len(items))
    quotas = {name: fraction * len(ids) for name, ids in by_slice.items()}
    take = {name: math.floor(q) for name, q in quotas.items()}
    # hand the remaining items to the slices with the largest remainders (name breaks ties: deterministic)
    rest = sorted(by_slice, key=lambda name: (-(quotas[name] - take[name]), name))
    for name in rest[: max(0, total - sum(take.values()))]:
        take[name] += 1
    held: set[str] = set()
    for name, keyed in by_slice.items():
        held.update(item_id for _, item_id in sorted(keyed)[: take[name]])
    return held


def tuning_view(store, anchor_set_id: str, slices: list[str] | None = None) -> list[dict[str, Any]]:
    """The items tuning and gating may use: never a holdout item."""
    return store.anchors.items(anchor_set_id, split="tuning", slices=slices)


def holdout_view(store, anchor_set_id: str, slices: list[str] | None = None) -> list[dict[str, Any]]:
    """The locked holdout, for reporting only."""
    return store.anchors.items(anchor_set_id, split="holdout", slices=slices)
