"""Pair building: best vs worst of the judge's ranking, and every filter's drop reason. Rankings come from the public
ranking API (``rank_candidates``) with a scripted fake judge, so a pair is decided exactly as the loop decides it."""

from rlaif.config import PairConfig
from rlaif.judges.base import Verdict
from rlaif.judges.fake import FakeJudge
from rlaif.judges.ranking import Match, RankingTask, best_and_worst, copeland, rank_candidates, round_robin_plan
from rlaif.pairs import decide_pair
from rlaif.rubric import rubric_from_dict

RUBRIC = rubric_from_dict({"name": "r", "criteria": [{"name": "ok", "hard": True, "verifier": "sql_executes"}]})


def full_matches(texts, prefer):
    """Round-robin verdicts from a total order: lower rank in `prefer` wins."""
    return [Match(i, j, Verdict("a" if prefer.index(texts[i]) < prefer.index(texts[j]) else "b", 1.0))
            for i, j in round_robin_plan(texts)]


def decide(texts, script, cfg=PairConfig(), checks=None, strategy="round_robin"):
    """Rank ``texts`` with a judge that answers ``script[(a, b)]`` (a winner or a Verdict), then decide the pair."""
    def answer(c):
        v = script.get((c.a, c.b))
        return v if v is not None else flip(script[(c.b, c.a)])

    (ranking,) = rank_candidates(FakeJudge(default=answer), [RankingTask("q", texts)], RUBRIC, strategy)
    return decide_pair(texts, ranking, cfg, RUBRIC, checks)


def flip(v):
    return v if isinstance(v, Verdict) or v in ("tie", "invalid") else {"a": "b", "b": "a"}[v]


def by_order(prefer, confidence=1.0):
    """A script where the text earlier in ``prefer`` wins every comparison."""
    return {(x, y): Verdict("a" if prefer.index(x) < prefer.index(y) else "b", confidence)
            for x in prefer for y in prefer if x != y}


def test_plan_skips_duplicate_texts():
    assert round_robin_plan(["x", "y", "x ", "z"]) == [(0, 1), (0, 3), (1, 3)]


def test_copeland_ranks_a_total_order_and_shares_scores_with_duplicates():
    texts = ["b", "a", "c", "a"]
    scores = copeland(texts, full_matches(texts, ["a", "b", "c"]))
    assert scores == [0, 2, -2, 2]
    assert best_and_worst(texts, scores) == (1, 2)


def test_kept_pair_is_best_vs_worst():
    texts = ["mid", "best", "worst"]
    d = decide(texts, by_order(["best", "mid", "worst"]))
    assert d.kept and (d.chosen, d.rejected) == (1, 2) and d.calls == 3 and d.scores == (0, 2, -2)


def test_drop_reasons():
    assert decide(["x", "x"], {}).drop_reason == "identical_candidates"
    assert decide(["x", "y"], {("x", "y"): "tie"}).drop_reason == "no_contrast"
    assert decide(["x", "y"], {("x", "y"): Verdict.invalid("j", "garbage")}).drop_reason == "all_invalid"
    # chosen fails a hard check: a best-of-bad pair is not training data
    checks = [{"sql_executes": False}, {"sql_executes": False}]
    assert decide(["x", "yy"], {("x", "yy"): "a"}, checks=checks).drop_reason == "chosen_fails_hard_checks"
    assert decide(["x", "yy"], {("x", "yy"): "a"}, checks=[{"sql_executes": True}, {"sql_executes": False}]).kept
    # length skew
    d = decide(["x", "y" * 50], {("x", "y" * 50): "a"}, PairConfig(max_length_ratio=3))
    assert d.drop_reason == "length_skew"
    d = decide(["x", "yy"], {("x", "yy"): Verdict("a", 0.2)}, PairConfig(min_confidence=0.5))
    assert d.drop_reason == "low_confidence" and d.confidence == 0.2


def test_cycle_without_direct_win_is_a_conflict_or_no_contrast():
    # rock-paper-scissors: a cycle leaves equal scores, so there is no contrast to train on
    cyc = {("r", "p"): "b", ("r", "s"): "a", ("p", "s"): "b"}
    assert decide(["r", "p", "s"], cyc).drop_reason == "no_contrast"
    # best beats others overall but lost the direct comparison with the worst: conflict
    ms = {("a", "b"): "a", ("a", "c"): "a", ("a", "d"): "b", ("b", "c"): "a", ("b", "d"): "a", ("c", "d"): "a"}
    d = decide(["a", "b", "c", "d"], ms)
    assert (d.chosen, d.rejected) == (0, 3) and d.drop_reason == "conflict"


def test_cheaper_ranking_needs_no_direct_match_but_must_be_decisive():
    # knockout over 4: 0 beat 1, 2 beat 3 (first round), 0 beat 2 (final); losers 1 vs 3: 3 lost -> rejected 3
    script = {("a", "b"): Verdict("a", 0.9), ("c", "d"): Verdict("a", 0.8), ("a", "c"): Verdict("a", 0.7),
              ("b", "d"): Verdict("a", 0.6)}
    d = decide(["a", "b", "c", "d"], script, strategy="knockout")
    assert d.kept and (d.chosen, d.rejected) == (0, 3) and d.confidence == 0.6 and d.calls == 4
    # the same verdicts ranked round-robin would need the direct a-vs-d match the knockout never played
    undecided = {**script, ("c", "d"): "tie"}  # a tie advances by index: the brackets did not decide
    assert decide(["a", "b", "c", "d"], undecided, strategy="knockout").drop_reason == "undecided_ranking"
