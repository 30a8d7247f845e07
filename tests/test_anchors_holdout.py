"""The locked holdout: exact, stratified, stable across re-open, and never seen by tuning views or the gate."""

from collections import Counter

import pytest

from rlaif.anchors.gate import kappa_gate
from rlaif.anchors.holdout import draw_holdout, holdout_view, tuning_view
from rlaif.anchors.labelling import resolved_labels
from rlaif.judges.fake import FakeJudge
from rlaif.rubric import DEFAULT_RUBRIC
from store import Store
from tests.anchor_helpers import labelled_set


def test_draw_is_exact_stratified_and_seeded():
    items = [(f"it-{i:04d}", ("count", "ranking", "rare")[0 if i < 60 else 1 if i < 95 else 2], f"pair {i}")
             for i in range(100)]
    held = draw_holdout(items, 0.2, seed=0)
    assert len(held) == 20
    per_slice = Counter({item_id: s for item_id, s, _ in items}[i] for i in held)
    assert per_slice == {"count": 12, "ranking": 7, "rare": 1}  # 60, 35 and 5 items: 12, 7 and 1
    assert draw_holdout(items, 0.2, seed=0) == held
    assert draw_holdout(list(reversed(items)), 0.2, seed=0) == held  # order of the input does not matter
    assert draw_holdout(items, 0.2, seed=1) != held
    assert draw_holdout(items, 0.0, seed=0) == set()
    with pytest.raises(ValueError):
        draw_holdout(items, 1.0)


def test_tuning_view_never_contains_the_holdout_and_it_survives_reopening(tmp_path):
    path = tmp_path / "wb.duckdb"
    with Store(path) as store:
        set_id, _ = labelled_set(store, 50)
        tuning = {i["item_id"] for i in tuning_view(store, set_id)}
        holdout = {i["item_id"] for i in holdout_view(store, set_id)}
        everything = {i["item_id"] for i in store.anchors.items(set_id)}
        assert len(holdout) == 10 and not tuning & holdout and tuning | holdout == everything
        assert tuning == {i["item_id"] for i in store.anchors.items(set_id, split="tuning")}
        assert {i["item_id"] for i in tuning_view(store, set_id, slices=["count"])} <= tuning
        # labels on holdout items exist but the tuning resolution cannot see them
        assert set(resolved_labels(store, set_id, split="tuning")) == tuning
        assert set(resolved_labels(store, set_id, split="holdout")) == holdout
    with Store(path) as store:
        assert {i["item_id"] for i in holdout_view(store, set_id)} == holdout
        # re-creating the same set is a no-op: nothing re-draws the holdout
        labelled_set(store, 50)
        assert {i["item_id"] for i in holdout_view(store, set_id)} == holdout
        rows = store.cursor().execute("SELECT count(*) FROM anchor_tuning_items WHERE is_holdout").fetchone()
        assert rows == (0,)


def test_the_gate_decides_on_tuning_items_only():
    with Store(":memory:") as store:
        set_id, truth = labelled_set(store, 50)
        holdout = {i["item_id"] for i in holdout_view(store, set_id)}
        truth_by_item = {i["item_id"]: truth[i["position"]] for i in store.anchors.items(set_id)}

        def agree_on_tuning_only(c):  # perfect on tuning items, always wrong on the holdout
            label = truth_by_item[c.prompt_id]
            if c.prompt_id in holdout:
                return "b" if label == "A" else "a"
            return {"A": "a", "B": "b", "tie": "tie"}[label]

        judge = FakeJudge("fake", default=agree_on_tuning_only)
        result = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, report_holdout=False, min_items=10)
        assert {c.prompt_id for c in judge.history}.isdisjoint(holdout)
        assert result.passed and result.kappa == 1.0 and result.n == 40 and result.holdout is None

        reported = kappa_gate(store, FakeJudge("fake", default=agree_on_tuning_only), DEFAULT_RUBRIC, set_id,
                              min_items=10)
        assert reported.passed and reported.kappa == 1.0  # the holdout's disagreement does not move the decision
        assert reported.holdout["n"] == 10 and reported.holdout["kappa"] < 0


def test_an_export_reimported_under_another_name_keeps_the_same_pairs_held_out(tmp_path):
    from rlaif.anchors.exporters import export_anchor_set
    from rlaif.anchors.importers import import_anchor_file

    with Store(":memory:") as store:
        set_id, _ = labelled_set(store, 50, name="original")
        export_anchor_set(store, set_id, tmp_path / "copy.csv")
        copy = import_anchor_file(store, tmp_path / "copy.csv", name="renamed copy")
        assert copy.anchor_set_id != set_id

        def held_prompts(anchor_set_id):
            return {i["prompt"] for i in holdout_view(store, anchor_set_id)}

        assert held_prompts(copy.anchor_set_id) == held_prompts(set_id)  # no holdout pair leaks into tuning
