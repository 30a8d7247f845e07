"""Ranking N candidates per prompt from pairwise verdicts: full round-robin, or a cheaper knockout for the best and
the worst. The ranking is computed here once; pair building reads its result (chosen, rejected, scores, decisive).

Round-robin asks the judge about every distinct pair once and ranks by Copeland score (wins minus losses; ties and
invalid verdicts count zero): N(N-1)/2 calls per prompt. Identical candidate texts are compared once, not against
themselves: sampling at low temperature often repeats an answer, and a judge call on two copies buys nothing. The
knockout asks N-1 calls for the champion plus a knockout *among the candidates that lost without ever winning* for
the worst (a candidate that won a match is not the worst of a consistent tournament): 4 calls instead of 6 for N=4,
at most 6 instead of 10 for N=5, 10 instead of 28 for N=8. For N=4 with decisive, consistent verdicts its choice is always one of round-robin's
Copeland-best and Copeland-worst candidates (the champion has >= 2 of 3 wins, the double loser <= 1); it can differ
from round-robin's *index tie-break* when the tournament has a cycle, which the bench measures.

Every strategy batches all prompts' comparisons of a round into one ``judge.compare`` call (in chunks), so API judges
keep their concurrency, and returns the matches it played so they can be stored like round-robin's.

    results = rank_candidates(judge, [RankingTask(prompt, texts, reference)], rubric, strategy="knockout")
    results[0].chosen, results[0].rejected, results[0].calls
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Generator, Sequence

from rlaif.judges.base import Comparison, Judge, Verdict
from rlaif.rubric import Rubric

STRATEGIES = ("round_robin", "knockout")


@dataclass(frozen=True)
class Match:
    i: int
    j: int
    verdict: Verdict


def unique_indices(texts: Sequence[str]) -> list[int]:
    """Index of the first occurrence of each distinct (whitespace-stripped) text, in order."""
    seen: dict[str, int] = {}
    for idx, t in enumerate(texts):
        seen.setdefault(t.strip(), idx)
    return sorted(seen.values())


def round_robin_plan(texts: Sequence[str]) -> list[tuple[int, int]]:
    """The (i, j) pairs round-robin needs, over distinct texts only."""
    return list(combinations(unique_indices(texts), 2))


def copeland(texts: Sequence[str], matches: Sequence[Match]) -> list[float]:
    """Copeland score per candidate; duplicates of a text share its score."""
    score = [0.0] * len(texts)
    for m in matches:
        if m.verdict.winner == "a":
            score[m.i] += 1
            score[m.j] -= 1
        elif m.verdict.winner == "b":
            score[m.j] += 1
            score[m.i] -= 1
    first = {t.strip(): idx for idx, t in reversed(list(enumerate(texts)))}
    return [score[first[t.strip()]] for t in texts]


def best_and_worst(texts: Sequence[str], scores: Sequence[float]) -> tuple[int, int]:
    """Highest and lowest scoring distinct candidates; ties broken by sample order for determinism."""
    candidates = unique_indices(texts)
    best = max(candidates, key=lambda i: (scores[i], -i))
    worst = min(candidates, key=lambda i: (scores[i], -i))
    return best, worst


@dataclass(frozen=True)
class RankingTask:
    prompt: str
    texts: Sequence[str]
    reference: str | None = None
    prompt_id: str | None = None


@dataclass(frozen=True)
class RankingResult:
    chosen: int | None  # index into the task's texts; None when fewer than 2 distinct candidates
    rejected: int | None
    calls: int
    matches: tuple[Match, ...]
    scores: tuple[float, ...]  # Copeland scores over the matches played
    strategy: str
    decisive: bool = True  # False when a bracket had to advance someone on a tie or an invalid verdict

    def __iter__(self):  # (chosen, rejected, calls), as callers often want just these
        return iter((self.chosen, self.rejected, self.calls))


# A strategy is a generator per task: it yields the (i, j) pairs it wants judged next and receives their verdicts.
Plan = Generator[list[tuple[int, int]], list[Verdict], RankingResult]


def _round_robin_plan(texts: Sequence[str]) -> Plan:
    pairs = round_robin_plan(texts)
    verdicts = (yield pairs) if pairs else []
    matches = tuple(Match(i, j, v) for (i, j), v in zip(pairs, verdicts))
    scores = tuple(copeland(texts, matches))
    if len(unique_indices(texts)) < 2:
        return RankingResult(None, None, 0, matches, scores, "round_robin")
    chosen, rejected = best_and_worst(texts, scores)
    return RankingResult(chosen, rejected, len(pairs), matches, scores, "round_robin")


def _knockout_plan(texts: Sequence[str], confirm: bool = False) -> Plan:
    """Two brackets run side by side: winners advance in the first, losers "advance" in the second.

    A candidate enters the worst bracket when it loses a best-bracket match without ever having won one: all of the
    first round's losers, and a candidate that reached a later round on byes alone (odd brackets) and lost there.
    Without that, a bye could carry the true worst past the worst bracket (N=3, 5, 7 ...). A tie or an invalid verdict
    advances the earlier candidate in the best bracket and sends the later one down in the worst bracket (round-robin's
    own index tie-breaks), and marks the result not decisive. ``confirm`` adds the direct chosen-vs-rejected match
    when the brackets did not play it (pair filters want a direct verdict).
    """
    idx = unique_indices(texts)
    if len(idx) < 2:
        return RankingResult(None, None, 0, (), tuple(copeland(texts, [])), "knockout")
    matches: list[Match] = []
    decisive = True
    best, worst, won = list(idx), [], set()

    def play(pairs: list[tuple[int, int]], verdicts: list[Verdict]) -> list[tuple[int, int]]:
        nonlocal decisive
        out = []
        for (i, j), v in zip(pairs, verdicts):
            matches.append(Match(i, j, v))
            if v.winner not in ("a", "b"):
                decisive = False
            out.append((j, i) if v.winner == "b" else (i, j))  # (winner, loser); tie/invalid: earlier one "wins"
        return out

    while len(best) > 1 or len(worst) > 1:
        best_pairs = [(best[k], best[k + 1]) for k in range(0, len(best) - 1, 2)]
        worst_pairs = [(worst[k], worst[k + 1]) for k in range(0, len(worst) - 1, 2)]
        verdicts = yield best_pairs + worst_pairs
        best_results = play(best_pairs, verdicts[:len(best_pairs)])
        worst_results = play(worst_pairs, verdicts[len(best_pairs):])
        entrants = [loser for _, loser in best_results if loser not in won]
        won.update(winner for winner, _ in best_results)
        worst = [loser for _, loser in worst_results] + ([worst[-1]] if len(worst) % 2 else []) + entrants
        best = [winner for winner, _ in best_results] + ([best[-1]] if len(best) % 2 else [])
    chosen, rejected = best[0], worst[0]
    if confirm and not any({m.i, m.j} == {chosen, rejected} for m in matches):
        (v,) = yield [(chosen, rejected)]
        matches.append(Match(chosen, rejected, v))
    return RankingResult(chosen, rejected, len(matches), tuple(matches), tuple(copeland(texts, matches)),
                         "knockout", decisive)


def _plan_for(strategy: str, confirm: bool) -> Callable[[Sequence[str]], Plan]:
    if strategy == "round_robin":
        return _round_robin_plan
    if strategy == "knockout":
        return lambda texts: _knockout_plan(texts, confirm)
    raise ValueError(f"unknown ranking strategy {strategy!r}; one of {', '.join(STRATEGIES)}")


def rank_candidates(judge: Judge, tasks: Sequence[RankingTask], rubric: Rubric, strategy: str = "round_robin", *,
                    confirm: bool = False, chunk: int = 256,
                    on_round: Callable[[int, int], None] | None = None) -> list[RankingResult]:
    """Rank every task's candidates; all tasks' comparisons of a round go to the judge together.

    ``on_round(done, total)`` reports judged comparisons after each chunk (progress bars; cancellation checks).
    """
    make = _plan_for(strategy, confirm)
    plans = [make(t.texts) for t in tasks]
    results: list[RankingResult | None] = [None] * len(tasks)
    pending: dict[int, list[tuple[int, int]]] = {}
    for k, plan in enumerate(plans):
        try:
            pending[k] = next(plan)
        except StopIteration as stop:
            results[k] = stop.value
    done = 0
    while pending:
        order = [(k, i, j) for k, pairs in pending.items() for i, j in pairs]
        comparisons = [Comparison(tasks[k].prompt, tasks[k].texts[i], tasks[k].texts[j], tasks[k].reference,
                                  tasks[k].prompt_id) for k, i, j in order]
        verdicts: list[Verdict] = []
        round_end = done + len(comparisons)
        for start in range(0, len(comparisons), chunk):
            batch = comparisons[start:start + chunk]
            verdicts.extend(judge.compare(batch, rubric))
            done += len(batch)
            if on_round is not None:
                on_round(done, round_end)
        by_task: dict[int, list[Verdict]] = {}
        for (k, _, _), v in zip(order, verdicts):
            by_task.setdefault(k, []).append(v)
        nxt = {}
        for k in pending:
            try:
                nxt[k] = plans[k].send(by_task.get(k, []))
            except StopIteration as stop:
                results[k] = stop.value
        pending = nxt
    return results  # type: ignore[return-value]


def round_robin(judge: Judge, tasks: Sequence[RankingTask], rubric: Rubric, **kwargs) -> list[RankingResult]:
    return rank_candidates(judge, tasks, rubric, "round_robin", **kwargs)


def knockout(judge: Judge, tasks: Sequence[RankingTask], rubric: Rubric, **kwargs) -> list[RankingResult]:
    return rank_candidates(judge, tasks, rubric, "knockout", **kwargs)


def calls_per_prompt(n_distinct: int, strategy: str, confirm: bool = False) -> float:
    """Judge calls one prompt with ``n_distinct`` candidates needs at most (round-robin: always exactly that).

    The knockout's count is its plan played with the earlier candidate always winning, which makes every candidate
    that rode byes lose into the worst bracket: N-1 matches for the best, one fewer than the worst bracket's entrants
    for the worst (4 for N=4, 6 for N=5, 10 for N=8), plus the confirming match when asked for.
    """
    if n_distinct < 2:
        return 0
    if strategy == "round_robin":
        return n_distinct * (n_distinct - 1) / 2
    if strategy == "knockout":
        plan, calls = _knockout_plan([str(i) for i in range(n_distinct)]), 0
        try:
            pairs = next(plan)
            while True:
                calls += len(pairs)
                pairs = plan.send([Verdict("a", 1.0)] * len(pairs))
        except StopIteration:
            return calls + (1 if confirm else 0)
    raise ValueError(f"unknown ranking strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
