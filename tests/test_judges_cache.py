"""The content-addressed judge cache: every key component matters, re-runs make no calls, invalid is not cached."""

from rlaif.judges import Comparison, make_judge
from rlaif.judges.cache import CachedJudge, cache_key
from rlaif.judges.fake import FakeJudge
from rlaif.judges.prompting import TEMPLATE_VERSION
from rlaif.rubric import rubric_from_dict
from store import Store
from tests.judge_server import Garbage, JudgeServer, verdict_json

RUBRIC = rubric_from_dict({"name": "r", "criteria": [{"name": "correct", "description": "right answer"}]})
RUBRIC_V2 = rubric_from_dict({"name": "r", "criteria": [{"name": "correct", "description": "the right answer"}]})
JUDGE = {"judge_id": "openai:gpt-4o", "model": "gpt-4o", "temperature": 0.0, "template_version": TEMPLATE_VERSION}
BASE = Comparison("prompt", "answer a", "answer b", reference="gold")


def test_every_key_component_changes_the_key():
    base = cache_key(JUDGE, BASE, RUBRIC.version)
    variants = {
        "judge model": cache_key({**JUDGE, "model": "gpt-4o-mini"}, BASE, RUBRIC.version),
        "judge settings": cache_key({**JUDGE, "temperature": 0.7}, BASE, RUBRIC.version),
        "judge id": cache_key({**JUDGE, "judge_id": "anthropic:gpt-4o"}, BASE, RUBRIC.version),
        "template version": cache_key(JUDGE, BASE, RUBRIC.version, template_version=TEMPLATE_VERSION + "-next"),
        "rubric version": cache_key(JUDGE, BASE, RUBRIC_V2.version),
        "prompt": cache_key(JUDGE, Comparison("prompt!", "answer a", "answer b", "gold"), RUBRIC.version),
        "candidate A": cache_key(JUDGE, Comparison("prompt", "answer a.", "answer b", "gold"), RUBRIC.version),
        "candidate B": cache_key(JUDGE, Comparison("prompt", "answer a", "answer b.", "gold"), RUBRIC.version),
        "order": cache_key(JUDGE, BASE.swapped(), RUBRIC.version),
        "reference": cache_key(JUDGE, Comparison("prompt", "answer a", "answer b", "gold2"), RUBRIC.version),
    }
    assert RUBRIC.version != RUBRIC_V2.version
    assert all(k != base for k in variants.values()), [n for n, k in variants.items() if k == base]
    assert len(set(variants.values())) == len(variants)
    assert cache_key(dict(reversed(list(JUDGE.items()))), BASE, RUBRIC.version) == base  # key order is irrelevant
    assert cache_key(JUDGE, Comparison("prompt", "answer a", "answer b", "gold", prompt_id="other-id"),
                     RUBRIC.version) == base  # ids are labels, not content


def test_real_judges_describe_model_and_settings_into_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET123456789")
    keys = set()
    for opts in ({"model": "gpt-4o"}, {"model": "gpt-4o-mini"}, {"model": "gpt-4o", "temperature": 0.5},
                 {"model": "gpt-4o", "max_tokens": 1024}, {"model": "gpt-4o", "json_mode": True},
                 {"model": "gpt-4o", "concurrency": 2}):  # concurrency does not shape verdicts: same key as the first
        judge = make_judge("openai", options=opts)
        keys.add(cache_key(judge.describe(), BASE, RUBRIC.version))
    assert len(keys) == 5
    with Store() as store:
        debiased = make_judge("openai", options={"model": "gpt-4o", "debias": True, "cache": True}, store=store)
        plain = make_judge("openai", options={"model": "gpt-4o", "cache": True}, store=store)
        assert debiased.cache_key(BASE, RUBRIC) != plain.cache_key(BASE, RUBRIC)


def test_rerun_with_cache_makes_zero_new_requests_and_a_new_rubric_version_misses(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET123456789")
    db = tmp_path / "wb.duckdb"
    comparisons = [Comparison(f"q{i}", f"a{i}", f"b{i}") for i in range(12)]
    with JudgeServer(lambda req: verdict_json("b", 0.7)) as server:
        options = {"model": "gpt-4o", "base_url": server.openai_url, "cache": True, "debias": True}
        with Store(db) as store:
            first = make_judge("openai", options=options, store=store).compare(comparisons, RUBRIC)
        assert len(server.requests) == 24  # both orders
        with Store(db) as store:  # a new process: new store, new judge, same database
            judge = make_judge("openai", options=options, store=store)
            again = judge.compare(comparisons, RUBRIC)
            assert len(server.requests) == 24  # zero new calls
            assert judge.stats == {"hits": 12, "misses": 0, "stored": 0, "refused": 0}
            assert [v.winner for v in again] == [v.winner for v in first] == ["tie"] * 12
            assert all(v.cost_usd == 0.0 and v.latency_ms == 0.0 for v in again)  # a hit costs nothing now
            judge.compare(comparisons[:3], RUBRIC_V2)
            assert len(server.requests) == 30  # a new rubric version misses
            assert judge.stats["misses"] == 3


def test_invalid_verdicts_are_not_cached_so_a_retry_can_succeed(tmp_path):
    fake = FakeJudge("f").enqueue("invalid", "a")
    with Store(tmp_path / "wb.duckdb") as store:
        judge = CachedJudge(fake, store)
        assert judge.compare([BASE], RUBRIC)[0].winner == "invalid"
        assert store.judge_cache.count() == 0
        assert judge.compare([BASE], RUBRIC)[0].winner == "a"
        assert judge.compare([BASE], RUBRIC)[0].winner == "a"
        assert len(fake.history) == 2 and store.judge_cache.count("f") == 1


def test_duplicates_in_a_batch_are_judged_once_and_prime_is_forwarded(tmp_path):
    fake = FakeJudge("f", default="b")
    with Store(tmp_path / "wb.duckdb") as store:
        judge = CachedJudge(fake, store)
        out = judge.compare([BASE, BASE, BASE.swapped(), BASE], RUBRIC)
        assert [v.winner for v in out] == ["b"] * 4 and len(fake.history) == 2
        assert judge.describe() == fake.describe() and judge.judge_id == "f"

    class Primeable(FakeJudge):
        primed = []

        def prime(self, candidate, reference, checks):
            self.primed.append(candidate)

    inner = Primeable()
    with Store() as store:
        CachedJudge(inner, store).prime("x", "ref", {"ok": True})
    assert inner.primed == ["x"]


def test_cache_with_garbage_server_replies(monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-SECRET123456789")
    with JudgeServer() as server, Store(tmp_path / "wb.duckdb") as store:
        server.enqueue(Garbage(), verdict_json("a"))
        options = {"model": "claude-haiku-4-5", "base_url": server.url, "cache": True, "concurrency": 1}
        judge = make_judge("anthropic", options=options, store=store)
        cs = [BASE, Comparison("p2", "x", "y")]
        assert [v.winner for v in judge.compare(cs, RUBRIC)] == ["invalid", "a"]
        assert [v.winner for v in judge.compare(cs, RUBRIC)] == ["a", "a"]  # the garbage one is asked again
        assert len(server.requests) == 3
        row = store.judge_cache.get_many([judge.cache_key(cs[1], RUBRIC)])
        assert list(row.values())[0]["winner"] == "a"


def test_a_verdict_carrying_a_key_is_returned_but_never_cached(tmp_path):
    from rlaif.judges.base import Verdict

    fake = FakeJudge("f").enqueue(Verdict("a", 0.9, raw_reply="sk-test-SECRET123456789"))
    with Store(tmp_path / "wb.duckdb") as store:
        judge = CachedJudge(fake, store)
        assert judge.compare([BASE], RUBRIC)[0].winner == "a"
        assert store.judge_cache.count() == 0 and judge.stats["refused"] == 1
