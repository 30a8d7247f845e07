"""``rlaif anchors stats`` prints names whole and the adjudication split; ``rlaif anchors delete`` deletes a set,
refusing while a run's manifest names it unless ``--force``."""

from __future__ import annotations

import json

from rlaif.cli import main
from rlaif.manifest import build_manifest, verify_manifest
from store import Store


def write_set(path, slices):
    records = [{"prompt": f"q{i}", "response_a": f"a{i}", "response_b": f"b{i}", "slice": slices[i % len(slices)],
                "label_ana": "AB"[i % 2], "label_bo": "AB"[i % 2] if i % 5 else "tie", "label_cy": "AB"[i % 2]}
               for i in range(30)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_stats_prints_long_names_whole_and_who_agreed(tmp_path, capsys):
    db = str(tmp_path / "s.duckdb")
    slices = ("Adversarial_prompts_with_a_long_name_1", "Adversarial_prompts_with_a_long_name_2")
    assert main(["--store", db, "anchors", "import", str(write_set(tmp_path / "votes.jsonl", slices))]) == 0
    set_id = capsys.readouterr().out.split(":")[0]
    assert main(["--store", db, "anchors", "stats", set_id]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in slices)
    assert "30 items with 2+ labels: 24 unanimous, 6 majority, 0 in conflict" in out  # bo differs on every 5th
    assert "Krippendorff's alpha (nominal): 0." in out and "Fleiss' kappa (3 annotators)" in out
    body = json.loads((main(["--store", db, "anchors", "stats", set_id, "--json"]), capsys.readouterr().out)[1])
    assert body["adjudication"]["unanimous"] == 24 and body["inter_annotator"]["krippendorff_alpha"]["n"] == 30


def test_delete_refuses_a_set_a_manifest_names_unless_forced(tmp_path, capsys):
    db = str(tmp_path / "s.duckdb")
    assert main(["--store", db, "anchors", "import", str(write_set(tmp_path / "a.jsonl", ("x",)))]) == 0
    set_id = capsys.readouterr().out.split(":")[0]
    with Store(db) as store:
        store.runs.create("run-1", "r", {}, "c" * 64, "stub", "r" * 64, None, None)
        body = build_manifest(kind="baseline", run_id="run-1", iteration=0, versions={"python": "test"},
                              calibration_gate={"anchor_set_id": set_id, "decision": "passed"})
        store.manifests.write(body["manifest_id"], "run-1", 0, body)
    assert main(["--store", db, "anchors", "delete", set_id]) == 2
    assert "run-1" in capsys.readouterr().err
    assert main(["--store", db, "anchors", "delete", set_id, "--force"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"deleted anchor set {set_id} (a): 1 anchor_sets, 30 anchor_items, 90 anchor_labels")
    assert f"kept manifest {body['manifest_id']}" in out
    with Store(db) as store:
        assert store.anchors.list_sets() == [] and verify_manifest(store.manifests.get(body["manifest_id"])["body"])
    assert main(["--store", db, "anchors", "delete", set_id]) == 2
    assert "no anchor set" in capsys.readouterr().err
