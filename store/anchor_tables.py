"""Facts about the anchor tables that both the anchors and the labels repository need.

Why a module of its own: an anchor set is imported with its first labels in one transaction (anchors writes
``anchor_labels``), and label reads join the split relations (labels reads anchor items). Keeping the column
tuples and the split -> relation mapping here lets both repositories import them without importing each other.

    split_relation("tuning")   # -> "anchor_tuning_items", the view that cannot return a holdout item
"""

from __future__ import annotations

SET_COLUMNS = ("anchor_set_id", "name", "source", "created_at", "holdout_fraction", "holdout_seed", "n_items")
ITEM_COLUMNS = ("item_id", "anchor_set_id", "prompt", "response_a", "response_b", "slice", "source", "reference",
                "is_holdout", "position", "extra")
VERDICT_COLUMNS = ("item_id", "judge_id", "rubric_version", "winner", "confidence", "rationale", "created_at")
LABEL_COLUMNS = ("label_id", "item_id", "annotator", "annotator_kind", "label", "shown_left", "note", "created_at")
ADJUDICATION_COLUMNS = ("adjudication_id", "item_id", "adjudicator", "label", "method", "note", "created_at")
SPLITS = {"all": "anchor_items", "tuning": "anchor_tuning_items", "holdout": "anchor_holdout_items"}


def split_relation(split: str) -> str:
    """The relation a split reads: tuning code gets the view that excludes the holdout."""
    try:
        return SPLITS[split]
    except KeyError:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}") from None
