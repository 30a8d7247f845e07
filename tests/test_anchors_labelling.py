"""Blind randomized labelling, next-item choice, append-only relabels, adjudication and which label counts."""

import dataclasses

import pytest

from rlaif.anchors.labelling import (
    Presentation,
    adjudicate_majority,
    consensus,
    labelling_queue,
    next_item,
    override_label,
    present,
    record_label,
    resolved_labels,
    shown_left_for,
    to_original,
    to_screen,
)
from rlaif.anchors.sets import AnchorDraft, DraftLabel, create_anchor_set
from store import Store


@pytest.fixture
def store():
    with Store(":memory:") as s:
        yield s


def _set(store, n=40, labels=None):
    labels = labels or {}
    drafts = [AnchorDraft(f"q{i}", f"a{i}", f"b{i}", slice="s", labels=tuple(labels.get(i, ()))) for i in range(n)]
    return create_anchor_set(store, "set", drafts, holdout_fraction=0.0).anchor_set_id


def test_presentation_is_blind():
    assert [f.name for f in dataclasses.fields(Presentation)] == ["item_id", "annotator", "prompt", "left", "right",
                                                                  "shown_left"]


def test_sides_are_randomized_per_annotator_and_map_back(store):
    set_id = _set(store)
    items = store.anchors.items(set_id)
    store.anchors.save_verdicts([{"item_id": i["item_id"], "judge_id": "j", "rubric_version": "r", "winner": "a",
                                  "confidence": 0.9} for i in items])
    ana = [present(store, i["item_id"], "ana") for i in items]
    ben = [present(store, i["item_id"], "ben") for i in items]
    assert {p.shown_left for p in ana} == {"a", "b"}  # both sides used
    assert any(x.shown_left != y.shown_left for x, y in zip(ana, ben))  # annotators see different layouts
    assert [present(store, i["item_id"], "ana").shown_left for i in items] == [p.shown_left for p in ana]  # stable
    for p, item in zip(ana, items):
        assert p.shown_left == shown_left_for("ana", item["item_id"])
        assert (p.left, p.right) == ((item["response_a"], item["response_b"]) if p.shown_left == "a"
                                     else (item["response_b"], item["response_a"]))
        record_label(store, p, "left")
    stored = {r["item_id"]: r for r in store.labels.latest(set_id)}
    for p, item in zip(ana, items):
        row = stored[item["item_id"]]
        original = item["response_a"] if row["label"] == "A" else item["response_b"]
        assert original == p.left  # "left" was mapped to whichever response was on the left
        assert row["shown_left"] == p.shown_left and row["annotator_kind"] == "human"
        assert to_screen(row["label"], p.shown_left) == "left"
    assert to_original("right", "a") == "B" and to_original("right", "b") == "A"
    assert to_original("tie", "b") == "tie" and to_original("skip", "a") == "skip"
    with pytest.raises(ValueError):
        to_original("up", "a")


def test_relabel_appends_and_the_latest_counts(store):
    set_id = _set(store, 3)
    item_id = store.anchors.items(set_id)[0]["item_id"]
    p = present(store, item_id, "ana")
    record_label(store, p, "left", note="first look")
    record_label(store, p, "tie", note="on reflection equal")
    history = store.labels.history(item_id, "ana")
    assert [h["label"] for h in history] == [to_original("left", p.shown_left), "tie"]
    assert [h["note"] for h in history] == ["first look", "on reflection equal"]
    latest = store.labels.latest(set_id, annotator="ana")
    assert len(latest) == 1 and latest[0]["label"] == "tie"
    assert resolved_labels(store, set_id, split="all")[item_id].label == "tie"


def test_next_item_prefers_unlabelled_then_disagreement_and_leaves_skips_last(store):
    set_id = _set(store, 6)
    ids = [i["item_id"] for i in store.anchors.items(set_id)]
    # item 4: two other annotators disagree; item 5: judges disagree -> both before the others; of the two, the one
    # with fewer human labels first (double-labelling before tie-breaking)
    for annotator, label in (("ben", "A"), ("cy", "B")):
        store.labels.add({"item_id": ids[4], "annotator": annotator, "annotator_kind": "human", "label": label})
    store.anchors.save_verdicts([{"item_id": ids[5], "judge_id": j, "rubric_version": "r", "winner": w}
                                 for j, w in (("j1", "a"), ("j2", "b"))])
    queue = labelling_queue(store, set_id, "ana")
    assert queue[:2] == [ids[5], ids[4]] and sorted(queue) == sorted(ids)
    first = next_item(store, set_id, "ana")
    assert first.item_id == ids[5]
    record_label(store, first, "skip")
    record_label(store, present(store, ids[4], "ana"), "right")
    queue = labelling_queue(store, set_id, "ana")
    assert queue[-1] == ids[5] and ids[4] not in queue  # skipped last, labelled gone
    for item_id in queue:
        record_label(store, present(store, item_id, "ana"), "tie")
    assert next_item(store, set_id, "ana") is None


def test_majority_adjudication_and_overrides(store):
    human = lambda name, label: DraftLabel(name, label, "human")  # noqa: E731
    set_id = _set(store, 4, labels={
        0: [human("ana", "A"), human("ben", "A"), human("cy", "B")],  # majority A
        1: [human("ana", "A"), human("ben", "B")],  # conflict
        2: [human("ana", "B"), human("ben", "skip"), DraftLabel("oracle:x", "A", "oracle")],  # one vote: B
        3: [DraftLabel("oracle:x", "tie", "oracle")],  # oracle only
    })
    ids = [i["item_id"] for i in store.anchors.items(set_id)]
    summary = adjudicate_majority(store, set_id, adjudicator="lead")
    assert summary.recorded == [ids[0]] and summary.conflicts == [ids[1]] and summary.overridden == []
    assert adjudicate_majority(store, set_id).recorded == []  # the same majority is not recorded twice
    with pytest.raises(ValueError, match="reason"):
        override_label(store, ids[1], "lead", "B", reason=" ")
    override_label(store, ids[1], "lead", "B", reason="b is the only one that runs")
    override_label(store, ids[0], "lead", "tie", reason="both equally wrong")
    again = adjudicate_majority(store, set_id)
    assert sorted(again.overridden) == sorted([ids[0], ids[1]]) and again.recorded == []
    adjudications = store.labels.adjudications(set_id, latest=False)
    assert [(a["method"], a["label"]) for a in adjudications] == [("majority", "A"), ("override", "tie"),
                                                                  ("override", "B")]
    assert adjudications[2]["note"] == "b is the only one that runs" and adjudications[2]["adjudicator"] == "lead"

    human_labels = resolved_labels(store, set_id, annotators="human", split="all")
    assert {k: (v.label, v.method) for k, v in human_labels.items()} == {
        ids[0]: ("tie", "override"), ids[1]: ("B", "override"), ids[2]: ("B", "consensus")}
    oracle = resolved_labels(store, set_id, annotators="oracle", split="all")
    assert {k: v.label for k, v in oracle.items()} == {ids[2]: "A", ids[3]: "tie"}
    either = resolved_labels(store, set_id, annotators="any", split="all")
    assert {k: v.label for k, v in either.items()} == {ids[0]: "tie", ids[1]: "B", ids[2]: "B", ids[3]: "tie"}


def test_consensus_is_a_strict_majority_of_votes():
    assert consensus(["A", "A", "B"]) == "A"
    assert consensus(["A", "B"]) is None
    assert consensus(["A", "B", "tie"]) is None
    assert consensus(["skip", "B"]) == "B"
    assert consensus(["skip"]) is None and consensus([]) is None
