"""A 2,000-item real-world-sized anchor file round-trips through import and export unchanged, in every format.

The texts are what users' files really hold: long answers, markdown with tables, fenced code with quotes and
backslashes, CSV-hostile commas/quotes/CRLF, emoji (ZWJ sequences, flags), right-to-left scripts, CJK, combining
marks and the JSON-legal line separator U+2028.
"""

import csv
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlaif.anchors.exporters import export_anchor_set
from rlaif.anchors.importers import import_anchor_file
from store import Store

N_ITEMS = 2000
PIECES = [
    "## Revenue by region\n\n| region | revenue |\n|---|---:|\n| East | 1,204.50 |\n| Nord-Ost | 98.10 |\n",
    "```sql\nSELECT region, SUM(revenue) AS \"total, all\" FROM v_revenue_by_region\nWHERE note = 'it''s'\n"
    "GROUP BY 1; -- \"quoted\" comment\n```\n",
    "```python\nprint(\"tab\\there\", 'back\\\\slash', r\"\\d+\")\n```",
    "Emoji: 👩🏽‍💻 🏳️‍🌈 🇩🇪 👍🏿 — and a family 👨‍👩‍👧‍👦.",
    "Arabic: مرحبا بالعالم، كيف حالك؟ Hebrew: שלום עולם (mixed ltr words) ",
    "CJK: 売上は前年比で増加しました。收入增长了百分之十二。매출이 증가했습니다.",
    "Combining: é (e + U+0301), Zalgo-ish a\u0336\u0335b, Devanagari: नमस्ते",
    "Line separator\u2028inside, paragraph separator\u2029too, NEL\x85 and CRLF\r\nline.",
    "Commas, \"double quotes\", 'single quotes', ;semicolons; and a trailing backslash \\",
    "- bullet one\n- bullet two\n  1. nested *emphasis* and **bold** and `code`\n> a quote\n",
    "   leading and trailing spaces   ",
    "=SUM(A1:A3) looks like a spreadsheet formula, +1 and -1 too",
    "A long paragraph. " * 40,
]


def realistic_records(n=N_ITEMS, seed=0):
    rng = random.Random(seed)

    def text(k):
        return "\n\n".join(rng.choice(PIECES) for _ in range(k))

    labels = ["A", "B", "tie", "skip", None]
    records = []
    for i in range(n):
        records.append({
            "prompt": f"Q{i}: " + text(rng.randint(1, 3)),
            "response_a": text(rng.randint(1, 8)),
            "response_b": "" if i % 397 == 5 else text(rng.randint(1, 8)),
            "slice": rng.choice(["count", "ranking", "aggregate", "multilingual 🌍"]),
            "source": rng.choice(["vendor-batch-7", "support, tickets"]),
            "reference": None if i % 3 else "SELECT 1;\n-- golden",
            "prompt_id": f"p-{i:05d}",
            "category": rng.choice(["sql", "prose", "код"]),
            "label_ana": rng.choice(labels),
            "label_ben": rng.choice(labels),
            "label_oracle:sql": rng.choice(["A", "B", "tie"]),
        })
        records[-1]["note_ana"] = ("looked at, \"carefully\"\n2nd line" if records[-1]["label_ana"] and i % 5 == 0
                                   else None)
    return records


def write(path, records):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(records[0]))
            for r in records:
                writer.writerow(["" if v is None else v for v in r.values()])
    else:
        pq.write_table(pa.Table.from_pylist(records), path)


def read(path):
    """The file's records as plain dicts, column order kept (CSV's empty cells as None, as written)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        return [{c: (v if v != "" or c in ("response_a", "response_b") else None) for c, v in zip(rows[0], row)}
                for row in rows[1:]]
    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_two_thousand_real_world_items_round_trip_unchanged(tmp_path, suffix):
    records = realistic_records()
    original = tmp_path / f"anchors{suffix}"
    write(original, records)
    with Store(tmp_path / "wb.duckdb") as store:
        imported = import_anchor_file(store, original, name="big")
        assert imported.n_items == N_ITEMS
        exported = tmp_path / f"export{suffix}"
        assert export_anchor_set(store, imported.anchor_set_id, exported) == N_ITEMS

        back = read(exported)
        assert [list(r) for r in back] == [list(r) for r in records]  # same columns, same order
        assert back == records  # every text byte-for-byte, every label, every note, every null

        # importing the export gives the very same set (the id hashes name + every item and label) ...
        again = import_anchor_file(store, exported, name="big")
        assert again.anchor_set_id == imported.anchor_set_id and not again.created
        # ... and exporting twice writes the same bytes
        second = tmp_path / f"second{suffix}"
        export_anchor_set(store, imported.anchor_set_id, second)
        if suffix != ".parquet":  # parquet files embed writer metadata; their rows are compared instead
            assert second.read_bytes() == exported.read_bytes()
        else:
            assert read(second) == back
