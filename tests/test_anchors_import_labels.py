"""Imports that never lose a label: unmapped label columns refuse the file, mapped ones arrive, per annotator; gzip,
byte-order marks and the format guide in ``--help`` and the README."""

import csv
import gzip
import io
import json
import re
from pathlib import Path

import pytest

from rlaif.anchors.importers import (
    FORMAT_GUIDE,
    FORMATS,
    AnchorImportError,
    ImportOptions,
    import_anchor_file,
    looks_like_label,
    parse_anchor_file,
)
from rlaif.cli import main
from rlaif.core.fields import ConfigError
from store import Store

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("anchor_sets", "anchor_items", "anchor_labels")


def csv_text(records):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(dict.fromkeys(k for r in records for k in r))
    writer.writerow(columns)
    for r in records:
        writer.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return out.getvalue()


def counts(db):
    with Store(db) as store:
        return {t: store.cursor().execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def per_annotator(db):
    """{annotator: (kind, labels)} of the only anchor set in the store, read back from the store."""
    with Store(db) as store:
        (anchor_set,) = store.anchors.list_sets()
        return {a["annotator"]: (a["annotator_kind"], a["n_items"])
                for a in store.labels.annotators(anchor_set["anchor_set_id"])}


def team_votes(n=92):
    """A multi-annotator CSV as teams write it: ana labelled 40 items, bo 38, the SQL oracle all 92; none of the label
    columns is named label_<annotator>."""
    rows = []
    for i in range(n):
        rows.append({"prompt": f"Orders in {2000 + i}?", "response_a": f"SELECT {i};", "response_b": f"SELECT {i}+1;",
                     "ana": ("A", "B", "tie", "skip")[i % 4] if i < 40 else None,
                     "bo_label": ("b", "A")[i % 2] if i % 92 < 38 else None,
                     "sql_winner": ("A", "B")[i % 2], "difficulty": i % 3 + 1})
    return rows


# ---- refusal: nothing stored, the message names the columns and the flag


def test_unmapped_label_columns_refuse_the_file_and_leave_the_store_unchanged(tmp_path, capsys):
    db = tmp_path / "wb.duckdb"
    (tmp_path / "ok.jsonl").write_text(json.dumps({"prompt": "q", "response_a": "a", "response_b": "b",
                                                   "label_ana": "A"}) + "\n", encoding="utf-8")
    assert main(["--store", str(db), "anchors", "import", str(tmp_path / "ok.jsonl")]) == 0
    before = counts(db)
    votes = tmp_path / "votes.csv"
    votes.write_text(csv_text(team_votes()), encoding="utf-8")
    capsys.readouterr()
    assert main(["--store", str(db), "anchors", "import", str(votes)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {votes}: column(s) ['ana', 'bo_label', 'sql_winner'] look like labels")
    assert "--label-column ana=<who labelled it>" in err and "nothing was imported" in err
    assert "difficulty" not in err  # 1s, 2s and 3s are not labels
    assert counts(db) == before  # the earlier set is untouched and nothing of this file arrived
    # one mapped column is not enough: the others still refuse the file
    assert main(["--store", str(db), "anchors", "import", str(votes), "--label-column", "ana"]) == 2
    assert "['bo_label', 'sql_winner']" in capsys.readouterr().err
    assert counts(db) == before
    fresh = tmp_path / "fresh.duckdb"  # the file is checked before the store is opened: no empty store is left
    assert main(["--store", str(fresh), "anchors", "import", str(votes)]) == 2 and not fresh.exists()


def test_mapped_label_columns_bring_every_label_per_annotator(tmp_path, capsys):
    db = tmp_path / "wb.duckdb"
    votes = tmp_path / "votes.csv"
    votes.write_text(csv_text(team_votes()), encoding="utf-8")
    assert main(["--store", str(db), "anchors", "import", str(votes), "--label-column", "ana",
                 "--label-column", "bo_label=bo", "--label-column", "sql_winner=oracle:sql-execution"]) == 0
    out = capsys.readouterr().out
    assert "92 items (pairwise)" in out and out.rstrip().endswith("170 labels: ana 40, bo 38, oracle:sql-execution 92")
    assert per_annotator(db) == {"ana": ("human", 40), "bo": ("human", 38), "oracle:sql-execution": ("oracle", 92)}
    with Store(db) as store:
        set_id = store.anchors.list_sets()[0]["anchor_set_id"]
        rows = {(r["position"], r["annotator"]): r["label"] for r in store.labels.latest(set_id)}
        items = store.anchors.items(set_id)
    assert [rows[(i, "ana")] for i in range(4)] == ["A", "B", "tie", "skip"]
    assert rows[(0, "bo")] == "B" and rows[(1, "bo")] == "A"  # "b" read as B
    assert all(set(i["extra"]) == {"difficulty"} for i in items)  # label columns are labels, not item data


def test_a_lone_label_column_is_imported_with_the_flag_its_refusal_names(tmp_path):
    path = tmp_path / "single.csv"
    path.write_text(csv_text([{"prompt": "q1", "response_a": "a", "response_b": "b", "label": "A"},
                              {"prompt": "q2", "response_a": "a", "response_b": "b", "label": "tie"}]),
                    encoding="utf-8")
    with Store(":memory:") as store:
        with pytest.raises(AnchorImportError, match=r"--label-column label=<who labelled it>"):
            import_anchor_file(store, path)
        result = import_anchor_file(store, path, options=ImportOptions(label_columns=["label=ana"]))
        assert result.label_counts == {"ana": 2} and result.annotators == ["ana"]
        assert [r["label"] for r in store.labels.latest(result.anchor_set_id)] == ["A", "tie"]


def test_value_lookalikes_refuse_unless_kept_as_extra(tmp_path):
    records = [{"prompt": f"q{i}", "response_a": "a", "response_b": "b", "grade": "AB"[i % 2], "turns": i % 2 + 1,
                "label_ana": ("left", "right", "EQUAL", "draw")[i]} for i in range(4)]
    path = tmp_path / "graded.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    with pytest.raises(AnchorImportError, match=r"column\(s\) \['grade'\] look like labels"):
        parse_anchor_file(path)
    parsed = parse_anchor_file(path, options=ImportOptions(extra_columns=["grade"]))
    assert [d.extra for d in parsed.drafts][:2] == [{"grade": "A", "turns": 1}, {"grade": "B", "turns": 2}]
    assert [d.labels[0].label for d in parsed.drafts] == ["A", "B", "tie", "tie"]  # left/right, equal/draw


@pytest.mark.parametrize("column, values, expected", [
    ("label", [], True), ("Labels", ["x"], True), ("ana_label", ["good"], True), ("humanPreference", [], True),
    ("winner model", [None], True), ("annotator_3", [], True), ("Vote", [], True), ("bo", ["a", "B", "", None], True),
    ("bo", ["Tie", "skip", "LEFT"], True), ("reference", ["A"], True), ("reference", ["SELECT 1;"], False),
    ("prompt_id", ["p-1"], False), ("turns", [1, 2, "1"], False), ("notes", [None, ""], False),
    ("grade", ["A", "C"], False),
])
def test_the_label_like_rule(column, values, expected):
    assert looks_like_label(column, values) is expected


def test_mapping_mistakes_are_named(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(csv_text([{"prompt": "q", "response_a": "a", "response_b": "b", "ana": "A", "label_bo": "B"}]),
                    encoding="utf-8")
    with pytest.raises(AnchorImportError, match=r"--label-column anna: no such column; the file has \[.*'ana'"):
        parse_anchor_file(path, options=ImportOptions(label_columns={"anna": "ana"}))
    with pytest.raises(AnchorImportError, match=r"columns 'label_bo' and 'ana' both hold the labels of 'bo'"):
        parse_anchor_file(path, options=ImportOptions(label_columns={"ana": "bo"}))
    with pytest.raises(ConfigError, match=r"label_columns: 'ana' is given twice"):
        ImportOptions(label_columns=["ana=x", "ana=y"])
    with pytest.raises(ConfigError, match=r"annotator_names: 'user-3' needs the form KEY=NAME"):
        ImportOptions(annotator_names=["user-3"])
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n", encoding="utf-8")
    with pytest.raises(AnchorImportError, match="--label-column applies to pairwise files; this file is preference"):
        parse_anchor_file(prefs, options=ImportOptions(label_columns=["x"]))


# ---- compression and byte-order marks


PAIRS = [{"prompt": "Orders in 2023?", "response_a": "SELECT 1;", "response_b": "SELECT 2;", "label_ana": "A"},
         {"prompt": "Top region?", "response_a": "East", "response_b": "Mars", "label_ana": "b"}]


def encoded(kind: str) -> bytes:
    if kind.startswith("jsonl"):
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in PAIRS).encode("utf-8")
    if kind.startswith("json"):
        return json.dumps(PAIRS).encode("utf-8")
    return csv_text(PAIRS).encode("utf-8")


@pytest.mark.parametrize("name, transform", [
    ("pairs.jsonl.gz", gzip.compress), ("pairs.csv.gz", gzip.compress), ("pairs.json.gz", gzip.compress),
    ("pairs.jsonl", lambda b: b"\xef\xbb\xbf" + b), ("pairs.csv", lambda b: b"\xef\xbb\xbf" + b),
    ("pairs.csv.gz", lambda b: gzip.compress(b"\xef\xbb\xbf" + b)), ("pairs.json", lambda b: b"\xef\xbb\xbf" + b),
    ("pairs.csv", lambda b: b.decode("utf-8").encode("utf-16")),  # Excel's "Unicode text": UTF-16 with its BOM
])
def test_gzip_and_byte_order_marks_import(tmp_path, name, transform):
    path = tmp_path / name
    path.write_bytes(transform(encoded(name.split(".")[1])))
    with Store(":memory:") as store:
        result = import_anchor_file(store, path)
        assert result.n_items == 2 and result.label_counts == {"ana": 2} and result.format == "pairwise"
        items = store.anchors.items(result.anchor_set_id)
        assert [i["prompt"] for i in items] == ["Orders in 2023?", "Top region?"]  # no BOM glued to a column name
        assert [i["extra"] for i in items] == [None, None]
        assert store.anchors.list_sets()[0]["name"] == "pairs"  # the set is named without .csv.gz


def test_a_broken_gzip_file_is_refused(tmp_path):
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(gzip.compress(encoded("jsonl"))[:-12])
    with pytest.raises(AnchorImportError, match="pairs.jsonl.gz: not a readable gzip file"):
        parse_anchor_file(path)


# ---- the format guide: --help and the README


def test_help_shows_every_format_with_a_three_line_example(capsys):
    with pytest.raises(SystemExit) as done:
        main(["anchors", "import", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for option in ("--label-column COLUMN[=ANNOTATOR]", "--extra-column", "--prompt-field", "--response-fields",
                   "--question", "--annotator-name"):
        assert option in out
    for file_type in (".jsonl", ".csv", ".parquet", ".json", ".jsonl.gz", ".csv.gz", ".json.gz", "byte-order mark"):
        assert file_type in out
    lines = out.splitlines()
    for fmt in FORMATS:
        start = next(i for i, line in enumerate(lines) if re.match(rf"^{fmt}\s{{2,}}\S", line))
        section = []
        for line in lines[start + 1:]:
            if not line.strip():
                break
            section.append(line)
        examples = [line for line in section if line.startswith("    ") and not line.startswith("             ")]
        assert len(examples) >= 3, (fmt, section)
    assert "--label-column bo_label=bo" in out  # the mapping example


def test_the_readme_carries_the_format_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "### Anchor files" in readme
    section = readme.split("### Anchor files", 1)[1]
    examples = [line for line in FORMAT_GUIDE.splitlines() if line.startswith("    ")]
    assert examples and all(line in section for line in examples)
