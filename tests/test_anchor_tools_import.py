"""Imports from annotation tools: Label Studio JSON exports and Argilla 2.x record exports, in each tool's documented
shape, with the right annotators and labels; malformed exports refused by file, task/record and field, storing nothing.

Where the shapes come from:

* Label Studio: the export's task format (labelstud.io/guide/task_format: ``id``, ``data``, ``annotations`` with
  ``completed_by``, ``result``, ``was_cancelled``), the "Human Preference collection for RLHF" template
  (label_studio/annotation_templates/generative-ai/human-feedback-collection: ``$prompt``, ``$answer1``,
  ``$answer2``, ``<Pairwise name="comparison" toName="answer1,answer2">``), the Pairwise tag's source
  (label-studio-frontend src/tags/control/Pairwise.js: result ``{"selected": "left"|"right"}``), the Ranker tag's
  documented result (src/tags/control/Ranker.js: ``{"type": "ranker", "value": {"ranker": ["mdn", "wiki"]}}`` over a
  List of ``{"id", "title", "body"}`` items, as in the "LLM Ranker" template) and the Choices tag's
  ``{"choices": [...]}``.
* Argilla 2.x: ``Record.to_dict`` (argilla/src/argilla/records/_resource.py: ``id``, ``fields``, ``metadata``,
  ``suggestions``, ``responses: {question: [{"value", "user_id"}]}``, ``vectors``, ``status``, ``_server_id``), written
  as a JSON array by ``records.to_json`` (records/_io/_json.py); the flattened form of ``GenericIO.to_list(flatten=
  True)`` (records/_io/_generic.py: ``<q>.responses``, ``<q>.responses.users``, ``<q>.responses.status``,
  ``<q>.suggestion*``), which the Hub export ``to_datasets`` writes; ``ResponseStatus`` draft/submitted/discarded and
  the SDK's ranking value, a list of options best first (argilla/src/argilla/responses.py).
"""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlaif.anchors.importers import AnchorImportError, ImportOptions, import_anchor_file, parse_anchor_file
from rlaif.cli import main
from store import Store

TABLES = ("anchor_sets", "anchor_items", "anchor_labels")


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def nothing_stored(store) -> bool:
    return all(store.cursor().execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0 for t in TABLES)


def labels_of(store, set_id) -> dict[tuple[int, str], tuple[str, str, str | None]]:
    return {(r["position"], r["annotator"]): (r["label"], r["annotator_kind"], r["note"])
            for r in store.labels.latest(set_id)}


# ---------------------------------------------------------------------------------------------------------------------
# Label Studio


def ls_annotation(user, selected=None, *, choices=None, note=None, cancelled=False, kind="pairwise"):
    result = []
    if selected is not None:
        result.append({"id": "pw1", "type": "pairwise", "from_name": "comparison", "to_name": "comparison",
                       "origin": "manual", "value": {"selected": selected}})
    if choices is not None:
        result.append({"id": "ch1", "type": "choices", "from_name": "preference", "to_name": "prompt",
                       "origin": "manual", "value": {"choices": choices}})
    if note is not None:
        result.append({"id": "ta1", "type": "textarea", "from_name": "why", "to_name": "prompt",
                       "value": {"text": [note]}})
    return {"id": 1000 + hash(str(user)) % 1000, "completed_by": user, "result": result, "was_cancelled": cancelled,
            "ground_truth": False, "created_at": "2024-05-02T10:00:00Z", "lead_time": 12.5, "task": 1}


def ls_task(task_id, prompt, answer1, answer2, annotations, **data):
    return {"id": task_id, "data": {"prompt": prompt, "answer1": answer1, "answer2": answer2, **data},
            "annotations": annotations, "predictions": [], "meta": {}, "created_at": "2024-05-01T09:00:00Z",
            "updated_at": "2024-05-02T10:00:00Z", "inner_id": task_id, "total_annotations": len(annotations),
            "cancelled_annotations": 0, "total_predictions": 0, "project": 3}


def test_label_studio_pairwise_export_imports_one_label_per_completed_annotation(tmp_path, capsys):
    ana = {"id": 3, "email": "ana@example.org", "first_name": "Ana"}
    tasks = [
        ls_task(11, "Orders in 2023?", "SELECT count(*) FROM orders WHERE year = 2023;", "SELECT 1;",
                [ls_annotation(ana, "left", note="b ignores the year"), ls_annotation(7, "right"),
                 ls_annotation(9, "left", cancelled=True)], slice="count"),
        ls_task(12, "Top region?", "SELECT 'East';", "SELECT region FROM v ORDER BY revenue DESC LIMIT 1;",
                [ls_annotation(ana, "right"), ls_annotation(7, "right")]),
        ls_task(13, "Revenue in 2024?", "SELECT 2;", "SELECT 3;", []),  # not annotated yet: imported unlabelled
    ]
    path = write_json(tmp_path / "project-3-at-2024-05-02.json", tasks)
    db = tmp_path / "wb.duckdb"
    assert main(["--store", str(db), "anchors", "import", str(path), "--annotator-name", "user-7=bo"]) == 0
    out = capsys.readouterr().out
    assert "3 items (labelstudio)" in out and out.rstrip().endswith("4 labels: ana@example.org 2, bo 2")
    with Store(db) as store:
        set_id = store.anchors.list_sets()[0]["anchor_set_id"]
        assert labels_of(store, set_id) == {
            (0, "ana@example.org"): ("A", "human", "b ignores the year"), (0, "bo"): ("B", "human", None),
            (1, "ana@example.org"): ("B", "human", None), (1, "bo"): ("B", "human", None)}
        items = store.anchors.items(set_id)
    assert [(i["prompt"], i["response_a"]) for i in items][:2] == [
        ("Orders in 2023?", "SELECT count(*) FROM orders WHERE year = 2023;"), ("Top region?", "SELECT 'East';")]
    assert items[0]["slice"] == "count" and [i["extra"]["labelstudio_task_id"] for i in items] == [11, 12, 13]


def test_label_studio_choices_and_ranker_projects(tmp_path):
    choices = [ls_task(1, "q1", "x", "y", [ls_annotation(1, choices=["Answer 2"]), ls_annotation(2, choices=["A"])]),
               ls_task(2, "q2", "x", "y", [ls_annotation(1, choices=["Tie"]), ls_annotation(2, choices=["left"])])]
    parsed = parse_anchor_file(write_json(tmp_path / "choices.json", choices))
    assert parsed.format == "labelstudio"
    assert [[(lab.annotator, lab.label) for lab in d.labels] for d in parsed.drafts] == [
        [("user-1", "B"), ("user-2", "A")], [("user-1", "tie"), ("user-2", "A")]]

    items = [{"id": "llama_model", "title": "LlamaModel", "body": "Jobs will change, not vanish."},
             {"id": "cobra_ai", "title": "CobraAI", "body": "AI will replace all jobs."}]
    ranker = [{"id": 5, "data": {"task": "Rank the answers.", "prompt": "AI and jobs?", "items": items},
               "annotations": [{"completed_by": 4, "was_cancelled": False, "result": [
                   {"type": "ranker", "from_name": "rank", "to_name": "answers",
                    "value": {"ranker": ["cobra_ai", "llama_model"]}}]}]}]
    (draft,) = parse_anchor_file(write_json(tmp_path / "ranker.json", ranker)).drafts
    assert (draft.prompt, draft.response_a, draft.response_b) == ("AI and jobs?", "Jobs will change, not vanish.",
                                                                   "AI will replace all jobs.")
    assert [(lab.annotator, lab.label) for lab in draft.labels] == [("user-4", "B")]
    assert draft.extra == {"task": "Rank the answers.", "labelstudio_task_id": 5}


def test_label_studio_keys_can_be_named_when_detection_fails(tmp_path):
    tasks = [{"id": 1, "data": {"instruction_text": "Say hi", "model_x": "Hello!", "model_y": "Go away."},
              "annotations": [{"completed_by": 2, "result": [{"type": "pairwise", "value": {"selected": "left"}}]}]}]
    path = write_json(tmp_path / "custom.json", tasks)
    with pytest.raises(AnchorImportError, match=r"custom.json: task 1 \(id 1\): field 'data': no prompt .*"
                                                r"pass --prompt-field KEY"):
        parse_anchor_file(path)
    with pytest.raises(AnchorImportError, match=r"no pair of responses .* pass --response-fields LEFT,RIGHT"):
        parse_anchor_file(path, options=ImportOptions(prompt_field="instruction_text"))
    parsed = parse_anchor_file(path, options=ImportOptions(prompt_field="instruction_text",
                                                           response_fields="model_y,model_x"))
    (draft,) = parsed.drafts
    assert (draft.prompt, draft.response_a, draft.labels[0].label) == ("Say hi", "Go away.", "A")


@pytest.mark.parametrize("task, message", [
    ({"annotations": [{"completed_by": 2, "result": [{"type": "pairwise", "value": {"selected": "up"}}]}]},
     "field 'annotations[0].result[0].value': selected must be left or right, got 'up'"),
    ({"annotations": [{"result": [{"type": "pairwise", "value": {"selected": "left"}}]}]},
     "field 'annotations[0].completed_by': missing"),
    ({"annotations": [{"completed_by": 2, "result": [{"type": "choices", "value": {"choices": ["Great"]}}]}]},
     "field 'annotations[0].result[0].value': ['Great'] is not one side"),
    ({"annotations": [{"completed_by": 2, "result": [{"type": "pairwise", "value": {"selected": "left"}}]},
                      {"completed_by": 2, "result": [{"type": "pairwise", "value": {"selected": "right"}}]}]},
     "field 'annotations[1].completed_by': user-2 annotated this task twice"),
    ({"annotations": [{"completed_by": 2, "result": [{"type": "pairwise", "value": {"selected": "left"}},
                                                     {"type": "choices", "value": {"choices": ["B"]}}]}]},
     "field 'annotations[0].result[1]': contradicts annotations[0].result[0]"),
    ({"annotations": "none"}, "field 'annotations': must be a list, got str"),
])
def test_malformed_label_studio_exports_name_task_and_field_and_store_nothing(tmp_path, task, message):
    good = ls_task(11, "q", "x", "y", [ls_annotation(1, "left")])
    bad = {"id": 12, "data": {"prompt": "q2", "answer1": "x", "answer2": "y"}, **task}
    path = write_json(tmp_path / "export.json", [good, bad])
    with Store(":memory:") as store:
        with pytest.raises(AnchorImportError) as info:
            import_anchor_file(store, path)
        assert str(info.value).startswith(f"{path}: task 2 (id 12): ") and message in str(info.value)
        assert info.value.line == 2 and nothing_stored(store)


def test_label_studio_question_picks_one_control_and_annotators_may_be_e_mails(tmp_path):
    both = {"completed_by": "cy@example.org", "result": [
        {"type": "pairwise", "from_name": "comparison", "value": {"selected": "left"}},
        {"type": "choices", "from_name": "safer", "value": {"choices": ["Answer 2"]}}]}
    path = write_json(tmp_path / "two.json", [ls_task(1, "q", "x", "y", [both])])
    with pytest.raises(AnchorImportError, match="contradicts .* pass --question FROM_NAME"):
        parse_anchor_file(path)
    for control, side in (("comparison", "A"), ("safer", "B")):
        (draft,) = parse_anchor_file(path, options=ImportOptions(question=control)).drafts
        assert [(lab.annotator, lab.label) for lab in draft.labels] == [("cy@example.org", side)]


def test_a_label_studio_ranking_of_three_is_refused(tmp_path):
    items = [{"id": str(i), "body": f"answer {i}"} for i in range(3)]
    path = write_json(tmp_path / "r.json", [{"id": 1, "data": {"prompt": "q", "items": items}, "annotations": []}])
    with pytest.raises(AnchorImportError, match=r"task 1 \(id 1\): field 'data.items': a ranking of 3 responses"):
        parse_anchor_file(path)


# ---------------------------------------------------------------------------------------------------------------------
# Argilla


ANA, BO, CY = "9c1f4e0a-1111-4a8e-9d3c-2f6b8a1e0001", "07ad2b3c-2222-4b7f-8e2d-3a5c9b2f0002", "5e5e-3333"


def argilla_record(rid, prompt, a, b, preference, comment=(), **metadata):
    """A record as ``dataset.records.to_json`` writes it (Record.to_dict), with a ``status`` on each answer as the
    server's UserResponseModel has it."""
    return {"id": rid, "fields": {"prompt": prompt, "response_a": a, "response_b": b}, "metadata": metadata,
            "suggestions": {"preference": {"value": "response_b", "score": 0.9, "agent": "gpt-judge"}},
            "responses": {"preference": [{"value": v, "user_id": u, "status": s} for u, v, s in preference],
                          "comment": [{"value": v, "user_id": u} for u, v in comment]},
            "vectors": {}, "status": "completed", "_server_id": f"srv-{rid}"}


def test_argilla_records_import_submitted_answers_per_user(tmp_path, capsys):
    records = [
        argilla_record("r1", "Orders in 2023?", "SELECT count(*) ...", "SELECT 1;",
                       [(ANA, "response_a", "submitted"), (BO, "response_b", "submitted"), (CY, "tie", "draft")],
                       comment=[(ANA, "b forgets the year")], slice="count"),
        argilla_record("r2", "Top region?", "SELECT 'East';", "SELECT region ...",
                       [(ANA, ["response_b", "response_a"], "submitted"), (BO, "Tie", "submitted"),
                        (CY, "response_a", "discarded")]),
    ]
    db = tmp_path / "wb.duckdb"
    path = write_json(tmp_path / "records.json", records)
    assert main(["--store", str(db), "anchors", "import", str(path), "--annotator-name", f"user-{ANA}=ana"]) == 0
    out = capsys.readouterr().out
    assert "2 items (argilla)" in out and out.rstrip().endswith(f"4 labels: ana 2, user-{BO} 2")
    with Store(db) as store:
        set_id = store.anchors.list_sets()[0]["anchor_set_id"]
        assert labels_of(store, set_id) == {(0, "ana"): ("A", "human", None), (0, f"user-{BO}"): ("B", "human", None),
                                            (1, "ana"): ("B", "human", None), (1, f"user-{BO}"): ("tie", "human", None)}
        items = store.anchors.items(set_id)
    assert items[0]["slice"] == "count" and items[0]["extra"] == {"argilla_record_id": "r1"}
    assert (items[1]["prompt"], items[1]["response_a"]) == ("Top region?", "SELECT 'East';")


def test_argilla_ranking_in_the_api_shape_with_ties(tmp_path):
    ranking = [{"value": "response_b", "rank": 1}, {"value": "response_a", "rank": 2}]
    tied = [{"value": "response_a", "rank": 1}, {"value": "response_b", "rank": 1}]
    records = [argilla_record("r1", "q", "x", "y", [(ANA, ranking, "submitted"), (BO, tied, None)])]
    (draft,) = parse_anchor_file(write_json(tmp_path / "ranked.json", records)).drafts
    assert {lab.annotator: lab.label for lab in draft.labels} == {f"user-{ANA}": "B", f"user-{BO}": "tie"}


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_argilla_flattened_hub_export(tmp_path, suffix):
    """``to_list(flatten=True)`` / ``to_datasets()``: fields and metadata as columns, answers as parallel lists."""
    rows = [{"id": "r1", "status": "completed", "_server_id": "s1", "instruction": "Say hi", "response1": "Hello!",
             "response2": "Go away.", "topic": "greeting",
             "preference.responses": ["response1", "response2", "response1"],
             "preference.responses.users": [ANA, BO, CY],
             "preference.responses.status": ["submitted", "submitted", "draft"],
             "preference.suggestion": "response2", "preference.suggestion.score": 0.7,
             "preference.suggestion.agent": "judge"},
            {"id": "r2", "status": "pending", "_server_id": "s2", "instruction": "Say bye", "response1": "Bye!",
             "response2": "...", "topic": "greeting", "preference.responses": None,
             "preference.responses.users": None, "preference.responses.status": None,
             "preference.suggestion": None, "preference.suggestion.score": None, "preference.suggestion.agent": None}]
    path = tmp_path / f"hub{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    with Store(":memory:") as store:
        result = import_anchor_file(store, path)
        assert result.format == "argilla" and result.label_counts == {f"user-{ANA}": 1, f"user-{BO}": 1}
        items = store.anchors.items(result.anchor_set_id)
        assert [(i["prompt"], i["response_a"]) for i in items] == [("Say hi", "Hello!"), ("Say bye", "Bye!")]
        assert items[0]["extra"] == {"topic": "greeting", "argilla_record_id": "r1"}  # suggestions are not kept
        assert sorted(r["label"] for r in store.labels.latest(result.anchor_set_id)) == ["A", "B"]


@pytest.mark.parametrize("answers, options, message", [
    ([(ANA, "response_a", "submitted"), (BO, "response_a", "pending")], {},
     "record 2 (id r2): field 'responses.preference[1].status': unknown status 'pending'"),
    ([(ANA, 4, "submitted")], {"question": "preference"},
     "record 2 (id r2): field 'responses.preference[0]': 4 is not a preference"),
    ([(None, "response_b", "submitted")], {},
     "record 2 (id r2): field 'responses.preference[0]': an answer without a user_id"),
    ([(ANA, "response_a", "submitted"), (ANA, "response_b", "submitted")], {},
     f"record 2 (id r2): field 'responses.preference[1]': user-{ANA} answered 'preference' twice"),
    ([(ANA, 4, "submitted")], {},
     ("no question whose submitted answers all read as A, B, tie or a response field: "
      "preference (record 2 (id r2): responses.preference[0] = 4)")),
    ([(ANA, "response_a", "submitted")], {"question": "rating"}, "--question rating: no answers to it"),
])
def test_malformed_argilla_exports_name_record_and_field_and_store_nothing(tmp_path, answers, options, message):
    good = argilla_record("r1", "q1", "x", "y", [(BO, "response_b", "submitted")])
    bad = argilla_record("r2", "q2", "x", "y", answers)
    path = write_json(tmp_path / "records.json", [good, bad])
    with Store(":memory:") as store:
        with pytest.raises(AnchorImportError) as info:
            import_anchor_file(store, path, options=ImportOptions(**options))
        assert str(info.value).startswith(f"{path}: ") and message in str(info.value), str(info.value)
        assert nothing_stored(store)


def test_argilla_fields_can_be_named_when_detection_fails(tmp_path):
    records = [{"id": "r1", "fields": {"instruction_text": "Say hi", "model_x": "Hello!", "model_y": "Go away."},
                "responses": {"preference": [{"value": "model_x", "user_id": ANA, "status": "submitted"}]}}]
    path = write_json(tmp_path / "custom.json", records)
    with pytest.raises(AnchorImportError, match=r"custom.json: record 1 \(id r1\): field 'fields': no prompt .* among "
                                                r"the fields keys .* pass --prompt-field KEY"):
        parse_anchor_file(path)
    with pytest.raises(AnchorImportError, match=r"no pair of responses .* pass --response-fields LEFT,RIGHT"):
        parse_anchor_file(path, options=ImportOptions(prompt_field="instruction_text"))
    parsed = parse_anchor_file(path, options=ImportOptions(prompt_field="instruction_text",
                                                           response_fields="model_y,model_x"))
    (draft,) = parsed.drafts
    assert (draft.prompt, draft.response_a, draft.labels[0].label) == ("Say hi", "Go away.", "B")


def test_two_preference_questions_need_a_choice(tmp_path):
    record = argilla_record("r1", "q", "x", "y", [(ANA, "response_a", "submitted")])
    record["responses"]["overall"] = [{"value": "response_b", "user_id": ANA}]
    path = write_json(tmp_path / "two.json", [record])
    with pytest.raises(AnchorImportError, match=r"several questions read as preferences: \['preference', 'overall'\]"):
        parse_anchor_file(path)
    (draft,) = parse_anchor_file(path, options=ImportOptions(question="overall")).drafts
    assert [(lab.annotator, lab.label) for lab in draft.labels] == [(f"user-{ANA}", "B")]


def test_an_unknown_tool_shape_is_refused_with_the_formats_it_could_be(tmp_path):
    path = write_json(tmp_path / "odd.json", [{"question": "q", "answers": ["a", "b"]}])
    with pytest.raises(AnchorImportError, match=r"odd.json: record 1: unrecognised columns .*Label Studio JSON export"):
        parse_anchor_file(path)
    with pytest.raises(AnchorImportError, match=r"record 1: field 'fields': not an Argilla record"):
        parse_anchor_file(path, format="argilla")
    with pytest.raises(AnchorImportError, match=r"task 1: field 'data': not a Label Studio task"):
        parse_anchor_file(path, format="labelstudio")
