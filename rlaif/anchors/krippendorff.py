"""Krippendorff's alpha (nominal) from a units x values table of counts, and of many bootstrap resamples at once.

Why alpha beside Fleiss' kappa: annotators rarely label the same items. Alpha is defined on whatever each item got
(an item labelled by two people counts, one labelled by one person cannot be compared and drops out), corrects for
small samples (expected disagreement uses n - 1), and is the coefficient content analysts report, so a set's number
can be compared with published ones. This is the coincidence-matrix formulation of Krippendorff (2011),
"Computing Krippendorff's Alpha-Reliability", for nominal data:

    o_ck = sum_u n_uc * (n_uk - [c == k]) / (m_u - 1)            (pairable units: m_u >= 2 values)
    alpha = 1 - (n - 1) * (n - sum_c o_cc) / (n^2 - sum_c n_c^2)  (n_c = sum_k o_ck, n = sum_c n_c)

The module knows only numpy; :mod:`rlaif.anchors.agreement` maps labels to counts and supplies the bootstrap's draws
(the same item resampling the kappa CIs use), so one resampling scheme serves every agreement number.

    counts = np.array([[2, 0, 0], [1, 1, 0], [0, 3, 0]])   # 3 items, categories A / B / tie
    alpha_nominal(counts), coincidence_matrix(counts)
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def pairable(counts: np.ndarray) -> np.ndarray:
    """The rows (units) of an items x categories count table with 2+ values: the only ones alpha can use."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError("counts must be a 2-D items x categories matrix of how many annotators chose each category")
    return counts[counts.sum(axis=1) >= 2]


def coincidence_matrix(counts: np.ndarray) -> np.ndarray:
    """The categories x categories coincidence matrix o_ck of the pairable units (rows sum to each n_c)."""
    counts = pairable(counts)
    weights = 1.0 / (counts.sum(axis=1) - 1.0)
    return np.einsum("u,uc,uk->ck", weights, counts, counts) - np.diag(weights @ counts)


def _unit_terms(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pairable unit: its number of values m_u, its diagonal share sum_c n_uc (n_uc - 1) / (m_u - 1), counts."""
    counts = pairable(counts)
    values = counts.sum(axis=1)
    matched = (counts * (counts - 1.0)).sum(axis=1) / np.maximum(values - 1.0, 1.0)
    return values, matched, counts


def _alpha(n: np.ndarray, matched: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """alpha from n, sum_c o_cc and sum_c n_c^2 (any matching shapes); NaN where there is no expected disagreement
    (every value in one category, or fewer than two values): alpha is undefined there, not perfect."""
    denominator = n * n - squares
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((denominator > 0) & (n >= 2), 1.0 - (n - 1.0) * (n - matched) / denominator, np.nan)


def alpha_nominal(counts: np.ndarray) -> float:
    """Krippendorff's alpha for nominal data of an items x categories count table; NaN when undefined."""
    values, matched, counts = _unit_terms(counts)
    totals = counts.sum(axis=0)
    return float(_alpha(np.float64(values.sum()), np.float64(matched.sum()), np.float64((totals * totals).sum())))


def alphas_of_resamples(counts: np.ndarray, draws: Iterable[np.ndarray]) -> np.ndarray:
    """alpha of each resample, vectorised: ``draws`` yields ``(rows, n_pairable)`` blocks of unit indices (into the
    pairable units, in order), e.g. :func:`rlaif.anchors.agreement.iter_resample_indices`.

    Per block: one ``bincount`` gives how often each unit was drawn in each resample; alpha's sums are then matrix
    products of those weights with the per-unit terms (values, diagonal share, category counts).
    """
    values, matched, counts = _unit_terms(counts)
    units = len(values)
    out = []
    for block in draws:
        rows = block.shape[0]
        offsets = (np.arange(rows, dtype=np.int64) * units)[:, None]
        weights = np.bincount((block + offsets).ravel(), minlength=rows * units).reshape(rows, units)
        weights = weights.astype(np.float64)
        totals = weights @ counts
        out.append(_alpha(weights @ values, weights @ matched, (totals * totals).sum(axis=1)))
    return np.concatenate(out) if out else np.empty(0)
