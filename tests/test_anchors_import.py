"""Importing anchor pairs: each shape and file type, and bad files that leave nothing half-written."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlaif.anchors.importers import AnchorImportError, import_anchor_file, parse_anchor_file, split_hh_transcripts
from rlaif.datasets import DatasetError
from store import Store


@pytest.fixture
def store():
    with Store(":memory:") as s:
        yield s


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def write_csv(path, records):
    columns = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in records:
            writer.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return path


def write_parquet(path, records):
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}


def _count(store, table):
    return store.cursor().execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _nothing_stored(store):
    return all(_count(store, t) == 0 for t in ("anchor_sets", "anchor_items", "anchor_labels"))


def _preference_records(n=20):
    return [{"prompt": f"Question {i}: how many orders in {2020 + i % 5}?", "chosen": f"SELECT {i};",
             "rejected": f"SELECT {i} + 1; -- wrong", "cohort": "count" if i % 2 else "ranking", "difficulty": i}
            for i in range(n)]


# ---- the three shapes


@pytest.mark.parametrize("file_type", ["jsonl", "csv", "parquet"])
def test_preference_pairs_are_randomized_and_labelled_by_a_dataset_oracle(store, tmp_path, file_type):
    records = _preference_records(60)
    path = WRITERS[file_type](tmp_path / f"prefs.{file_type}", records)
    result = import_anchor_file(store, path, name="prefs")
    assert result.created and result.n_items == 60 and result.format == "preference"
    assert result.annotators == ["dataset:" + path.name]
    items = store.anchors.items(result.anchor_set_id)
    labels = {r["item_id"]: r for r in store.labels.latest(result.anchor_set_id)}
    sides = []
    for item, record in zip(items, records):
        label = labels[item["item_id"]]
        assert label["annotator_kind"] == "oracle" and label["annotator"] == f"dataset:{path.name}"
        chosen_side = "response_a" if label["label"] == "A" else "response_b"
        rejected_side = "response_b" if label["label"] == "A" else "response_a"
        assert item[chosen_side] == record["chosen"] and item[rejected_side] == record["rejected"]
        assert item["prompt"] == record["prompt"] and item["slice"] == record["cohort"]
        assert item["extra"]["difficulty"] in (record["difficulty"], str(record["difficulty"]))  # CSV: text
        sides.append(label["label"])
    assert 20 <= sides.count("A") <= 40  # a content-seeded coin flip: both sides used, no position shortcut
    # the same file imports the same way (seeded by content, not by a clock)
    again = parse_anchor_file(path)
    assert [d.response_a for d in again.drafts] == [i["response_a"] for i in items]


def test_chat_message_preferences_as_trl_takes_them(store, tmp_path):
    explicit = {"prompt": [{"role": "system", "content": "You write DuckDB SQL."},
                           {"role": "user", "content": "Revenue in 2024?"}],
                "chosen": [{"role": "assistant", "content": "SELECT SUM(revenue) FROM v WHERE year = 2024;"}],
                "rejected": [{"role": "assistant", "content": "SELECT 1;"}]}
    lone_user = {"prompt": [{"role": "user", "content": "Orders in 2023?"}],
                 "chosen": [{"role": "assistant", "content": "good"}],
                 "rejected": [{"role": "assistant", "content": "bad"}]}
    implicit = {"chosen": [{"role": "user", "content": "Best region?"}, {"role": "assistant", "content": "East"}],
                "rejected": [{"role": "user", "content": "Best region?"}, {"role": "assistant", "content": "Mars"}]}
    path = write_jsonl(tmp_path / "chat.jsonl", [explicit, lone_user, implicit])
    parsed = parse_anchor_file(path)
    assert parsed.format == "preference"
    first, second, third = parsed.drafts
    assert first.prompt == "System: You write DuckDB SQL.\n\nUser: Revenue in 2024?"
    assert first.extra["prompt_messages"] == explicit["prompt"]
    assert {first.response_a, first.response_b} == {"SELECT SUM(revenue) FROM v WHERE year = 2024;", "SELECT 1;"}
    assert second.prompt == "Orders in 2023?"
    assert third.prompt == "Best region?" and {third.response_a, third.response_b} == {"East", "Mars"}
    winner = third.response_a if third.labels[0].label == "A" else third.response_b
    assert winner == "East"
    assert import_anchor_file(store, path).n_items == 3


HH_CHOSEN = ("\n\nHuman: What is a good name for a cat?\n\nAssistant: Maybe Whiskers?\n\n"
             "Human: Something more unusual?\n\nAssistant: How about \"Professor Paws\"? It's playful.")
HH_REJECTED = ("\n\nHuman: What is a good name for a cat?\n\nAssistant: Maybe Whiskers?\n\n"
               "Human: Something more unusual?\n\nAssistant: Cat.")


def test_hh_rlhf_transcripts_split_off_the_shared_prompt(store, tmp_path):
    prompt, chosen, rejected = split_hh_transcripts(HH_CHOSEN, HH_REJECTED)
    assert prompt == ("Human: What is a good name for a cat?\n\nAssistant: Maybe Whiskers?\n\n"
                      "Human: Something more unusual?\n\nAssistant:")
    assert chosen == "How about \"Professor Paws\"? It's playful." and rejected == "Cat."
    # responses that start alike still split at the last shared "Assistant:"
    p2, c2, r2 = split_hh_transcripts("\n\nHuman: hi\n\nAssistant: Sure, here", "\n\nHuman: hi\n\nAssistant: Sure no")
    assert p2 == "Human: hi\n\nAssistant:" and (c2, r2) == ("Sure, here", "Sure no")
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": HH_CHOSEN, "rejected": HH_REJECTED}] * 3)
    result = import_anchor_file(store, path)
    assert result.format == "hh" and result.n_items == 3
    item = store.anchors.items(result.anchor_set_id)[0]
    assert item["prompt"] == prompt and {item["response_a"], item["response_b"]} == {chosen, rejected}


@pytest.mark.parametrize("file_type", ["jsonl", "csv", "parquet"])
def test_pairwise_files_with_several_annotator_columns(store, tmp_path, file_type):
    records = [
        {"prompt": "q1", "response_a": "x", "response_b": "y", "slice": "count", "reference": "SELECT 1;",
         "label_ana": "A", "label_ben": "b", "label_oracle:sql": "A", "note_ana": "y invents a column"},
        {"prompt": "q2", "response_a": "x2", "response_b": "y2", "slice": "count", "reference": None,
         "label_ana": "TIE", "label_ben": None, "label_oracle:sql": "skip", "note_ana": None},
        {"prompt": "q3", "response_a": "", "response_b": "y3", "slice": "ranking", "reference": None,
         "label_ana": "", "label_ben": "Skip", "label_oracle:sql": "B", "note_ana": ""},
    ]
    path = WRITERS[file_type](tmp_path / f"pairs.{file_type}", records)
    result = import_anchor_file(store, path, name="pairs")
    assert result.format == "pairwise" and result.n_items == 3 and result.n_labels == 7
    assert result.annotators == ["ana", "ben", "oracle:sql"]
    rows = store.labels.latest(result.anchor_set_id)
    got = {(r["position"], r["annotator"]): (r["label"], r["annotator_kind"], r["note"]) for r in rows}
    assert got == {(0, "ana"): ("A", "human", "y invents a column"), (0, "ben"): ("B", "human", None),
                   (0, "oracle:sql"): ("A", "oracle", None), (1, "ana"): ("tie", "human", None),
                   (1, "oracle:sql"): ("skip", "oracle", None), (2, "ben"): ("skip", "human", None),
                   (2, "oracle:sql"): ("B", "oracle", None)}
    items = store.anchors.items(result.anchor_set_id)
    assert [i["reference"] for i in items] == ["SELECT 1;", None, None]
    assert items[2]["response_a"] == "" and items[0]["extra"] is None


def test_reimporting_the_same_file_is_a_no_op(store, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", _preference_records(5))
    first = import_anchor_file(store, path)
    second = import_anchor_file(store, path)
    assert second.anchor_set_id == first.anchor_set_id and not second.created
    assert _count(store, "anchor_items") == 5 and _count(store, "anchor_labels") == 5
    other = import_anchor_file(store, path, name="another name")  # a different set (names are part of identity)
    assert other.created and other.anchor_set_id != first.anchor_set_id


def test_line_separators_inside_json_strings_are_not_line_breaks(store, tmp_path):
    text = "first\u2028second\u2029third\x85fourth\r\nfifth"
    path = write_jsonl(tmp_path / "seps.jsonl", [{"prompt": text, "response_a": text, "response_b": "b"}])
    result = import_anchor_file(store, path)
    assert store.anchors.items(result.anchor_set_id)[0]["prompt"] == text


# ---- bad files: named place and field, nothing written


def _raises(store, path, *fragments):
    with pytest.raises(AnchorImportError) as info:
        import_anchor_file(store, path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, DatasetError)  # the CLI's error handling covers it
    assert _nothing_stored(store)
    return info.value


def test_wrong_columns_are_named(store, tmp_path):
    path = write_jsonl(tmp_path / "wrong.jsonl", [{"question": "q", "answer": "a"}])
    err = _raises(store, path, "wrong.jsonl: line 1", "unrecognised columns ['answer', 'question']",
                  "prompt + chosen + rejected")
    assert err.line == 1
    path = write_csv(tmp_path / "wrong.csv", [{"prompt": "q", "response_a": "a"}])
    _raises(store, path, "wrong.csv: row 2", "unrecognised columns")


def test_a_bad_label_on_line_n_is_named_as_line_n(store, tmp_path):
    good = {"prompt": "q", "response_a": "a", "response_b": "b", "label_ana": "A"}
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n"
                    + json.dumps({**good, "label_ana": "maybe"}) + "\n", encoding="utf-8")
    err = _raises(store, path, "labels.jsonl: line 4: field 'label_ana': label must be A, B, tie or skip, got 'maybe'")
    assert err.line == 4 and err.field == "label_ana"


def test_invalid_json_and_missing_fields_name_their_line(store, tmp_path):
    good = json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"})
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join([good, good, '{"prompt": "q", "chosen": ', good]) + "\n", encoding="utf-8")
    _raises(store, path, "broken.jsonl: line 3: invalid JSON")
    path.write_text("\n".join([good, good, good, json.dumps({"prompt": "q", "chosen": "a"})]), encoding="utf-8")
    _raises(store, path, "broken.jsonl: line 4: field 'rejected': missing")
    path.write_text("\n".join([good, json.dumps({"prompt": "q", "chosen": "a", "rejected": 5})]), encoding="utf-8")
    _raises(store, path, "line 2: field 'rejected': must be a string or a list of chat messages, got int")
    path.write_text(json.dumps({"prompt": "q", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"}),
                    encoding="utf-8")
    _raises(store, path, "line 1: field 'chosen': the last message must be the assistant's")
    path.write_text(json.dumps([1, 2]), encoding="utf-8")
    _raises(store, path, "line 1: expected a JSON object, got list")


def test_csv_and_parquet_rows_are_named(store, tmp_path):
    records = [{"prompt": "q", "response_a": "a\nwith a line break", "response_b": "b", "label_ana": "A"}] * 3
    records = records + [{**records[0], "label_ana": "maybe"}]
    _raises(store, write_csv(tmp_path / "bad.csv", records), "bad.csv: row 5: field 'label_ana'", "'maybe'")
    _raises(store, write_parquet(tmp_path / "bad.parquet", records), "bad.parquet: row 4: field 'label_ana'")
    blank = [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "   ", "chosen": "a", "rejected": "b"}]
    _raises(store, write_parquet(tmp_path / "blank.parquet", blank), "blank.parquet: row 2: field 'prompt'")


def test_hh_without_a_shared_assistant_turn_is_refused(store, tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": HH_CHOSEN, "rejected": HH_REJECTED},
                                               {"chosen": "Human: hi", "rejected": "Human: hello"}])
    _raises(store, path, "hh.jsonl: line 2: field 'chosen': chosen and rejected share no dialogue prefix")


def test_unsupported_or_missing_files(store, tmp_path):
    _raises(store, tmp_path / "x.txt", "unsupported file type '.txt'")
    _raises(store, tmp_path / "missing.jsonl", "file not found")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    _raises(store, tmp_path / "empty.jsonl", "no records")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    _raises(store, tmp_path / "bad.parquet", "not a readable Parquet file")


def test_a_failing_write_rolls_back_the_whole_set(store):
    set_row = {"anchor_set_id": "as-x", "name": "x", "source": None, "holdout_fraction": 0.2, "holdout_seed": 0,
               "n_items": 1}
    item = {"item_id": "as-x-000000", "anchor_set_id": "as-x", "prompt": "q", "response_a": "a", "response_b": "b",
            "slice": "s", "is_holdout": False, "position": 0}
    bad_label = {"item_id": "as-x-000000", "annotator": "ana", "annotator_kind": "human", "label": "left"}
    with pytest.raises(Exception):
        store.anchors.create_set(set_row, [item], [bad_label])  # the CHECK on label fails after items were written
    assert _nothing_stored(store)
