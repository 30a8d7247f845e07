"""The loop with an API judge: the real openai/anthropic clients against a flaky loopback server."""

import json

import pytest

from rlaif.datasets import load_prompts
from rlaif.pipeline import RLAIFPipeline
from store import Store
from tests.judge_server import JudgeServer, flaky_responder, verdict_json
from tests.test_pipeline import make_config, tiny  # noqa: F401  (fixture)

SECRET = "sk-test-SECRET987654321"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


def run(cfg, store):
    pipe = RLAIFPipeline(cfg, store=store)
    results = list(pipe.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
    return pipe, results


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_loop_completes_through_faults_and_cache_makes_rerun_free(provider, tiny, tmp_path):
    with JudgeServer(flaky_responder(3)) as server:
        url = server.openai_url if provider == "openai" else server.url
        options = {"model": "judge-model", "base_url": url, "concurrency": 4, "backoff_base_s": 0.01,
                   "backoff_max_s": 0.05, "max_retries": 6, "cache": True}
        cfg = make_config(tiny, tmp_path, judge={"name": provider, "options": options}, loop={"iterations": 1})
        with Store(tmp_path / "s.duckdb") as store:
            pipe, results = run(cfg, store)
            assert [r.iteration for r in results] == [0, 1]
            judgements = store.judgements.list(run_id=pipe.run_id, limit=10_000)
            assert judgements and all(j["cache_key"] for j in judgements if j["winner"] != "invalid")
            # garbage never became a winner: every invalid verdict is stored as invalid and no pair rests on one
            n_invalid = sum(j["winner"] == "invalid" for j in judgements)
            stats = results[1].manifest["judge_stats"]
            assert sum(s.get("invalid", 0) for s in stats.values()) >= n_invalid
            requests_first = len(server.requests)

            # the same config again: every valid verdict comes from the cache
            cfg2 = make_config(tiny, tmp_path, judge={"name": provider, "options": options}, loop={"iterations": 1})
            pipe2, _ = run(cfg2, store)
            new_requests = len(server.requests) - requests_first
            assert new_requests <= n_invalid * 7  # only previously-invalid comparisons are asked again (with retries)
            hits = sum(s.get("hits", 0) for s in judge_stats_of(pipe2).values())
            assert hits >= len(judgements) - n_invalid

            # no API key anywhere: store rows, manifest files
            cur = store.cursor()
            for (table,) in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall():
                assert SECRET not in repr(cur.execute(f"SELECT * FROM {table}").fetchall()), table
            for f in (tmp_path / "runs").rglob("*.json"):
                assert SECRET not in f.read_text()
        assert SECRET in json.dumps([r.headers for r in server.requests])  # it was really sent to the server


def judge_stats_of(pipe):
    return pipe.judge.all_stats()


def test_budget_cap_stops_the_run_before_training(tiny, tmp_path):
    with JudgeServer(lambda request: verdict_json("a")) as server:
        options = {"model": "gpt-4o-mini", "base_url": server.openai_url, "budget_usd": 0.0005, "concurrency": 2}
        cfg = make_config(tiny, tmp_path, judge={"name": "openai", "options": options}, loop={"iterations": 2})
        with Store(":memory:") as store:
            pipe, results = run(cfg, store)
            assert [r.iteration for r in results] == [0]
            run_row = store.runs.get(pipe.run_id)
            assert run_row["status"] == "stopped" and "budget" in run_row["error"]
            assert store.judgements.count_by_winner(pipe.run_id)["invalid"] > 0
            assert not (tmp_path / "runs" / pipe.run_id / "iteration-01").exists()  # nothing was trained
