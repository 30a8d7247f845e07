"""Agreement numbers: judge–human Cohen's kappa with a bootstrap CI, and inter-annotator agreement.

Why kappa and not raw agreement: on an anchor set where 80% of answers are "A", a judge that always says "A" agrees
80% of the time and knows nothing; Cohen's kappa subtracts the agreement expected by chance. Point estimates come
from scikit-learn (``cohen_kappa_score``, ``confusion_matrix``); the bootstrap is vectorised numpy (all resamples'
confusion matrices in one ``bincount``), so 10,000 labels x 1,000 resamples take a few hundred milliseconds.

Conventions:
* labels are ``A | B | tie`` in the item's original orientation; a judge's ``invalid`` verdict is its own category,
  so it can only ever count as a disagreement (an unparseable verdict must not hide from the gate);
* ties are reported both ways: 3-class (A/B/tie, the gate's number) and 2-class (items where both sides picked
  A or B; ties and invalid verdicts excluded);
* Fleiss' kappa is implemented here (scikit-learn has none) and accepts a varying number of raters per item;
  Krippendorff's alpha (nominal, :mod:`rlaif.anchors.krippendorff`) sits beside it because it is defined on
  incomplete designs (each item labelled by whoever labelled it) and gets the same item-resampling bootstrap CI.

    report = judge_human_agreement(human=["A", "B", "tie"], judge=["A", "B", "A"], seed=0)
    report.kappa, report.ci, report.confusion
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from rlaif.anchors.krippendorff import alpha_nominal, alphas_of_resamples, pairable

# scikit-learn is imported where it is used: it takes seconds to import, and every `rlaif` command imports this
# package through the CLI's parser.

LABELS = ("A", "B", "tie")
JUDGE_LABELS = ("A", "B", "tie", "invalid")
_WINNER_TO_LABEL = {"a": "A", "b": "B", "tie": "tie", "invalid": "invalid"}


def judge_label(winner: str) -> str:
    """A judge verdict's winner (a | b | tie | invalid) as an anchor label (A | B | tie | invalid)."""
    try:
        return _WINNER_TO_LABEL[winner]
    except KeyError:
        raise ValueError(f"unknown judge winner {winner!r}; one of {sorted(_WINNER_TO_LABEL)}") from None


# ---------------------------------------------------------------------------------------------------------------------
# Cohen's kappa and its bootstrap


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def cohen_kappa(y1: Sequence[str], y2: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Cohen's kappa (scikit-learn); NaN when it is undefined (empty input, or both raters used one same class)."""
    if len(y1) != len(y2):
        raise ValueError(f"label lists differ in length: {len(y1)} vs {len(y2)}")
    if not y1:
        return float("nan")
    labels = list(labels) if labels is not None else sorted(set(y1) | set(y2))
    first, second = Counter(y1), Counter(y2)
    expected = sum(first[label] * second[label] for label in labels) / (len(y1) * len(y1))
    if expected >= 1.0:  # sklearn would divide by zero here; kappa is undefined, not perfect
        return float("nan")
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(y1, y2, labels=labels))


def _encode(y1: Sequence[str], y2: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    try:
        a = np.fromiter((index[v] for v in y1), dtype=np.int64, count=len(y1))
        b = np.fromiter((index[v] for v in y2), dtype=np.int64, count=len(y2))
    except KeyError as err:
        raise ValueError(f"label {err.args[0]!r} is not one of {list(labels)}") from None
    return a * len(labels) + b


def kappa_from_confusions(counts: np.ndarray) -> np.ndarray:
    """Cohen's kappa of a stack of confusion matrices (..., k, k); NaN where chance agreement is 1."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=(-2, -1))
    observed = np.trace(counts, axis1=-2, axis2=-1) / n
    expected = np.einsum("...i,...i->...", counts.sum(axis=-1), counts.sum(axis=-2)) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected < 1.0, (observed - expected) / (1.0 - expected), np.nan)


_CHUNK_ITEMS = 1 << 20  # drawn items per chunk: ~4 MiB of int32 indices, so memory stays warm in cache and pages


def _rows_per_chunk(n: int) -> int:
    return max(1, _CHUNK_ITEMS // max(n, 1))


def iter_resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The bootstrap's draws: int32 item indices, ``(rows, n)`` blocks of resamples, in order.

    Exposed so a reference implementation can replay exactly the draws the vectorised one used.
    """
    rng = np.random.default_rng(seed)
    rows = _rows_per_chunk(n)
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n), dtype=np.int32)


def bootstrap_resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """All draws as one ``(n_resamples, n)`` array (for tests and reference loops)."""
    return np.concatenate(list(iter_resample_indices(n, n_resamples, seed))) if n_resamples else \
        np.empty((0, n), dtype=np.int32)


def bootstrap_kappas(y1: Sequence[str], y2: Sequence[str], labels: Sequence[str], *, n_resamples: int = 1000,
                     seed: int = 0) -> np.ndarray:
    """Kappa of each bootstrap resample (items drawn with replacement), vectorised.

    Per block of resamples: gather the items' (label1, label2) cell codes, offset each resample's codes into its own
    k*k range, and one ``bincount`` yields every resample's confusion matrix.
    """
    n, k = len(y1), len(labels)
    if n == 0:
        return np.full(n_resamples, np.nan)
    codes = _encode(y1, y2, labels).astype(np.int32)
    out = np.empty(n_resamples)
    done = 0
    for block in iter_resample_indices(n, n_resamples, seed):
        rows = block.shape[0]
        cells = codes[block]
        cells += (np.arange(rows, dtype=np.int32) * (k * k))[:, None]
        counts = np.bincount(cells.ravel(), minlength=rows * k * k).reshape(rows, k, k)
        out[done:done + rows] = kappa_from_confusions(counts)
        done += rows
    return out


def percentile_ci(estimates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap estimates, resamples where the statistic is undefined (NaN) left out;
    (nan, nan) when none is defined."""
    estimates = np.asarray(estimates, dtype=np.float64)
    estimates = estimates[~np.isnan(estimates)]
    if estimates.size == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return (float(low), float(high))


def bootstrap_ci(y1: Sequence[str], y2: Sequence[str], labels: Sequence[str], *, n_resamples: int = 1000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of Cohen's kappa; (nan, nan) when no resample defines kappa."""
    return percentile_ci(bootstrap_kappas(y1, y2, labels, n_resamples=n_resamples, seed=seed), level)


@dataclass(frozen=True)
class Agreement:
    """Agreement of two label lists on one set of items."""

    n: int
    kappa: float
    ci: tuple[float, float]
    raw_agreement: float
    labels: tuple[str, ...]
    confusion: list[list[int]]  # rows: first rater (human), columns: second (judge), in ``labels`` order

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "kappa": _nan_to_none(self.kappa), "ci": [_nan_to_none(c) for c in self.ci],
                "raw_agreement": _nan_to_none(self.raw_agreement), "labels": list(self.labels),
                "confusion": self.confusion}


def agreement(y1: Sequence[str], y2: Sequence[str], labels: Sequence[str], *, n_resamples: int = 1000,
              seed: int = 0) -> Agreement:
    from sklearn.metrics import confusion_matrix

    y1, y2 = list(y1), list(y2)
    n = len(y1)
    confusion = confusion_matrix(y1, y2, labels=list(labels)).tolist() if n else [[0] * len(labels)] * len(labels)
    raw = sum(a == b for a, b in zip(y1, y2)) / n if n else float("nan")
    return Agreement(n=n, kappa=cohen_kappa(y1, y2, labels), ci=bootstrap_ci(y1, y2, labels, n_resamples=n_resamples,
                                                                             seed=seed),
                     raw_agreement=raw, labels=tuple(labels), confusion=confusion)


@dataclass(frozen=True)
class JudgeHumanAgreement:
    """Judge vs human on one slice: 3-class (the gate's number) and 2-class (ties and invalid excluded)."""

    three_class: Agreement
    two_class: Agreement
    n_invalid: int

    @property
    def n(self) -> int:
        return self.three_class.n

    @property
    def kappa(self) -> float:
        return self.three_class.kappa

    @property
    def ci(self) -> tuple[float, float]:
        return self.three_class.ci

    def to_dict(self) -> dict[str, Any]:
        return {**self.three_class.to_dict(), "n_invalid": self.n_invalid, "two_class": self.two_class.to_dict()}


def judge_human_agreement(human: Sequence[str], judge: Sequence[str], *, n_resamples: int = 1000,
                          seed: int = 0) -> JudgeHumanAgreement:
    """``human`` labels are A/B/tie; ``judge`` labels are A/B/tie/invalid (see :func:`judge_label`)."""
    human, judge = list(human), list(judge)
    bad = sorted(set(human) - set(LABELS))
    if bad:
        raise ValueError(f"human labels must be A, B or tie, got {bad}")
    decisive = [(h, j) for h, j in zip(human, judge) if h in ("A", "B") and j in ("A", "B")]
    return JudgeHumanAgreement(
        three_class=agreement(human, judge, JUDGE_LABELS, n_resamples=n_resamples, seed=seed),
        two_class=agreement([h for h, _ in decisive], [j for _, j in decisive], ("A", "B"),
                            n_resamples=n_resamples, seed=seed),
        n_invalid=sum(j == "invalid" for j in judge),
    )


def agreement_by_slice(rows: Iterable[Mapping[str, Any]], *, n_resamples: int = 1000,
                       seed: int = 0) -> dict[str, JudgeHumanAgreement]:
    """``rows`` of {slice, human, judge}: agreement over all rows (key ``"all"``) and per slice, sorted by name."""
    rows = list(rows)
    out = {"all": judge_human_agreement([r["human"] for r in rows], [r["judge"] for r in rows],
                                        n_resamples=n_resamples, seed=seed)}
    for name in sorted({r["slice"] for r in rows}):
        part = [r for r in rows if r["slice"] == name]
        out[name] = judge_human_agreement([r["human"] for r in part], [r["judge"] for r in part],
                                          n_resamples=n_resamples, seed=seed)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Inter-annotator agreement


def fleiss_kappa(counts: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa of an items x categories matrix of rating counts.

    Items may have different numbers of raters (at least 2 each; items with fewer are ignored): P_i uses each item's
    own n_i and the category shares p_j pool all ratings, which is Fleiss' formula when every n_i is equal.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError("counts must be a 2-D items x categories matrix")
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    if counts.shape[0] == 0:
        return float("nan")
    per_item = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1))
    observed = per_item.mean()
    shares = counts.sum(axis=0) / raters.sum()
    expected = float((shares * shares).sum())
    if expected >= 1.0:
        return float("nan")
    return float((observed - expected) / (1.0 - expected))


def label_counts(labels_by_item: Mapping[str, Sequence[str]], categories: Sequence[str] = LABELS) -> np.ndarray:
    """{item: [each annotator's label]} as an items x categories table of counts, in the mapping's item order."""
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(labels_by_item), len(categories)), dtype=np.int64)
    for row, labels in enumerate(labels_by_item.values()):
        for label in labels:
            if label not in index:
                raise ValueError(f"label {label!r} is not one of {list(categories)} (drop skips before counting)")
            table[row, index[label]] += 1
    return table


def fleiss_from_labels(labels_by_item: Mapping[str, Sequence[str]],
                       categories: Sequence[str] = LABELS) -> tuple[float, int]:
    """Fleiss' kappa from {item: [each annotator's label]}; returns (kappa, items with 2+ ratings)."""
    rows = pairable(label_counts(labels_by_item, categories))
    if rows.shape[0] == 0:
        return float("nan"), 0
    return fleiss_kappa(rows), int(rows.shape[0])


@dataclass(frozen=True)
class KrippendorffAlpha:
    """Nominal alpha over the items with 2+ labels, with a percentile bootstrap CI over those items."""

    alpha: float
    ci: tuple[float, float]
    n: int  # items with 2+ labels (the pairable units; items with one label cannot be compared)
    n_values: int  # labels on those items: the n of Krippendorff's formula

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": _nan_to_none(self.alpha), "ci": [_nan_to_none(c) for c in self.ci], "n": self.n,
                "n_values": self.n_values}


def krippendorff_alpha(labels_by_item: Mapping[str, Sequence[str]], categories: Sequence[str] = LABELS, *,
                       n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> KrippendorffAlpha:
    """Krippendorff's alpha (nominal) from {item: [each annotator's label]}, missing labels allowed.

    The CI resamples the pairable items with replacement (the draws of :func:`iter_resample_indices`, vectorised
    like the kappa bootstrap) and takes the percentile interval of the resamples where alpha is defined.
    """
    counts = pairable(label_counts(labels_by_item, categories))
    units = counts.shape[0]
    draws = iter_resample_indices(units, n_resamples, seed) if units else ()
    return KrippendorffAlpha(alpha=alpha_nominal(counts), ci=percentile_ci(alphas_of_resamples(counts, draws), level),
                             n=units, n_values=int(counts.sum()))


@dataclass(frozen=True)
class InterAnnotatorAgreement:
    annotators: tuple[str, ...]
    pairwise: list[dict[str, Any]] = field(default_factory=list)  # {annotators, n, kappa, raw_agreement}
    fleiss_kappa: float | None = None  # only with 3+ annotators
    fleiss_n: int = 0
    krippendorff_alpha: KrippendorffAlpha | None = None  # with 2+ annotators, over the items with 2+ labels

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["annotators"] = list(self.annotators)
        out["fleiss_kappa"] = _nan_to_none(self.fleiss_kappa)
        out["pairwise"] = [{**p, "kappa": _nan_to_none(p["kappa"])} for p in self.pairwise]
        out["krippendorff_alpha"] = self.krippendorff_alpha.to_dict() if self.krippendorff_alpha else None
        return out


def inter_annotator_agreement(labels: Mapping[str, Mapping[str, str]], *, n_resamples: int = 1000,
                              seed: int = 0) -> InterAnnotatorAgreement:
    """``labels`` is {annotator: {item_id: A|B|tie}} (skips already removed).

    Pairwise Cohen's kappa on the items both annotators labelled; Fleiss' kappa over all items with 2+ labels when
    there are 3 or more annotators; Krippendorff's alpha (with its bootstrap CI) over the items with 2+ labels
    whenever there are 2 or more annotators.
    """
    names = tuple(sorted(labels))
    pairwise = []
    for first, second in combinations(names, 2):
        shared = sorted(set(labels[first]) & set(labels[second]))
        y1 = [labels[first][i] for i in shared]
        y2 = [labels[second][i] for i in shared]
        pairwise.append({"annotators": [first, second], "n": len(shared), "kappa": cohen_kappa(y1, y2, LABELS),
                         "raw_agreement": (sum(a == b for a, b in zip(y1, y2)) / len(shared)) if shared else None})
    by_item: dict[str, list[str]] = {}
    for name in names:
        for item, label in labels[name].items():
            by_item.setdefault(item, []).append(label)
    fleiss, fleiss_n = fleiss_from_labels(by_item) if len(names) >= 3 else (None, 0)
    alpha = krippendorff_alpha(by_item, n_resamples=n_resamples, seed=seed) if len(names) >= 2 else None
    return InterAnnotatorAgreement(names, pairwise, fleiss, fleiss_n, alpha)
