"""Agreement numbers against hand-computed known cases (not sklearn vs sklearn), and the bootstrap's determinism."""

import json
import math
import time

import numpy as np
import pytest

from rlaif.anchors.agreement import (
    JUDGE_LABELS,
    LABELS,
    agreement_by_slice,
    bootstrap_ci,
    bootstrap_kappas,
    bootstrap_resample_indices,
    cohen_kappa,
    fleiss_from_labels,
    fleiss_kappa,
    inter_annotator_agreement,
    iter_resample_indices,
    judge_human_agreement,
    judge_label,
    krippendorff_alpha,
    label_counts,
)
from rlaif.anchors.krippendorff import alpha_nominal, alphas_of_resamples, coincidence_matrix, pairable


def _from_confusion(matrix, labels):
    """Two label lists whose confusion matrix (rows: first, columns: second) is ``matrix``."""
    first, second = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            first += [labels[i]] * count
            second += [labels[j]] * count
    return first, second


def _plain_kappa(counts):
    """Cohen's kappa from a confusion matrix, the textbook way, in plain Python."""
    n = sum(map(sum, counts))
    observed = sum(counts[i][i] for i in range(len(counts))) / n
    rows = [sum(r) for r in counts]
    cols = [sum(r[j] for r in counts) for j in range(len(counts))]
    expected = sum(r * c for r, c in zip(rows, cols)) / (n * n)
    return float("nan") if expected == 1 else (observed - expected) / (1 - expected)


# ---- Cohen's kappa on known cases


def test_cohen_kappa_wikipedia_example_is_0_4():
    # Wikipedia "Cohen's kappa", simple example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15:
    # p_o = 35/50 = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    human, judge = _from_confusion([[20, 5], [10, 15]], ("A", "B"))
    assert cohen_kappa(human, judge) == pytest.approx(0.4, abs=1e-12)
    report = judge_human_agreement(human, judge, n_resamples=200)
    assert report.kappa == pytest.approx(0.4, abs=1e-12)
    assert report.three_class.raw_agreement == pytest.approx(0.7)
    assert report.n == 50 and report.n_invalid == 0
    assert report.three_class.confusion == [[20, 5, 0, 0], [10, 15, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_three_class_and_two_class_with_ties_hand_computed():
    # rows human A/B/tie, columns judge A/B/tie; n = 30, 22 on the diagonal
    # row sums 13, 10, 7; column sums 13, 11, 6; p_e = (169 + 110 + 42) / 900 = 321/900
    # kappa = (660/900 - 321/900) / (579/900) = 339/579
    matrix = [[10, 2, 1], [1, 8, 1], [2, 1, 4]]
    human, judge = _from_confusion(matrix, LABELS)
    report = judge_human_agreement(human, judge, n_resamples=200)
    assert report.kappa == pytest.approx(339 / 579, abs=1e-12)
    assert report.three_class.raw_agreement == pytest.approx(22 / 30)
    # 2-class: only items where both chose A or B: [[10, 2], [1, 8]], n = 21
    # p_o = 18/21, p_e = (12*11 + 9*10)/441 = 222/441, kappa = (378 - 222)/(441 - 222) = 156/219
    assert report.two_class.n == 21
    assert report.two_class.kappa == pytest.approx(156 / 219, abs=1e-12)
    assert report.two_class.raw_agreement == pytest.approx(18 / 21)
    assert report.two_class.confusion == [[10, 2], [1, 8]]
    assert report.kappa == pytest.approx(_plain_kappa(matrix), abs=1e-12)


def test_invalid_verdicts_count_as_disagreement_never_hidden():
    human = ["A", "B", "A", "B", "tie", "A"]
    judge = ["A", "B", "A", "B", "tie", "invalid"]
    report = judge_human_agreement(human, judge, n_resamples=100)
    assert report.n == 6 and report.n_invalid == 1
    assert report.three_class.raw_agreement == pytest.approx(5 / 6)
    matrix = [[2, 0, 0, 1], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert report.three_class.confusion == matrix
    assert report.kappa == pytest.approx(_plain_kappa(matrix))
    assert report.two_class.n == 4  # invalid and tie excluded from the 2-class view
    assert [judge_label(w) for w in ("a", "b", "tie", "invalid")] == list(JUDGE_LABELS)


def test_undefined_kappa_is_nan_not_perfect():
    assert math.isnan(cohen_kappa(["A"] * 10, ["A"] * 10))
    assert math.isnan(cohen_kappa([], []))
    report = judge_human_agreement(["A"] * 5, ["A"] * 5, n_resamples=50)
    assert math.isnan(report.kappa)
    assert report.to_dict()["kappa"] is None  # JSON-safe
    json.dumps(report.to_dict(), allow_nan=False)


def test_kappa_by_slice_matches_separate_computations():
    rows = ([{"slice": "count", "human": h, "judge": j} for h, j in zip(*_from_confusion([[20, 5], [10, 15]], "AB"))]
            + [{"slice": "ranking", "human": h, "judge": j}
               for h, j in zip(*_from_confusion([[10, 2, 1], [1, 8, 1], [2, 1, 4]], LABELS))])
    table = agreement_by_slice(rows, n_resamples=100)
    assert list(table) == ["all", "count", "ranking"]
    assert table["count"].kappa == pytest.approx(0.4)
    assert table["ranking"].kappa == pytest.approx(339 / 579)
    assert table["all"].n == 80


# ---- the bootstrap


def _replayed_kappas(y1, y2, labels, n_resamples, seed):
    """Plain-Python bootstrap over the same resample indices: the vectorised one must equal it exactly."""
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    out = []
    for draw in bootstrap_resample_indices(len(y1), n_resamples, seed).tolist():
        counts = [[0] * k for _ in range(k)]
        for i in draw:
            counts[index[y1[i]]][index[y2[i]]] += 1
        out.append(_plain_kappa(counts))
    return np.array(out)


def test_vectorised_bootstrap_equals_a_plain_loop_on_the_same_draws(monkeypatch):
    monkeypatch.setattr("rlaif.anchors.agreement._CHUNK_ITEMS", 7 * 300)  # several blocks of 7 resamples
    rng = np.random.default_rng(3)
    human = rng.choice(LABELS, 300).tolist()
    judge = [h if rng.random() < 0.7 else rng.choice(JUDGE_LABELS) for h in human]
    fast = bootstrap_kappas(human, judge, JUDGE_LABELS, n_resamples=60, seed=11)
    slow = _replayed_kappas(human, judge, JUDGE_LABELS, 60, 11)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_bootstrap_ci_is_deterministic_for_a_seed_and_differs_for_another():
    rng = np.random.default_rng(0)
    human = rng.choice(LABELS, 500).tolist()
    judge = [h if rng.random() < 0.75 else rng.choice(LABELS) for h in human]
    first = bootstrap_ci(human, judge, JUDGE_LABELS, n_resamples=500, seed=7)
    again = bootstrap_ci(human, judge, JUDGE_LABELS, n_resamples=500, seed=7)
    other = bootstrap_ci(human, judge, JUDGE_LABELS, n_resamples=500, seed=8)
    assert first == again
    assert first != other
    point = cohen_kappa(human, judge, JUDGE_LABELS)
    assert first[0] < point < first[1]
    assert 0.02 < first[1] - first[0] < 0.3


def test_ten_thousand_labels_with_a_thousand_resamples_under_one_second():
    rng = np.random.default_rng(1)
    human = rng.choice(LABELS, 10_000, p=[0.45, 0.45, 0.1]).tolist()
    judge = [h if rng.random() < 0.8 else rng.choice(JUDGE_LABELS) for h in human]
    judge_human_agreement(human[:100], judge[:100], n_resamples=10)  # warm-up (imports, allocator)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        report = judge_human_agreement(human, judge, n_resamples=1000, seed=0)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0, f"kappa + bootstrap CI (3-class and 2-class) took {best:.2f}s"
    assert report.ci[0] < report.kappa < report.ci[1]


# ---- inter-annotator agreement


def test_fleiss_kappa_wikipedia_example_is_0_210():
    # Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories; P = 0.378, Pe = 0.213
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_from_labels_hand_computed():
    # 3 annotators, 4 items: counts [3,0,0], [2,1,0], [0,3,0], [1,1,1]
    # P_i = 1, 1/3, 1, 0 -> P = 7/12; p = (6/12, 5/12, 1/12) -> Pe = 62/144; kappa = (84-62)/(144-62) = 22/82
    labels = {"i1": ["A", "A", "A"], "i2": ["A", "A", "B"], "i3": ["B", "B", "B"], "i4": ["A", "B", "tie"],
              "i5": ["A"]}  # one rating only: ignored
    kappa, n = fleiss_from_labels(labels)
    assert n == 4
    assert kappa == pytest.approx(22 / 82, abs=1e-12)


def test_fleiss_with_two_raters_per_item_is_close_to_scotts_pi():
    # with exactly two raters Fleiss' kappa is Scott's pi: (p_o - p_e) / (1 - p_e) with pooled shares
    y1, y2 = _from_confusion([[20, 5], [10, 15]], ("A", "B"))
    kappa, _ = fleiss_from_labels({str(i): [a, b] for i, (a, b) in enumerate(zip(y1, y2))}, ("A", "B"))
    pooled_a = (25 + 30) / 100
    expected = pooled_a ** 2 + (1 - pooled_a) ** 2
    assert kappa == pytest.approx((0.7 - expected) / (1 - expected), abs=1e-12)


def test_inter_annotator_pairwise_and_fleiss():
    labels = {
        "ana": {"i1": "A", "i2": "B", "i3": "A", "i4": "tie"},
        "ben": {"i1": "A", "i2": "B", "i3": "B"},
        "cy": {"i1": "A", "i2": "A", "i4": "tie"},
    }
    ia = inter_annotator_agreement(labels)
    pairs = {tuple(p["annotators"]): p for p in ia.pairwise}
    assert set(pairs) == {("ana", "ben"), ("ana", "cy"), ("ben", "cy")}
    assert pairs[("ana", "ben")]["n"] == 3 and pairs[("ana", "ben")]["raw_agreement"] == pytest.approx(2 / 3)
    # ana vs ben on i1..i3: [[A,A],[B,B],[A,B]]: p_o = 2/3, rows (A 2, B 1), cols (A 1, B 2): p_e = 4/9
    assert pairs[("ana", "ben")]["kappa"] == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))
    kappa, n = fleiss_from_labels({"i1": ["A", "A", "A"], "i2": ["B", "B", "A"], "i3": ["A", "B"],
                                   "i4": ["tie", "tie"]})
    assert ia.fleiss_kappa == pytest.approx(kappa) and ia.fleiss_n == n == 4
    json.dumps(ia.to_dict(), allow_nan=False)
    assert inter_annotator_agreement({"a": {"i": "A"}, "b": {"i": "A"}}).fleiss_kappa is None  # only with 3+


# ---- Krippendorff's alpha (nominal)


def _plain_alpha(units):
    """Krippendorff's alpha (nominal) straight from the definition, in plain Python.

    ``units`` is a list of each unit's values (missing ones already left out). Pairable units (2+ values) give every
    ordered pair of their values a weight 1 / (m_u - 1) in the coincidence matrix; D_o is the weight off the
    diagonal over n, D_e the share of ordered pairs of distinct values among all n (n - 1) pairs of the n values.
    """
    coincidences = {}
    for values in units:
        if len(values) < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidences[(c, k)] = coincidences.get((c, k), 0.0) + 1.0 / (len(values) - 1)
    n = sum(coincidences.values())
    marginals = {}
    for (c, _), weight in coincidences.items():
        marginals[c] = marginals.get(c, 0.0) + weight
    observed = sum(w for (c, k), w in coincidences.items() if c != k) / n
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k) / (n * (n - 1))
    return float("nan") if expected == 0 else 1.0 - observed / expected


def _by_unit(rows, missing):
    """Coders' rows of values (``missing`` where a coder left a unit out) as {unit: [values]}."""
    by_unit = {}
    for row in rows:
        for unit, value in enumerate(row.split()):
            if value != missing:
                by_unit.setdefault(f"u{unit:02d}", []).append(value)
    return by_unit


# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", Annenberg School for Communication,
# University of Pennsylvania (repository.upenn.edu/asc_papers/43), section C, the nominal example with missing data:
# 4 observers x 12 units, values 1-5, "." where an observer did not code the unit; alpha_nominal = 0.743.
KRIPPENDORFF_2011 = ("1 2 3 3 2 1 4 1 2 . . .",
                     "1 2 3 3 2 2 4 1 2 5 . 3",
                     ". 3 3 3 2 3 4 2 2 5 1 .",
                     "1 2 3 3 2 4 4 1 2 5 1 .")
# Wikipedia, "Krippendorff's alpha", section "A computational example": 3 coders x 15 units, values 1-4, "*" for
# missing; alpha_nominal = 0.691 (the same table is in the `krippendorff` package's sample.py).
WIKIPEDIA = ("* * * * * 3 4 1 2 1 1 3 3 * 3",
             "1 * 2 1 3 3 4 3 * * * * * * *",
             "* * 2 1 3 4 4 * 2 1 1 3 3 * 4")


def test_alpha_krippendorff_2011_worked_example_is_0_743():
    by_unit = _by_unit(KRIPPENDORFF_2011, ".")
    result = krippendorff_alpha(by_unit, categories="12345", n_resamples=200)
    assert round(result.alpha, 3) == 0.743
    # unit 12 has one value (not pairable): 11 units and 40 pairable values, as in the paper
    assert (result.n, result.n_values) == (11, 40)
    # the coincidence matrix: n_c = 9, 13, 10, 5, 3 (n = 40), 32 values coincide with their own category, so
    # alpha = 1 - (n - 1)(n - 32) / (n^2 - sum n_c^2) = 1 - 39 * 8 / (1600 - 384); the plain definition agrees
    o = coincidence_matrix(label_counts(by_unit, "12345"))
    assert np.diag(o).tolist() == pytest.approx([7, 10, 8, 4, 3])
    assert o.sum(axis=1).tolist() == pytest.approx([9, 13, 10, 5, 3])
    assert result.alpha == pytest.approx(1 - 39 * 8 / (1600 - 384), abs=1e-12)
    assert result.alpha == pytest.approx(_plain_alpha(list(by_unit.values())), abs=1e-12)
    assert result.ci[0] < result.alpha <= result.ci[1]


def test_alpha_wikipedia_example_is_0_691():
    by_unit = _by_unit(WIKIPEDIA, "*")
    result = krippendorff_alpha(by_unit, categories="1234", n_resamples=200)
    assert round(result.alpha, 3) == 0.691
    assert (result.n, result.n_values) == (12, 26)  # 3 units have 0 or 1 value
    assert result.alpha == pytest.approx(_plain_alpha(list(by_unit.values())), abs=1e-12)


def test_alpha_equals_the_plain_definition_on_a_fixed_table_with_missing_labels():
    # 4 annotators, 9 items, labels A/B/tie; None = that annotator did not label the item
    table = [["A", "A", "A", None], ["A", "B", None, None], ["B", "B", "B", "B"], ["tie", "A", "tie", None],
             ["B", None, None, None], ["A", "A", "B", "B"], [None, "tie", "tie", None], ["B", "A", "tie", "B"],
             ["A", "A", None, "A"]]
    by_item = {f"i{i}": [v for v in row if v is not None] for i, row in enumerate(table)}
    result = krippendorff_alpha(by_item, n_resamples=100)
    assert result.alpha == pytest.approx(_plain_alpha(list(by_item.values())), abs=1e-12)
    assert (result.n, result.n_values) == (8, 25)  # item i4 has one label and drops out
    assert alpha_nominal(label_counts(by_item)) == pytest.approx(result.alpha, abs=1e-12)


def test_alpha_is_undefined_not_perfect_without_variation():
    assert math.isnan(krippendorff_alpha({"i1": ["A", "A"], "i2": ["A", "A"]}, n_resamples=20).alpha)
    assert math.isnan(krippendorff_alpha({"i1": ["A"], "i2": ["B"]}, n_resamples=20).alpha)  # nothing pairable
    empty = krippendorff_alpha({}, n_resamples=20)
    assert empty.n == 0 and empty.to_dict() == {"alpha": None, "ci": [None, None], "n": 0, "n_values": 0}
    json.dumps(empty.to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match="'skip' is not one of"):
        krippendorff_alpha({"i1": ["A", "skip"]})
    # perfect agreement with variation is exactly 1; systematic disagreement is below 0
    assert krippendorff_alpha({"i1": ["A", "A"], "i2": ["B", "B"]}, n_resamples=20).alpha == pytest.approx(1.0)
    assert krippendorff_alpha({"i1": ["A", "B"], "i2": ["B", "A"]}, n_resamples=20).alpha < 0


def test_vectorised_alpha_bootstrap_equals_a_plain_loop_on_the_same_draws(monkeypatch):
    monkeypatch.setattr("rlaif.anchors.agreement._CHUNK_ITEMS", 5 * 120)  # several blocks of 5 resamples
    rng = np.random.default_rng(4)
    by_item = {}
    for i in range(120):
        truth = rng.choice(LABELS)
        raters = rng.integers(2, 5)
        by_item[f"i{i}"] = [truth if rng.random() < 0.7 else str(rng.choice(LABELS)) for _ in range(raters)]
    counts = pairable(label_counts(by_item))
    fast = alphas_of_resamples(counts, iter_resample_indices(len(counts), 40, 9))
    units = list(by_item.values())
    slow = [_plain_alpha([units[i] for i in draw]) for draw in bootstrap_resample_indices(len(units), 40, 9).tolist()]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    result = krippendorff_alpha(by_item, n_resamples=40, seed=9)
    assert result.ci == pytest.approx(tuple(np.percentile(slow, [2.5, 97.5])), abs=1e-12)


def test_alpha_ci_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(2)
    by_item = {f"i{i}": [t if rng.random() < 0.8 else str(rng.choice(LABELS)) for _ in range(3)]
               for i, t in enumerate(rng.choice(LABELS, 400).tolist())}
    first = krippendorff_alpha(by_item, n_resamples=500, seed=3)
    assert first == krippendorff_alpha(by_item, n_resamples=500, seed=3)
    assert first.ci != krippendorff_alpha(by_item, n_resamples=500, seed=4).ci
    assert first.ci[0] < first.alpha < first.ci[1] and 0.02 < first.ci[1] - first.ci[0] < 0.3


def test_alpha_matches_the_krippendorff_package():
    import krippendorff  # the reference implementation, installed with the dev extra as an independent check
    rows = [[np.nan if v == "." else float(v) for v in row.split()] for row in KRIPPENDORFF_2011]
    theirs = krippendorff.alpha(reliability_data=rows, level_of_measurement="nominal")
    assert krippendorff_alpha(_by_unit(KRIPPENDORFF_2011, "."), "12345", n_resamples=10).alpha == \
        pytest.approx(theirs, abs=1e-12)
    rng = np.random.default_rng(11)
    for _ in range(5):  # random A/B/tie tables with missing labels, as an anchor set's annotators leave them
        codes = rng.choice([0.0, 1.0, 2.0, np.nan], size=(4, 60), p=[0.35, 0.3, 0.15, 0.2])
        by_item = {f"i{j}": [LABELS[int(v)] for v in codes[:, j] if not np.isnan(v)] for j in range(codes.shape[1])}
        theirs = krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal")
        assert krippendorff_alpha(by_item, n_resamples=10).alpha == pytest.approx(theirs, abs=1e-12)


def test_inter_annotator_reports_alpha_beside_fleiss_and_pairwise_kappa():
    labels = {
        "ana": {"i1": "A", "i2": "B", "i3": "A", "i4": "tie", "i5": "B"},
        "ben": {"i1": "A", "i2": "B", "i3": "B"},
        "cy": {"i1": "A", "i2": "A", "i4": "tie"},
    }
    ia = inter_annotator_agreement(labels, n_resamples=300, seed=1)
    by_item = {"i1": ["A", "A", "A"], "i2": ["B", "B", "A"], "i3": ["A", "B"], "i4": ["tie", "tie"]}
    assert ia.krippendorff_alpha.alpha == pytest.approx(_plain_alpha(list(by_item.values())), abs=1e-12)
    assert ia.krippendorff_alpha.n == 4  # i5 has one label
    out = ia.to_dict()
    assert set(out) >= {"pairwise", "fleiss_kappa", "fleiss_n", "krippendorff_alpha"}
    assert out["krippendorff_alpha"]["alpha"] == pytest.approx(ia.krippendorff_alpha.alpha)
    assert len(out["krippendorff_alpha"]["ci"]) == 2 and out["krippendorff_alpha"]["n"] == 4
    json.dumps(out, allow_nan=False)
    two = inter_annotator_agreement({"a": {"i": "A", "j": "B"}, "b": {"i": "A", "j": "B"}}, n_resamples=50)
    assert two.fleiss_kappa is None and two.krippendorff_alpha.alpha == pytest.approx(1.0)  # alpha with 2 already
