import json

import pytest

from rlaif.datasets import DatasetError, dataset_hash, load_prompts


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_loads_records_and_keeps_extra_fields(tmp_path):
    p = write(tmp_path / "d.jsonl", [
        json.dumps({"id": "a", "prompt": "q1", "reference": "SELECT 1;", "cohort": "x", "note": 1}),
        "",
        json.dumps({"id": 2, "prompt": "q2"}),
    ])
    recs = load_prompts(p)
    assert [r.id for r in recs] == ["a", "2"]
    assert recs[0].extra == {"note": 1} and recs[1].cohort == "default" and recs[1].reference is None


@pytest.mark.parametrize("bad, words", [
    ('{"id": "b", "prompt": "q"', "invalid JSON"),
    ('{"id": "b"}', "missing field 'prompt'"),
    ('{"id": "b", "prompt": ""}', "'prompt' must be a non-empty string"),
    ('{"id": "b", "prompt": "q", "reference": 3}', "'reference' must be a string"),
    ('{"id": "a", "prompt": "again"}', "duplicate id 'a' (first on line 1)"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_line_is_named_by_file_and_line(tmp_path, bad, words):
    p = write(tmp_path / "d.jsonl", [json.dumps({"id": "a", "prompt": "q"}), json.dumps({"id": "x", "prompt": "y"}),
                                     bad])
    with pytest.raises(DatasetError) as info:
        load_prompts(p)
    assert info.value.line == 3
    assert f"{p}:3" in str(info.value) and words in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="no records"):
        load_prompts(write(tmp_path / "e.jsonl", [""]))


def test_hash_depends_on_content_and_order(tmp_path):
    p = write(tmp_path / "d.jsonl", [json.dumps({"id": "a", "prompt": "q1"}), json.dumps({"id": "b", "prompt": "q2"})])
    recs = load_prompts(p)
    assert dataset_hash(recs) == dataset_hash(list(recs))
    assert dataset_hash(recs) != dataset_hash(list(reversed(recs)))
