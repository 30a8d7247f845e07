"""anchor_set_stats: the adjudication split, the A/B/tie split of the label that counts per split, and alpha."""

import json

import pytest

from rlaif.anchors.agreement import krippendorff_alpha
from rlaif.anchors.labelling import adjudicate_majority, override_label
from rlaif.anchors.sets import AnchorDraft, DraftLabel, create_anchor_set
from rlaif.anchors.stats import anchor_set_stats
from store import Store

# votes of ana, ben and cy per item ("" = not labelled), what the items are, and the label that must count
VOTES = [("A", "A", "A"),      # 0 unanimous -> A
         ("A", "A", "B"),      # 1 majority -> A
         ("A", "B", "tie"),    # 2 conflict, overridden below -> tie
         ("B", "B", ""),       # 3 unanimous -> B
         ("A", "B", ""),       # 4 conflict, never resolved -> no label
         ("A", "", ""),        # 5 one vote (not in the split of 2+) -> A
         ("B", "skip", ""),    # 6 a skip does not vote: one vote -> B
         ("", "", ""),         # 7 nobody -> no label
         ("A", "A", "B"),      # 8 majority, overridden below -> B
         ("tie", "tie", "A")]  # 9 majority -> tie
COUNTS = ["A", "A", "tie", "B", None, "A", "B", None, "B", "tie"]
OVERRIDES = {2: "tie", 8: "B"}


@pytest.fixture
def store():
    with Store(":memory:") as s:
        yield s


def _labelled(store):
    drafts = [AnchorDraft(f"q{i}", f"a{i}", f"b{i}", labels=tuple(DraftLabel(who, label) for who, label
                                                                   in zip(("ana", "ben", "cy"), votes) if label))
              for i, votes in enumerate(VOTES)]
    set_id = create_anchor_set(store, "split", drafts, holdout_fraction=0.4).anchor_set_id
    items = store.anchors.items(set_id)
    adjudicate_majority(store, set_id)  # recorded majorities must not change what counts
    for i, label in OVERRIDES.items():
        override_label(store, items[i]["item_id"], "lead", label, reason="read both answers")
    return set_id, items


def test_adjudication_split_counts_unanimous_majority_conflicts_and_overrides(store):
    set_id, _ = _labelled(store)
    stats = anchor_set_stats(store, set_id, n_resamples=50)
    # items with 2+ votes: 0, 1, 2, 3, 4, 8, 9 (6 has a skip and one vote)
    assert stats["adjudication"] == {"n": 7, "unanimous": 2, "majority": 3, "conflicts": 2, "overridden": 2}
    assert stats["unresolved_conflicts"] == 1  # item 4: item 2's conflict was decided by an override
    assert stats["adjudications"] == {"majority": 4, "override": 2}  # latest per item
    json.dumps(stats, allow_nan=False, default=str)


def test_label_split_counts_the_label_that_counts_per_split(store):
    set_id, items = _labelled(store)
    stats = anchor_set_stats(store, set_id, n_resamples=50)
    expected = {"tuning": {"A": 0, "B": 0, "tie": 0, "unlabelled": 0},
                "holdout": {"A": 0, "B": 0, "tie": 0, "unlabelled": 0}}
    for item, label in zip(items, COUNTS):
        expected["holdout" if item["is_holdout"] else "tuning"][label or "unlabelled"] += 1
    assert stats["label_split"] == expected
    assert sum(expected["holdout"].values()) == 4 and sum(expected["tuning"].values()) == 6
    assert sum(expected["holdout"][k] for k in ("A", "B", "tie")) >= 1  # the holdout really holds labels here


def test_an_override_moves_an_item_between_a_b_and_tie(store):
    set_id, items = _labelled(store)
    split = "holdout" if items[0]["is_holdout"] else "tuning"
    before = anchor_set_stats(store, set_id, n_resamples=20)["label_split"][split]
    override_label(store, items[0]["item_id"], "lead", "B", reason="all three missed the wrong join")
    after = anchor_set_stats(store, set_id, n_resamples=20)
    assert after["label_split"][split] == {**before, "A": before["A"] - 1, "B": before["B"] + 1}
    assert after["adjudication"]["overridden"] == 3 and after["adjudication"]["unanimous"] == 2  # votes unchanged


def test_stats_report_alpha_beside_fleiss_and_pairwise_kappa(store):
    set_id, _ = _labelled(store)
    stats = anchor_set_stats(store, set_id, n_resamples=200, seed=5)
    inter = stats["inter_annotator"]
    votes = {f"i{i}": [v for v in vs if v and v != "skip"] for i, vs in enumerate(VOTES)}
    expected = krippendorff_alpha(votes, n_resamples=200, seed=5)
    assert inter["krippendorff_alpha"] == expected.to_dict()
    assert inter["krippendorff_alpha"]["n"] == 7 and inter["krippendorff_alpha"]["alpha"] == pytest.approx(
        expected.alpha)
    assert inter["fleiss_kappa"] is not None and len(inter["pairwise"]) == 3


def test_alpha_is_computed_with_two_annotators_and_absent_with_one(store):
    drafts = [AnchorDraft(f"q{i}", f"a{i}", f"b{i}", labels=(DraftLabel("ana", "AB"[i % 2]),
                                                              DraftLabel("ben", "AB"[i % 3 % 2])))
              for i in range(12)]
    two = create_anchor_set(store, "two", drafts, holdout_fraction=0.0).anchor_set_id
    inter = anchor_set_stats(store, two, n_resamples=50)["inter_annotator"]
    assert inter["fleiss_kappa"] is None and inter["krippendorff_alpha"]["n"] == 12
    one = create_anchor_set(store, "one", [AnchorDraft("q", "a", "b", labels=(DraftLabel("ana", "A"),))],
                            holdout_fraction=0.0).anchor_set_id
    stats = anchor_set_stats(store, one, n_resamples=50)
    assert stats["inter_annotator"] is None
    assert stats["adjudication"] == {"n": 0, "unanimous": 0, "majority": 0, "conflicts": 0, "overridden": 0}
    assert stats["label_split"]["tuning"] == {"A": 1, "B": 0, "tie": 0, "unlabelled": 0}


def test_stats_of_an_unknown_set_name_it(store):
    with pytest.raises(ValueError, match="no anchor set 'as-nope'"):
        anchor_set_stats(store, "as-nope")
