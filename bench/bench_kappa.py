"""Benchmark: judge-human Cohen's kappa, and Krippendorff's alpha, with 95% bootstrap CIs over 10,000 labels and
1,000 resamples.

The target is under 1 s. The vectorised bootstrap (rlaif.anchors.agreement) builds every resample's confusion matrix
with one ``bincount``; the reference is a plain-Python loop over the SAME resample indices, run in the same process
on the same data, so the two must produce identical intervals and the printed ratio is the speed-up alone.

    .venv/bin/python bench/bench_kappa.py [--labels 10000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlaif.anchors.agreement import (  # noqa: E402
    JUDGE_LABELS,
    LABELS,
    bootstrap_ci,
    bootstrap_resample_indices,
    cohen_kappa,
    krippendorff_alpha,
    label_counts,
    percentile_ci,
)
from rlaif.anchors.krippendorff import pairable  # noqa: E402


def plain_python_ci(human: list[str], judge: list[str], labels, n_resamples: int, seed: int) -> tuple[float, float]:
    """The textbook loop: for each resample, count a confusion matrix item by item, then compute kappa."""
    index = {label: i for i, label in enumerate(labels)}
    h = [index[x] for x in human]
    j = [index[x] for x in judge]
    k = len(labels)
    kappas = []
    for draw in bootstrap_resample_indices(len(human), n_resamples, seed).tolist():
        counts = [[0] * k for _ in range(k)]
        for i in draw:
            counts[h[i]][j[i]] += 1
        n = len(draw)
        observed = sum(counts[c][c] for c in range(k)) / n
        rows = [sum(counts[c]) for c in range(k)]
        cols = [sum(counts[r][c] for r in range(k)) for c in range(k)]
        expected = sum(rows[c] * cols[c] for c in range(k)) / (n * n)
        if expected < 1:
            kappas.append((observed - expected) / (1 - expected))
    kappas.sort()
    low, high = np.percentile(kappas, [2.5, 97.5])
    return float(low), float(high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(12345)
    human = rng.choice(LABELS, args.labels, p=[0.45, 0.45, 0.10]).tolist()
    noise = rng.choice(JUDGE_LABELS, args.labels, p=[0.4, 0.4, 0.15, 0.05]).tolist()
    judge = [h if keep else n for h, keep, n in zip(human, rng.random(args.labels) < 0.8, noise)]

    start = time.perf_counter()
    import sklearn.metrics  # noqa: F401  (imported lazily by the library; its import is not the kappa's cost)

    import_s = time.perf_counter() - start
    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        kappa = cohen_kappa(human, judge, JUDGE_LABELS)
        ci = bootstrap_ci(human, judge, JUDGE_LABELS, n_resamples=args.resamples, seed=args.seed)
        timings.append(time.perf_counter() - start)

    start = time.perf_counter()
    loop_ci = plain_python_ci(human, judge, JUDGE_LABELS, args.resamples, args.seed)
    loop_s = time.perf_counter() - start

    best, first = min(timings), timings[0]
    same = np.allclose(ci, loop_ci, rtol=0, atol=1e-12)
    print(f"kappa with 95% bootstrap CI: {args.labels:,} labels, {args.resamples:,} resamples, seed {args.seed}")
    print(f"  kappa {kappa:.4f}  CI [{ci[0]:.4f}, {ci[1]:.4f}]  (plain loop CI [{loop_ci[0]:.4f}, {loop_ci[1]:.4f}],"
          f" {'identical' if same else 'DIFFERENT'})")
    print(f"  vectorised numpy: best {best * 1000:.1f} ms, first {first * 1000:.1f} ms over {args.repeats} runs "
          f"(scikit-learn import before them: {import_s * 1000:.0f} ms, not counted)")
    print(f"  plain-Python loop: {loop_s * 1000:.1f} ms")
    print(f"  speed-up: {loop_s / best:.0f}x (plain loop / vectorised best)")
    ok = first < 1.0 and same
    print(f"  target < 1 s: {'met' if ok else 'MISSED'}")
    return 0 if alpha_bench(args) and ok else 1


def alpha_bench(args) -> bool:
    """Krippendorff's alpha with its CI on the same number of labels (3 annotators, 1 in 5 labels missing), against
    the ``krippendorff`` package run on each resample's count table: the same draws, so the intervals must agree."""
    import krippendorff  # the reference implementation (installed with the dev extra)

    rng = np.random.default_rng(6789)
    items = args.labels // 3
    truth = rng.choice(LABELS, items, p=[0.45, 0.45, 0.10])
    by_item = {}
    for i, t in enumerate(truth):
        labels = [t if rng.random() < 0.8 else str(rng.choice(LABELS)) for _ in range(3)]
        by_item[f"i{i}"] = [x for x in labels if rng.random() >= 0.2]
    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = krippendorff_alpha(by_item, n_resamples=args.resamples, seed=args.seed)
        timings.append(time.perf_counter() - start)
    counts = pairable(label_counts(by_item, LABELS))
    start = time.perf_counter()
    theirs = [krippendorff.alpha(value_counts=counts[draw], level_of_measurement="nominal")
              for draw in bootstrap_resample_indices(counts.shape[0], args.resamples, args.seed)]
    reference_s = time.perf_counter() - start
    reference_ci = percentile_ci(np.array(theirs), 0.95)
    point = krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")
    same = np.allclose(ours.ci, reference_ci, rtol=0, atol=1e-9) and abs(ours.alpha - point) < 1e-12
    print(f"Krippendorff's alpha (nominal) with 95% bootstrap CI: {int(counts.sum()):,} labels on {ours.n:,} "
          f"pairable items, {args.resamples:,} resamples")
    print(f"  alpha {ours.alpha:.4f}  CI [{ours.ci[0]:.4f}, {ours.ci[1]:.4f}]  (krippendorff package: alpha "
          f"{point:.4f}, CI [{reference_ci[0]:.4f}, {reference_ci[1]:.4f}], {'identical' if same else 'DIFFERENT'})")
    print(f"  vectorised numpy: best {min(timings) * 1000:.1f} ms, first {timings[0] * 1000:.1f} ms; krippendorff "
          f"package per resample: {reference_s * 1000:.0f} ms ({reference_s / min(timings):.0f}x)")
    ok = timings[0] < 1.0 and same
    print(f"  target < 1 s: {'met' if ok else 'MISSED'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
