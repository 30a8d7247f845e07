"""Batch mode of the API judges: the real anthropic and openai clients against the loopback batch endpoints.

Shows: verdicts equal online mode's for the same scripted replies; errored, expired, canceled and garbage results
are invalid with the reason; batches are priced (and budgeted) at the batch rate; lowered limits chunk a call into
several batches; an over-budget batch is refused before anything is sent; both orders of a debiased judge go in one
batch; and a run SIGKILLed while its batch is pending resumes it without submitting anything again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlaif.judges import Comparison, make_judge, parse_spec
from rlaif.judges.batches import providers
from rlaif.judges.cache import cache_key
from rlaif.judges.llm import AnthropicJudge, LLMJudgeSettings, OpenAIJudge
from rlaif.judges.pricing import ModelPrice, PriceTable, Usage, actual_cost, load_price_table
from rlaif.rubric import rubric_from_dict
from store import Store
from tests.judge_server import Cancel, Expire, Fail, Garbage, JudgeServer, RecordedRequest, Reply, verdict_json

SECRET = "sk-test-SECRET123456789"
RUBRIC = rubric_from_dict({"name": "r", "criteria": [{"name": "correct", "description": "right answer"},
                                                     {"name": "clear", "description": "easy to read"}]})
PRICES = PriceTable({"judge-model": ModelPrice(input=10.0, output=30.0)}, "test")
PROVIDERS = ["anthropic", "openai"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


@pytest.fixture
def server():
    with JudgeServer(shorter_wins) as s:
        yield s


def shorter_wins(request: RecordedRequest):
    """A deterministic judge: the shorter candidate wins, with criteria, so online and batch can be compared."""
    a, b = request.candidates()
    winner = "a" if len(a) <= len(b) else "b"
    return Reply(verdict_json(winner, 0.8, {"correct": winner, "clear": "tie"}), input_tokens=1000, output_tokens=100)


def comparisons(n: int) -> list[Comparison]:
    return [Comparison(f"question {i}?", "x" * (i % 3 + 1), "y" * ((i * 7) % 4 + 1)) for i in range(n)]


def expected_winners(items: list[Comparison]) -> list[str]:
    return ["a" if len(c.a) <= len(c.b) else "b" for c in items]


def settings(provider: str, server: JudgeServer, **overrides) -> LLMJudgeSettings:
    opts = dict(model="judge-model", timeout_s=5.0, backoff_base_s=0.01, backoff_max_s=0.05, concurrency=1,
                mode="batch", poll_interval_s=0.02, poll_max_interval_s=0.05, max_wait_s=20.0)
    opts.update(overrides)
    url = server.url if provider == "anthropic" else server.openai_url
    return LLMJudgeSettings(base_url=url, **opts)


def make(provider: str, server: JudgeServer, store=None, **overrides):
    kind = AnthropicJudge if provider == "anthropic" else OpenAIJudge
    return kind(settings(provider, server, **overrides), PRICES, store)


def batch_rows(store: Store) -> list[dict]:
    return store.judge_batches.list()


# ---------------------------------------------------------------------------------------------------------------------
# verdicts, failures, price


@pytest.mark.parametrize("provider", PROVIDERS)
def test_batch_verdicts_match_online_mode_and_fill_the_cache(provider, server):
    items = comparisons(6)
    online = make(provider, server, mode="online").compare(items, RUBRIC)
    online_bodies = [r.body for r in server.requests]
    store = Store(":memory:")
    progress: list[str] = []
    judge = make(provider, server, store)
    judge.on_progress = progress.append
    server.batch_delay_s = 0.15  # a few polls before it ends
    verdicts = judge.compare(items, RUBRIC)

    assert [v.winner for v in verdicts] == [v.winner for v in online] == expected_winners(items)
    for b, o in zip(verdicts, online):
        assert (b.confidence, b.criteria, b.rationale, b.tokens_in, b.tokens_out) == \
            (o.confidence, o.criteria, o.rationale, o.tokens_in, o.tokens_out)
    assert len(server.batches) == 1
    (batch,) = server.batches.values()
    keys = [cache_key(judge.describe(), c, RUBRIC.version) for c in items]
    assert batch.custom_ids == keys  # the judge cache keys, as online mode's cache uses them
    assert [r.body for r in server.requests if r.batch_id] == online_bodies  # the very same request bodies
    assert batch.polls >= 2 and any("waiting for 1 batch(es)" in line for line in progress)

    (row,) = batch_rows(store)
    assert (row["batch_id"], row["provider"], row["status"], row["n_requests"]) == \
        (batch.batch_id, provider, "collected", 6)
    assert row["judge_id"] == judge.judge_id and row["created_at"] <= row["updated_at"]
    assert sorted(store.judge_batches.custom_ids(row["local_id"])) == sorted(keys)
    assert set(store.judge_cache.get_many(keys)) == set(keys)
    # a cached judge online with the same settings finds every verdict: same keys
    online_cached = make_judge(provider, options={"model": "judge-model", "base_url": judge.settings.base_url,
                                                  "cache": True}, store=store)
    requests_before = len(server.requests)
    assert [v.winner for v in online_cached.compare(items, RUBRIC)] == expected_winners(items)
    assert len(server.requests) == requests_before
    # and batch mode again submits nothing
    assert [v.winner for v in make(provider, server, store).compare(items, RUBRIC)] == expected_winners(items)
    assert len(server.batches) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_errored_expired_canceled_and_garbage_results_are_invalid_with_the_reason(provider, server):
    server.enqueue(verdict_json("b"), Fail(500, message="overloaded"), Expire(), Cancel(), Garbage(),
                   "The better one is A, probably")
    store = Store(":memory:")
    judge = make(provider, server, store)
    verdicts = judge.compare(comparisons(6), RUBRIC)
    assert [v.winner for v in verdicts] == ["b", "invalid", "invalid", "invalid", "invalid", "invalid"]
    good, errored, expired, canceled, garbage, prose = verdicts
    assert "errored" in errored.rationale and "overloaded" in errored.rationale
    assert "expired" in expired.rationale
    assert "cancel" in canceled.rationale
    assert "malformed result" in garbage.rationale
    assert prose.rationale == "unparseable reply" and prose.raw_reply.startswith("The better one")
    assert judge.stats.invalid == 5 and judge.stats.parse_failures == 1
    keys = [cache_key(judge.describe(), c, RUBRIC.version) for c in comparisons(6)]
    assert list(store.judge_cache.get_many(keys)) == keys[:1]  # invalid verdicts are not cached: asked again later
    assert batch_rows(store)[0]["status"] == "collected"


def test_a_batch_that_fails_as_a_whole_makes_every_request_invalid(server):
    server.batch_failure = "line 1: model not found"
    store = Store(":memory:")
    verdicts = make("openai", server, store).compare(comparisons(3), RUBRIC)
    assert all(v.winner == "invalid" and "model not found" in v.rationale for v in verdicts)
    assert batch_rows(store)[0]["status"] == "failed"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_batches_cost_half_the_online_price_in_verdicts_budget_and_estimates(provider, server):
    items = comparisons(4)
    online = make(provider, server, mode="online").compare(items, RUBRIC)
    judge = make(provider, server, Store(":memory:"), budget_usd=1.0)
    verdicts = judge.compare(items, RUBRIC)
    per_call = (1000 * 10.0 + 100 * 30.0) / 1e6
    assert [v.cost_usd for v in online] == pytest.approx([per_call] * 4)
    assert [v.cost_usd for v in verdicts] == pytest.approx([per_call / 2] * 4)
    assert judge.stats.cost_usd == pytest.approx(2 * per_call) and judge.budget.spent == pytest.approx(2 * per_call)
    assert judge.budget.reserved == pytest.approx(0.0)
    online_est = parse_spec(provider, {"model": "claude-haiku-4-5"}).estimate_cost(100, 1000, 200)
    batch_est = parse_spec(provider, {"model": "claude-haiku-4-5", "mode": "batch"}).estimate_cost(100, 1000, 200)
    assert batch_est.usd == pytest.approx(online_est.usd / 2) and "batch rate" in str(batch_est)


def test_the_price_table_sets_the_batch_discount_per_table_and_per_model(tmp_path):
    bundled = load_price_table()
    usage = Usage(1_000_000, 0)
    assert actual_cost(usage, "gpt-4o", bundled, batch=True) == pytest.approx(2.50 / 2)  # bundled: half price
    override = tmp_path / "prices.yaml"
    override.write_text("batch_discount: 0.25\nmodels:\n  gpt-4o: {input: 2.5, output: 10, batch_discount: 0.6}\n")
    table = load_price_table(override)
    assert actual_cost(usage, "gpt-4o", table, batch=True) == pytest.approx(2.50 * 0.4)
    assert actual_cost(usage, "claude-haiku-4-5", table, batch=True) == pytest.approx(1.00 * 0.75)
    override.write_text("batch_discount: 1.5\nmodels: {}\n")
    with pytest.raises(ValueError, match="batch_discount: must be a share"):
        load_price_table(override)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_budget_check_refuses_an_over_budget_batch_before_anything_is_sent(provider, server):
    store = Store(":memory:")
    probe = make(provider, server, store)
    worst_batch = sum(probe.worst_case_cost(probe.render(c, RUBRIC)) for c in comparisons(20))
    judge = make(provider, server, store, budget_usd=worst_batch * 0.9)
    verdicts = judge.compare(comparisons(20), RUBRIC)
    assert all(v.winner == "invalid" for v in verdicts)
    assert "budget exhausted" in verdicts[0].rationale and "nothing was submitted" in verdicts[0].rationale
    assert "20 requests" in verdicts[0].rationale
    assert server.api_calls == [] and server.requests == [] and batch_rows(store) == []
    assert judge.budget_exhausted and judge.stats.budget_exhausted == 20
    # the batch rate is what is budgeted: a budget below the online worst case but above the batch one is enough
    online_worst = sum(make(provider, server, store, mode="online").worst_case_cost(probe.render(c, RUBRIC))
                       for c in comparisons(20))
    assert worst_batch == pytest.approx(online_worst / 2)
    fits = make(provider, server, store, budget_usd=online_worst * 0.75)
    assert all(v.is_valid for v in fits.compare(comparisons(20), RUBRIC)) and len(server.batches) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_lowered_limits_chunk_one_call_into_several_batches(provider, server, monkeypatch):
    prefix = provider.upper()
    monkeypatch.setattr(providers, f"{prefix}_MAX_REQUESTS", 3)
    store = Store(":memory:")
    items = comparisons(7)
    verdicts = make(provider, server, store).compare(items, RUBRIC)
    assert [v.winner for v in verdicts] == expected_winners(items)
    assert [len(b.items) for b in server.batches.values()] == [3, 3, 1]
    assert [r["status"] for r in batch_rows(store)] == ["collected"] * 3
    # the byte limit chunks as well: two lines' worth per batch
    monkeypatch.setattr(providers, f"{prefix}_MAX_REQUESTS", 1000)
    probe = make(provider, server, store)
    line_bytes = len(providers.json.dumps(probe.batches.api.line("k" * 64, probe.render(items[0], RUBRIC))))
    monkeypatch.setattr(providers, f"{prefix}_MAX_BYTES", int(line_bytes * 2.2))
    more = comparisons(12)[7:]  # 5 new questions
    assert [v.winner for v in probe.compare(more, RUBRIC)] == expected_winners(more)
    assert [len(b.items) for b in list(server.batches.values())[3:]] == [2, 2, 1]


def test_both_orders_of_a_debiased_judge_go_in_one_batch(server):
    store = Store(":memory:")
    options = {"model": "judge-model", "base_url": server.url, "mode": "batch", "poll_interval_s": 0.02,
               "poll_max_interval_s": 0.05, "debias": True, "cache": True}
    judge = make_judge("anthropic", options=options, store=store)
    items = [Comparison("q?", "short", "much longer"), Comparison("q2?", "longer one", "tiny")]
    verdicts = judge.compare(items, RUBRIC)
    assert [v.winner for v in verdicts] == ["a", "b"]  # shorter wins in both orders: the orders agree
    (batch,) = server.batches.values()
    assert sorted(r.candidates() for _, r, _ in batch.items) == sorted(
        [("short", "much longer"), ("much longer", "short"), ("longer one", "tiny"), ("tiny", "longer one")])


def test_batch_mode_needs_the_store_and_checks_its_options(server):
    with pytest.raises(ValueError, match="judge.options.mode.*store"):
        make("anthropic", server, None)
    with pytest.raises(ValueError, match="mode"):
        settings("anthropic", server, mode="overnight")
    with pytest.raises(ValueError, match="poll_max_interval_s"):
        settings("anthropic", server, poll_interval_s=10, poll_max_interval_s=1)


def test_polling_survives_server_errors_and_a_max_wait_leaves_the_batch_to_resume(server):
    store = Store(":memory:")
    server.hold_batches = True
    judge = make("openai", server, store, max_wait_s=0.3)
    server.fail_batch_calls.extend([Fail(429, retry_after=0.01)])  # the upload is retried
    verdicts = judge.compare(comparisons(3), RUBRIC)
    assert all(v.winner == "invalid" and "a re-run resumes it" in v.rationale for v in verdicts)
    assert judge.stats.retries == 1 and batch_rows(store)[0]["status"] == "pending"
    server.hold_batches = False
    server.fail_batch_calls.extend([Fail(503), Fail(502)])  # two polls fail; polling goes on
    again = make("openai", server, store).compare(comparisons(3), RUBRIC)
    assert [v.winner for v in again] == expected_winners(comparisons(3)) and len(server.batches) == 1


def test_a_batch_never_confirmed_by_the_provider_is_abandoned_and_submitted_again(server):
    store = Store(":memory:")
    judge = make("anthropic", server, store)
    keys = [cache_key(judge.describe(), c, RUBRIC.version) for c in comparisons(2)]
    local_id = store.judge_batches.start(judge.judge_id, "anthropic", keys)  # died before the provider answered
    assert [v.winner for v in judge.compare(comparisons(2), RUBRIC)] == expected_winners(comparisons(2))
    rows = {r["local_id"]: r for r in batch_rows(store)}
    assert rows[local_id]["status"] == "abandoned" and "before the provider confirmed" in rows[local_id]["error"]
    assert sorted(r["status"] for r in rows.values()) == ["abandoned", "collected"] and len(server.batches) == 1


# ---------------------------------------------------------------------------------------------------------------------
# a run killed while its batch is pending


def child_main() -> None:
    """The judging process of the SIGKILL test: ``python -c 'from tests.test_judge_batches import child_main;
    child_main()' PROVIDER URL STORE N``."""
    provider, url, store_path, n = sys.argv[1:5]
    kind = AnthropicJudge if provider == "anthropic" else OpenAIJudge
    store = Store(store_path)
    judge = kind(LLMJudgeSettings(model="judge-model", base_url=url, mode="batch", poll_interval_s=0.05,
                                  poll_max_interval_s=0.05), PRICES, store)
    judge.compare(comparisons(int(n)), RUBRIC)
    print("finished", flush=True)  # never reached in the test: the batch is held until the process is killed


def _submitted_rows(path: Path) -> list[dict]:
    with Store(path, wait_s=20) as store:
        return [r for r in store.judge_batches.list() if r["batch_id"]]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sigkill_while_the_batch_is_pending_then_resume_submits_nothing_new(provider, server, tmp_path):
    path = tmp_path / "wb.duckdb"
    Store(path).close()
    server.hold_batches = True
    url = server.url if provider == "anthropic" else server.openai_url
    n = 5
    child = subprocess.Popen(
        [sys.executable, "-c", "from tests.test_judge_batches import child_main; child_main()",
         provider, url, str(path), str(n)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 40
        rows: list[dict] = []
        while time.monotonic() < deadline and child.poll() is None:
            batches = list(server.batches.values())
            if batches and batches[0].polls >= 2:  # submitted and waiting
                rows = _submitted_rows(path)
                if rows:
                    break
            time.sleep(0.1)
        assert rows and child.poll() is None, child.stderr.read().decode() if child.poll() is not None else "timeout"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert [r["status"] for r in rows] == ["pending"] and rows[0]["provider"] == provider
    creates_before = [c for c in server.api_calls if c[0] == "POST"]

    server.hold_batches = False
    with Store(path) as store:
        judge = make(provider, server, store)
        verdicts = judge.compare(comparisons(n), RUBRIC)
        assert [v.winner for v in verdicts] == expected_winners(comparisons(n))
        assert all(v.cost_usd > 0 for v in verdicts)  # read from the batch now, not from a cache
        assert [r["status"] for r in store.judge_batches.list()] == ["collected"]
    assert len(server.batches) == 1  # exactly one batch was ever created...
    assert [c for c in server.api_calls if c[0] == "POST"] == creates_before  # ...and nothing was posted on resume
    assert len([r for r in server.requests if r.batch_id]) == n


def test_the_loop_hands_a_batch_judge_each_ranking_round_whole(server):
    """``judge.batch_size`` chunks online calls; a batch judge would then wait for one batch per chunk in turn, so the
    loop's rank stage gives it each round whole: one batch for all prompts' comparisons."""
    from rlaif.config import JudgeConfig
    from rlaif.datasets import PromptRecord
    from rlaif.loop.stages import rank

    class Texts:  # what rank reads of the sampled candidates
        def __init__(self, texts):
            self._texts = texts

        def texts(self, k):
            return self._texts[k]

    judge = make("openai", server, Store(":memory:"))
    prompts = [PromptRecord(id=f"p{i}", prompt=f"question {i}?") for i in range(6)]
    candidates = Texts([["x" * (i % 3 + 1), "y" * (i % 2 + 2)] for i in range(6)])
    rankings = rank(judge, prompts, candidates, RUBRIC, JudgeConfig(batch_size=2))
    assert len(rankings) == 6 and all(r.matches for r in rankings)
    assert len(server.batches) == 1 and judge.wants_whole_rounds  # 6 comparisons, one batch despite batch_size 2
    online = make("openai", server, mode="online")
    assert not online.wants_whole_rounds
