"""The real anthropic and openai clients against a loopback server: parsing, faults, limits, budget, key hygiene."""

import json
import logging
import math
import time
from dataclasses import dataclass

import pytest

from rlaif.judges import Comparison, make_judge
from rlaif.judges.combinators import DebiasedJudge
from rlaif.judges.llm import AnthropicJudge, LLMJudgeSettings, OpenAIJudge, public_url
from rlaif.judges.llm_api import MissingAPIKeyError, TokenLogprob, verdict_label_confidence
from rlaif.judges.pricing import ModelPrice, PriceTable, actual_cost, estimate_cost, load_price_table
from rlaif.judges.ranking import RankingTask, rank_candidates
from rlaif.rubric import rubric_from_dict
from store import Store
from tests.judge_server import Fail, Garbage, Hang, JudgeServer, Reply, flaky_responder, verdict_json

SECRET = "sk-test-SECRET123456789"
RUBRIC = rubric_from_dict({"name": "r", "criteria": [{"name": "correct", "description": "right answer"},
                                                     {"name": "clear", "description": "easy to read"}]})
PRICES = PriceTable({"judge-model": ModelPrice(input=10.0, output=30.0)}, "test")


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


@pytest.fixture
def server():
    with JudgeServer() as s:
        yield s


def make(provider, server, **overrides):
    opts = dict(model="judge-model", timeout_s=2.0, backoff_base_s=0.01, backoff_max_s=0.05, concurrency=4)
    opts.update(overrides)
    if provider == "anthropic":
        return AnthropicJudge(LLMJudgeSettings(base_url=server.url, **opts), PRICES)
    return OpenAIJudge(LLMJudgeSettings(base_url=server.openai_url, **opts), PRICES)


def comparisons(n):
    return [Comparison(f"question {i}?", f"answer A{i}", f"answer B{i}") for i in range(n)]


PROVIDERS = ["anthropic", "openai"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_replies_are_parsed_with_usage_tokens_cost_and_latency(provider, server):
    server.enqueue(Reply(verdict_json("b", 0.8, {"correct": "b", "clear": "tie"}), input_tokens=1000,
                         output_tokens=100))
    judge = make(provider, server, concurrency=1)
    (v,) = judge.compare(comparisons(1), RUBRIC)
    assert (v.winner, v.confidence) == ("b", 0.8)
    assert v.criteria == {"correct": {"a": 0.0, "b": 1.0}, "clear": {"a": 0.5, "b": 0.5}}
    assert (v.tokens_in, v.tokens_out) == (1000, 100)
    assert v.cost_usd == pytest.approx(1000 * 10e-6 + 100 * 30e-6)
    assert v.latency_ms > 0 and v.judge_id == f"{provider}:judge-model"
    req = server.requests[0]
    assert req.path == ("/v1/messages" if provider == "anthropic" else "/v1/chat/completions")
    assert req.body["model"] == "judge-model" and "answer A0" in req.prompt_text
    assert SECRET in json.dumps(req.headers)  # the key was sent...
    assert req.headers.get("x-stainless-retry-count") == "0"  # ...and the SDK's own retries are off


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_500_and_timeouts_are_retried_then_succeed(provider, server):
    server.enqueue(Fail(429, retry_after=0.2), Fail(500), Hang(1.5), Fail(503), verdict_json("a"))
    judge = make(provider, server, concurrency=1, timeout_s=0.4, backoff_base_s=0.01)
    started = time.monotonic()
    (v,) = judge.compare(comparisons(1), RUBRIC)
    assert v.winner == "a"
    assert judge.stats.requests == 5 and judge.stats.retries == 4 and judge.stats.invalid == 0
    times = [r.at for r in server.requests]
    assert times[1] - times[0] >= 0.2  # retry-after honoured
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("provider", PROVIDERS)
def test_persistent_failures_and_client_errors_become_invalid_not_exceptions(provider, server):
    server.enqueue(Fail(500), Fail(500), Fail(500), Fail(400, message="bad request"))
    judge = make(provider, server, concurrency=1, max_retries=2)
    v1, v2 = judge.compare(comparisons(2), RUBRIC)
    assert v1.winner == "invalid" and "HTTP 500 after 3 attempts" in v1.rationale
    assert v2.winner == "invalid" and v2.rationale == "HTTP 400"  # not retried
    assert len(server.requests) == 4 and judge.stats.errors == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_garbage_never_yields_a_winner(provider, server):
    server.enqueue(Garbage(), Garbage(b'{"unexpected": "shape"}'), "Candidate A is clearly... [truncated",
                   verdict_json("Response 1"), Reply("I cannot judge this.", stop_reason="refusal"),
                   Reply("", refusal="I can't help with that."), "a", "The better one is A, probably")
    judge = make(provider, server, concurrency=1)
    verdicts = judge.compare(comparisons(8), RUBRIC)
    assert all(v.winner == "invalid" for v in verdicts), [(v.winner, v.rationale) for v in verdicts]
    assert judge.stats.invalid == 8
    assert verdicts[2].raw_reply.startswith("Candidate A is clearly")  # kept for inspection


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ranking_completes_through_random_faults(provider):
    with JudgeServer(flaky_responder(7, server_error=502, ties=True)) as server:
        judge = make(provider, server, concurrency=8, max_retries=6)
        tasks = [RankingTask(f"q{k}", ["x" * (k % 3 + 1), "xxxxx", "xx" + "y" * k, "z"]) for k in range(10)]
        results = rank_candidates(judge, tasks, RUBRIC, "round_robin")
    assert all(r.calls == 6 for r in results)
    invalid = sum(m.verdict.winner == "invalid" for r in results for m in r.matches)
    assert invalid == judge.stats.invalid and invalid <= 10  # only garbage bodies end invalid
    expected = rank_candidates(make_judge("stub"), tasks, RUBRIC, "round_robin")  # the same preference, no faults
    clean = [k for k, r in enumerate(results) if all(m.verdict.is_valid for m in r.matches)]
    assert len(clean) >= 5
    assert all((results[k].chosen, results[k].rejected) == (expected[k].chosen, expected[k].rejected) for k in clean)


def test_concurrency_limit_and_requests_per_minute():
    with JudgeServer(latency_s=0.05) as server:
        judge = make("openai", server, concurrency=4)
        judge.compare(comparisons(16), RUBRIC)
        assert 2 <= server.max_in_flight <= 4
    with JudgeServer() as server:
        judge = make("anthropic", server, concurrency=8, rpm=1200)  # one request per 50 ms
        judge.compare(comparisons(6), RUBRIC)
        starts = sorted(r.at for r in server.requests)
        assert starts[-1] - starts[0] >= 5 * 0.05 * 0.9


@pytest.mark.parametrize("provider", PROVIDERS)
def test_budget_cap_stops_judging_cleanly(provider, server):
    # 1000 in + 100 out tokens per reply = $0.013 per call; the reservation uses max_tokens=64 for the output
    server.responder = lambda req: Reply(verdict_json("a"), input_tokens=100, output_tokens=20)
    judge = make(provider, server, concurrency=4, budget_usd=0.05, max_tokens=64)
    verdicts = judge.compare(comparisons(60), RUBRIC)
    judged = [v for v in verdicts if v.winner == "a"]
    exhausted = [v for v in verdicts if v.winner == "invalid"]
    assert judged and exhausted and len(judged) + len(exhausted) == 60
    assert all(v.rationale == "budget exhausted" for v in exhausted)
    assert judge.stats.budget_exhausted == len(exhausted) and judge.budget_exhausted
    assert DebiasedJudge(judge).budget_exhausted  # visible through wrappers, so the pipeline can stop the run
    assert len(server.requests) == len(judged)  # nothing was sent after the cap
    assert judge.budget.spent <= 0.05 and sum(v.cost_usd for v in verdicts) == pytest.approx(judge.budget.spent)
    # the cap is for the judge's lifetime (one run): a later batch is refused without a request
    assert all(v.rationale == "budget exhausted" for v in judge.compare(comparisons(3), RUBRIC))
    assert len(server.requests) == len(judged)


def test_budget_needs_a_price():
    with pytest.raises(ValueError, match="no price for model"):
        AnthropicJudge(LLMJudgeSettings(model="mystery-model", budget_usd=1.0), PRICES)


def test_keys_come_from_the_environment_only(monkeypatch, server):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(MissingAPIKeyError) as info:
        AnthropicJudge(LLMJudgeSettings(model="judge-model", base_url=server.url))
    assert "ANTHROPIC_API_KEY" in str(info.value)
    monkeypatch.setenv("TEAM_JUDGE_KEY", "sk-test-OTHERKEY987654321")
    judge = AnthropicJudge(LLMJudgeSettings(model="judge-model", base_url=server.url, api_key_env="TEAM_JUDGE_KEY"))
    judge.compare(comparisons(1), RUBRIC)
    assert "sk-test-OTHERKEY987654321" in json.dumps(server.requests[-1].headers)
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        LLMJudgeSettings(model="m", api_key_env="sk-test-SECRET123456789-oops")
    # a self-hosted OpenAI-compatible server needs no key
    monkeypatch.delenv("OPENAI_API_KEY")
    judge = OpenAIJudge(LLMJudgeSettings(model="judge-model", base_url=server.openai_url))
    assert judge.compare(comparisons(1), RUBRIC)[0].winner == "a"


def test_describe_covers_settings_and_hides_credentials(server):
    judge = make("openai", server)
    judge.settings.base_url = "http://user:hunter2@127.0.0.1:8000/v1?key=sk-test-SECRET123456789"
    d = judge.describe()
    assert d["model"] == "judge-model" and d["temperature"] == 0.0 and d["template_version"]
    assert d["base_url"] == "http://127.0.0.1:8000/v1"
    assert "hunter2" not in json.dumps(d) and SECRET not in json.dumps(d)
    assert public_url(None) is None
    assert make("anthropic", server).describe()["temperature"] is None  # this SDK's Messages API takes none


def _all_rows(store):
    cur = store.cursor()
    tables = [t for (t,) in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    return {t: cur.execute(f"SELECT * FROM {t}").fetchall() for t in tables}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_api_key_in_store_rows_verdicts_errors_or_logs(provider, server, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    # the server misbehaves in every way, including echoing the key back in an error and in a reply
    server.enqueue(Fail(401, message=f"invalid x-api-key {SECRET}"), Fail(429, retry_after=0.01),
                   Garbage(f"oops {SECRET}".encode()), verdict_json("a", rationale=f"key is {SECRET}"),
                   f"Winner: B\nby the way {SECRET}")
    store = Store(tmp_path / "wb.duckdb")
    options = {"model": "judge-model", "base_url": server.url if provider == "anthropic" else server.openai_url,
               "concurrency": 1, "backoff_base_s": 0.01, "cache": True, "debias": False}
    judge = make_judge(provider, options=options, store=store)
    verdicts = judge.compare(comparisons(6), RUBRIC)
    assert [v.winner for v in verdicts][:2] == ["invalid", "invalid"]
    store.judgements.add_many([{"judge_id": v.judge_id, "winner": v.winner, "confidence": v.confidence,
                                "rationale": v.rationale, "criteria": v.criteria, "raw_reply": v.raw_reply,
                                "cost_usd": v.cost_usd, "cache_key": judge.cache_key(c, RUBRIC)}
                               for v, c in zip(verdicts, comparisons(6))])
    store.runs.create("run-1", "t", {"judge": {"name": provider, "options": options}}, "h", judge.judge_id,
                      RUBRIC.version, None, None)
    assert SECRET in json.dumps([r.headers for r in server.requests])  # it was really sent
    assert store.judge_cache.count() >= 1
    dumped = {t: repr(rows) for t, rows in _all_rows(store).items()}
    assert not [t for t, text in dumped.items() if SECRET in text]
    assert not [v for v in verdicts if SECRET in json.dumps(v.to_dict())]
    assert SECRET not in json.dumps(judge.describe())
    logged = [r for r in caplog.records if SECRET in r.getMessage() or SECRET in str(r.__dict__)]
    assert not logged, logged[0].getMessage()
    assert any(r.name.startswith(("anthropic", "openai")) for r in caplog.records)  # SDK debug logs were captured
    store.close()


def test_pricing_table_estimate_and_actual_cost(tmp_path, monkeypatch):
    table = load_price_table()
    assert table.price("claude-sonnet-4-5-20250929") == table.models["claude-sonnet-4-5*"]  # most specific wins
    assert table.price("no-such-model") is None
    est = estimate_cost(1000, 800, 150, "claude-haiku-4-5", table)
    assert est.usd == pytest.approx(1000 * (800 * 1.0 + 150 * 5.0) / 1e6) and "claude-haiku-4-5" in str(est)
    assert estimate_cost(10, 100, 10, "no-such-model", table).usd is None
    cached = {"input_tokens": 1000, "output_tokens": 0, "cache_read_tokens": 800, "cache_write_tokens": 0}
    assert actual_cost(cached, "claude-haiku-4-5", table) == pytest.approx((200 * 1.0 + 800 * 0.10) / 1e6)
    override = tmp_path / "prices.yaml"
    override.write_text("models:\n  claude-haiku-4-5*: {input: 2.0, output: 4.0}\n  my-vllm-model: {input: 0, output: 0}\n")
    monkeypatch.setenv("RLAIF_PRICES", str(override))
    t2 = load_price_table()
    assert t2.price("claude-haiku-4-5").input == 2.0 and t2.price("my-vllm-model").output == 0.0
    assert t2.price("gpt-4o-mini") is not None  # the rest of the bundled table stays
    override.write_text("models:\n  bad: {input: -1, output: 1}\n")
    with pytest.raises(ValueError, match="bad.input"):
        load_price_table(override)
    # a missing or malformed price file is a config error (one line on every face), not an OSError/YAMLError
    with pytest.raises(ValueError, match=r"price table .*nowhere.yaml not found \(judge option prices_path"):
        load_price_table(tmp_path / "nowhere.yaml")
    override.write_text("models: [unclosed\n")
    with pytest.raises(ValueError, match=r"prices.yaml: not readable YAML"):
        load_price_table(override)


def test_a_broken_price_file_is_a_reason_on_the_pages_not_a_traceback(tmp_path, monkeypatch):
    from rlaif.config import config_from_dict
    from rlaif.workbench.projects import estimate_run_cost, spends_api

    cfg = config_from_dict({"judge": {"name": "anthropic", "options": {"model": "claude-haiku-4-5"}}})
    monkeypatch.setenv("RLAIF_PRICES", str(tmp_path / "missing.yaml"))
    assert spends_api(cfg) is True  # an unknown price counts as spending
    cost = estimate_run_cost(cfg, 10)
    assert cost.judge.usd is None and "missing.yaml not found" in " ".join(cost.judge.notes)


def test_cost_estimate_from_a_config_spec_needs_no_key(monkeypatch):
    from rlaif.judges import parse_spec

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    cost = parse_spec("anthropic", {"model": "claude-haiku-4-5", "debias": True}).estimate_cost(100, 1000, 200)
    assert cost.usd == pytest.approx(200 * (1000 * 1.0 + 200 * 5.0) / 1e6) and not cost.upper_bound
    tiered = parse_spec("tiered", {"cheap": {"name": "local"}, "expensive": {
        "name": "openai", "options": {"model": "gpt-4o-mini"}}}).estimate_cost(100, 1000, 200)
    assert tiered.usd == pytest.approx(100 * (1000 * 0.15 + 200 * 0.6) / 1e6) and tiered.upper_bound
    unpriced = parse_spec("openai", {"model": "self-hosted"})
    assert unpriced.estimate_cost(10, 10, 10).usd is None and unpriced.spends_api()
    assert parse_spec("stub").estimate_cost(10, 10, 10).usd == 0.0 and not parse_spec("stub").spends_api()
    cached = parse_spec("anthropic", {"model": "claude-haiku-4-5", "cache": True}).estimate_cost(100, 1000, 200)
    assert cached.upper_bound and "upper bound" in str(cached)


# ---------------------------------------------------------------------------------------------------------------------
# confidence from label log-probabilities (``logprobs: true``)


@dataclass(frozen=True)
class LogprobReply(Reply):
    """A reply whose tokens and top log-probabilities are scripted: (token, logprob, {alternative: logprob})."""

    token_logprobs: tuple = ()


def scripted(*tokens) -> LogprobReply:
    return LogprobReply("".join(t for t, _, _ in tokens), token_logprobs=tokens)


def test_label_logprobs_set_the_confidence_where_the_server_sends_them(server):
    ln = math.log
    sure = lambda t: (t, 0.0, {t: 0.0})  # noqa: E731
    reply = scripted(sure('{"criteria": {"correct": "'),
                     ("a", ln(0.95), {"a": ln(0.95), "b": ln(0.05)}),  # a criterion's label, not the verdict
                     sure('"}, "winner": "'),
                     ("b", ln(0.6), {"b": ln(0.6), "a": ln(0.3), '"': ln(0.05), "tie": ln(0.1)}),
                     sure('", "confidence": 0.9, "rationale": "the winner: a is wrong"}'))
    server.enqueue(reply, verdict_json("a", 0.9), scripted(sure(verdict_json("a", 0.9))))
    judge = make("openai", server, concurrency=1, logprobs=True)
    scripted_verdict, sure_verdict, unaligned = judge.compare(comparisons(3), RUBRIC)
    assert all(r.body["logprobs"] is True and r.body["top_logprobs"] == 5 for r in server.requests)
    # softmax over the label alternatives of the winner's token (the '"' alternative is no label): 0.6 / 1.0
    assert scripted_verdict.winner == "b" and scripted_verdict.confidence == pytest.approx(0.6)
    assert scripted_verdict.criteria["correct"] == {"a": 1.0, "b": 0.0}
    assert (sure_verdict.winner, sure_verdict.confidence) == ("a", pytest.approx(1.0))  # only "a" was on offer
    # no token after the winner key is a label (one token holds the whole reply): the written confidence stays
    assert (unaligned.winner, unaligned.confidence) == ("a", 0.9)
    assert judge.describe()["logprobs"] is True


@pytest.mark.parametrize("provider", PROVIDERS)
def test_without_logprobs_the_written_confidence_stays_and_nothing_is_asked(provider, server):
    server.enqueue(verdict_json("b", 0.8))
    judge = make(provider, server, concurrency=1, logprobs=provider == "anthropic")  # anthropic has none to give
    (v,) = judge.compare(comparisons(1), RUBRIC)
    assert (v.winner, v.confidence) == ("b", 0.8)
    assert "logprobs" not in server.requests[0].body and "top_logprobs" not in server.requests[0].body
    assert "logprobs" not in judge.describe()  # cache keys of judges without the option are unchanged


def test_label_confidence_reads_a_split_tie_and_winner_lines():
    ln = math.log
    tie = (TokenLogprob("Winner", 0.0), TokenLogprob(":", 0.0), TokenLogprob(" t", ln(0.5),
           ((" t", ln(0.5)), (" A", ln(0.25)), (" B", ln(0.2)), (" The", ln(0.05)))), TokenLogprob("ie", 0.0))
    assert verdict_label_confidence(tie, "tie") == pytest.approx(0.5 / 0.95)
    line = (TokenLogprob("Verdict: candidate", 0.0), TokenLogprob(" B", ln(0.7), ((" B", ln(0.7)), (" A", ln(0.2)))))
    assert verdict_label_confidence(line, "b") == pytest.approx(0.7 / 0.9)
    assert verdict_label_confidence(line, "a") is None  # the verdict token is no "a": the caller keeps its number
    assert verdict_label_confidence((), "a") is None
