import json

from rlaif.gates import recommend_best, regression_gate
from rlaif.manifest import build_manifest, verify_manifest, write_manifest_file


def test_gate_compares_with_best_so_far_not_previous():
    history = [(0, 0.30), (1, 0.50)]
    assert regression_gate([], 0, 0.3, 0.05).decision == "baseline"
    assert regression_gate(history, 2, 0.47, 0.05).decision == "within_tolerance"
    # two small steps down: 0.50 -> 0.47 -> 0.44: the second is 0.06 under the best, regressed
    g = regression_gate(history + [(2, 0.47)], 3, 0.44, 0.05)
    assert g.regressed and g.best_iteration == 1 and abs(g.drop - 0.06) < 1e-9
    assert regression_gate(history, 2, 0.55, 0.05).decision == "improved"
    assert not regression_gate(history, 2, 0.45, 0.05).regressed  # exactly the tolerance is allowed


def test_recommend_best_prefers_earliest_on_tie():
    assert recommend_best([(0, 0.2), (1, 0.6), (2, 0.6)]) == (1, 0.6)


def test_manifest_id_is_content_addressed(tmp_path):
    a = build_manifest(run_id="r", iteration=1, parents=["p0"], metrics={"all": {"x": 0.5}}, versions={"v": "1"})
    b = build_manifest(run_id="r", iteration=1, parents=["p0"], metrics={"all": {"x": 0.5}}, versions={"v": "1"})
    assert a["manifest_id"] == b["manifest_id"] and verify_manifest(a)
    c = build_manifest(run_id="r", iteration=1, parents=["p0"], metrics={"all": {"x": 0.6}}, versions={"v": "1"})
    assert c["manifest_id"] != a["manifest_id"]
    path = write_manifest_file(a, tmp_path)
    loaded = json.loads(path.read_text())
    assert verify_manifest(loaded)
    loaded["metrics"]["all"]["x"] = 0.9
    assert not verify_manifest(loaded)
