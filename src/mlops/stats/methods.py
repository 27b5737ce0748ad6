"""Drift statistics between a reference summary and a current one.

Definitions follow Evidently's (legacy stattests, 0.7) so the numbers and
verdicts are the ones users know: the same test chosen by column type and
sample size, the same binning, the same thresholds and comparison
directions. Where scipy has the statistic it computes it (ks_2samp,
chisquare, jensenshannon, the normal CDF); the Wasserstein distance is
scipy's CDF-difference integral, run over already sorted values so a
million-row column costs a merge rather than an argsort.

Beyond Evidently: the L-infinity distance (TFDV's categorical drift) and a
test on the missing-value rate (see :func:`missing_rate_drift`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as sps
from scipy.spatial import distance

from mlops.stats.summaries import CategoricalSummary, NumericSummary, Summary

NUMERIC, CATEGORICAL = "numeric", "categorical"
# Evidently's sample-size and cardinality boundaries for its default test choice.
SMALL_REFERENCE = 1_000
FEW_VALUES = 5
BINNED_ABOVE = 20  # numeric columns with more distinct reference values are binned (Sturges)
STD_FLOOR = 0.001


@dataclass(frozen=True)
class Method:
    """A drift statistic: how to compute it and how its value turns into a verdict."""

    name: str
    label: str
    kinds: tuple[str, ...]
    threshold: float
    is_p_value: bool  # drift when the value is small rather than large
    inclusive: bool  # Evidently compares with <= / >= for some tests, < for others
    compute: Callable[[Summary, Summary], float]

    def drifted(self, value: float, threshold: float | None = None) -> bool:
        t = self.threshold if threshold is None else threshold
        if value != value:  # NaN: not enough information is not drift
            return False
        if self.is_p_value:
            return value <= t if self.inclusive else value < t
        return value >= t if self.inclusive else value > t


# -- shared pieces ---------------------------------------------------------------------------
def _categories(summary: Summary) -> dict:
    """Category -> count; a numeric summary's distinct values serve as categories."""
    if isinstance(summary, CategoricalSummary):
        return {k: n for k, n in summary.counts.items() if n}
    values, weights = summary.distinct()
    return dict(zip(values.tolist(), weights.tolist()))


def aligned_counts(reference: Summary, current: Summary) -> tuple[list, np.ndarray, np.ndarray]:
    """Both counts over the union of the observed categories (sorted); a current window is pooled
    the way a reference with more categories than it names was."""
    if isinstance(reference, CategoricalSummary) and isinstance(current, CategoricalSummary):
        current = current.pooled_like(reference)
    ref, cur = _categories(reference), _categories(current)
    keys = sorted(set(ref) | set(cur))
    return (keys, np.array([ref.get(k, 0) for k in keys], dtype=float),
            np.array([cur.get(k, 0) for k in keys], dtype=float))


def sturges_edges(reference: NumericSummary, current: NumericSummary) -> np.ndarray:
    """``np.histogram_bin_edges(concat(reference, current), bins="sturges")``, from the summaries."""
    lo, hi = min(reference.minimum, current.minimum), max(reference.maximum, current.maximum)
    n = reference.count + current.count
    width = (hi - lo) / (np.log2(n) + 1.0)
    first, last = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
    if width:
        if reference.integer and current.integer and width < 1:
            width = 1
        bins = int(np.ceil((last - first) / width))
    else:
        bins = 1
    return np.linspace(first, last, bins + 1, endpoint=True)


def binned_shares(reference: Summary, current: Summary) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: shares over Sturges bins of both samples for a numeric
    column with more than 20 distinct reference values, else per category."""
    if isinstance(reference, NumericSummary) and isinstance(current, NumericSummary) \
            and (not reference.exact or reference.n_distinct() > BINNED_ABOVE):
        edges = sturges_edges(reference, current)
        ref = np.histogram(reference.values, edges, weights=reference.point_weights())[0]
        cur = np.histogram(current.values, edges, weights=current.point_weights())[0]
        return ref / reference.count, cur / current.count
    _, ref, cur = aligned_counts(reference, current)
    return ref / ref.sum(), cur / cur.sum()


def _fill_zeros(shares: np.ndarray) -> np.ndarray:
    """Evidently's guard before taking logs: empty bins get a millionth of the smallest share
    (or 1e-4 when the smallest share is larger than that)."""
    shares = shares.copy()
    smallest = shares[shares != 0].min()
    shares[shares == 0] = smallest / 10 ** 6 if smallest <= 0.0001 else 0.0001
    return shares


CHUNK = 1 << 18  # CDF steps evaluated at a time: bounds the temporaries for million-row columns


def _cdf_steps(reference: NumericSummary, current: NumericSummary):
    """Yield, chunk by chunk, both empirical CDFs at every observed value and the step widths."""
    u, v = reference.values, current.values
    both = np.concatenate([u, v])
    both.sort(kind="stable")  # two sorted runs: a merge
    u_cum = np.concatenate([[0.0], np.cumsum(reference.point_weights())])
    v_cum = np.concatenate([[0.0], np.cumsum(current.point_weights())])
    for start in range(0, both.size - 1, CHUNK):
        at = both[start:start + CHUNK + 1]
        u_cdf = u_cum[np.searchsorted(u, at[:-1], side="right")] / u_cum[-1]
        v_cdf = v_cum[np.searchsorted(v, at[:-1], side="right")] / v_cum[-1]
        yield u_cdf, v_cdf, np.diff(at)


# -- the statistics --------------------------------------------------------------------------
def wasserstein(reference: NumericSummary, current: NumericSummary) -> float:
    """First Wasserstein distance (scipy.stats.wasserstein_distance, weights honoured)."""
    return float(sum(np.dot(np.abs(u_cdf - v_cdf), widths) for u_cdf, v_cdf, widths in _cdf_steps(reference, current)))


def wasserstein_normed(reference: NumericSummary, current: NumericSummary) -> float:
    """Wasserstein distance in units of the reference's standard deviation (floored at 0.001)."""
    return wasserstein(reference, current) / max(reference.std, STD_FLOOR)


def ks_p_value(reference: NumericSummary, current: NumericSummary) -> float:
    """Two-sample Kolmogorov-Smirnov p-value: scipy's ks_2samp on exact summaries; on a
    compressed one the statistic from the weighted CDFs and the asymptotic distribution."""
    if reference.exact and current.exact:
        return float(sps.ks_2samp(reference.raw(), current.raw()).pvalue)
    d = max((float(np.max(np.abs(u_cdf - v_cdf))) for u_cdf, v_cdf, _ in _cdf_steps(reference, current)), default=0.0)
    n, m = reference.count, current.count
    return float(sps.kstwo.sf(d, np.round(n * m / (n + m))))


def jensen_shannon(reference: Summary, current: Summary) -> float:
    """Jensen-Shannon distance (natural log) between the binned shares."""
    ref, cur = binned_shares(reference, current)
    return float(distance.jensenshannon(ref, cur))


def psi(reference: Summary, current: Summary) -> float:
    """Population Stability Index over the binned shares: sum((r - c) * ln(r / c))."""
    ref, cur = binned_shares(reference, current)
    ref, cur = _fill_zeros(ref), _fill_zeros(cur)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def l_infinity(reference: Summary, current: Summary) -> float:
    """Largest absolute difference between the binned shares (TFDV's categorical drift)."""
    ref, cur = binned_shares(reference, current)
    return float(np.max(np.abs(ref - cur)))


def chi_squared_p_value(reference: Summary, current: Summary) -> float:
    """Goodness of fit of the current counts to the reference's shares (scipy.stats.chisquare).

    A category the reference never had makes the expected count 0 and the p-value 0: drift.
    """
    _, ref, cur = aligned_counts(reference, current)
    expected = ref * (cur.sum() / ref.sum())
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sps.chisquare(cur, expected).pvalue)


def z_test_p_value(reference: Summary, current: Summary) -> float:
    """Two-proportion z-test on the share of everything but the first (sorted) category."""
    keys, ref, cur = aligned_counts(reference, current)
    if len(keys) == 1:
        return 1.0
    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = (n1 - ref[0]) / n1, (n2 - cur[0]) / n2
    return _two_proportion_p_value(p1, n1, p2, n2)


def _two_proportion_p_value(p1: float, n1: float, p2: float, n2: float) -> float:
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - sps.norm.cdf(np.abs(z))))


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("ks", "K-S p-value", (NUMERIC,), 0.05, True, True, ks_p_value),
    Method("wasserstein", "Wasserstein distance (normed)", (NUMERIC,), 0.1, False, True, wasserstein_normed),
    Method("jensenshannon", "Jensen-Shannon distance", (NUMERIC, CATEGORICAL), 0.1, False, True, jensen_shannon),
    Method("psi", "PSI", (NUMERIC, CATEGORICAL), 0.1, False, True, psi),
    Method("chisquare", "chi-square p-value", (CATEGORICAL,), 0.05, True, False, chi_squared_p_value),
    Method("z", "Z-test p-value", (CATEGORICAL,), 0.05, True, False, z_test_p_value),
    Method("l_infinity", "L-infinity distance", (NUMERIC, CATEGORICAL), 0.1, False, True, l_infinity),
)}


# The methods each kind of column may name (a data contract's drift rules, a monitoring policy).
NUMERIC_METHODS = tuple(name for name, m in METHODS.items() if NUMERIC in m.kinds)
CATEGORICAL_METHODS = tuple(name for name, m in METHODS.items() if CATEGORICAL in m.kinds)


def default_method(kind: str, reference: Summary, current: Summary) -> Method:
    """Evidently's automatic choice: by reference size (non-missing), type and distinct values."""
    if isinstance(reference, NumericSummary) and isinstance(current, NumericSummary):
        distinct = reference.n_distinct() if reference.exact else FEW_VALUES + 1
        if distinct <= FEW_VALUES:  # only then does the union matter
            distinct = np.union1d(reference.distinct()[0], current.distinct()[0]).size
    else:
        distinct = len(aligned_counts(reference, current)[0])
    if reference.count <= SMALL_REFERENCE:
        if kind == NUMERIC and distinct > FEW_VALUES:
            return METHODS["ks"]
        return METHODS["chisquare"] if distinct > 2 else METHODS["z"]
    if kind == NUMERIC:
        return METHODS["wasserstein"] if distinct > FEW_VALUES else METHODS["jensenshannon"]
    return METHODS["jensenshannon"]


def missing_rate_drift(reference: Summary, current: Summary, min_change: float,
                       p_threshold: float = 0.05) -> tuple[float, float, bool]:
    """(change in the missing share, two-proportion z-test p-value, drifted).

    Drift needs both a change of at least ``min_change`` (absolute share) and
    significance: a large window makes tiny changes significant, a small one
    makes big changes noisy.
    """
    r, c = reference.missing_fraction, current.missing_fraction
    if reference.rows == 0 or current.rows == 0 or r == c:
        return c - r, 1.0, False
    p = _two_proportion_p_value(r, reference.rows, c, current.rows)
    return c - r, p, abs(c - r) >= min_change and p < p_threshold
