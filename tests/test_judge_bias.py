"""Judge bias figures with judges of known bias (the length stubs, an always-"A" judge, both-orders judges), on the
SQL sample's anchor set and on an iteration's rankings; and the length-controlled win rate beside the raw one."""

from pathlib import Path

import pytest

from rlaif.anchors.gate import SWAPPED_SUFFIX, kappa_gate, kappa_table
from rlaif.anchors.importers import import_anchor_file
from rlaif.evaluation import length_controlled_win_rate
from rlaif.judges import Comparison, Verdict, make_judge
from rlaif.judges.bias import OrderedVerdicts, bias_figures, recorded_orders
from rlaif.judges.combinators import DebiasedJudge
from rlaif.judges.fake import FakeJudge
from rlaif.judges.order_average import OrderAveragedJudge
from rlaif.judges.ranking import RankingTask, rank_candidates
from rlaif.judges.simple import LengthJudge
from rlaif.loop import records
from rlaif.loop.stages import Candidates, judged_win_rate
from rlaif.policy import Sample
from rlaif.rubric import DEFAULT_RUBRIC
from store import Store

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "harbor_sql"


@pytest.fixture
def sample_set():
    with Store(":memory:") as store:
        yield store, import_anchor_file(store, SAMPLE / "anchors.jsonl", name="harbor-sql").anchor_set_id


def gate(store, set_id, judge, **kw):
    return kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, annotators="oracle", n_resamples=50,
                      report_holdout=False, swap_orders=True, **kw)


# ---- on the anchor set ----------------------------------------------------------------------------------------------


def test_a_length_biased_judge_always_picks_the_longer_answer_whatever_the_order(sample_set):
    """The 74 tuning items of the sample differ in length, so every verdict of the verbose judge is decisive."""
    store, set_id = sample_set
    bias = gate(store, set_id, make_judge("biased")).bias
    assert bias == {"n_pairs": 74, "n_verdicts": 148, "n_both_orders": 74, "flip_rate": 0.0, "n_decisive": 148,
                    "first_shown_share": 0.5, "n_length_differs": 148, "longer_share": 1.0, "invalid_rate": 0.0,
                    "label_shares": bias["label_shares"], "one_class": None, "warnings": []}
    stub = gate(store, set_id, make_judge("stub")).bias  # the stub prefers the shorter answer
    assert (stub["flip_rate"], stub["first_shown_share"], stub["longer_share"]) == (0.0, 0.5, 0.0)


class AlwaysA(FakeJudge):
    """Answers "the first one" to every question: pure position bias."""

    def __init__(self):
        super().__init__("always-a", default="a")


def test_an_always_a_judge_flips_every_time_and_is_flagged_as_one_class(sample_set):
    store, set_id = sample_set
    judge = AlwaysA()
    result = gate(store, set_id, judge)
    bias = result.bias
    assert len(judge.history) == 148  # each of the 74 items asked once per order
    assert (bias["flip_rate"], bias["first_shown_share"], bias["longer_share"]) == (1.0, 1.0, 0.5)
    assert bias["one_class"] == "a" and bias["label_shares"] == {"a": 1.0, "b": 0.0, "tie": 0.0}
    assert bias["warnings"] == ["100% of 148 verdicts are the first-shown answer: a judge that (almost) always gives "
                                "one answer agrees with people only by chance (kappa ~ 0) and tells you nothing "
                                "about which answer is better"]
    # the figures are in the stored report, and the swapped verdicts are reused, not asked again
    report = store.anchors.kappa_reports(set_id)[0]["body"]
    assert report["bias"] == bias
    gate(store, set_id, judge)
    assert len(judge.history) == 148
    # the kappa table reads the swapped verdicts as the second order of the same judge, not as a judge of its own
    table = [r for r in kappa_table(store, set_id, annotators="oracle", n_resamples=50) if r["slice"] == "all"]
    assert not any(r["judge_id"].endswith(SWAPPED_SUFFIX) for r in table)
    row = next(r for r in table if r["judge_id"] == "always-a")
    assert (row["flip_rate"], row["first_shown_share"], row["one_class"]) == (1.0, 1.0, "a")


def test_without_swapping_only_the_one_order_figures_are_measured(sample_set):
    store, set_id = sample_set
    judge = AlwaysA()
    bias = kappa_gate(store, judge, DEFAULT_RUBRIC, set_id, annotators="oracle", n_resamples=50,
                      report_holdout=False).bias
    assert len(judge.history) == 74 and bias["flip_rate"] is None and bias["n_both_orders"] == 0
    assert bias["first_shown_share"] == 1.0 and bias["one_class"] == "a"


def test_a_debiased_judge_reports_its_inner_flips_without_a_second_pass(sample_set):
    """With debias on, each verdict already holds both orders: no swapped pass is asked, and the flip rate is the
    inner judge's (an always-A judge disagrees with itself on every pair)."""
    store, set_id = sample_set
    inner = AlwaysA()
    bias = gate(store, set_id, DebiasedJudge(inner)).bias
    assert len(inner.history) == 148  # both orders once, inside the debiased judge; nothing more
    assert bias["flip_rate"] == 1.0 and bias["n_both_orders"] == 74 and bias["first_shown_share"] == 1.0


def test_invalid_verdicts_count_in_the_invalid_rate_and_not_in_the_flips(sample_set):
    store, set_id = sample_set
    judge = FakeJudge("flaky", default="a").enqueue(*[Verdict.invalid("flaky", "timeout")] * 37)
    bias = gate(store, set_id, judge).bias
    assert bias["invalid_rate"] == 0.25 and bias["n_verdicts"] == 148 and bias["n_both_orders"] == 37


# ---- the figures and the orders a verdict records ---------------------------------------------------------------


def test_figures_by_hand():
    pairs = [OrderedVerdicts("long answer", "short", ab="a", ba="b"),  # consistent, for the longer
             OrderedVerdicts("x", "yy", ab="a", ba="a"),  # a flip: first shown both times
             OrderedVerdicts("same", "same", ab="tie", ba="invalid"),
             OrderedVerdicts("p", "qq", ab="b")]  # one order only
    f = bias_figures(pairs)
    assert (f.n_pairs, f.n_verdicts, f.n_both_orders, f.flip_rate) == (4, 7, 2, 0.5)
    assert (f.n_decisive, f.first_shown_share) == (5, 0.6)
    assert (f.n_length_differs, f.longer_share) == (5, 0.8)  # only ("x", "yy") in order AB went to the shorter
    assert f.invalid_rate == round(1 / 7, 6) and f.one_class is None and f.warnings == ()
    assert bias_figures([OrderedVerdicts("a", "b", "tie")] * 9).one_class is None  # too few to say
    assert bias_figures([OrderedVerdicts("a", "b", "tie")] * 10).one_class == "tie"


def test_both_orders_are_read_back_from_the_debiased_and_averaged_verdicts():
    """The real combinators' verdicts, not hand-written strings: if their wording changes, this fails."""
    c = Comparison("q", "first", "second")
    flip = DebiasedJudge(FakeJudge(default="a")).compare([c], DEFAULT_RUBRIC)[0]
    assert flip.winner == "tie" and recorded_orders(flip.winner, flip.rationale) == ("a", "a")
    agree = DebiasedJudge(FakeJudge(default=lambda x: "a" if x.a == "first" else "b")).compare([c], DEFAULT_RUBRIC)[0]
    assert recorded_orders(agree.winner, agree.rationale) == ("a", "b")

    def probabilities(x):  # p(first shown) 0.7 in order AB, 0.6 in order BA: position bias, "first" wins on average
        p = 0.7 if x.a == "first" else 0.6
        return Verdict("a", p, "p", {"label_probability": {"a": p, "b": 1 - p}})

    averaged = OrderAveragedJudge(FakeJudge(default=probabilities)).compare([c], DEFAULT_RUBRIC)[0]
    assert averaged.winner == "a" and recorded_orders(averaged.winner, averaged.rationale) == ("a", "a")
    assert recorded_orders("a", "x", {"orders": {"ab": "a", "ba": "tie"}}) == ("a", "tie")
    assert recorded_orders("invalid", "ab: timeout") is None and recorded_orders("a", "plain rationale") is None


def test_an_iterations_figures_come_from_its_rankings():
    texts = [["a", "bbb", "cc"], ["dddd", "e"]]
    candidates = Candidates([[Sample(p, k, t, 1.0, 0, 3) for k, t in enumerate(g)] for p, g in enumerate(texts)], None)
    tasks = [RankingTask("q", g) for g in texts]
    rankings = rank_candidates(LengthJudge("longer"), tasks, DEFAULT_RUBRIC, "round_robin")
    bias = records.judge_bias(candidates, rankings)
    assert bias["n_pairs"] == 4 and bias["longer_share"] == 1.0 and bias["flip_rate"] is None
    assert bias["first_shown_share"] == 0.5  # (a, bbb) b, (a, cc) b, (bbb, cc) a, (dddd, e) a
    debiased = rank_candidates(DebiasedJudge(LengthJudge("longer")), tasks, DEFAULT_RUBRIC, "round_robin")
    assert records.judge_bias(candidates, debiased)["flip_rate"] == 0.0


# ---- length-controlled win rate -------------------------------------------------------------------------------------


def test_length_controlled_win_rate_removes_a_pure_length_preference():
    """Policy outputs of equal quality, longer than the baseline's in most prompts, equal in some (the judge says tie
    there), shorter in a few; a judge that always prefers the longer answer gives a high raw win rate, and the
    length-controlled one is about 0.5: at equal length this judge prefers neither."""
    import numpy as np

    rng = np.random.default_rng(0)
    base = [" ".join(["word"] * int(n)) for n in rng.integers(5, 40, 40)]
    grow = [12] * 24 + [0] * 12 + [-8] * 4  # extra words per prompt
    policy = [" ".join(["word"] * max(1, len(b.split()) + g)) for b, g in zip(base, grow)]
    comps = [Comparison("q", p, b) for p, b in zip(policy, base)]
    winners = [v.winner for v in LengthJudge("longer").compare(comps, DEFAULT_RUBRIC)]
    wr = judged_win_rate(winners, comps, seed=0)
    assert wr["win_rate"] == pytest.approx(0.75) and wr["n"] == 40
    assert wr["lc_win_rate"] == pytest.approx(0.5, abs=0.06) and wr["length_coef"] > 5
    # a judge that prefers the policy whatever the length keeps its win rate when length is controlled
    flat = length_controlled_win_rate(["b" if k % 4 == 0 else "a" for k in range(40)], [len(c.a) for c in comps],
                                      [len(c.b) for c in comps])
    assert flat["lc_win_rate"] == pytest.approx(0.75, abs=0.06)
    assert length_controlled_win_rate(["a", "a"], [3, 1], [1, 3])["lc_win_rate"] is None  # one outcome: no fit
