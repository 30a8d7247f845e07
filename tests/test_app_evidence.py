"""Evidence beside every pair, labelling that flows, per-pair export (issue 14): the engine and store behaviour, then
the Browse, Label and Export pages driven through ``app.py`` with Streamlit's AppTest.

The store-level tests pin the rules the pages rely on: an undone label is ignored by every read (latest, agreement
statistics, exports), queues are a deterministic plan with the requested overlap, a rejected pair never reaches an
approval's files, and a second approval of one selection needs a confirmation.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from rlaif.anchors.exporters import anchor_records
from rlaif.anchors.labelling import (
    assign_queues,
    labelling_queue,
    next_item,
    plan_assignments,
    present,
    queue_progress,
    record_label,
    resolved_labels,
    undo_last_label,
)
from rlaif.anchors.stats import anchor_set_stats
from rlaif.export import DuplicateApproval, ExportFilters, approve, approved_bytes, export_approved, select_pairs
from rlaif.workbench.diff_view import diff_panes
from rlaif.workbench.evidence import manifest_card, pair_evidence, reproduce_command
from store import Store
from tests.anchor_helpers import labelled_set
from tests.test_app_pages import env, open_page, store, texts, tiny  # noqa: F401  (fixtures)
from tests.workbench_fixtures import EVIDENCE_QUESTION, HOSTILE, seed_evidence_run, seed_run


@pytest.fixture
def mem():
    with Store(":memory:") as s:
        yield s


# ---- store and engine ------------------------------------------------------------------------------------------------


def test_undo_takes_a_label_back_everywhere_it_counts(mem):
    set_id, _ = labelled_set(mem, 6, annotators=("ana", "ben"))
    item = mem.anchors.items(set_id)[0]["item_id"]
    before_latest = {(r["item_id"], r["annotator"]): r["label"] for r in mem.labels.latest(set_id)}
    before_stats = anchor_set_stats(mem, set_id)
    before_resolved = resolved_labels(mem, set_id, split="all")
    # ana changes her mind on item 0 (a relabel to the other side), then undoes that press
    p = present(mem, item, "ana")
    old = before_latest[(item, "ana")]
    choice = "right" if old == p.shown_left.upper() else "left"
    record_label(mem, p, choice)
    assert {r["label"] for r in mem.labels.latest(set_id, annotator="ana") if r["item_id"] == item} != {old}
    undone = undo_last_label(mem, set_id, "ana")
    assert undone["item_id"] == item
    after = {(r["item_id"], r["annotator"]): r["label"] for r in mem.labels.latest(set_id)}
    assert after == before_latest  # the earlier label counts again
    assert anchor_set_stats(mem, set_id) == before_stats
    assert resolved_labels(mem, set_id, split="all") == before_resolved
    history = mem.labels.history(item, "ana")
    assert [h["retracted"] for h in history] == [False, True]  # nothing deleted: the undo is on record
    # a new annotator labels two items and undoes once: the newest press is taken back, that item is open again
    items = [i["item_id"] for i in mem.anchors.items(set_id)]
    record_label(mem, present(mem, items[0], "cy"), "left")
    record_label(mem, present(mem, items[1], "cy"), "tie")
    assert undo_last_label(mem, set_id, "cy")["item_id"] == items[1]
    assert [r["item_id"] for r in mem.labels.latest(set_id, annotator="cy")] == [items[0]]
    assert items[1] in labelling_queue(mem, set_id, "cy") and items[0] not in labelling_queue(mem, set_id, "cy")
    assert next_item(mem, set_id, "cy", prefer=items[1]).item_id == items[1]
    _, exported = anchor_records(mem, set_id, with_ids=True)  # what an anchor export writes
    by_item = {r["item_id"]: r for r in exported}
    assert by_item[items[1]]["label_cy"] is None and by_item[items[0]]["label_cy"] is not None
    assert by_item[item]["label_ana"] == old  # ana's undone relabel is not exported, her earlier label is
    with pytest.raises(ValueError, match="undone already"):
        mem.labels.retract(undone["label_id"], "ana")
    assert undo_last_label(mem, set_id, "nobody") is None


def test_queues_are_a_deterministic_plan_with_the_overlap_asked_for(mem):
    set_id, _ = labelled_set(mem, 10, annotators=())
    ids = [i["item_id"] for i in mem.anchors.items(set_id)]
    plan = plan_assignments(ids, ["ana", "ben", "cy"], 2)
    assert plan == plan_assignments(ids, ["ana", "ben", "cy"], 2)
    per_item: dict[str, set] = {}
    for row in plan:
        per_item.setdefault(row["item_id"], set()).add(row["annotator"])
    assert all(len(who) == 2 for who in per_item.values()) and set(per_item) == set(ids)
    counts = assign_queues(mem, set_id, ["ana", "ben", "cy"], 2, assigned_by="lead")
    assert sorted(counts.values()) == [6, 7, 7] and sum(counts.values()) == 20
    mine = [a["item_id"] for a in mem.anchors.assignments(set_id, "ana")]
    queue = labelling_queue(mem, set_id, "ana")
    assert queue[:len(mine)] == sorted(mine, key=ids.index) or set(queue[:len(mine)]) == set(mine)
    assert queue_progress(mem, set_id, "ana") == (0, len(mine))
    record_label(mem, present(mem, queue[0], "ana"), "tie")
    assert queue_progress(mem, set_id, "ana") == (1, len(mine))
    assert queue_progress(mem, set_id, "dee") is None  # not in the plan: no queue, every item still labellable
    assign_queues(mem, set_id, ["ana", "ben"], 1)  # re-assigning replaces the plan
    assert {a["annotator"] for a in mem.anchors.assignments(set_id)} == {"ana", "ben"}
    for bad, match in (((), "at least one"), (("ana", "ana"), "named twice")):
        with pytest.raises(ValueError, match=match):
            plan_assignments(ids, list(bad), 1)
    with pytest.raises(ValueError, match="overlap must be between 1 and"):
        plan_assignments(ids, ["ana"], 2)


def test_a_rejected_pair_is_left_out_of_the_approval_and_its_files(mem, tmp_path):
    run_id = seed_run(mem, pairs=12)
    filters = ExportFilters(run_id, iteration=1)
    selected = select_pairs(mem, filters)["pair_id"].to_pylist()
    rejected = selected[1]
    approval = approve(mem, filters, approved_by="ana", rejected=[rejected])
    assert approval["n_pairs"] == len(selected) - 1 and approval["rejected_pairs"] == [rejected]
    paths = export_approved(mem, approval["approval_id"], tmp_path)
    written = pq.read_table(paths["parquet"])["pair_id"].to_pylist()
    assert rejected not in written and len(written) == len(selected) - 1
    jsonl = [json.loads(line)["pair_id"] for line in approved_bytes(mem, approval["approval_id"])["jsonl"].splitlines()]
    assert jsonl == written
    # the same selection again is a duplicate: refused with the earlier approval named, allowed when confirmed
    with pytest.raises(DuplicateApproval) as info:
        approve(mem, filters, approved_by="ben")
    assert info.value.earlier[0]["approval_id"] == approval["approval_id"] and "approved already by ana" in str(
        info.value)
    again = approve(mem, filters, approved_by="ben", confirm_duplicate=True)
    assert again["n_pairs"] == len(selected) and again["rejected_pairs"] == []
    with pytest.raises(ValueError, match="not in the selection"):
        approve(mem, ExportFilters(run_id, iteration=1, search="q0002"), approved_by="ana", rejected=["nope"])


def test_pair_evidence_traces_a_pair_to_its_verdicts_and_checks(mem):
    run_id = seed_evidence_run(mem)
    pair = mem.pairs.page(run_id=run_id, limit=1)[0]
    ev = pair_evidence(mem, pair)
    assert ev.prompt == EVIDENCE_QUESTION
    assert [m.winner for m in ev.matches] == ["chosen", "chosen"]  # both orders asked, re-oriented
    assert [m.first_shown for m in ev.matches] == ["chosen", "rejected"]
    assert ev.matches[0].criteria == [{"criterion": "correct", "chosen": "✓ pass", "rejected": "✗ fail"}]
    assert ev.matches[1].criteria == [{"criterion": "correct", "chosen": "✓ pass", "rejected": "✗ fail"}]
    assert {r["check"]: r["result"] for r in ev.checks["rejected"]}["sql_result_matches"] == "✗ fail"
    assert ev.prompt_judgements == 2
    assert mem.pairs.prompt_text(run_id, "e0") == EVIDENCE_QUESTION


def test_the_difference_highlight_escapes_model_text():
    left, right, shared = diff_panes("SELECT a FROM t", "SELECT b FROM t -- " + HOSTILE)
    assert 0 < shared < 1 and diff_panes("same text", "same text")[2] == 1.0
    assert "<script>" not in right and "&lt;script&gt;" in right and "&lt;b&gt;x&lt;/b&gt;" in right
    assert right.count("rgba(33,195,84") >= 2 and ">b<" in right and ">a<" in left  # the changed words are marked
    assert "SELECT " in left and "rgba(33,195,84" not in left


def test_manifest_card_is_readable_and_reproducible(mem):
    run_id = seed_evidence_run(mem)
    body = mem.manifests.for_run(run_id)[-1]["body"]
    card = manifest_card(body)
    facts = {label: (shown, full) for label, shown, full in card.facts}
    assert card.title == "iteration · iteration 1"
    assert facts["model"] == ("m" * 12, "m" * 64) and facts["gate"][0] == "improved"
    assert facts["pairs kept"][0] == "3" and facts["pairs dropped"][0] == "1" and facts["judge"][0] == "verifier"
    assert facts["throughput"][0] == "sample 200 tok/s"
    assert card.metrics == [{"cohort": "all", "metric": "execution_accuracy", "value": "0.500", "vs previous": "+0.200",
                             "vs base": "+0.200"}]
    command = reproduce_command(body, "/data/wb.duckdb")
    assert command == f"rlaif reproduce {run_id}-iteration-01-{body['manifest_id']}.json --store /data/wb.duckdb"


# ---- pages -----------------------------------------------------------------------------------------------------------


def _html(at) -> str:
    return "\n".join(e.proto.body for e in at.get("html"))


def test_browse_shows_a_pairs_evidence_and_links_to_its_verdicts(env):
    s = store(env)
    run_id = seed_evidence_run(s, extra_candidates=1126)
    at = open_page("browse")
    at.selectbox(key="b.run").set_value(run_id).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="b.pair").value == f"{run_id}-pair-0"
    shown = [t.value for t in at.text]
    assert EVIDENCE_QUESTION in shown  # the question itself, not its id
    assert "the good answer filters region East (A)" in shown and "the good answer filters region East (B)" in shown
    page = texts(at)
    assert "winner: chosen" in page and "chosen shown first" in page and "rejected shown first" in page
    assert "rejected: 1 of 2 checks pass" in page and "chosen: 2 of 2 checks pass" in page
    html = _html(at)
    assert "&lt;script&gt;" in html and "<script>" not in html  # hostile text escaped in the highlight
    assert all("<b>" not in m.value for m in at.markdown)
    # link: pair -> its verdicts, with the filters set
    next(b for b in at.button if b.label.startswith("All 2 verdicts on e0")).click().run()
    assert at.radio(key="b.view").value == "Judgements"
    assert at.text_input(key="b.jprompt").value == "e0" and "2 verdicts" in texts(at)
    assert EVIDENCE_QUESTION in [t.value for t in at.text]  # the judgement detail shows the question
    # link: verdict -> candidates of the prompt; more than a page of them says so
    next(b for b in at.button if b.label == "Candidates of e0 →").click().run()
    assert at.radio(key="b.view").value == "Candidates"
    assert "showing 1–1,000 of 1,128 candidates" in texts(at)
    at.number_input(key="b.cpage").set_value(2).run()
    assert "showing 1,001–1,128 of 1,128 candidates" in texts(at)
    # link: candidate -> the verdicts it took part in
    at.number_input(key="b.cpage").set_value(1).run()
    next(b for b in at.button if b.label == "Verdicts with this candidate →").click().run()
    assert at.radio(key="b.view").value == "Judgements" and "2 verdicts" in texts(at)
    assert not at.exception, at.exception


def test_browse_shows_held_out_outputs_beside_the_base_and_manifest_cards(env):
    s = store(env)
    run_id = seed_evidence_run(s)
    at = open_page("browse")
    at.selectbox(key="b.run").set_value(run_id).run()
    at.radio(key="b.view").set_value("Evals").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="b.eprompt").value == "e0" and at.selectbox(key="b.eiter").value == 1
    html = _html(at)
    assert "iteration 0 (base)" in html and "North" in html and "East" in html
    at.radio(key="b.view").set_value("Manifests").run()
    assert not at.exception, at.exception
    card = next(h for h in _html(at).split("\n") if "rlaif-card" in h)
    full, shown = "m" * 64, "m" * 12
    assert f'title="{full}"' in card and f">{shown}</div>" in card  # 12 characters shown, all 64 on hover
    assert ">improved</div>" in card and ">pairs kept</div>" in card
    command = next(c.value for c in at.code if c.value.startswith("rlaif reproduce "))
    assert "--store " in command and command.split()[2].endswith(".json")
    assert at.get("download_button")


def test_label_page_undo_guidelines_highlight_and_queues(env):
    at = open_page("label")
    next(b for b in at.button if b.label == "Import").click().run()
    s = store(env)
    (anchor_set,) = s.anchors.list_sets()
    set_id, n = anchor_set["anchor_set_id"], anchor_set["n_items"]
    me = at.session_state["workbench"].labeller
    # guidelines: the project's rubric beside the pair
    guide = next(h.proto.body for h in at.get("html") if "rlaif-guidelines" in h.proto.body)
    for name, kind, weight in (("executes", "must pass", "1"), ("correct", "must pass", "2"),
                               ("allowlisted", "nice to have", "1")):
        assert f"<b>{name}</b> <span style=\"opacity:0.65\">{kind} · weight {weight}</span>" in guide
    assert "The result matches the golden result." in guide and "Prefer the simplest correct query." in guide
    assert len([h for h in at.get("html") if "rlaif-diff" in h.proto.body]) == 2  # left and right, marked
    first = at.session_state["l.item"]
    next(b for b in at.button if b.label == "◀ Left is better").click().run()
    assert f"1 of {n} labelled" in at.get("progress")[0].proto.text
    assert at.session_state["l.item"] != first
    next(b for b in at.button if b.label.startswith("↶ Undo")).click().run()
    assert not at.exception, at.exception
    assert f"0 of {n} labelled" in at.get("progress")[0].proto.text
    assert at.session_state["l.item"] == first  # the same pair again
    assert s.labels.latest(set_id, kinds=("human",), annotator=me) == []
    # the pair can be labelled again after an undo (the double-click guard forgot it)
    next(b for b in at.button if b.label == "Tie").click().run()
    assert [r["label"] for r in s.labels.latest(set_id, kinds=("human",), annotator=me)] == ["tie"]
    # queues: assign the set to two annotators, each item to one; this annotator then sees "n of m assigned"
    at.text_input(key="l.q.who").set_value(f"{me}, other").run()
    at.number_input(key="l.q.k").set_value(1).run()
    next(b for b in at.button if b.label == "Assign queues").click().run()
    assert not at.exception, at.exception
    mine = s.anchors.assignments(set_id, me)
    assert len(mine) == -(-n // 2) and len(s.anchors.assignments(set_id)) == n
    done, total = queue_progress(s, set_id, me)
    assert f"{done} of {total} assigned" in "\n".join(p.proto.text for p in at.get("progress"))
    assert at.session_state["l.item"] in {a["item_id"] for a in mine}
    page_text = texts(at).lower()
    assert "judge" not in page_text and "verdict" not in page_text and "oracle" not in page_text  # still blind


def test_export_page_rejects_a_pair_and_warns_before_a_duplicate(env):
    s = store(env)
    run_id = seed_run(s, pairs=20)
    s.runs.create("run-failed", "failed one", {}, "c" * 64, "stub", "r" * 64, None, None)
    s.runs.set_status("run-failed", "failed", error="boom")
    at = open_page("export")
    assert any("completed" in o for o in at.selectbox(key="x.run").options)
    assert any("failed" in o for o in at.selectbox(key="x.run").options)
    at.selectbox(key="x.run").set_value(run_id).run()
    pairs = select_pairs(s, ExportFilters(run_id))["pair_id"].to_pylist()
    rejected = pairs[2]
    # untick one pair: the review table is drawn from this selection's rejections (the browser test clicks the box)
    at.session_state[f"x.rej.{run_id}.None.None.None"] = {rejected}
    at.run()
    (review,) = [d for d in at.dataframe if d.proto.editing_mode]  # the review table is an editable table
    assert list(review.value["include"]) == [p != rejected for p in pairs]
    assert "10 kept pairs selected · 9 included · 1 rejected" in texts(at), texts(at)
    next(b for b in at.button if b.label.startswith("Approve 9 pairs")).click().run()
    assert not at.exception, at.exception
    (approval,) = s.approvals.list(run_id)
    assert approval["rejected_pairs"] == [rejected] and approval["n_pairs"] == 9
    files = approved_bytes(s, approval["approval_id"])
    assert rejected not in files["jsonl"].decode()
    # the same selection again: a warning naming the earlier approval, and the button waits for a confirmation
    assert "approved already" in texts(at)
    button = next(b for b in at.button if b.label.startswith("Approve"))
    assert button.disabled
    at.checkbox(key="x.confirm").check().run()
    next(b for b in at.button if b.label.startswith("Approve")).click().run()
    assert len(s.approvals.list(run_id)) == 2
