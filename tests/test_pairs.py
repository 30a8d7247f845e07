from rlaif.config import PairConfig
from rlaif.judges.base import Verdict
from rlaif.pairs import decide_pair
from rlaif.ranking import Match, best_and_worst, copeland, round_robin_plan
from rlaif.rubric import rubric_from_dict

RUBRIC = rubric_from_dict({"name": "r", "criteria": [{"name": "ok", "hard": True, "verifier": "sql_executes"}]})


def full_matches(texts, prefer):
    """Round-robin verdicts from a total order: lower rank in `prefer` wins."""
    return [Match(i, j, Verdict("a" if prefer.index(texts[i]) < prefer.index(texts[j]) else "b", 1.0))
            for i, j in round_robin_plan(texts)]


def test_plan_skips_duplicate_texts():
    assert round_robin_plan(["x", "y", "x ", "z"]) == [(0, 1), (0, 3), (1, 3)]


def test_copeland_ranks_a_total_order_and_shares_scores_with_duplicates():
    texts = ["b", "a", "c", "a"]
    scores = copeland(texts, full_matches(texts, ["a", "b", "c"]))
    assert scores == [0, 2, -2, 2]
    assert best_and_worst(texts, scores) == (1, 2)


def test_kept_pair_is_best_vs_worst():
    texts = ["mid", "best", "worst"]
    d = decide_pair(texts, full_matches(texts, ["best", "mid", "worst"]), PairConfig(), RUBRIC)
    assert d.kept and (d.chosen, d.rejected) == (1, 2) and d.calls == 3


def test_drop_reasons():
    cfg = PairConfig()
    assert decide_pair(["x", "x"], [], cfg, RUBRIC).drop_reason == "identical_candidates"
    ties = [Match(0, 1, Verdict("tie", 0.5))]
    assert decide_pair(["x", "y"], ties, cfg, RUBRIC).drop_reason == "no_contrast"
    invalid = [Match(0, 1, Verdict.invalid("j", "garbage"))]
    assert decide_pair(["x", "y"], invalid, cfg, RUBRIC).drop_reason == "all_invalid"
    # chosen fails a hard check: a best-of-bad pair is not training data
    checks = [{"sql_executes": False}, {"sql_executes": False}]
    d = decide_pair(["x", "yy"], [Match(0, 1, Verdict("a", 1.0))], cfg, RUBRIC, checks)
    assert d.drop_reason == "chosen_fails_hard_checks"
    # length skew
    d = decide_pair(["x", "y" * 50], [Match(0, 1, Verdict("a", 1.0))], PairConfig(max_length_ratio=3), RUBRIC)
    assert d.drop_reason == "length_skew"
    d = decide_pair(["x", "yy"], [Match(0, 1, Verdict("a", 0.2))], PairConfig(min_confidence=0.5), RUBRIC)
    assert d.drop_reason == "low_confidence"


def test_cycle_without_direct_win_is_a_conflict_or_no_contrast():
    # rock-paper-scissors plus a fourth that loses to all but beats... a cycle leaves equal scores: no contrast
    texts = ["r", "p", "s"]
    cyc = [Match(0, 1, Verdict("b", 1)), Match(0, 2, Verdict("a", 1)), Match(1, 2, Verdict("b", 1))]
    assert decide_pair(texts, cyc, PairConfig(), RUBRIC).drop_reason == "no_contrast"
    # best beats others overall but lost the direct comparison with the worst: conflict
    texts = ["a", "b", "c", "d"]
    ms = [Match(0, 1, Verdict("a", 1)), Match(0, 2, Verdict("a", 1)), Match(0, 3, Verdict("b", 1)),
          Match(1, 2, Verdict("a", 1)), Match(1, 3, Verdict("a", 1)), Match(2, 3, Verdict("a", 1))]
    d = decide_pair(texts, ms, PairConfig(), RUBRIC)
    assert (d.chosen, d.rejected) == (0, 3) and d.drop_reason == "conflict"


def test_cheaper_ranking_needs_no_direct_match_but_must_be_decisive():
    # knockout over 4: 0 beat 1, 2 beat 3 (first round), 0 beat 2 (final); losers 1 vs 3: 3 lost -> rejected 3
    ms = [Match(0, 1, Verdict("a", 0.9)), Match(2, 3, Verdict("a", 0.8)), Match(0, 2, Verdict("a", 0.7)),
          Match(1, 3, Verdict("a", 0.6))]
    d = decide_pair(["a", "b", "c", "d"], ms, PairConfig(), RUBRIC, ranked=(0, 3))
    assert d.kept and (d.chosen, d.rejected) == (0, 3) and d.confidence == 0.6
    assert decide_pair(["a", "b", "c", "d"], ms, PairConfig(), RUBRIC, ranked=(None, None)).drop_reason == \
        "undecided_ranking"
