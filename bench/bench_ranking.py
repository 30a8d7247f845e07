"""Ranking N=4 candidates: does the cheaper knockout agree with full round-robin under a *realistic* noisy judge?

bench_judges.py flips 10% of verdicts independently of how far apart the two candidates are, and finds the knockout
at ~84% strict agreement with round-robin. Real judges do not err uniformly: they confuse close candidates and rarely
invert a clear gap. Here the judge is Bradley-Terry: it prefers candidate i over j with probability
sigmoid(scale * (q_i - q_j)), the scale calibrated so that the overall error rate (the judge prefers the truly worse
candidate) is 10%. Candidate qualities are drawn per prompt: i.i.d. N(0, 1), and a harder variant where each prompt
also draws its own spread (lognormal), so some prompts' candidates are near-indistinguishable.

Each (prompt, unordered pair) gets one verdict, fixed by a hash (a temperature-0 or cached judge): asking again, or
in the other order, gives the same answer, so round-robin and the knockout see the same tournament.

Measured through ``rlaif.judges.ranking.rank_candidates`` on simulated prompts: judge calls per prompt, and
strict agreement on (chosen, rejected) with round-robin (including its index tie-break among Copeland-equal
candidates). Beside it, from 200,000 simulated tournaments: the model's expected agreement, and the best agreement
ANY adaptive strategy asking at most k of the 6 pairs can reach (exhaustive search over decision trees).
Targets (issue 3): at most 2/3 of round-robin's calls, at least 95% strict agreement.

    .venv/bin/python bench/bench_ranking.py [--prompts 1000] [--error-rate 0.10] [--samples 200000]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlaif.judges.base import Judge, Verdict  # noqa: E402
from rlaif.judges.ranking import Match, RankingTask, best_and_worst, copeland, rank_candidates  # noqa: E402  # noqa: E402
from rlaif.rubric import DEFAULT_RUBRIC  # noqa: E402

N = 4
PAIRS = list(itertools.combinations(range(N), 2))  # round-robin's order: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)


# ---------------------------------------------------------------------------------------------------------------------
# the noise model


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    draw: Callable[[np.random.Generator, int], np.ndarray]  # (prompts, N) qualities
    gap_dependent: bool = True  # Bradley-Terry; False: a flat error rate whatever the gap (bench_judges' model)


def iid_normal(rng: np.random.Generator, prompts: int) -> np.ndarray:
    return rng.standard_normal((prompts, N))


def per_prompt_spread(rng: np.random.Generator, prompts: int) -> np.ndarray:
    return rng.lognormal(0.0, 0.75, size=(prompts, 1)) * rng.standard_normal((prompts, N))


SCENARIOS = (
    Scenario("bt-iid", "Bradley-Terry judge, qualities i.i.d. N(0,1) per prompt", iid_normal),
    Scenario("bt-spread", "Bradley-Terry judge, per-prompt spread lognormal(0, 0.75) x N(0,1)", per_prompt_spread),
    Scenario("flat", "flat error rate regardless of the gap (bench_judges' model, for contrast)", iid_normal, False),
)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))  # the logistic, without exp overflow


def p_lower_index_wins(scenario: Scenario, scale: float, q_lo, q_hi, error_rate: float):
    """Probability the judge prefers the pair's first candidate."""
    if scenario.gap_dependent:
        return sigmoid(scale * (np.asarray(q_lo) - np.asarray(q_hi)))
    return np.where(np.asarray(q_lo) > np.asarray(q_hi), 1.0 - error_rate, error_rate)


def calibrate(scenario: Scenario, error_rate: float, samples: int = 200_000, seed: int = 7) -> float:
    """The Bradley-Terry scale at which the judge prefers the truly worse candidate ``error_rate`` of the time."""
    if not scenario.gap_dependent:
        return float("nan")
    q = scenario.draw(np.random.default_rng(seed), samples // 2)
    gaps = np.abs(q[:, 0] - q[:, 1])
    lo, hi = 1e-3, 1e3
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        if sigmoid(-mid * gaps).mean() > error_rate:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


class PairwiseNoisyJudge(Judge):
    """A deterministic noisy judge: each unordered pair's verdict is drawn once, from a hash of the pair."""

    def __init__(self, quality: dict[str, float], scenario: Scenario, scale: float, error_rate: float, seed: int = 0):
        self.quality, self.scenario, self.scale, self.error_rate = quality, scenario, scale, error_rate
        self.seed = seed
        self.judge_id = f"noisy-{scenario.name}(scale={scale:.3f})"
        self.calls = 0

    def _uniform(self, lo: str, hi: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}|{lo}|{hi}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0 ** 64

    def prefers(self, a: str, b: str) -> bool:
        lo, hi = sorted((a, b))
        p = float(p_lower_index_wins(self.scenario, self.scale, self.quality[lo], self.quality[hi], self.error_rate))
        lo_wins = self._uniform(lo, hi) < p
        return lo_wins == (a == lo)

    def compare(self, comparisons, rubric):
        self.calls += len(comparisons)
        return [Verdict("a" if self.prefers(c.a, c.b) else "b", 1.0, "simulated", judge_id=self.judge_id)
                for c in comparisons]


# ---------------------------------------------------------------------------------------------------------------------
# 1. measured through rank_candidates


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def measure(scenario: Scenario, scale: float, error_rate: float, prompts: int, seed: int) -> dict:
    q = scenario.draw(np.random.default_rng(seed), prompts)
    quality, tasks = {}, []
    for k in range(prompts):
        texts = [f"p{k}-c{i}" for i in range(N)]
        quality.update(zip(texts, q[k].tolist()))
        tasks.append(RankingTask(f"prompt {k}", texts, prompt_id=f"p{k}"))
    results, calls = {}, {}
    for label, strategy, confirm in (("round_robin", "round_robin", False), ("knockout", "knockout", False),
                                     ("knockout+confirm", "knockout", True)):
        judge = PairwiseNoisyJudge(quality, scenario, scale, error_rate, seed=seed)
        results[label] = rank_candidates(judge, tasks, DEFAULT_RUBRIC, strategy, confirm=confirm)
        calls[label] = judge.calls / prompts
    probe = PairwiseNoisyJudge(quality, scenario, scale, error_rate, seed=seed)
    wrong = sum(probe.prefers(t.texts[i], t.texts[j]) != (quality[t.texts[i]] > quality[t.texts[j]])
                for t in tasks for i, j in PAIRS)
    rr, ko = results["round_robin"], results["knockout"]
    strict = sum((a.chosen, a.rejected) == (b.chosen, b.rejected) for a, b in zip(rr, ko))
    tie_aware = sum(a.scores[b.chosen] == max(a.scores) and a.scores[b.rejected] == min(a.scores)
                    for a, b in zip(rr, ko))

    def truth(res) -> float:
        return sum(quality[t.texts[r.chosen]] > quality[t.texts[r.rejected]] for t, r in zip(tasks, res)) / prompts

    return {"calls": calls, "strict": strict, "tie_aware": tie_aware, "prompts": prompts,
            "observed_error": wrong / (prompts * len(PAIRS)),
            "truth": {name: truth(res) for name, res in results.items()}}


# ---------------------------------------------------------------------------------------------------------------------
# 2. the model's expectation, and the best any k-call strategy can do


def tournament_distribution(scenario: Scenario, scale: float, error_rate: float, samples: int, seed: int) -> Counter:
    """Frequencies of the 64 possible N=4 tournaments (bit p set: the lower index of PAIRS[p] won)."""
    rng = np.random.default_rng(seed)
    q = scenario.draw(rng, samples)
    code = np.zeros(samples, dtype=np.int64)
    for p, (i, j) in enumerate(PAIRS):
        won = rng.random(samples) < p_lower_index_wins(scenario, scale, q[:, i], q[:, j], error_rate)
        code |= won.astype(np.int64) << p
    counts = np.bincount(code, minlength=2 ** len(PAIRS))
    return Counter({c: int(n) for c, n in enumerate(counts) if n})


def _outcome(code: int, p: int) -> bool:
    return bool(code >> p & 1)


def round_robin_answer(code: int) -> tuple[int, int]:
    texts = [str(i) for i in range(N)]
    matches = [Match(i, j, Verdict("a" if _outcome(code, p) else "b")) for p, (i, j) in enumerate(PAIRS)]
    return best_and_worst(texts, copeland(texts, matches))


def knockout_answer(code: int) -> tuple[int, int]:
    """ranking._knockout_plan for N=4 on a decided tournament: (0,1) (2,3); winners and losers play."""
    def beats(i: int, j: int) -> bool:
        return _outcome(code, PAIRS.index((i, j))) if i < j else not _outcome(code, PAIRS.index((j, i)))

    w1, l1 = (0, 1) if beats(0, 1) else (1, 0)
    w2, l2 = (2, 3) if beats(2, 3) else (3, 2)
    return (w1 if beats(w1, w2) else w2), (l2 if beats(l1, l2) else l1)


def best_possible(counts: Counter, calls: int) -> float:
    """Exhaustive search: the best expected strict agreement of any adaptive strategy asking ``calls`` pairs."""
    total = sum(counts.values())
    answer = {t: round_robin_answer(t) for t in counts}

    @functools.lru_cache(maxsize=None)
    def value(known: tuple, left: int) -> int:
        mass: Counter = Counter()
        for t, n in counts.items():
            if all(_outcome(t, p) == w for p, w in known):
                mass[answer[t]] += n
        best = max(mass.values(), default=0)
        if left and mass:
            asked = {p for p, _ in known}
            for p in range(len(PAIRS)):
                if p not in asked:
                    best = max(best, sum(value(tuple(sorted(known + ((p, w),))), left - 1) for w in (True, False)))
        return best

    return value((), calls) / total


def budget_frontier(counts: Counter, prices=(0.01, 0.02, 0.1, 0.15, 0.3)) -> list[tuple[float, float]]:
    """(average calls, agreement) of the best *variable-length* strategies: each may stop after any answer.

    For each price per call, dynamic programming over what has been asked maximises agreement - price x calls; the
    points found lie on the upper convex frontier, so no strategy (randomised mixtures included) averaging fewer
    calls than a point's can beat the previous point's agreement by more than the straight line between them.
    """
    total = sum(counts.values())
    answer = {t: round_robin_answer(t) for t in counts}
    points = set()
    for price in prices:
        @functools.lru_cache(maxsize=None)
        def value(known: tuple) -> tuple[float, float]:  # (agreeing mass, call mass) of the best continuation
            mass: Counter = Counter()
            for t, n in counts.items():
                if all(_outcome(t, p) == w for p, w in known):
                    mass[answer[t]] += n
            best = (float(max(mass.values(), default=0)), 0.0)
            reach = sum(mass.values())
            asked = {p for p, _ in known}
            for p in range(len(PAIRS)):
                if p in asked or not reach:
                    continue
                agree, calls = 0.0, float(reach)
                for w in (True, False):
                    a, c = value(tuple(sorted(known + ((p, w),))))
                    agree, calls = agree + a, calls + c
                if agree - price * calls > best[0] - price * best[1] + 1e-9:
                    best = (agree, calls)
            return best

        agree, calls = value(())
        points.add((round(calls / total, 3), round(agree / total, 4)))
    return sorted(points)


def model_summary(counts: Counter) -> dict:
    total = sum(counts.values())
    ko = sum(n for t, n in counts.items() if knockout_answer(t) == round_robin_answer(t)) / total
    wins = {t: tuple(sorted((sum(1 for p, (i, j) in enumerate(PAIRS) if (x == i) == _outcome(t, p) and x in (i, j))
                             for x in range(N)), reverse=True)) for t in counts}
    cyclic = sum(n for t, n in counts.items() if wins[t] != (3, 2, 1, 0)) / total
    return {"knockout": ko, "cyclic": cyclic, "best": {k: best_possible(counts, k) for k in (3, 4, 5)}}


# ---------------------------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def run_scenario(scenario: Scenario, args) -> bool:
    scale = calibrate(scenario, args.error_rate)
    print(f"\n== {scenario.name}: {scenario.description}")
    if scenario.gap_dependent:
        print(f"   judge: P(prefers i over j) = sigmoid({scale:.3f} * (q_i - q_j)), calibrated to "
              f"{args.error_rate:.0%} errors overall")
    else:
        print(f"   judge: {args.error_rate:.0%} of verdicts inverted, whatever the quality gap")
    m = measure(scenario, scale, args.error_rate, args.prompts, args.seed)
    calls = m["calls"]
    lo, hi = wilson(m["strict"], m["prompts"])
    strict = m["strict"] / m["prompts"]
    print(f"   measured over {m['prompts']} prompts via rank_candidates (observed judge error "
          f"{m['observed_error']:.1%}):")
    print(f"     calls/prompt: round_robin {calls['round_robin']:.2f}, knockout {calls['knockout']:.2f} "
          f"({calls['knockout'] / calls['round_robin']:.3f} x), knockout+confirm {calls['knockout+confirm']:.2f} "
          f"({calls['knockout+confirm'] / calls['round_robin']:.3f} x)")
    print(f"     knockout vs round_robin (chosen, rejected): strict {strict:.1%} (95% CI {lo:.1%}-{hi:.1%}); "
          f"within round-robin's Copeland-tied sets {m['tie_aware'] / m['prompts']:.1%}")
    print("     chosen truly better than rejected: " +
          ", ".join(f"{name} {share:.1%}" for name, share in m["truth"].items()))
    s = model_summary(tournament_distribution(scenario, scale, args.error_rate, args.samples, args.seed + 1))
    print(f"   model expectation over {args.samples:,} tournaments: {s['cyclic']:.1%} contain a cycle "
          f"(only there can strategies disagree); knockout agrees {s['knockout']:.2%}")
    print("     best ANY adaptive strategy can reach with k calls: " +
          ", ".join(f"k={k}: {v:.2%}" for k, v in s["best"].items()) +
          (" -> the knockout IS optimal at 4 calls" if s["best"][4] - s["knockout"] < 5e-4 else
           f" -> a better 4-call strategy exists (+{s['best'][4] - s['knockout']:.2%})"))
    if scenario.gap_dependent:
        frontier = budget_frontier(tournament_distribution(scenario, scale, args.error_rate, args.samples,
                                                           args.seed + 1))
        print("     best variable-length strategies (stop when the answer is settled), avg calls -> agreement: " +
              ", ".join(f"{c:.2f} -> {a:.2%}" for c, a in frontier if c > 0))
    calls_ok = calls["knockout"] <= calls["round_robin"] * 2 / 3 + 1e-9
    print(f"   [{verdict(calls_ok)}: knockout calls <= 2/3 of round-robin] "
          f"[{verdict(strict >= 0.95)}: measured strict agreement >= 95%] "
          f"[{verdict(s['knockout'] >= 0.95)}: expected strict agreement >= 95%] "
          f"(the loop runs the knockout without the confirming match: 2/3 of round-robin's calls)")
    # the verdict on the target uses the expectation: 1,000 prompts measure agreement only to about +-1.5 points
    return calls_ok and s["knockout"] >= 0.95


def sweep(args) -> None:
    scenario = SCENARIOS[0]
    print(f"\n== {scenario.name}: expected strict agreement by the judge's overall error rate "
          f"({args.samples:,} tournaments each)")
    print("   error  cyclic  knockout  best-4-call  best-5-call")
    for rate in (0.05, 0.075, 0.09, 0.10, 0.125, 0.15, 0.20):
        counts = tournament_distribution(scenario, calibrate(scenario, rate), rate, args.samples, args.seed + 2)
        s = model_summary(counts)
        print(f"   {rate:5.1%}  {s['cyclic']:6.1%}  {s['knockout']:8.2%}  {s['best'][4]:11.2%}  "
              f"{s['best'][5]:11.2%}  [{verdict(s['knockout'] >= 0.95)}]")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1000, help="simulated prompts ranked through rank_candidates")
    ap.add_argument("--error-rate", type=float, default=0.10, help="the judge's overall error rate")
    ap.add_argument("--samples", type=int, default=200_000, help="simulated tournaments for the model expectation")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--no-sweep", action="store_true", help="skip the error-rate sweep")
    args = ap.parse_args(argv)
    ok = all([run_scenario(s, args) for s in SCENARIOS[:2]])
    run_scenario(SCENARIOS[2], args)
    if not args.no_sweep:
        sweep(args)
    print("\nrealistic-judge targets met in expectation" if ok else
          "\nunder the realistic judge the knockout misses 95% in expectation (see the bound: no 4-call strategy "
          "does better); every disagreement is a tie-break among Copeland-equal candidates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
