"""Deleting an anchor set: everything keyed to it goes in one transaction, other sets stay, and a run whose
calibration gate decided on the set blocks the delete unless forced (its manifest then stays verifiable)."""

import pytest

from rlaif.anchors.gate import kappa_gate
from rlaif.anchors.labelling import adjudicate_majority, override_label, present, record_label
from rlaif.anchors.sets import delete_anchor_set
from rlaif.judges.fake import FakeJudge
from rlaif.manifest import build_manifest, verify_manifest
from rlaif.rubric import DEFAULT_RUBRIC
from store import Store
from store import anchors as anchors_repository
from tests.anchor_helpers import labelled_set

# how each table reaches a set: directly, or through its items
COUNT_SQL = {
    "anchor_sets": "SELECT count(*) FROM anchor_sets WHERE anchor_set_id = ?",
    "anchor_items": "SELECT count(*) FROM anchor_items WHERE anchor_set_id = ?",
    "kappa_reports": "SELECT count(*) FROM kappa_reports WHERE anchor_set_id = ?",
    **{table: f"SELECT count(*) FROM {table} WHERE item_id IN (SELECT item_id FROM anchor_items"
              " WHERE anchor_set_id = ?) OR item_id LIKE ? || '-%'"
       for table in ("anchor_labels", "adjudications", "judge_anchor_verdicts")},
}


@pytest.fixture
def store():
    with Store(":memory:") as s:
        yield s


def rows_of(store, set_id):
    """Rows per table that belong to the set (item-keyed rows also by the item id prefix, so orphans count)."""
    cur = store.cursor()
    return {table: cur.execute(sql, [set_id] * sql.count("?")).fetchone()[0] for table, sql in COUNT_SQL.items()}


def populated_set(store, name):
    """A set with labels by two annotators, a relabel, majorities, an override, verdicts and a kappa report."""
    set_id, _ = labelled_set(store, 20, annotators=("ana", "ben"), name=name)
    items = store.anchors.items(set_id)
    record_label(store, present(store, items[0]["item_id"], "ben"), "tie")  # a conflict, and a relabel
    adjudicate_majority(store, set_id)
    override_label(store, items[0]["item_id"], "lead", "A", reason="checked by hand")
    gate = kappa_gate(store, FakeJudge("fake", default="a"), DEFAULT_RUBRIC, set_id, n_resamples=50, min_items=1)
    counts = rows_of(store, set_id)
    assert all(counts.values()), counts  # every table holds rows of this set
    return set_id, gate


def write_manifest(store, run_id, gate_dict):
    body = build_manifest(run_id=run_id, iteration=1, parents=[], calibration_gate=gate_dict)
    store.manifests.write(body["manifest_id"], run_id, 1, body)
    return body


def test_delete_empties_every_table_for_the_set_and_leaves_other_sets(store):
    doomed, _ = populated_set(store, "doomed")
    kept, _ = populated_set(store, "kept")
    before, kept_before = rows_of(store, doomed), rows_of(store, kept)
    result = delete_anchor_set(store, doomed)
    assert result.deleted == before and result.name == "doomed" and not result.forced
    assert set(rows_of(store, doomed).values()) == {0}
    assert rows_of(store, kept) == kept_before
    assert store.anchors.get_set(doomed) is None and [s["anchor_set_id"] for s in store.anchors.list_sets()] == [kept]
    assert result.to_dict()["deleted"]["anchor_items"] == 20


def test_a_deleted_set_can_be_imported_again(store):
    set_id, _ = labelled_set(store, 10, name="again")
    delete_anchor_set(store, set_id)
    again, _ = labelled_set(store, 10, name="again")  # same content-addressed id, written anew
    assert again == set_id and len(store.anchors.items(set_id)) == 10
    assert rows_of(store, set_id)["anchor_labels"] == 10


def test_a_run_that_gated_on_the_set_blocks_the_delete_and_names_the_run(store):
    set_id, gate = populated_set(store, "used")
    write_manifest(store, "r-gated", gate.to_dict())
    write_manifest(store, "r-unconfigured", {"decision": "not_configured"})  # names no set: no block
    before = rows_of(store, set_id)
    with pytest.raises(ValueError, match=r"run\(s\) r-gated \(iteration 1\).*force=True") as err:
        delete_anchor_set(store, set_id)
    assert "r-unconfigured" not in str(err.value)
    assert rows_of(store, set_id) == before  # nothing was deleted


def test_force_deletes_and_the_manifest_still_reads_and_verifies(store):
    set_id, gate = populated_set(store, "used")
    body = write_manifest(store, "r-gated", gate.to_dict())
    result = delete_anchor_set(store, set_id, force=True)
    assert result.forced
    assert [(m["run_id"], m["iteration"], m["manifest_id"]) for m in result.kept_manifests] == \
        [("r-gated", 1, body["manifest_id"])]
    assert set(rows_of(store, set_id).values()) == {0}
    stored = store.manifests.get(body["manifest_id"])["body"]
    assert stored == body and verify_manifest(stored)
    assert stored["calibration_gate"]["anchor_set_id"] == set_id  # the record still says what was decided on


def test_a_manifest_naming_another_set_does_not_block(store):
    set_id, _ = labelled_set(store, 10, name="free")
    other, gate = populated_set(store, "other")
    write_manifest(store, "r-other", gate.to_dict())
    assert delete_anchor_set(store, set_id).deleted["anchor_items"] == 10
    assert store.anchors.get_set(other) is not None


def test_deleting_an_unknown_set_is_a_clear_error(store):
    with pytest.raises(LookupError, match="no anchor set 'as-nope' to delete"):
        delete_anchor_set(store, "as-nope")
    with pytest.raises(LookupError, match="no anchor set 'as-nope' to delete"):
        delete_anchor_set(store, "as-nope", force=True)


def test_a_failure_midway_deletes_nothing(store, monkeypatch):
    set_id, _ = populated_set(store, "atomic")
    before = rows_of(store, set_id)
    # a table that does not exist, after the real ones have been emptied: the whole delete must roll back
    monkeypatch.setattr(anchors_repository, "SET_TABLES", (*anchors_repository.SET_TABLES, ("no_such_table", False)))
    with pytest.raises(Exception, match="no_such_table"):
        delete_anchor_set(store, set_id)
    assert rows_of(store, set_id) == before
