"""Debiasing, ensembles, tiers, verifier-first, the registry's wrapper options, and ranking strategies."""

import itertools
import random

import pytest

from rlaif.judges import Comparison, Verdict, make_judge
from rlaif.judges.base import Judge
from rlaif.judges.combinators import DebiasedJudge, EnsembleJudge, TieredJudge, VerifierFirstJudge
from rlaif.judges.fake import FakeJudge
from rlaif.judges.ranking import RankingTask, best_and_worst, calls_per_prompt, copeland, rank_candidates
from rlaif.judges.registry import JUDGE_NAMES
from rlaif.judges.verifier import VerifierJudge
from rlaif.rubric import rubric_from_dict

RUBRIC = rubric_from_dict({"name": "r", "criteria": [{"name": "ok", "hard": True, "verifier": "sql_executes"},
                                                     {"name": "style", "description": "reads well"}]})
C = [Comparison("p", "x", "yy"), Comparison("p", "long answer", "s")]


class QualityJudge(Judge):
    """Prefers the candidate with the higher quality number in its text ("q=0.7"); records calls."""

    def __init__(self, judge_id="quality", confidence=0.9):
        self.judge_id, self.confidence, self.calls = judge_id, confidence, 0

    def compare(self, comparisons, rubric):
        self.calls += len(comparisons)
        out = []
        for c in comparisons:
            qa, qb = float(c.a.split("=")[1]), float(c.b.split("=")[1])
            w = "a" if qa > qb else "b" if qb > qa else "tie"
            out.append(Verdict(w, self.confidence, "quality", {"style": {"a": qa, "b": qb}}, judge_id=self.judge_id))
        return out


# ---- debiasing


def test_position_biased_judge_yields_ties_and_flip_rate_one():
    always_a = FakeJudge("biased-a", default="a")
    judge = DebiasedJudge(always_a)
    verdicts = judge.compare(C, RUBRIC)
    assert [v.winner for v in verdicts] == ["tie", "tie"]
    assert all(v.confidence == 0.0 and "position-inconsistent" in v.rationale for v in verdicts)
    assert judge.stats["flip_rate"] == 1.0 and judge.stats["flips"] == 2
    # both orders were asked, in one batch: A,B then B,A
    assert [(c.a, c.b) for c in always_a.history] == [("x", "yy"), ("long answer", "s"), ("yy", "x"),
                                                       ("s", "long answer")]


def test_consistent_judge_keeps_its_winner_and_criteria_are_unflipped():
    judge = DebiasedJudge(QualityJudge())
    v = judge.compare([Comparison("p", "q=0.2", "q=0.9")], RUBRIC)[0]
    assert v.winner == "b" and v.confidence == pytest.approx(0.9) and judge.stats["flip_rate"] == 0.0
    assert v.criteria["style"] == {"a": 0.2, "b": 0.9}  # the swapped call's criteria mapped back, then averaged


def test_invalid_is_handled_before_unflipping_and_never_becomes_a_winner():
    # AB is invalid, BA says "a" (which un-flipped would be "b"): the pair must be invalid, not "b"
    fake = FakeJudge().enqueue(Verdict.invalid("f", "unparseable", raw_reply="???"), "a",
                               "a", Verdict.invalid("f", "timeout"))
    judge = DebiasedJudge(fake)
    v1, v2 = judge.compare(C, RUBRIC)
    assert v1.winner == "invalid" and "ab: unparseable" in v1.rationale and "???" in v1.raw_reply
    assert v2.winner == "invalid" and "ba: timeout" in v2.rationale
    assert judge.stats["both_valid"] == 0 and judge.stats["flip_rate"] == 0.0


def test_debiased_sums_usage_of_both_orders():
    fake = FakeJudge().enqueue(Verdict("a", 0.8, cost_usd=0.01, tokens_in=5), Verdict("b", 0.6, cost_usd=0.02,
                                                                                      tokens_in=7))
    v = DebiasedJudge(fake).compare(C[:1], RUBRIC)[0]
    assert v.winner == "a" and v.confidence == pytest.approx(0.7)
    assert v.cost_usd == pytest.approx(0.03) and v.tokens_in == 12


# ---- ensembles


def _scripted(*winners):
    return FakeJudge(f"j{len(winners)}{winners[0]}").enqueue(*winners)


def test_ensemble_requires_min_agreement_else_tie_with_the_tally():
    j1, j2, j3 = FakeJudge("j1").enqueue("a", "a", "a", "invalid"), FakeJudge("j2").enqueue("a", "b", "b", "invalid"), \
        FakeJudge("j3").enqueue("b", "tie", "b", "invalid")
    ens = EnsembleJudge([j1, j2, j3], min_agreement=2)
    cs = [Comparison("p", f"a{i}", f"b{i}") for i in range(4)]
    v = ens.compare(cs, RUBRIC)
    assert [x.winner for x in v] == ["a", "tie", "b", "invalid"]
    assert v[0].confidence == pytest.approx(2 / 3) and "2/3 agree" in v[0].rationale
    assert "no agreement: a=1 b=1 tie=1" in v[1].rationale and v[1].confidence == 0.0
    assert ens.stats == {"comparisons": 4, "agreed": 2, "split": 1, "all_invalid": 1}
    strict = EnsembleJudge([FakeJudge("x").enqueue("a"), FakeJudge("y").enqueue("a"), FakeJudge("z").enqueue("b")],
                           min_agreement=1.0)
    assert strict.compare(cs[:1], RUBRIC)[0].winner == "tie"  # unanimity required
    with pytest.raises(ValueError, match="min_agreement"):
        EnsembleJudge([FakeJudge(), FakeJudge()], min_agreement=3)


def test_ensemble_invalid_votes_do_not_count_as_agreement():
    ens = EnsembleJudge([FakeJudge("a").enqueue("a"), FakeJudge("b").enqueue("invalid"),
                         FakeJudge("c").enqueue("invalid")], min_agreement=2)
    assert ens.compare(C[:1], RUBRIC)[0].winner == "tie"


# ---- tiers


def test_tiered_escalates_only_unsure_or_invalid_verdicts():
    cheap = FakeJudge("cheap").enqueue(Verdict("a", 0.95), Verdict("b", 0.3, cost_usd=0.001),
                                       Verdict.invalid("cheap", "bad"), Verdict("tie", 0.9))
    expensive = FakeJudge("expensive").enqueue(Verdict("a", 0.9, cost_usd=0.01), Verdict("b", 0.8, cost_usd=0.01))
    judge = TieredJudge(cheap, expensive, threshold=0.7)
    cs = [Comparison("p", f"a{i}", f"b{i}") for i in range(4)]
    v = judge.compare(cs, RUBRIC)
    assert [x.winner for x in v] == ["a", "a", "b", "tie"]
    assert [c.a for c in expensive.history] == ["a1", "a2"]
    assert v[1].cost_usd == pytest.approx(0.011) and "escalated" in v[1].rationale
    assert judge.stats == {"comparisons": 4, "escalated": 2}


def test_tiered_escalates_debiased_disagreements():
    cheap = DebiasedJudge(FakeJudge("pos", default="a"))  # position-biased: every pair is inconsistent
    expensive = QualityJudge("big")
    judge = TieredJudge(cheap, expensive, threshold=0.5)
    v = judge.compare([Comparison("p", "q=0.1", "q=0.5")], RUBRIC)[0]
    assert v.winner == "b" and v.judge_id == "big" and expensive.calls == 1


# ---- verifier first


def _verify_table(table):
    class V:
        def __init__(self, checks):
            self.checks = checks

        def criteria(self):
            return self.checks

    return lambda text, ref: V(table[text])


def test_verifier_first_prunes_then_lets_the_judge_decide_among_survivors():
    verifier = VerifierJudge(_verify_table({"good1": {"sql_executes": True}, "good2": {"sql_executes": True},
                                            "bad1": {"sql_executes": False}, "bad2": {"sql_executes": False}}))
    llm = FakeJudge("llm", default="b")
    judge = VerifierFirstJudge(verifier, llm)
    cs = [Comparison("p", "good1", "bad1", "ref"), Comparison("p", "bad1", "good2", "ref"),
          Comparison("p", "good1", "good2", "ref"), Comparison("p", "bad1", "bad2", "ref"),
          Comparison("p", "x", "y", None)]
    v = judge.compare(cs, RUBRIC)
    assert [x.winner for x in v] == ["a", "b", "b", "tie", "b"]
    assert [(c.a, c.b) for c in llm.history] == [("good1", "good2"), ("x", "y")]  # only survivors (and unverifiable)
    assert v[0].judge_id == "verifier" and "sql_executes" in v[0].rationale and v[2].judge_id == "llm"
    assert judge.stats == {"comparisons": 5, "pruned": 2, "both_failed": 1, "llm": 2}


# ---- registry


def test_registry_builds_wrappers_from_options(tmp_path, monkeypatch):
    from store import Store

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-SECRET123456789")
    assert {"stub", "biased", "verifier", "anthropic", "openai", "local", "ensemble", "tiered"} <= set(JUDGE_NAMES)
    verify = _verify_table({"a": {"sql_executes": True}, "b": {"sql_executes": False}})
    with Store(tmp_path / "wb.duckdb") as store:
        j = make_judge("anthropic", verify=verify, store=store,
                       options={"model": "claude-haiku-4-5", "debias": True, "verifier_first": True, "cache": True})
        assert type(j).__name__ == "CachedJudge"
        assert type(j.inner).__name__ == "VerifierFirstJudge" and type(j.inner.judge).__name__ == "DebiasedJudge"
        assert j.describe()["judge"]["inner"]["model"] == "claude-haiku-4-5"
        ens = make_judge("ensemble", options={"min_agreement": 2, "judges": ["stub", "biased", {"name": "stub"}]})
        assert isinstance(ens, EnsembleJudge) and len(ens.judges) == 3
        tiered = make_judge("tiered", options={"cheap": "stub", "expensive": {"name": "biased"}, "threshold": 0.6})
        assert isinstance(tiered, TieredJudge) and tiered.threshold == 0.6
        stats = j.all_stats()
        assert any(k.endswith(j.judge_id) and "hits" in v for k, v in stats.items())
        assert any("flip_rate" in v for v in stats.values()) and any("requests" in v for v in stats.values())
        assert not j.budget_exhausted
    with pytest.raises(ValueError, match="unknown option"):
        make_judge("anthropic", options={"model": "m", "modle": "typo"})
    with pytest.raises(ValueError, match="needs the store"):
        make_judge("stub", options={"cache": True})
    with pytest.raises(ValueError, match="takes no options"):
        make_judge("stub", options={"model": "x"})
    with pytest.raises(ValueError, match="model: is required"):
        make_judge("openai", options={})


# ---- ranking strategies


def _quality_tasks(n_tasks, n, seed=0):
    rng = random.Random(seed)
    return [RankingTask(f"p{k}", [f"q={rng.random():.6f}" for _ in range(n)]) for k in range(n_tasks)]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_both_strategies_find_the_true_best_and_worst_with_a_consistent_judge(n):
    tasks = _quality_tasks(20, n)
    for strategy in ("round_robin", "knockout"):
        judge = QualityJudge()
        results = rank_candidates(judge, tasks, RUBRIC, strategy, chunk=7)
        for t, r in zip(tasks, results):
            q = [float(x.split("=")[1]) for x in t.texts]
            assert r.chosen == q.index(max(q)), strategy
            assert r.rejected == q.index(min(q)), (strategy, q)  # byes cannot carry the worst past its bracket
            assert r.calls == len(r.matches) <= calls_per_prompt(n, strategy)
            if strategy == "round_robin" or n in (2, 4, 8):  # no byes: always the same number of calls
                assert r.calls == calls_per_prompt(n, strategy)
        assert judge.calls == sum(r.calls for r in results)
    assert [calls_per_prompt(n, "knockout") for n in (2, 3, 4, 5, 8)] == [1, 3, 4, 6, 10]
    assert calls_per_prompt(4, "round_robin") == 6


def test_knockout_sends_a_candidate_that_rode_byes_and_then_lost_down_to_the_worst_bracket():
    # 3 candidates, the last one worst: round 1 is 0 vs 1 (1 loses); 2 rides a bye, then loses to 0 without ever
    # having won, so it meets 1 in the worst bracket and is found to be the worst
    (r,) = rank_candidates(QualityJudge(), [RankingTask("p", ["q=0.9", "q=0.5", "q=0.1"])], RUBRIC, "knockout")
    assert (r.chosen, r.rejected, r.calls) == (0, 2, 3)
    assert [(m.i, m.j) for m in r.matches] == [(0, 1), (0, 2), (1, 2)]
    # when the bye rider wins instead it is not a worst candidate: one loser, no worst-bracket match
    (r,) = rank_candidates(QualityJudge(), [RankingTask("p", ["q=0.5", "q=0.1", "q=0.9"])], RUBRIC, "knockout")
    assert (r.chosen, r.rejected, r.calls) == (2, 1, 2)


def test_round_robin_strategy_matches_the_pipelines_copeland_ranking():
    tasks = _quality_tasks(10, 4, seed=3)
    noisy = FakeJudge(default=lambda c: random.Random(c.a + c.b).choice(["a", "b", "tie"]))
    for t, r in zip(tasks, rank_candidates(noisy, tasks, RUBRIC, "round_robin")):
        assert (r.chosen, r.rejected) == best_and_worst(t.texts, copeland(t.texts, r.matches))


def test_knockout_with_cycles_still_picks_copeland_optimal_candidates_for_n4():
    # every possible tournament on 4 candidates: the knockout's picks are always among the Copeland-best/-worst
    pairs = list(itertools.combinations(range(4), 2))
    texts = ["c0", "c1", "c2", "c3"]
    for outcome in itertools.product("ab", repeat=6):
        table = {(texts[i], texts[j]): w for (i, j), w in zip(pairs, outcome)}
        table.update({(texts[j], texts[i]): "b" if w == "a" else "a" for (i, j), w in zip(pairs, outcome)})
        judge = FakeJudge(default=lambda c: table[(c.a, c.b)])
        (rr,) = rank_candidates(judge, [RankingTask("p", texts)], RUBRIC, "round_robin")
        (ko,) = rank_candidates(judge, [RankingTask("p", texts)], RUBRIC, "knockout")
        assert rr.scores[ko.chosen] == max(rr.scores) and rr.scores[ko.rejected] == min(rr.scores)
        assert ko.calls == 4


def test_knockout_handles_duplicates_ties_and_confirmation():
    judge = FakeJudge(default="tie")
    (r,) = rank_candidates(judge, [RankingTask("p", ["same", "same ", "other", "third"])], RUBRIC, "knockout")
    # 3 distinct texts; ties advance the earlier candidate, so "third" rides a bye, loses, and meets "other" below
    assert r.calls == 3 and not r.decisive and (r.chosen, r.rejected) == (0, 3)
    (solo,) = rank_candidates(judge, [RankingTask("p", ["one", "one"])], RUBRIC, "knockout")
    assert (solo.chosen, solo.rejected, solo.calls) == (None, None, 0)
    chosen, rejected, calls = rank_candidates(QualityJudge(), [RankingTask("p", ["q=0.5", "q=0.1", "q=0.9", "q=0.3"])],
                                              RUBRIC, "knockout", confirm=True)[0]
    assert (chosen, rejected) == (2, 1) and calls == 5  # 0.9 never met 0.1 directly: one confirming match
