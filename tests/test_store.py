"""The Store facade and its repositories, on in-memory and file databases (no network, no GPU)."""

import threading
import time
from collections import Counter

import duckdb
import pytest

from store import PairFilter, Store, content_hash
from store.db import Repository
from store.jobs import PROCESS_TOKEN
from store.query import where_clause
from tests.processes import dead_process_owner


@pytest.fixture
def store():
    with Store(":memory:") as s:
        yield s


def _run(store, run_id="r1"):
    store.runs.create(run_id, "baseline", {"seed": 0, "judge": {"name": "stub"}}, "cfg-hash", "stub", "rv1",
                      "train-id", "eval-id")


def _pair(i, **overrides):
    kept = i % 3 != 0
    row = {"run_id": "r1", "iteration": i % 4, "prompt_id": f"q{i}", "prompt": f"question {i}",
           "chosen": f"SELECT {i}", "rejected": "SELECT 0", "kept": kept,
           "drop_reason": None if kept else ("tie" if i % 2 else "length_skew")}
    return {**row, **overrides}


# ---- datasets and rubrics


def test_import_prompts_is_content_addressed_and_idempotent(store):
    records = [{"id": "q1", "prompt": "How many orders?", "reference": "SELECT count(*) FROM orders",
                "cohort": "count", "extra": {"difficulty": 1}},
               {"prompt_id": "q2", "prompt": "List regions", "tags": ["easy"]},
               {"prompt": "No id given"}]
    dataset_id = store.datasets.import_prompts("train", records, "sample_data/train.jsonl")
    assert dataset_id == content_hash(records)
    assert store.datasets.import_prompts("train again", records, None) == dataset_id
    assert len(store.datasets.list()) == 1
    assert store.datasets.get(dataset_id)["n_items"] == 3
    assert store.datasets.get(dataset_id)["name"] == "train"
    prompts = store.datasets.prompts(dataset_id)
    assert [p["prompt_id"] for p in prompts] == ["q1", "q2", "p000002"]
    assert prompts[0]["extra"] == {"difficulty": 1} and prompts[0]["cohort"] == "count"
    assert prompts[1]["extra"] == {"tags": ["easy"]}
    assert store.datasets.get("nope") is None


def test_import_prompts_refuses_bad_records_without_writing(store):
    with pytest.raises(ValueError, match="appears twice"):
        store.datasets.import_prompts("d", [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}], None)
    with pytest.raises(ValueError, match="record 1"):
        store.datasets.import_prompts("d", [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": ""}], None)
    assert store.datasets.list() == []
    assert store.cursor().execute("SELECT count(*) FROM prompts").fetchone() == (0,)


def test_rubric_versions_hash_the_body_and_list_newest_first(store):
    v1 = store.rubrics.save("sql", {"criteria": [{"name": "runs", "weight": 1}], "principles": ["be exact"]})
    same = store.rubrics.save("sql", {"principles": ["be exact"], "criteria": [{"weight": 1, "name": "runs"}]})
    assert same == v1
    time.sleep(0.002)
    v2 = store.rubrics.save("sql", {"criteria": [{"name": "runs", "weight": 2}]}, parent_version=v1)
    store.rubrics.save("other", {"criteria": []})
    assert [r["rubric_version"] for r in store.rubrics.list("sql")] == [v2, v1]
    assert len(store.rubrics.list()) == 3
    got = store.rubrics.get(v2)
    assert got["body"] == {"criteria": [{"name": "runs", "weight": 2}]} and got["parent_version"] == v1


# ---- runs, iterations, evals, manifests


def test_run_lifecycle(store):
    _run(store)
    run = store.runs.get("r1")
    assert run["status"] == "running" and run["finished_at"] is None
    assert run["config"] == {"seed": 0, "judge": {"name": "stub"}}
    store.runs.set_recommended("r1", 2)
    store.runs.set_status("r1", "stopped")
    run = store.runs.get("r1")
    assert run["status"] == "stopped" and run["finished_at"] is not None and run["recommended_iteration"] == 2
    with pytest.raises(ValueError, match="not one of"):
        store.runs.set_status("r1", "done")
    with pytest.raises(LookupError):
        store.runs.set_status("missing", "failed")
    time.sleep(0.002)
    _run(store, "r2")
    assert [r["run_id"] for r in store.runs.list()] == ["r2", "r1"]
    assert [r["run_id"] for r in store.runs.list(limit=1)] == ["r2"]


def test_iterations_start_finish_and_restart(store):
    _run(store)
    store.iterations.start("r1", 0)
    store.iterations.finish("r1", 0, status="completed", model_path="m0", model_hash="h0", regressed=False,
                            gate_decision="continue", pairs_kept=0, pairs_dropped=0)
    store.iterations.start("r1", 1)
    store.iterations.start("r1", 1)  # resumed after an interruption: same row, running again
    rows = store.iterations.list("r1")
    assert [(r["iteration"], r["status"]) for r in rows] == [(0, "completed"), (1, "running")]
    assert rows[0]["finished_at"] is not None and rows[0]["regressed"] is False
    with pytest.raises(LookupError):
        store.iterations.finish("r1", 7, status="completed", model_path=None, model_hash=None, regressed=None,
                                gate_decision=None, pairs_kept=None, pairs_dropped=None)


def test_evals_replace_and_manifests_are_idempotent(store):
    store.evals.add_many([{"run_id": "r1", "iteration": 0, "metric": "exact_match", "value": 0.2, "n": 10},
                          {"run_id": "r1", "iteration": 0, "metric": "exact_match", "cohort": "joins", "value": 0.1,
                           "n": 4}])
    store.evals.add_many([{"run_id": "r1", "iteration": 0, "metric": "exact_match", "cohort": "all", "value": 0.3,
                           "n": 10}])
    assert [(e["cohort"], e["value"]) for e in store.evals.for_run("r1")] == [("all", 0.3), ("joins", 0.1)]

    body = {"run_id": "r1", "iteration": 0, "metrics": {"all": {"exact_match": 0.3}}}
    manifest_id = content_hash(body)
    store.manifests.write(manifest_id, "r1", 0, body)
    store.manifests.write(manifest_id, "r1", 0, body)
    assert store.manifests.get(manifest_id)["body"] == body
    assert len(store.manifests.for_run("r1")) == 1


# ---- candidates and judgements


def test_candidates_and_judgements_round_trip(store):
    store.candidates.add_many([
        {"candidate_id": f"c{i}", "run_id": "r1", "iteration": 1, "prompt_id": f"q{i % 2}", "text": f"SELECT {i}",
         "temperature": 0.7, "seed": 11, "sample_index": i, "n_tokens": 3,
         "verification": {"executes": True, "matches": i == 0}, "score": 1.0 if i == 0 else 0.5}
        for i in range(4)])
    assert len(store.candidates.list("r1")) == 4
    q0 = store.candidates.list("r1", iteration=1, prompt_id="q0")
    assert [c["candidate_id"] for c in q0] == ["c0", "c2"]
    assert q0[0]["verification"] == {"executes": True, "matches": True}

    winners = ["a", "b", "a", "tie", "invalid"]
    store.judgements.add_many([
        {"run_id": "r1", "iteration": 1, "prompt_id": "q0", "candidate_a": "c0", "candidate_b": "c2",
         "judge_id": "stub", "winner": w, "criteria": {"runs": w == "a"}, "cache_key": f"k{i}"}
        for i, w in enumerate(winners)])
    assert store.judgements.count_by_winner("r1", 1) == {"a": 2, "b": 1, "tie": 1, "invalid": 1}
    assert store.judgements.count_by_winner("r1", 2) == {"a": 0, "b": 0, "tie": 0, "invalid": 0}
    page = store.judgements.list(run_id="r1", limit=2, offset=1)
    assert len(page) == 2 and isinstance(page[0]["criteria"], dict)
    assert store.judgements.by_cache_key("k3")["winner"] == "tie"


# ---- all-or-nothing writes


def test_add_many_with_a_bad_row_leaves_nothing(store):
    with pytest.raises(duckdb.ConstraintException):
        store.judgements.add_many([{"judge_id": "stub", "winner": "a"}, {"judge_id": "stub", "winner": "maybe"}])
    with pytest.raises(duckdb.ConstraintException):  # duplicate id inside one batch
        store.pairs.add_many([_pair(1, pair_id="p1"), _pair(2, pair_id="p2"), _pair(4, pair_id="p1")])
    with pytest.raises(duckdb.ConstraintException):  # a dropped pair must say why
        store.pairs.add_many([_pair(1), _pair(3, drop_reason=None)])
    with pytest.raises(duckdb.ConstraintException):  # a kept pair needs both texts
        store.pairs.add_many([_pair(1, chosen=None)])
    with pytest.raises(ValueError, match="unknown column"):
        store.pairs.add_many([_pair(1, chosen_txt="typo")])
    assert store.judgements.list() == [] and store.pairs.count() == 0
    store.pairs.add_many([_pair(3, chosen=None, rejected=None)])  # dropped before any choice: allowed
    assert store.pairs.count(kept=False) == 1


def test_transaction_groups_repository_writes(store):
    _run(store)
    store.iterations.start("r1", 1)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.pairs.add_many([_pair(i) for i in range(10)])
            store.iterations.finish("r1", 1, status="completed", model_path="m", model_hash="h", regressed=False,
                                    gate_decision="continue", pairs_kept=7, pairs_dropped=3)
            assert store.pairs.count() == 10  # visible inside the transaction
            raise RuntimeError("training crashed before the iteration was recorded")
    assert store.pairs.count() == 0
    assert store.iterations.list("r1")[0]["status"] == "running"

    with store.transaction():
        store.pairs.add_many([_pair(i) for i in range(10)])
        store.evals.add_many([{"run_id": "r1", "iteration": 1, "metric": "m", "value": 1.0, "n": 1}])
    assert store.pairs.count() == 10 and len(store.evals.for_run("r1")) == 1


# ---- pairs browsing


def test_pairs_paging_and_filters(store):
    rows = [_pair(i) for i in range(1000)]
    store.pairs.add_many(rows)
    expected_kept_it1 = {r["prompt_id"] for r in rows if r["iteration"] == 1 and r["kept"]}
    assert store.pairs.count(run_id="r1", iteration=1, kept=True) == len(expected_kept_it1)

    # keyset paging visits every row once, in pair_id order
    seen, after = [], None
    while True:
        page = store.pairs.page(run_id="r1", iteration=1, kept=True, limit=37, after=after)
        if not page:
            break
        seen.extend(page)
        after = page[-1]["pair_id"]
    assert {r["prompt_id"] for r in seen} == expected_kept_it1
    assert [r["pair_id"] for r in seen] == sorted(r["pair_id"] for r in seen)
    # offset paging agrees with keyset paging
    by_offset = [r for off in range(0, len(seen), 37)
                 for r in store.pairs.page(run_id="r1", iteration=1, kept=True, limit=37, offset=off)]
    assert [r["pair_id"] for r in by_offset] == [r["pair_id"] for r in seen]
    # generated ids follow insertion order
    assert [r["prompt_id"] for r in store.pairs.page(limit=3)] == ["q0", "q1", "q2"]

    ties = store.pairs.page(drop_reason="tie", limit=1000)
    assert ties and all(not r["kept"] and r["drop_reason"] == "tie" for r in ties)
    assert store.pairs.count(drop_reason="tie") == sum(1 for r in rows if r["drop_reason"] == "tie")
    assert store.pairs.drop_reasons("r1") == {"tie": 167, "length_skew": 167}
    for iteration in range(4):
        expected = Counter(r["drop_reason"] for r in rows if r["iteration"] == iteration and not r["kept"])
        assert store.pairs.drop_reasons("r1", iteration=iteration) == expected
    assert [r["prompt_id"] for r in store.pairs.page(search="QUESTION 999")] == ["q999"]
    assert store.pairs.count(search="select 99") == 11  # 99 and 990..999
    assert store.pairs.count(run_id="other") == 0
    assert store.pairs.table(PairFilter(run_id="r1", kept=True)).num_rows == sum(r["kept"] for r in rows)


@pytest.mark.slow
def test_a_million_pairs_insert_and_page_quickly(tmp_path):
    with Store(tmp_path / "big.duckdb") as store:
        rows = [_pair(i, iteration=i // 100_000) for i in range(1_000_000)]
        started = time.perf_counter()
        store.pairs.add_many(rows)
        assert time.perf_counter() - started < 60
        started = time.perf_counter()
        page = store.pairs.page(run_id="r1", iteration=9, kept=False, limit=50, offset=20_000)
        total = store.pairs.count(run_id="r1", iteration=9, kept=False)
        assert time.perf_counter() - started < 2
        assert len(page) == 50 and total == sum(1 for r in rows if r["iteration"] == 9 and not r["kept"])


# ---- the shared query helpers every repository reads and updates through


def _runs(store, n=5):
    for i in range(n):
        store.runs.create(f"r{i}", "odd" if i % 2 else "even", {"i": i}, f"h{i}", "stub", None, None, None)
    return Repository(store.db)


def test_rows_skips_none_filters_but_not_keys(store):
    repo = _runs(store)
    ids = lambda rows: [r["run_id"] for r in rows]  # noqa: E731
    assert ids(repo._rows("runs", where={"name": "odd", "judge_id": None}, order_by="run_id")) == ["r1", "r3"]
    assert ids(repo._rows("runs", where={"name": None}, order_by="run_id")) == ["r0", "r1", "r2", "r3", "r4"]
    assert repo._rows("runs", key={"run_id": None}) == []  # a missing key matches nothing, never "any"
    assert ids(repo._rows("runs", key={"run_id": ["r4", "r0"]}, order_by="run_id")) == ["r0", "r4"]
    assert repo._rows("runs", where={"run_id": []}) == []  # an empty IN list matches nothing
    assert repo._rows("runs", key={"run_id": "r2"}, select="config")[0] == {"config": {"i": 2}}  # JSON decoded
    rows = repo._rows("runs", where={"name": "even"}, where_sql=["config_hash <> ?", "run_id <> ?"],
                      where_args=["h0", "r4"])
    assert ids(rows) == ["r2"]
    assert where_clause(key={"a": 1}, where={"b": None, "c": (2, 3)}, where_sql="d > ?", where_args=[4]) == (
        "WHERE a = ? AND c IN (?, ?) AND (d > ?)", [1, 2, 3, 4])
    assert where_clause(where={"a": None}) == ("", [])


def test_rows_honours_order_limit_offset_and_group_by(store):
    repo = _runs(store)
    ordered = repo._rows("runs", order_by="run_id DESC")
    assert [r["run_id"] for r in ordered] == ["r4", "r3", "r2", "r1", "r0"]
    page = repo._rows("runs", order_by="run_id DESC", limit=2, offset=1)
    assert [r["run_id"] for r in page] == ["r3", "r2"]
    assert [r["run_id"] for r in repo._rows("runs", order_by="run_id", offset=3)] == ["r3", "r4"]
    counts = repo._rows("runs", select="name, count(*) AS n", group_by="name", order_by="n DESC")
    assert counts == [{"name": "even", "n": 3}, {"name": "odd", "n": 2}]
    assert repo._row("runs", where={"name": "odd"}, order_by="run_id DESC")["run_id"] == "r3"
    assert repo._row("runs", key={"run_id": "nope"}) is None


def test_update_sets_one_row_and_names_a_missing_one(store):
    repo = _runs(store, 2)
    assert repo._update("runs", key={"run_id": "r1"}, values={"error": "boom"},
                        set_sql=["finished_at = current_timestamp"]) == 1
    r0, r1 = repo._rows("runs", order_by="run_id")
    assert (r1["error"], r0["error"]) == ("boom", None)
    assert r1["finished_at"] is not None and r0["finished_at"] is None
    with pytest.raises(LookupError, match=r"runs.*run_id='ghost'"):
        repo._update("runs", key={"run_id": "ghost"}, values={"error": "x"})
    with pytest.raises(LookupError, match="custom message"):
        repo._update("runs", key={"run_id": "ghost"}, values={"error": "x"}, missing="custom message")
    with pytest.raises(ValueError, match="key is required"):  # never an UPDATE of the whole table
        repo._update("runs", key={}, values={"error": "x"})


@pytest.mark.parametrize("column", ["run_id = run_id OR 1 = 1 --", "run_id; DROP TABLE runs", "", "1run", None])
def test_unsafe_column_names_are_refused_before_any_sql(store, column):
    repo = _runs(store, 2)
    with pytest.raises(ValueError, match="unsafe SQL identifier"):
        repo._rows("runs", where={column: "r0"})
    with pytest.raises(ValueError, match="unsafe SQL identifier"):
        repo._update("runs", key={"run_id": "r0"}, values={column: "x"})
    with pytest.raises(ValueError, match="unsafe SQL identifier"):
        repo._update("runs", key={column: "r0"}, values={"error": "x"})
    with pytest.raises(ValueError, match="unsafe SQL identifier"):
        where_clause(key={column: 1})
    assert [r["error"] for r in repo._rows("runs")] == [None, None]


def test_unknown_column_names_are_refused(store):
    repo = _runs(store, 1)
    with pytest.raises(ValueError, match=r"unknown column.*runid"):
        repo._rows("runs", key={"runid": "r0"})
    with pytest.raises(ValueError, match=r"unknown column.*finished"):
        repo._update("runs", key={"run_id": "r0"}, values={"finished": "x"})
    with pytest.raises(ValueError, match="unknown column"):  # views are checked against their own columns
        repo._rows("anchor_tuning_items", where={"run_id": "r0"})


# ---- anchor sets: deleted whole, and the manifests that name one


def _anchor_set(store, set_id, n=3):
    items = [{"item_id": f"{set_id}-{i}", "anchor_set_id": set_id, "prompt": f"q{i}", "response_a": "a",
              "response_b": "b", "is_holdout": i == 0, "position": i} for i in range(n)]
    labels = [{"label_id": f"{set_id}-l{i}", "item_id": f"{set_id}-{i}", "annotator": "ana", "annotator_kind": "human",
               "label": "A"} for i in range(n)]
    store.anchors.create_set({"anchor_set_id": set_id, "name": set_id, "holdout_fraction": 0.3, "holdout_seed": 0,
                              "n_items": n}, items, labels)
    store.labels.add_adjudications([{"item_id": f"{set_id}-1", "adjudicator": "lead", "label": "B",
                                     "method": "override", "note": "reason"}])
    store.anchors.save_verdicts([{"item_id": f"{set_id}-{i}", "judge_id": "j", "rubric_version": "r", "winner": "a"}
                                 for i in range(n)])
    store.anchors.add_kappa_report({"anchor_set_id": set_id, "judge_id": "j", "rubric_version": "r",
                                    "annotators": "human", "n": n, "passed": True, "body": {"n": n}})


def test_delete_set_removes_every_row_of_one_set_in_one_go(store):
    _anchor_set(store, "as-x")
    _anchor_set(store, "as-y", n=2)
    removed = store.anchors.delete_set("as-x")
    assert removed == {"judge_anchor_verdicts": 3, "anchor_labels": 3, "adjudications": 1, "kappa_reports": 1,
                       "anchor_items": 3, "anchor_sets": 1}
    assert store.anchors.get_set("as-x") is None and store.anchors.items("as-x") == []
    assert store.anchors.verdicts("as-x") == [] and store.anchors.kappa_reports("as-x") == []
    assert store.labels.history("as-x-1") == [] and store.labels.adjudications("as-x") == []
    assert len(store.anchors.items("as-y")) == 2 and len(store.labels.latest("as-y")) == 2
    assert len(store.anchors.verdicts("as-y")) == 2 and len(store.labels.adjudications("as-y")) == 1
    assert len(store.anchors.kappa_reports("as-y")) == 1
    with pytest.raises(LookupError, match="no anchor set 'as-x' to delete"):
        store.anchors.delete_set("as-x")


def test_referencing_manifests_reads_the_calibration_gate_of_each_manifest(store):
    store.manifests.write("m1", "r1", 1, {"calibration_gate": {"anchor_set_id": "as-x", "decision": "passed"}})
    store.manifests.write("m2", "r1", 2, {"calibration_gate": {"anchor_set_id": "as-x", "decision": "passed"}})
    store.manifests.write("m3", "r2", 1, {"calibration_gate": {"anchor_set_id": "as-y"}})
    store.manifests.write("m4", "r3", 1, {"calibration_gate": {"decision": "not_configured"}})
    store.manifests.write("m5", "r4", 1, {"note": "as-x"})  # the id elsewhere in a body is not a reference
    assert store.anchors.referencing_manifests("as-x") == [{"manifest_id": "m1", "run_id": "r1", "iteration": 1},
                                                           {"manifest_id": "m2", "run_id": "r1", "iteration": 2}]
    assert [m["run_id"] for m in store.anchors.referencing_manifests("as-y")] == ["r2"]
    assert store.anchors.referencing_manifests("as-z") == []


# ---- threads


def test_threads_share_one_store_without_losing_rows(tmp_path):
    with Store(tmp_path / "wb.duckdb") as store:
        job_id = store.jobs.create("run_loop", {"n": 1})
        errors = []

        def writer(thread_no):
            try:
                for i in range(0, 200, 2):  # 100 small transactions per thread, interleaved with the others
                    store.pairs.add_many([_pair(k, prompt_id=f"t{thread_no}-{k}") for k in (i, i + 1)])
                    if i % 10 == 0:  # every thread also updates the same job row: DuckDB conflicts are retried
                        store.jobs.update(job_id, status="running", step=i, message=f"thread {thread_no}")
                        store.jobs.heartbeat(job_id)
            except Exception as exc:  # surfaced below; a thread's exception would otherwise vanish
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.pairs.count() == 800
        assert len({r["prompt_id"] for r in store.pairs.page(limit=1000)}) == 800


# ---- jobs


def test_job_lifecycle_and_cancel_request(store):
    job_id = store.jobs.create("run_loop", {"config": "sample.yaml"}, run_id="r1")
    job = store.jobs.get(job_id)
    assert job["status"] == "queued" and job["params"] == {"config": "sample.yaml"} and job["owner"] == PROCESS_TOKEN
    store.jobs.update(job_id, status="running", stage="judge", step=3, total=40)
    job = store.jobs.get(job_id)
    assert job["started_at"] is not None and job["heartbeat_at"] is not None and job["finished_at"] is None
    assert not store.jobs.cancel_requested(job_id)
    store.jobs.request_cancel(job_id)
    assert store.jobs.cancel_requested(job_id)
    store.jobs.update(job_id, status="cancelled")
    assert store.jobs.get(job_id)["finished_at"] is not None
    assert [j["job_id"] for j in store.jobs.list(status="cancelled")] == [job_id]
    with pytest.raises(ValueError, match="unknown field"):
        store.jobs.update(job_id, finished_at="now")
    with pytest.raises(ValueError, match="not one of"):
        store.jobs.update(job_id, status="paused")
    with pytest.raises(LookupError):
        store.jobs.heartbeat("missing")


def test_jobs_of_a_dead_process_are_marked_interrupted(store):
    _run(store, "r-dead")
    _run(store, "r-live")
    dead = store.jobs.create("run_loop", {}, run_id="r-dead")
    store.jobs.update(dead, status="running")
    live = store.jobs.create("run_loop", {}, run_id="r-live")
    store.jobs.update(live, status="running")
    done = store.jobs.create("export", {})
    store.jobs.update(done, status="completed")
    # a job left behind by a process that has exited (real pid and start time); another host's job counts as live:
    # we cannot check it from here
    store.cursor().execute("UPDATE jobs SET owner = ? WHERE job_id = ?", [dead_process_owner(), dead])
    elsewhere = store.jobs.create("run_loop", {})
    store.jobs.update(elsewhere, status="running")
    store.cursor().execute("UPDATE jobs SET owner = 'other-host:123:456' WHERE job_id = ?", [elsewhere])

    assert store.jobs.mark_interrupted_on_startup() == [dead]
    assert store.jobs.get(dead)["status"] == "interrupted" and store.runs.get("r-dead")["status"] == "interrupted"
    assert store.jobs.get(live)["status"] == "running" and store.runs.get("r-live")["status"] == "running"
    assert store.jobs.get(done)["status"] == "completed" and store.jobs.get(elsewhere)["status"] == "running"
    assert store.jobs.mark_interrupted_on_startup() == []  # safe to call on every rerun


# ---- secrets


def test_config_with_an_api_key_is_refused(store):
    config = {"judge": {"name": "anthropic", "api_key": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"}}
    with pytest.raises(ValueError, match=r"config\.judge\.api_key"):
        store.runs.create("r1", "leaky", config, "h", "anthropic", None, None, None)
    assert store.runs.get("r1") is None


@pytest.mark.parametrize("body, field", [
    ({"headers": {"Authorization": "Bearer abcdefgh12345678"}}, r"manifest\.body\.headers\.Authorization"),
    ({"env": {"OPENAI_API_KEY": "whatever"}}, r"manifest\.body\.env\.OPENAI_API_KEY"),
    ({"judges": [{"key": "sk-proj-0123456789abcdefghij"}]}, r"manifest\.body\.judges\[0\]\.key"),
])
def test_secret_shaped_values_are_refused_everywhere(store, body, field):
    with pytest.raises(ValueError, match=field):
        store.manifests.write("m1", "r1", 0, body)
    with pytest.raises(ValueError, match="job.params"):
        store.jobs.create("run_loop", body)
    assert store.manifests.get("m1") is None and store.jobs.list() == []
    # model output is redacted instead (see test_secrets_in_output): a completion must not fail the run
    assert store.candidates.add_many([{"run_id": "r1", "iteration": 0, "prompt_id": "q", "text": "t",
                                       "verification": body}]) >= 1
    assert "[redacted]" in str(store.candidates.list("r1")[0]["verification"])


def test_env_var_names_and_empty_keys_are_allowed_and_errors_are_redacted(store):
    config = {"judge": {"api_key_env": "ANTHROPIC_API_KEY", "api_key": None}, "versions": {"sk-learn": "1.5"}}
    store.runs.create("r1", "ok", config, "h", "anthropic", None, None, None)
    assert store.runs.get("r1")["config"] == config
    store.runs.set_status("r1", "failed", error="AuthenticationError: bad key sk-ant-api03-abcdefghijklmnopqrstu")
    assert store.runs.get("r1")["error"] == "AuthenticationError: bad key [redacted]"


def test_a_store_held_too_long_by_another_process_is_one_line_naming_the_file_and_pid(tmp_path, capsys,
                                                                                      monkeypatch):
    """A process that keeps the file open (not one of ours: they open on demand) makes a command wait, say so once
    with the holder's pid, and give up after RLAIF_STORE_WAIT_S with one line: the file, the pid, what to do."""
    import subprocess
    import sys

    from rlaif.cli import main
    from store import StoreUnavailableError

    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        said = []
        with pytest.raises(StoreUnavailableError, match=rf"busy.duckdb: held by pid {holder.pid} for more than 0.5 s"):
            Store(path, wait_s=0.5, on_wait=said.append)
        assert said == [f"waiting for the store {path} held by pid {holder.pid} (up to 0.5 s; RLAIF_STORE_WAIT_S)"]
        monkeypatch.setenv("RLAIF_STORE_WAIT_S", "0.5")
        assert main(["--store", str(path), "runs"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[0].startswith(f"waiting for the store {path} held by pid {holder.pid}")
        assert err[1].startswith(f"error: store {path}: held by pid {holder.pid}") and len(err) == 2
        assert "Traceback" not in "\n".join(err)
    finally:
        holder.kill()
        holder.wait()
    with Store(path) as store:  # released: it opens, nothing was lost or half-written
        assert store.runs.list() == []
