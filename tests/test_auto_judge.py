"""``auto`` picks an API judge when its key is set and the local judge otherwise; order averaging debiases weak
local judges whose winners never agree across orders."""

import pytest

from rlaif.judges import Comparison, make_judge, parse_spec
from rlaif.judges.auto import choose_judge
from rlaif.judges.base import Judge, Verdict
from rlaif.judges.cache import CachedJudge
from rlaif.judges.fake import FakeJudge
from rlaif.judges.llm import OpenAIJudge
from rlaif.judges.order_average import OrderAveragedJudge
from rlaif.rubric import DEFAULT_RUBRIC
from store import Store
from tests.judge_server import JudgeServer, verdict_json

OPTIONS = {"prefer": ["anthropic", "openai", "local"], "anthropic": {"model": "claude-haiku-4-5", "debias": True},
           "openai": {"model": "gpt-4o-mini"}, "local": {"batch_size": 8}, "cache": True}


def test_choice_follows_keys_in_preference_order():
    assert choose_judge(OPTIONS, environ={}).name == "local"
    c = choose_judge(OPTIONS, environ={"OPENAI_API_KEY": "x"})
    assert c.name == "openai" and c.options == {"model": "gpt-4o-mini", "cache": True} and "OPENAI_API_KEY" in c.reason
    c = choose_judge(OPTIONS, environ={"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y"})
    assert c.name == "anthropic" and c.options["debias"] is True
    # a key variable named by the judge's own options, and a keyless OpenAI-compatible server
    assert choose_judge({"prefer": ["anthropic", "local"], "anthropic": {"api_key_env": "MY_KEY"}},
                        environ={"MY_KEY": "k"}).options["model"] == "claude-haiku-4-5"
    assert choose_judge({"prefer": ["openai"], "openai": {"base_url": "http://localhost:8000/v1"}}, environ={}
                        ).name == "openai"
    assert choose_judge(None, environ={}).name == "local"  # default preference ends with local


def test_choice_errors_name_the_field():
    with pytest.raises(ValueError, match="none of .* can run here"):
        choose_judge({"prefer": ["anthropic", "openai"]}, environ={})
    with pytest.raises(ValueError, match="prefer: unknown judge"):
        choose_judge({"prefer": ["gemini"]}, environ={})
    with pytest.raises(ValueError, match="unknown option"):
        choose_judge({"model": "x"}, environ={})
    with pytest.raises(ValueError, match=r"judge.options.local: expected dict\[str, Any\] \| None, got 'smollm2'"):
        choose_judge({"local": "smollm2"}, environ={})


def test_auto_builds_the_api_judge_without_calling_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    judge = make_judge("auto", options={"prefer": ["openai", "local"], "openai": {"model": "gpt-4o-mini"}})
    assert isinstance(judge, OpenAIJudge) and judge.judge_id == "openai:gpt-4o-mini"


def test_auto_costs_what_the_chosen_judge_costs(monkeypatch):
    spec = parse_spec("auto", {"prefer": ["anthropic", "local"], "anthropic": {"model": "claude-haiku-4-5"}})
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert spec.estimate_cost(100, 1000).usd == 0.0 and not spec.spends_api()  # the local judge runs here
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    assert spec.estimate_cost(100, 1000).usd > 0 and spec.spends_api()  # with a key it would call the API


class ProbabilityJudge(Judge):
    """Says "A" in every order (a position-biased small model) but leans to the better text in probability."""

    judge_id = "prob"

    def __init__(self, better: str, invalid_on: str | None = None):
        self.better, self.invalid_on, self.history = better, invalid_on, []

    def compare(self, comparisons, rubric):
        out = []
        for c in comparisons:
            self.history.append(c)
            if self.invalid_on in (c.a, c.b):
                out.append(Verdict.invalid("prob", "no label"))
                continue
            pa = 0.8 + (0.02 if c.a == self.better else -0.02 if c.b == self.better else 0.0)
            out.append(Verdict("a", pa, "", {"label_probability": {"a": pa, "b": 1 - pa}}, judge_id="prob"))
        return out


def test_order_averaging_recovers_the_preference_under_position_bias():
    judge = OrderAveragedJudge(ProbabilityJudge(better="good"))
    v_good_first, v_good_second, v_same = judge.compare(
        [Comparison("q", "good", "bad"), Comparison("q", "bad", "good"), Comparison("q", "x", "x")], DEFAULT_RUBRIC)
    assert v_good_first.winner == "a" and v_good_second.winner == "b" and v_same.winner == "tie"
    assert v_good_first.criteria["label_probability"]["a"] == pytest.approx(0.52)
    assert v_good_first.criteria["position_bias"] == pytest.approx(0.3)
    assert judge.stats["mean_position_bias"] == pytest.approx(0.3) and judge.stats["pairs"] == 3
    assert len(judge.inner.history) == 6  # both orders, one batch


def test_order_averaging_never_turns_a_failed_order_into_a_winner():
    judge = OrderAveragedJudge(ProbabilityJudge(better="good", invalid_on="broken"))
    (v,) = judge.compare([Comparison("q", "good", "broken")], DEFAULT_RUBRIC)
    assert v.winner == "invalid" and "ab:" in v.rationale


def test_order_averaging_without_probabilities_needs_agreement():
    judge = OrderAveragedJudge(FakeJudge(default=lambda c: "a" if c.a == "good" else "b"))
    (agree,) = judge.compare([Comparison("q", "good", "bad")], DEFAULT_RUBRIC)
    assert agree.winner == "a"
    biased = OrderAveragedJudge(FakeJudge(default="a"))
    (tie,) = biased.compare([Comparison("q", "good", "bad")], DEFAULT_RUBRIC)
    assert tie.winner == "tie" and "disagree" in tie.rationale


def test_auto_wraps_the_chosen_judge_in_order_averaging_and_cache():
    """Per-judge wrapper options (debias: average) wrap the chosen judge; top-level ones (cache) wrap it outermost."""
    with JudgeServer(responder=lambda request: verdict_json("a", 0.9)) as server, Store(":memory:") as store:
        options = {"prefer": ["anthropic", "openai"], "cache": True,
                   "openai": {"model": "judge-model", "base_url": server.openai_url, "debias": "average"}}
        judge = make_judge("auto", options=options, store=store, environ={})
        assert isinstance(judge, CachedJudge) and isinstance(judge.inner, OrderAveragedJudge)
        assert isinstance(judge.inner.inner, OpenAIJudge) and judge.judge_id == "order-averaged(openai:judge-model)"
        (v,) = judge.compare([Comparison("q", "good", "bad")], DEFAULT_RUBRIC)
        assert v.winner == "tie" and "orders disagree" in v.rationale  # "A" in both orders: no preference
        assert len(server.requests) == 2 and store.judge_cache.count() == 1
        judge.compare([Comparison("q", "good", "bad")], DEFAULT_RUBRIC)
        assert len(server.requests) == 2  # the cache answered
