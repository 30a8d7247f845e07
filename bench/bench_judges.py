"""Judge throughput and ranking cost, measured, not assumed.

1. Throughput against the loopback Anthropic/OpenAI server (tests/judge_server.py, run in a child process as a
   real server would be) with a fixed 50 ms latency: the seed-001 recipe's sequential loop (one SDK call after
   another) beside our judge at concurrency 16, in the same run. Targets: >= 0.8 x the ideal 16 / 50 ms, and >= 10x
   the sequential loop.
2. Ranking N=4 candidates: judge calls per prompt by strategy, and the knockout's agreement with full round-robin on
   (chosen, rejected) under a noisy simulated judge (true quality + Gaussian noise, then 10% of verdicts flipped)
   over 500 prompts. Target: at most 2/3 of the calls with at least 95% agreement.

    .venv/bin/python bench/bench_judges.py [--prompts 500] [--requests 480]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import multiprocessing as mp
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlaif.judges.base import Comparison, Judge, Verdict  # noqa: E402
from rlaif.judges.llm import AnthropicJudge, LLMJudgeSettings, OpenAIJudge  # noqa: E402
from rlaif.judges.ranking import RankingTask, rank_candidates  # noqa: E402
from rlaif.rubric import DEFAULT_RUBRIC  # noqa: E402

LATENCY_S = 0.050
CONCURRENCY = 16
FAKE_KEY = "sk-bench-NOTAREALKEY000000"


# ---------------------------------------------------------------------------------------------------------------------
# 1. throughput


def _serve(latency_s: float, conn, stop) -> None:
    from tests.judge_server import JudgeServer, verdict_json

    with JudgeServer(lambda request: verdict_json("a", 0.9), latency_s=latency_s) as server:
        conn.send(server.url)
        stop.wait()


def sequential_recipe(base_url: str, n: int) -> float:
    """The seed-001 recipe: for each pair, one ``messages.create`` call, waiting for each before the next."""
    import anthropic

    client = anthropic.Anthropic(base_url=base_url, api_key=FAKE_KEY, max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "warm"}])
    started = time.perf_counter()
    for i in range(n):
        critique = client.messages.create(
            model="claude-haiku-4-5", max_tokens=100,
            messages=[{"role": "user", "content": f"Compare responses:\nA: answer {i}\nB: other {i}\n"
                                                  "Which is better? (A/B)"}])
        _ = "A" if "A" in critique.content[0].text else "B"
    return n / (time.perf_counter() - started)


def concurrent_judge(judge_cls, base_url: str, n: int) -> float:
    judge = judge_cls(LLMJudgeSettings(model="claude-haiku-4-5" if judge_cls is AnthropicJudge else "gpt-4o-mini",
                                       base_url=base_url, concurrency=CONCURRENCY, timeout_s=10))
    comparisons = [Comparison(f"question {i}", f"answer {i}", f"other {i}") for i in range(n)]
    judge.compare(comparisons[:CONCURRENCY], DEFAULT_RUBRIC)  # warm the connection pool
    started = time.perf_counter()
    verdicts = judge.compare(comparisons, DEFAULT_RUBRIC)
    elapsed = time.perf_counter() - started
    assert all(v.winner == "a" for v in verdicts), "the bench server always answers a"
    return n / elapsed


def bench_throughput(n_requests: int, n_sequential: int) -> bool:
    os.environ["ANTHROPIC_API_KEY"] = FAKE_KEY
    os.environ["OPENAI_API_KEY"] = FAKE_KEY
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(LATENCY_S, child, stop), daemon=True)
    proc.start()
    try:
        url = parent.recv()
        seq = sequential_recipe(url, n_sequential)
        results = {"anthropic": concurrent_judge(AnthropicJudge, url, n_requests),
                   "openai": concurrent_judge(OpenAIJudge, url + "/v1", n_requests)}
    finally:
        stop.set()
        proc.join(5)
    ideal = CONCURRENCY / LATENCY_S
    print(f"== judging throughput, loopback server in a child process, fixed latency {LATENCY_S * 1000:.0f} ms "
          f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"   sequential seed-001 loop ({n_sequential} calls):  {seq:7.1f} req/s")
    ok = True
    for provider, rps in results.items():
        ratio, speedup = rps / ideal, rps / seq
        passed = ratio >= 0.8 and speedup >= 10
        ok &= passed
        print(f"   {provider:<9} judge, concurrency {CONCURRENCY} ({n_requests} calls): {rps:7.1f} req/s = "
              f"{ratio:.2f} x ideal {ideal:.0f} req/s, {speedup:.1f} x sequential  "
              f"[{'PASS' if passed else 'MISS'}: target >= 0.80 x ideal and >= 10 x]")
    return ok


# ---------------------------------------------------------------------------------------------------------------------
# 2. ranking strategies under a noisy simulated judge


class NoisyQualityJudge(Judge):
    """Verdict = compare true quality + Gaussian noise, then flip with probability ``flip``.

    ``consistent=True`` draws each unordered pair's verdict once (seeded by the pair), as a temperature-0 or cached
    judge answers the same question the same way; ``False`` draws fresh noise on every call.
    """

    def __init__(self, quality: dict[str, float], sigma: float, flip: float, consistent: bool, seed: int = 0,
                 flip_mode: str = "invert"):
        self.quality, self.sigma, self.flip, self.consistent = quality, sigma, flip, consistent
        self.flip_mode = flip_mode  # invert: a flipped verdict is wrong; coin: it is a coin toss
        self.judge_id = f"noisy(sigma={sigma},flip={flip},{'consistent' if consistent else 'fresh'})"
        self._rng = random.Random(seed)
        self.calls = 0

    def _a_wins(self, a: str, b: str) -> bool:
        if self.consistent:
            lo, hi = sorted((a, b))
            rng = random.Random(hashlib.sha256(f"{lo}|{hi}".encode()).digest())
            lo_wins = self.quality[lo] + rng.gauss(0, self.sigma) > self.quality[hi] + rng.gauss(0, self.sigma)
            return self._flipped(lo_wins, rng) == (a == lo)
        wins = self.quality[a] + self._rng.gauss(0, self.sigma) > self.quality[b] + self._rng.gauss(0, self.sigma)
        return self._flipped(wins, self._rng)

    def _flipped(self, wins: bool, rng: random.Random) -> bool:
        if rng.random() >= self.flip:
            return wins
        return (not wins) if self.flip_mode == "invert" else rng.random() < 0.5

    def compare(self, comparisons, rubric):
        self.calls += len(comparisons)
        return [Verdict("a" if self._a_wins(c.a, c.b) else "b", 1.0, "simulated", judge_id=self.judge_id)
                for c in comparisons]


def _tasks(n_prompts: int, n: int, seed: int) -> tuple[list[RankingTask], dict[str, float]]:
    rng = random.Random(seed)
    quality: dict[str, float] = {}
    tasks = []
    for k in range(n_prompts):
        texts = [f"p{k}-c{i}" for i in range(n)]
        for t in texts:
            quality[t] = rng.random()
        tasks.append(RankingTask(f"prompt {k}", texts, prompt_id=f"p{k}"))
    return tasks, quality


def optimal_strict_agreement(n_calls: int, sigma: float, flip: float, flip_mode: str = "invert",
                             samples: int = 100_000, seed: int = 1) -> float:
    """The best strict agreement ANY adaptive strategy asking ``n_calls`` of the 6 pairs of N=4 can reach.

    Exhaustive search over decision trees (which pair to ask next given the answers so far) against the empirical
    distribution of consistent tournaments, then the most likely round-robin (chosen, rejected) at each leaf.
    """
    from rlaif.judges.ranking import Match, best_and_worst, copeland

    pairs = list(itertools.combinations(range(4), 2))
    rng = random.Random(seed)
    counts: Counter = Counter()
    for _ in range(samples):
        q = [rng.random() for _ in range(4)]
        outcome = []
        for i, j in pairs:
            i_wins = q[i] + rng.gauss(0, sigma) > q[j] + rng.gauss(0, sigma)
            if rng.random() < flip:
                i_wins = (not i_wins) if flip_mode == "invert" else rng.random() < 0.5
            outcome.append(i_wins)
        counts[tuple(outcome)] += 1
    texts = ["0", "1", "2", "3"]

    def rr(outcome):
        matches = [Match(i, j, Verdict("a" if w else "b")) for (i, j), w in zip(pairs, outcome)]
        return best_and_worst(texts, copeland(texts, matches))

    answer = {t: rr(t) for t in counts}

    @functools.lru_cache(maxsize=None)
    def value(known: tuple, left: int) -> float:
        consistent = [t for t in counts if all(t[p] == w for p, w in known)]
        by_answer: Counter = Counter()
        for t in consistent:
            by_answer[answer[t]] += counts[t]
        best = max(by_answer.values(), default=0)
        if left == 0:
            return best
        asked = {p for p, _ in known}
        for p in range(6):
            if p not in asked:
                best = max(best, sum(value(tuple(sorted(known + ((p, w),))), left - 1) for w in (True, False)))
        return best

    return value((), n_calls) / samples


def bench_ranking(n_prompts: int, sigma: float, flip: float, flip_mode: str) -> bool:
    flipped = "inverted" if flip_mode == "invert" else "replaced by a coin toss"
    print(f"\n== ranking N=4 candidates over {n_prompts} simulated prompts: quality ~ U(0,1), judge noise "
          f"sigma={sigma}, {flip:.0%} of verdicts {flipped}")
    tasks, quality = _tasks(n_prompts, 4, seed=11)
    ok = True
    for consistent in (True, False):
        label = "consistent judge (each pair's verdict fixed, as at temperature 0 / with the cache)" if consistent \
            else "fresh-noise judge (every call re-drawn)"
        print(f" - {label}")

        def judge(seed):
            return NoisyQualityJudge(quality, sigma, flip, consistent, seed=seed, flip_mode=flip_mode)

        judge_rr, judge_ko = judge(5), judge(6)
        rr = rank_candidates(judge_rr, tasks, DEFAULT_RUBRIC, "round_robin")
        ko = rank_candidates(judge_ko, tasks, DEFAULT_RUBRIC, "knockout")
        koc = rank_candidates(judge(6), tasks, DEFAULT_RUBRIC, "knockout", confirm=True)
        calls_rr = judge_rr.calls / n_prompts
        calls_ko = judge_ko.calls / n_prompts
        calls_koc = sum(r.calls for r in koc) / n_prompts

        def agreement(xs, ys):
            return sum((a.chosen, a.rejected) == (b.chosen, b.rejected) for a, b in zip(xs, ys)) / n_prompts

        strict = agreement(rr, ko)
        tie_aware = sum(a.scores[b.chosen] == max(a.scores) and a.scores[b.rejected] == min(a.scores)
                        for a, b in zip(rr, ko)) / n_prompts

        def truth(results):
            right = exact = 0
            for t, r in zip(tasks, results):
                q = [quality[x] for x in t.texts]
                right += q[r.chosen] > q[r.rejected]
                exact += (r.chosen, r.rejected) == (q.index(max(q)), q.index(min(q)))
            return right / n_prompts, exact / n_prompts

        print(f"   calls per prompt: round_robin {calls_rr:.2f}, knockout {calls_ko:.2f} "
              f"({calls_ko / calls_rr:.2f} x), knockout+confirm {calls_koc:.2f} ({calls_koc / calls_rr:.2f} x)")
        print(f"   knockout vs round-robin (chosen, rejected): strict agreement {strict:.1%} "
              f"(round-robin's index tie-break); within round-robin's Copeland-optimal sets {tie_aware:.1%}")
        if not consistent:
            rr_again = rank_candidates(judge(7), tasks, DEFAULT_RUBRIC, "round_robin")
            print(f"   for scale: round-robin re-run with fresh noise agrees with itself {agreement(rr, rr_again):.1%}")
        for name, res in (("round_robin", rr), ("knockout", ko)):
            right, exact = truth(res)
            print(f"   {name:<11} vs true quality: chosen truly better than rejected {right:.1%}; "
                  f"exactly (best, worst) {exact:.1%}")
        if consistent:
            bound = optimal_strict_agreement(4, sigma, flip, flip_mode)
            passed_calls = calls_ko <= calls_rr * 2 / 3 + 1e-9
            passed_strict = strict >= 0.95
            ok &= passed_calls and passed_strict
            print(f"   best strict agreement ANY 4-call strategy can reach under this judge (exhaustive search): "
                  f"{bound:.1%}")
            print(f"   [{'PASS' if passed_calls else 'MISS'}: calls <= 2/3 of round-robin] "
                  f"[{'PASS' if passed_strict else 'MISS'}: strict agreement >= 95%] "
                  f"[{'PASS' if tie_aware >= 0.95 else 'MISS'}: agreement with Copeland-optimal sets >= 95%]")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=480, help="calls in the concurrent measurement")
    ap.add_argument("--sequential", type=int, default=40, help="calls in the sequential measurement")
    ap.add_argument("--prompts", type=int, default=500, help="simulated prompts for the ranking comparison")
    ap.add_argument("--sigma", type=float, default=0.05, help="judge noise on quality ~ U(0, 1)")
    ap.add_argument("--flip", type=float, default=0.10, help="share of verdicts flipped")
    ap.add_argument("--flip-mode", choices=("invert", "coin"), default="invert",
                    help="a flipped verdict is inverted (always wrong) or a coin toss (wrong half the time)")
    ap.add_argument("--skip-throughput", action="store_true", help="only the ranking simulation")
    args = ap.parse_args(argv)
    ok = True if args.skip_throughput else bench_throughput(args.requests, args.sequential)
    ok &= bench_ranking(args.prompts, args.sigma, args.flip, args.flip_mode)
    print("\nall targets met" if ok else "\nsome targets missed (see MISS lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
