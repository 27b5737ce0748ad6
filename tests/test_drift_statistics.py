"""Drift statistics from column summaries, checked against independent computations on the raw values.

Every reference number here is computed in this file from the raw arrays
(scipy's ks_2samp, wasserstein_distance and jensenshannon, numpy histograms,
pandas value_counts, scipy's chisquare and normal CDF), following Evidently's
legacy stattests (0.7) definitions, never through the library's own helpers.
Also: Evidently's automatic test choice at its boundaries, compressed
summaries (error bounds derived below), profile storage, and the errors a
malformed profile or bad drift options must raise.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from mlops.errors import ConfigError, DataError
from mlops.stats import methods as st
from mlops.monitoring.drift import DriftOptions, compare, compare_frames
from mlops.stats.profile import FORMAT, Profile
from mlops.stats.summaries import CategoricalSummary, NumericSummary

TOL = 1e-9
NUMERIC_METHODS = ("ks", "wasserstein", "jensenshannon", "psi", "l_infinity", "chisquare", "z")
CATEGORICAL_METHODS = ("jensenshannon", "psi", "l_infinity", "chisquare", "z")


# -- independent reference computations on raw values ----------------------------------------------
def present(values) -> np.ndarray:
    """The values Evidently tests: NaN and +-inf dropped (an integer array is kept as it is)."""
    a = np.asarray(values)
    if a.dtype.kind in "iu":
        return a
    a = a.astype(np.float64)
    return a[np.isfinite(a)]


def present_categories(values) -> pd.Series:
    return pd.Series(values, dtype=object).dropna()


def counts_over_union(ref, cur) -> tuple[list, np.ndarray, np.ndarray]:
    rc, cc = pd.Series(ref).value_counts(), pd.Series(cur).value_counts()
    keys = sorted(set(rc.index) | set(cc.index))
    return keys, rc.reindex(keys, fill_value=0).to_numpy(float), cc.reindex(keys, fill_value=0).to_numpy(float)


def shares(ref, cur, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data: Sturges bins of both samples when the reference has more than 20
    distinct values (numeric), else shares per observed category."""
    if numeric and np.unique(ref).size > 20:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        return np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
    _, r, c = counts_over_union(ref, cur)
    return r / len(ref), c / len(cur)


def zero_filled(s: np.ndarray) -> np.ndarray:
    s = s.astype(np.float64).copy()
    smallest = s[s > 0].min()
    s[s == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return s


def two_proportion_p(x1: float, n1: float, x2: float, n2: float) -> float:
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 2 * (1 - sps.norm.cdf(abs(z)))


def expected_statistic(method: str, ref, cur, numeric: bool) -> float:
    """``ref``/``cur`` are the present values (numeric arrays or category Series)."""
    if method == "ks":
        return sps.ks_2samp(ref, cur).pvalue
    if method == "wasserstein":
        return sps.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    if method in ("jensenshannon", "psi", "l_infinity"):
        r, c = shares(ref, cur, numeric)
        if method == "jensenshannon":
            return distance.jensenshannon(r, c)
        if method == "l_infinity":
            return np.max(np.abs(r - c))
        r, c = zero_filled(r), zero_filled(c)
        return np.sum((r - c) * np.log(r / c))
    keys, r, c = counts_over_union(ref, cur)
    if method == "chisquare":
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return sps.chisquare(f_obs=c, f_exp=r * c.sum() / r.sum()).pvalue
    assert method == "z"
    if len(keys) == 1:
        return 1.0  # Evidently: one and the same category on both sides
    # Share of the first category: the two-sided test is symmetric in which share is tested.
    return two_proportion_p(r[0], r.sum(), c[0], c.sum())


def assert_close(actual: float, expected: float, what: str, tol: float = TOL) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), f"{what}: {actual!r}, expected NaN"
    else:
        assert abs(actual - expected) <= tol * max(1.0, abs(expected)), f"{what}: {actual!r} != {expected!r}"


# -- seeded inputs ------------------------------------------------------------------------------------
def sprinkle_missing(rng, values, share):
    out = np.asarray(values, dtype=np.float64).copy()
    where = rng.random(out.size) < share
    out[where] = rng.choice([np.nan, np.inf, -np.inf], where.sum())
    return out


NUMERIC_CASES = {
    "normal-unequal-sizes": lambda g: (g.normal(0, 1, 3_000), g.normal(0.15, 1.2, 1_700)),
    "missing-and-infinities": lambda g: (sprinkle_missing(g, g.lognormal(10, 1, 4_000), 0.05),
                                         sprinkle_missing(g, g.lognormal(10.1, 1, 2_500), 0.2)),
    "ties-rounded": lambda g: (np.round(g.normal(50, 10, 5_000)), np.round(g.normal(51, 10, 3_000))),
    "integers-binned": lambda g: (g.integers(0, 100, 2_000), g.integers(5, 110, 1_500)),
    "integers-few-values": lambda g: (g.poisson(2.0, 800), g.poisson(2.4, 600)),
    "small-samples": lambda g: (g.normal(0, 1, 40), g.normal(0.5, 1, 25)),
    "current-outside-reference-range": lambda g: (g.uniform(0, 1, 1_000), g.uniform(2, 3, 500)),
    "constant-reference": lambda g: (np.full(500, 3.0), g.normal(3, 1, 400)),
    "both-constant-same-value": lambda g: (np.full(600, 3.0), np.full(200, 3.0)),
    "both-constant-different-values": lambda g: (np.full(600, 3.0), np.full(200, 4.0)),
    "exactly-20-distinct": lambda g: (g.choice(np.arange(20) * 1.5, 3_000), g.choice(np.arange(25) * 1.5, 1_000)),
    "exactly-21-distinct": lambda g: (g.choice(np.arange(21) * 1.5, 3_000), g.choice(np.arange(25) * 1.5, 1_000)),
    "heavy-tail-with-zeros": lambda g: (np.where(g.random(2_000) < 0.3, 0.0, g.pareto(1.5, 2_000)),
                                        np.where(g.random(1_000) < 0.4, 0.0, g.pareto(1.5, 1_000))),
}


def category_draws(g, names, n, p, missing=0.0):
    out = g.choice(np.array(list(names), dtype=object), n, p=p).astype(object)
    where = g.random(n) < missing
    out[where] = np.where(g.random(where.sum()) < 0.5, None, np.nan)
    return out


CATEGORICAL_CASES = {
    "shifted-shares": lambda g: (category_draws(g, "abc", 3_000, [.5, .3, .2]),
                                 category_draws(g, "abc", 2_000, [.4, .3, .3])),
    "new-category-in-current": lambda g: (category_draws(g, "abc", 3_000, [.5, .3, .2]),
                                          category_draws(g, "abcd", 1_000, [.4, .3, .2, .1])),
    "category-gone-from-current": lambda g: (category_draws(g, "abcd", 3_000, [.4, .3, .2, .1]),
                                             category_draws(g, "abc", 1_000, [.5, .3, .2])),
    "missing-values": lambda g: (category_draws(g, "abc", 3_000, [.5, .3, .2], 0.05),
                                 category_draws(g, "abc", 900, [.5, .3, .2], 0.3)),
    "two-categories": lambda g: (category_draws(g, ["no", "yes"], 2_000, [.8, .2]),
                                 category_draws(g, ["no", "yes"], 700, [.75, .25])),
    "one-category-both": lambda g: (np.array(["x"] * 300, dtype=object), np.array(["x"] * 50, dtype=object)),
    "many-categories-unequal-sizes": lambda g: (
        category_draws(g, [f"c{i:02d}" for i in range(40)], 5_000, np.arange(1, 41) / np.arange(1, 41).sum()),
        category_draws(g, [f"c{i:02d}" for i in range(40)], 700, np.arange(40, 0, -1) / np.arange(1, 41).sum())),
}


# -- 1. every statistic equals the raw-data computation -----------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", sorted(NUMERIC_CASES))
def test_numeric_statistics_equal_the_raw_data_computation(case, seed):
    ref_raw, cur_raw = NUMERIC_CASES[case](np.random.default_rng(seed))
    ref, cur = NumericSummary.of(ref_raw, max_points=None), NumericSummary.of(cur_raw, max_points=None)
    r, c = present(ref_raw), present(cur_raw)
    assert (ref.count, ref.missing, cur.count, cur.missing) == (r.size, ref_raw.size - r.size,
                                                                c.size, cur_raw.size - c.size)
    for name in NUMERIC_METHODS:
        assert_close(st.METHODS[name].compute(ref, cur), expected_statistic(name, r, c, numeric=True),
                     f"{case} seed {seed}: {name}")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", sorted(CATEGORICAL_CASES))
def test_categorical_statistics_equal_the_raw_data_computation(case, seed):
    ref_raw, cur_raw = CATEGORICAL_CASES[case](np.random.default_rng(seed))
    ref, cur = CategoricalSummary.of(ref_raw), CategoricalSummary.of(cur_raw)
    r, c = present_categories(ref_raw), present_categories(cur_raw)
    assert (ref.count, ref.missing, cur.count, cur.missing) == (len(r), len(ref_raw) - len(r),
                                                                len(c), len(cur_raw) - len(c))
    for name in CATEGORICAL_METHODS:
        assert_close(st.METHODS[name].compute(ref, cur), expected_statistic(name, r, c, numeric=False),
                     f"{case} seed {seed}: {name}")


def test_known_values_of_the_extreme_cases():
    """Sanity anchors that need no scipy: disjoint categories, a new category, identical samples."""
    a, b = CategoricalSummary.of(["a"] * 10), CategoricalSummary.of(["b"] * 10)
    assert st.jensen_shannon(a, b) == pytest.approx(math.sqrt(math.log(2)), abs=1e-12)
    assert st.l_infinity(a, b) == 1.0
    # PSI with both empty shares filled with 1e-4: 2 * (1 - 1e-4) * ln(1e4)
    assert st.psi(a, b) == pytest.approx(2 * (1 - 1e-4) * math.log(1e4), rel=1e-12)
    assert st.chi_squared_p_value(CategoricalSummary.of(list("aab")), CategoricalSummary.of(list("aabc"))) == 0.0
    same = NumericSummary.of(np.arange(100.0))
    for name in ("wasserstein", "jensenshannon", "psi", "l_infinity"):
        assert st.METHODS[name].compute(same, same) == pytest.approx(0.0, abs=1e-12), name
    assert st.ks_p_value(same, same) == 1.0


def test_end_to_end_through_frames_with_missing_values_and_infinities():
    """compare_frames (Profile.of_frame + compare) reports the same numbers and verdicts as the raw computation."""
    g = np.random.default_rng(11)
    ref = pd.DataFrame({"x": sprinkle_missing(g, g.gamma(2.0, 3.0, 4_000), 0.04),
                        "n": g.poisson(6, 4_000).astype("int64"),
                        "c": category_draws(g, "pqrs", 4_000, [.4, .3, .2, .1], 0.02)})
    cur = pd.DataFrame({"x": sprinkle_missing(g, g.gamma(2.2, 3.0, 1_500), 0.10),
                        "n": g.poisson(6.5, 1_500).astype("int64"),
                        "c": category_draws(g, "pqrst", 1_500, [.35, .3, .2, .1, .05], 0.02)})
    kinds = {"x": "numeric", "n": "numeric", "c": "categorical"}
    for numeric_method, categorical_method in [("ks", "chisquare"), ("wasserstein", "jensenshannon"),
                                               ("psi", "psi"), ("l_infinity", "l_infinity")]:
        report = compare_frames(ref, cur, kinds, DriftOptions(numeric_method=numeric_method,
                                                              categorical_method=categorical_method))
        for col, method in (("x", numeric_method), ("n", numeric_method), ("c", categorical_method)):
            numeric = kinds[col] == "numeric"
            r = present(ref[col]) if numeric else present_categories(ref[col])
            c = present(cur[col]) if numeric else present_categories(cur[col])
            got = report.column(col)
            expected = expected_statistic(method, r, c, numeric)
            assert got.method == method
            assert_close(got.value, expected, f"{col} {method}")
            m = st.METHODS[method]
            verdict = (expected <= m.threshold if m.inclusive else expected < m.threshold) if m.is_p_value \
                else expected >= m.threshold
            assert got.drifted is bool(verdict) and got.threshold == m.threshold


def test_verdict_directions_at_the_thresholds():
    """Evidently's comparisons: ks p <= t, chi-square/z p < t, distances >= t; NaN is never drift."""
    m = st.METHODS
    assert m["ks"].drifted(0.05) and not m["ks"].drifted(0.0500001)
    assert not m["chisquare"].drifted(0.05) and m["chisquare"].drifted(0.0499999)
    assert not m["z"].drifted(0.05) and m["z"].drifted(0.0499999)
    for name in ("wasserstein", "jensenshannon", "psi", "l_infinity"):
        assert m[name].drifted(0.1) and not m[name].drifted(0.0999999), name
        assert m[name].drifted(0.2, threshold=0.2) and not m[name].drifted(0.2, threshold=0.3), name
    assert not any(m[name].drifted(float("nan")) for name in m)


def test_wasserstein_norm_is_the_population_std_floored_at_a_thousandth():
    ref = NumericSummary.of(np.array([1.0, 1.0, 1.0, 1.0005]))  # population std ~2.2e-4 < 0.001
    cur = NumericSummary.of(np.array([2.0, 2.0]))
    assert ref.std == pytest.approx(np.std([1.0, 1.0, 1.0, 1.0005]), rel=1e-12)
    raw = sps.wasserstein_distance([1.0, 1.0, 1.0, 1.0005], [2.0, 2.0])
    assert st.wasserstein_normed(ref, cur) == pytest.approx(raw / 0.001, rel=1e-12)
    wide = np.random.default_rng(5).normal(0, 3, 500)
    assert st.wasserstein_normed(NumericSummary.of(wide), cur) == pytest.approx(
        sps.wasserstein_distance(wide, [2.0, 2.0]) / np.std(wide, ddof=0), rel=1e-12)


@pytest.mark.parametrize("ref_missing, cur_missing, ref_rows, cur_rows, drifted", [
    (0.02, 0.04, 100_000, 100_000, False),  # significant but smaller than 0.05: not drift
    (0.00, 0.10, 20, 10, False),  # 0.1 change but not significant on 30 rows
    (0.03, 0.20, 1_000, 500, True),
    (0.10, 0.02, 5_000, 2_000, True),  # fewer missing values than usual is a change too
])
def test_missing_rate_drift_needs_both_size_and_significance(ref_missing, cur_missing, ref_rows, cur_rows, drifted):
    ref_raw = np.arange(ref_rows, dtype=np.float64)
    cur_raw = np.arange(cur_rows, dtype=np.float64)
    ref_raw[:round(ref_missing * ref_rows)] = np.nan
    cur_raw[:round(cur_missing * cur_rows)] = np.inf  # infinities count as missing, like NaN
    x1, x2 = round(ref_missing * ref_rows), round(cur_missing * cur_rows)
    for make in (lambda a: NumericSummary.of(a), lambda a: CategoricalSummary.of(
            pd.Series(np.where(np.isfinite(a), "v", None), dtype=object))):
        change, p, verdict = st.missing_rate_drift(make(ref_raw), make(cur_raw), 0.05)
        assert change == pytest.approx(x2 / cur_rows - x1 / ref_rows, abs=1e-15)
        assert_close(p, two_proportion_p(x1, ref_rows, x2, cur_rows), "missing-rate p")
        assert verdict is drifted


def test_unchanged_missing_rate_is_not_drift():
    a = NumericSummary.of(np.r_[np.full(10, np.nan), np.arange(90.0)])
    assert st.missing_rate_drift(a, a, 0.05) == (0.0, 1.0, False)


# -- merged partitions are the summary of the whole ---------------------------------------------------
def assert_same_summary(merged: NumericSummary, whole: NumericSummary, raw: np.ndarray) -> None:
    p = present(raw)
    assert merged.exact and whole.exact
    assert (merged.count, merged.missing) == (whole.count, whole.missing) == (p.size, raw.size - p.size)
    assert merged.mean == pytest.approx(np.mean(p), rel=1e-12, abs=1e-12)
    assert merged.std == pytest.approx(np.std(p), rel=1e-12)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-12)
    assert (merged.minimum, merged.maximum) == (p.min(), p.max())
    assert merged.integer is whole.integer
    assert merged.n_distinct() == whole.n_distinct() == np.unique(p).size
    np.testing.assert_array_equal(merged.raw(), np.sort(p))


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_merge_of_partitions_equals_the_summary_of_the_concatenation(seed):
    g = np.random.default_rng(seed)
    raw = sprinkle_missing(g, np.round(g.lognormal(3, 0.8, 9_000), 2), 0.03)
    cur_raw = sprinkle_missing(g, np.round(g.lognormal(3.05, 0.8, 2_000), 2), 0.03)
    cuts = np.sort(g.choice(np.arange(1, raw.size), 3, replace=False))
    parts = [NumericSummary.of(p, max_points=None) for p in np.split(raw, cuts)]
    parts.append(NumericSummary.of(np.full(50, np.nan), max_points=None))  # an all-missing partition
    parts.append(NumericSummary.of(np.array([], dtype=np.float64), max_points=None))  # an empty one
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, max_points=None)
    raw = np.concatenate([raw, np.full(50, np.nan)])
    whole = NumericSummary.of(raw, max_points=None)
    assert_same_summary(merged, whole, raw)
    cur = NumericSummary.of(cur_raw, max_points=None)
    for name in NUMERIC_METHODS:
        expected = expected_statistic(name, present(raw), present(cur_raw), numeric=True)
        assert_close(st.METHODS[name].compute(merged, cur), expected, f"merged {name}")
        assert_close(st.METHODS[name].compute(whole, cur), expected, f"whole {name}")
    assert st.missing_rate_drift(merged, cur, 0.05) == st.missing_rate_drift(whole, cur, 0.05)


def test_merge_beyond_max_points_with_few_distinct_values_stays_exact():
    """30,000 integers with 51 distinct values exceed max_points=1,000 in points but not in distinct
    values: the summary keeps value counts and stays exact (KS equals scipy's on the raw values)."""
    g = np.random.default_rng(4)
    raw = g.binomial(50, 0.3, 30_000).astype(np.int64)
    cur_raw = g.binomial(50, 0.31, 3_000).astype(np.int64)
    merged = NumericSummary.of(raw[:10_000], max_points=1_000)
    for part in (raw[10_000:20_000], raw[20_000:]):
        merged = merged.merge(NumericSummary.of(part, max_points=1_000), max_points=1_000)
    assert merged.exact and merged.values.size <= 1_000 and merged.integer
    assert_same_summary(merged, NumericSummary.of(raw, max_points=None), raw)
    cur = NumericSummary.of(cur_raw, max_points=None)
    for name in NUMERIC_METHODS:
        assert_close(st.METHODS[name].compute(merged, cur), expected_statistic(name, raw, cur_raw, True), name)


def test_categorical_merge_adds_counts_and_missing():
    g = np.random.default_rng(9)
    raw = category_draws(g, "abcde", 5_000, [.3, .3, .2, .1, .1], 0.05)
    parts = [CategoricalSummary.of(p) for p in np.split(raw, [1_000, 1_001, 3_500])]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    whole = CategoricalSummary.of(raw)
    assert merged.counts == whole.counts and merged.missing == whole.missing == int(pd.isna(raw).sum())
    assert parts[0].counts == CategoricalSummary.of(raw[:1_000]).counts  # merging left the parts untouched


def test_profile_merge_of_partitions_gives_the_same_report_as_the_whole():
    g = np.random.default_rng(21)
    df = pd.DataFrame({"x": sprinkle_missing(g, g.normal(0, 1, 6_000), 0.02), "k": g.integers(0, 4, 6_000),
                       "c": category_draws(g, "abc", 6_000, [.6, .3, .1], 0.01)})
    cur = df.iloc[:1_500].assign(x=lambda d: d.x + 0.1)
    kinds = {"x": "numeric", "k": "numeric", "c": "categorical"}
    parts = [Profile.of_frame(df.iloc[i:i + 2_000], kinds) for i in range(0, 6_000, 2_000)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    whole = Profile.of_frame(df, kinds)
    current = Profile.of_frame(cur, kinds)
    a, b = compare(merged, current), compare(whole, current)
    for x, y in zip(a.features, b.features, strict=True):
        assert_close(x.value, y.value, x.column, tol=1e-12)
        assert (x.column, x.method, x.drifted, x.reference_rows, x.reference_missing, x.missing_p_value) == \
               (y.column, y.method, y.drifted, y.reference_rows, y.reference_missing, y.missing_p_value)
    assert a.dataset_drift == b.dataset_drift and a.drifted_features == b.drifted_features == ["x"]


# -- 2. Evidently's automatic test choice ----------------------------------------------------------------
def numeric_summary(n_present: int, distinct: int, start: float = 0.0, missing: int = 0) -> NumericSummary:
    values = (np.arange(n_present) % distinct + start).astype(np.float64)
    return NumericSummary.of(np.r_[values, np.full(missing, np.nan)], max_points=None)


def categorical_summary(n_present: int, names: str, missing: int = 0) -> CategoricalSummary:
    return CategoricalSummary.of([names[i % len(names)] for i in range(n_present)] + [None] * missing)


def choice(case_id: str, ref, cur, expected: str):
    return pytest.param(ref, cur, expected, id=f"{case_id}->{expected}")


def normal_values(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=n)


@pytest.mark.parametrize("ref, cur, expected", [
    # n <= 1000, numeric: ks above 5 distinct values (reference and current together), else chisquare / z
    choice("num-n1000-k6", numeric_summary(1_000, 6), numeric_summary(300, 6), "ks"),
    choice("num-n1000-k5", numeric_summary(1_000, 5), numeric_summary(300, 5), "chisquare"),
    choice("num-n1000-k3", numeric_summary(1_000, 3), numeric_summary(300, 3), "chisquare"),
    choice("num-n1000-k2", numeric_summary(1_000, 2), numeric_summary(300, 2), "z"),
    choice("num-n1000-k1", numeric_summary(1_000, 1), numeric_summary(300, 1), "z"),
    choice("num-n1000-ref4+cur2new", numeric_summary(1_000, 4), numeric_summary(300, 2, start=10), "ks"),
    choice("num-n1000-ref2+cur1new", numeric_summary(1_000, 2), numeric_summary(300, 1, start=10), "chisquare"),
    choice("num-n1000-ref5-union6", numeric_summary(1_000, 5), numeric_summary(300, 5, start=1), "ks"),
    # n counts present reference values only: 1,000 of 1,001 rows (NaN) or of 1,002 rows (+-inf)
    choice("num-1001rows-1nan", numeric_summary(1_000, 6, missing=1), numeric_summary(300, 6), "ks"),
    choice("num-1002rows-2inf", NumericSummary.of(np.r_[np.arange(1_000) % 6, np.inf, -np.inf], max_points=None),
           numeric_summary(300, 6), "ks"),
    # n > 1000, numeric: wasserstein above 5 distinct values, else jensenshannon
    choice("num-n1001-k6", numeric_summary(1_001, 6), numeric_summary(300, 6), "wasserstein"),
    choice("num-n1001-k5", numeric_summary(1_001, 5), numeric_summary(300, 5), "jensenshannon"),
    choice("num-n1001-k2", numeric_summary(1_001, 2), numeric_summary(300, 2), "jensenshannon"),
    choice("num-n1001-ref4+cur2new", numeric_summary(1_001, 4), numeric_summary(300, 2, start=10), "wasserstein"),
    # categorical: n <= 1000 -> chisquare above 2 categories, z for 1 or 2; n > 1000 -> jensenshannon
    choice("cat-n1000-k3", categorical_summary(1_000, "abc"), categorical_summary(300, "abc"), "chisquare"),
    choice("cat-n1000-k2", categorical_summary(1_000, "ab"), categorical_summary(300, "ab"), "z"),
    choice("cat-n1000-k1", categorical_summary(1_000, "a"), categorical_summary(300, "a"), "z"),
    choice("cat-n1000-disjoint-union2", categorical_summary(1_000, "a"), categorical_summary(300, "b"), "z"),
    choice("cat-n1000-new-category", categorical_summary(1_000, "ab"), categorical_summary(300, "abc"), "chisquare"),
    choice("cat-1001rows-1none", categorical_summary(1_000, "ab", missing=1), categorical_summary(300, "ab"), "z"),
    choice("cat-n1001-k2", categorical_summary(1_001, "ab"), categorical_summary(300, "ab"), "jensenshannon"),
    choice("cat-n1001-k10", categorical_summary(1_001, "abcdefghij"), categorical_summary(300, "ab"),
           "jensenshannon"),
    # a compressed reference (it has more distinct values than max_points): by size alone
    choice("compressed-n1000", NumericSummary.of(normal_values(1_000), max_points=100), numeric_summary(300, 6), "ks"),
    choice("compressed-n1001", NumericSummary.of(normal_values(1_001), max_points=100), numeric_summary(300, 6),
           "wasserstein"),
])
def test_default_method_follows_evidentlys_rule_at_its_boundaries(ref, cur, expected):
    kind = "numeric" if isinstance(ref, NumericSummary) else "categorical"
    assert st.default_method(kind, ref, cur).name == expected
    assert compare(Profile({"col": ref}), Profile({"col": cur})).column("col").method == expected


@pytest.mark.parametrize("ref_distinct, binned", [(20, False), (21, True)])
def test_numeric_columns_are_binned_above_20_distinct_reference_values(ref_distinct, binned):
    g = np.random.default_rng(1)
    ref_raw = g.choice(np.arange(ref_distinct) * 0.5, 3_000)
    cur_raw = g.choice(np.arange(30) * 0.5, 2_000)  # the current's distinct values do not matter
    r, c = st.binned_shares(NumericSummary.of(ref_raw), NumericSummary.of(cur_raw))
    edges = np.histogram_bin_edges(np.concatenate([ref_raw, cur_raw]), bins="sturges")
    assert r.size == c.size == (edges.size - 1 if binned else 30)
    exp_r, exp_c = shares(ref_raw, cur_raw, numeric=True)
    np.testing.assert_allclose(r, exp_r, rtol=0, atol=1e-15)
    np.testing.assert_allclose(c, exp_c, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_sturges_bins_follow_numpys_integer_rule(dtype):
    """numpy widens Sturges bins narrower than 1 to 1 for integer arrays (only): with values 0..20 and
    600,000 rows the width is 20 / (log2(600,000) + 1) = 0.99, so integers get 20 bins, floats 21."""
    g = np.random.default_rng(2)
    ref_raw = g.integers(0, 21, 500_000).astype(dtype)
    cur_raw = g.integers(0, 21, 100_000).astype(dtype)
    r, c = st.binned_shares(NumericSummary.of(ref_raw), NumericSummary.of(cur_raw))
    exp_r, exp_c = shares(ref_raw, cur_raw, numeric=True)
    assert r.size == exp_r.size == (20 if dtype is np.int64 else 21)
    np.testing.assert_allclose(r, exp_r, rtol=0, atol=1e-15)
    np.testing.assert_allclose(c, exp_c, rtol=0, atol=1e-15)


# -- 3. compressed summaries --------------------------------------------------------------------------
POINTS = 200


@pytest.fixture(scope="module")
def large():
    """50,000-value samples: a reference, one from the same distribution, one shifted by 0.2 sd."""
    g = np.random.default_rng(3)
    ref = g.normal(100, 15, 50_000)
    ref_with_missing = sprinkle_missing(g, ref, 0.01)
    return {"ref": ref_with_missing, "same": g.normal(100, 15, 50_000), "shifted": g.normal(103, 15, 50_000)}


def compression_error_w(raw: np.ndarray, summary: NumericSummary) -> float:
    """W1 between the raw values and the summary's weighted points (scipy)."""
    return sps.wasserstein_distance(raw, summary.values, v_weights=summary.weights)


def test_compressed_summary_keeps_moments_extremes_and_counts_exactly(large):
    raw = large["ref"]
    p = present(raw)
    s = NumericSummary.of(raw, max_points=POINTS)
    assert not s.exact and s.values.size == POINTS
    assert (s.count, s.missing) == (p.size, raw.size - p.size)
    assert s.weights.sum() == pytest.approx(p.size, rel=1e-12)
    np.testing.assert_allclose(s.weights, p.size / POINTS, rtol=1e-9)  # equal mass
    assert s.mean == pytest.approx(np.mean(p), rel=1e-14)
    assert s.std == pytest.approx(np.std(p), rel=1e-12)
    assert (s.minimum, s.maximum) == (p.min(), p.max())
    # the points themselves: sorted slice means, which keep the mean
    assert np.all(np.diff(s.values) >= 0)
    assert np.dot(s.values, s.weights) / s.weights.sum() == pytest.approx(np.mean(p), rel=1e-12)
    with pytest.raises(ValueError, match="compressed"):
        s.raw()


@pytest.mark.parametrize("current", ["same", "shifted"])
def test_compressed_wasserstein_is_within_the_compression_error(large, current):
    """|W(Rc, C) - W(R, C)| <= W(R, Rc) by the triangle inequality, and W(R, Rc) <= (max - min) / points
    (within a slice of mass 1/points the two CDFs differ by at most 1/points, and the slices tile the range).
    Measured: the error is ~0.004 sd with 200 points (~0.0002 with 2,000), far below the 0.1 threshold."""
    r, c = present(large["ref"]), large[current]
    sd = np.std(r)
    truth = sps.wasserstein_distance(r, c) / sd
    ref_c = NumericSummary.of(large["ref"], max_points=POINTS)
    cur_c = NumericSummary.of(c, max_points=POINTS)
    bound_ref = compression_error_w(r, ref_c) / sd
    bound_cur = compression_error_w(c, cur_c) / sd
    assert bound_ref <= (r.max() - r.min()) / POINTS / sd
    assert bound_ref < 0.01 and bound_cur < 0.01
    exact_cur = NumericSummary.of(c, max_points=None)
    assert abs(st.wasserstein_normed(ref_c, exact_cur) - truth) <= bound_ref + 1e-12
    assert abs(st.wasserstein_normed(ref_c, cur_c) - truth) <= bound_ref + bound_cur + 1e-12
    assert st.METHODS["wasserstein"].drifted(st.wasserstein_normed(ref_c, cur_c)) is (current == "shifted")


@pytest.mark.parametrize("current", ["same", "shifted"])
def test_compressed_ks_is_within_one_slice_of_the_exact_statistic(large, current):
    """A compressed CDF is off by at most one slice's mass (1/points), so the KS statistic moves by at
    most 1/points per compressed side; the p-value is scipy's asymptotic one for that statistic."""
    r, c = present(large["ref"]), large[current]
    exact = sps.ks_2samp(r, c, method="asymp")
    en = round(r.size * c.size / (r.size + c.size))
    for points in (POINTS, 2_000):
        ref_c = NumericSummary.of(large["ref"], max_points=points)
        p = st.ks_p_value(ref_c, NumericSummary.of(c, max_points=None))
        slack = 1 / points + 1e-9
        assert sps.kstwo.sf(exact.statistic + slack, en) <= p <= sps.kstwo.sf(max(exact.statistic - slack, 0), en)
        if current == "shifted":
            assert p < 1e-100
    # with 2,000 points the verdict is the exact one both ways
    p2000 = st.ks_p_value(NumericSummary.of(large["ref"], max_points=2_000), NumericSummary.of(c, max_points=None))
    assert bool(p2000 <= 0.05) is bool(exact.pvalue <= 0.05)


@pytest.mark.parametrize("current", ["same", "shifted"])
def test_compressed_binned_statistics_are_within_their_bounds(large, current):
    """Bins come from the exact extremes and counts. Each bin's share moves by at most 2/points (one slice
    at each edge), so L-infinity moves by at most that; Jensen-Shannon is a metric, so it moves by at
    most the JS distance between the raw and the compressed reference histograms (computed here)."""
    r, c = present(large["ref"]), large[current]
    ref_c = NumericSummary.of(large["ref"], max_points=POINTS)
    cur = NumericSummary.of(c, max_points=None)
    edges = np.histogram_bin_edges(np.concatenate([r, c]), bins="sturges")
    raw_r, raw_c = np.histogram(r, edges)[0] / r.size, np.histogram(c, edges)[0] / c.size
    comp_r = np.histogram(ref_c.values, edges, weights=ref_c.weights)[0] / ref_c.count
    assert np.max(np.abs(comp_r - raw_r)) <= 2 / POINTS + 1e-12
    lib_r, lib_c = st.binned_shares(ref_c, cur)
    np.testing.assert_allclose(lib_r, comp_r, atol=1e-15)
    np.testing.assert_allclose(lib_c, raw_c, atol=1e-15)
    assert abs(st.l_infinity(ref_c, cur) - np.max(np.abs(raw_r - raw_c))) <= 2 / POINTS + 1e-12
    js_bound = distance.jensenshannon(raw_r, comp_r)
    assert abs(st.jensen_shannon(ref_c, cur) - distance.jensenshannon(raw_r, raw_c)) <= js_bound + 1e-12


def test_merge_of_compressed_summaries_stays_close(large):
    raw = large["ref"]
    p = present(raw)
    halves = [NumericSummary.of(h, max_points=POINTS) for h in np.array_split(raw, 2)]
    merged = halves[0].merge(halves[1], max_points=POINTS)
    whole = NumericSummary.of(raw, max_points=POINTS)
    assert not merged.exact and merged.values.size == POINTS
    assert (merged.count, merged.missing) == (whole.count, whole.missing)
    assert merged.mean == pytest.approx(np.mean(p), rel=1e-13)
    assert merged.std == pytest.approx(np.std(p), rel=1e-12)
    assert (merged.minimum, merged.maximum) == (p.min(), p.max())
    sd = np.std(p)
    error = compression_error_w(p, merged) / sd
    assert error < 0.01  # measured 0.0085 sd, the same as compressing the whole at once
    for current in ("same", "shifted"):
        cur = NumericSummary.of(large[current], max_points=None)
        truth = sps.wasserstein_distance(p, large[current]) / sd
        assert abs(st.wasserstein_normed(merged, cur) - truth) <= error + 1e-12
        assert abs(st.wasserstein_normed(merged, cur) - st.wasserstein_normed(whole, cur)) <= 0.01


def test_profile_json_round_trip_is_bit_exact(large, tmp_path):
    g = np.random.default_rng(8)
    n = large["ref"].size
    df = pd.DataFrame({"big": large["ref"], "ints": g.integers(0, 9, n), "cat": category_draws(g, "xyz", n, None, 0.01),
                       "empty": np.full(n, np.nan), "small": np.r_[g.normal(size=100), np.full(n - 100, np.nan)]})
    kinds = {"big": "numeric", "ints": "numeric", "cat": "categorical", "empty": "numeric", "small": "numeric"}
    profile = Profile.of_frame(df, kinds, outputs={"probability": g.random(n)}, metadata={"model": "m", "rows": n},
                               max_points=POINTS)
    loaded = Profile.load(profile.save(tmp_path / "nested" / "profile.json"))
    assert json.dumps(loaded.to_json(), sort_keys=True) == json.dumps(profile.to_json(), sort_keys=True)
    assert loaded.metadata == {"model": "m", "rows": n}
    for name in ("big", "small", "ints"):
        a, b = profile.features[name], loaded.features[name]
        assert (a.exact, a.integer, a.count, a.missing, a.mean, a.m2, a.minimum, a.maximum) == \
               (b.exact, b.integer, b.count, b.missing, b.mean, b.m2, b.minimum, b.maximum)
        np.testing.assert_array_equal(a.distinct()[0], b.distinct()[0])
        np.testing.assert_array_equal(a.distinct()[1], b.distinct()[1])
    assert math.isnan(loaded.features["empty"].mean) and loaded.features["empty"].missing == n
    assert loaded.features["cat"].counts == profile.features["cat"].counts
    current = Profile.of_frame(df.iloc[::7], kinds, outputs={"probability": g.random(n // 7)})
    assert compare(loaded, current).to_json() == compare(profile, current).to_json()


# -- 4. boundary errors ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_profile() -> Profile:
    g = np.random.default_rng(0)
    df = pd.DataFrame({"income": g.lognormal(10, 0.5, 500), "age": g.integers(18, 80, 500),
                       "loan_purpose": category_draws(g, "abc", 500, [.5, .3, .2])})
    return Profile.of_frame(df, {"income": "numeric", "age": "numeric", "loan_purpose": "categorical"},
                            outputs={"probability": g.random(500)})


def write(tmp_path, content, name="profile.json"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_missing_profile_file_is_a_data_error_naming_the_path(tmp_path):
    with pytest.raises(DataError, match="cannot read reference profile .*absent.json"):
        Profile.load(tmp_path / "absent.json")


def test_truncated_json_is_a_data_error(tmp_path, small_profile):
    path = write(tmp_path, json.dumps(small_profile.to_json())[:200])
    with pytest.raises(DataError, match="is not JSON"):
        Profile.load(path)


def test_binary_file_is_a_data_error(tmp_path):
    """A Parquet (or gzip) file given as the profile: undecodable bytes must be a DataError, not a
    UnicodeDecodeError traceback."""
    path = write(tmp_path, b"PAR1\x15\x04\x15\xff\xfe\x00\x00\x1c\x8b", "profile.parquet")
    with pytest.raises(DataError, match="profile.parquet"):
        Profile.load(path)


@pytest.mark.parametrize("doc, found", [
    ({"format": "evidently-snapshot/2", "features": {}}, "evidently-snapshot/2"),
    ({"features": {}}, "None"),
    ([1, 2, 3], "list"),
    ("a string", "str"),
])
def test_wrong_format_tag_is_a_data_error_naming_both_formats(tmp_path, doc, found):
    path = write(tmp_path, json.dumps(doc))
    with pytest.raises(DataError, match=f"not a reference profile.*{found}.*{FORMAT}"):
        Profile.load(path)


def test_profile_without_features_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no features"):
        Profile.load(write(tmp_path, json.dumps({"format": FORMAT, "features": {}})))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["features"]["income"].pop("count"), "count"),
    (lambda d: d["features"]["income"].update(kind="histogram"), "histogram"),
    (lambda d: d["features"]["income"].update(values_f64="not base64!"), "features.income"),
    (lambda d: d["features"]["income"].update(values_f64=d["features"]["age"]["values_f64"]), "equally long"),
    (lambda d: d["features"]["loan_purpose"].update(counts={"a": -1}), "non-negative"),
    (lambda d: d["features"]["loan_purpose"].update(counts={"a": "3"}), "non-negative integers"),
    (lambda d: d["outputs"]["probability"].pop("weights_f64"), "outputs.probability"),
], ids=["no-count", "unknown-kind", "bad-base64", "values-weights-lengths", "negative-count", "string-count",
        "output-without-weights"])
def test_malformed_summary_is_a_data_error_naming_the_column(tmp_path, small_profile, change, message):
    doc = small_profile.to_json()
    change(doc)
    with pytest.raises(DataError, match=message):
        Profile.load(write(tmp_path, json.dumps(doc)))


def test_unsorted_values_or_negative_weights_are_data_errors(tmp_path, small_profile):
    import base64

    def enc(a):
        return base64.b64encode(np.asarray(a, "<f8").tobytes()).decode()

    for values, weights in (([3.0, 1.0], [1.0, 1.0]), ([1.0, 3.0], [1.0, -1.0])):
        doc = small_profile.to_json()
        doc["features"]["income"].update(values_f64=enc(values), weights_f64=enc(weights), count=2)
        with pytest.raises(DataError, match="features.income.*sorted"):
            Profile.load(write(tmp_path, json.dumps(doc)))


@pytest.mark.parametrize("change, names", [
    (lambda d: d.update(features=[d["features"]["income"]]), "features"),  # a list, not an object
    (lambda d: d["features"].update(income=5), "income"),  # a summary that is not an object
    (lambda d: d["features"].update(income="numeric"), "income"),
    (lambda d: d.update(outputs=["probability"]), "outputs"),
], ids=["features-list", "summary-int", "summary-string", "outputs-list"])
def test_wrongly_shaped_profile_is_a_data_error(tmp_path, small_profile, change, names):
    """Hand-edited or foreign JSON of the right format tag but the wrong shape must be a DataError
    naming the part, not an AttributeError from deep inside the loader."""
    doc = small_profile.to_json()
    change(doc)
    with pytest.raises(DataError, match=names):
        Profile.load(write(tmp_path, json.dumps(doc)))


@pytest.mark.parametrize("part, change", [
    ("loan_purpose", {"missing": -4}),
    ("income", {"missing": -1}),
    ("income", {"count": 5}),  # 500 values (weights summing to 500) but a count of 5
], ids=["categorical-negative-missing", "numeric-negative-missing", "count-disagrees-with-weights"])
def test_inconsistent_counts_in_a_profile_are_data_errors(tmp_path, small_profile, part, change):
    """A negative missing count or a count that disagrees with the stored weights would silently skew
    every share (binned shares divide by ``count``), the missing rate and the test choice."""
    doc = small_profile.to_json()
    doc["features"][part].update(change)
    with pytest.raises(DataError, match=part):
        Profile.load(write(tmp_path, json.dumps(doc)))


def test_profiling_a_frame_names_missing_columns_and_non_numeric_values():
    df = pd.DataFrame({"income": ["52k", "61k"], "age": [30, 40]})
    with pytest.raises(DataError, match=r"\['region'\].*missing"):
        Profile.of_frame(df, {"age": "numeric", "region": "categorical"}, source="training data")
    with pytest.raises(DataError, match="training data: column 'income' should be numeric but holds object"):
        Profile.of_frame(df, {"income": "numeric"}, source="training data")
    # an all-missing numeric column is fine (it is profiled as missing values only)
    empty = Profile.of_frame(pd.DataFrame({"x": [None, None]}, dtype=object), {"x": "numeric"})
    assert (empty.features["x"].count, empty.features["x"].missing) == (0, 2)


def test_unknown_column_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="'age'.*'float'"):
        Profile.of_frame(pd.DataFrame({"age": [1, 2]}), {"age": "float"})


def test_current_window_problems_are_data_errors(small_profile):
    partial = Profile({"income": small_profile.features["income"]})
    with pytest.raises(DataError, match=r"lacks monitored column\(s\) \['age', 'loan_purpose'\]"):
        compare(small_profile, partial)
    flipped = Profile({**small_profile.features, "age": CategoricalSummary.of(["30", "40"])})
    with pytest.raises(DataError, match="'age' is numeric in the reference but categorical"):
        compare(small_profile, flipped)


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": {"income": "kss"}}, r"methods.income: unknown method 'kss'"),
    ({"numeric_method": "wasserstein_distance"}, "numeric_method: unknown method 'wasserstein_distance'"),
    ({"categorical_method": "chi2"}, "categorical_method: unknown method 'chi2'"),
    ({"drift_share": 0}, "drift_share"),
    ({"drift_share": 1.5}, "drift_share"),
    ({"missing_change": 0}, "missing_change"),
    ({"missing_p_value": 1}, "missing_p_value"),
])
def test_invalid_drift_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DriftOptions(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": {"incme": "ks"}}, r"\['incme'\].*does not have"),
    ({"thresholds": {"agee": 0.1}}, r"\['agee'\].*does not have"),
    ({"methods": {"loan_purpose": "ks"}}, "'ks' does not apply to categorical column 'loan_purpose'"),
    ({"numeric_method": "chisquare"}, "'chisquare' does not apply to numeric column 'income'"),
])
def test_drift_options_that_do_not_fit_the_profile_are_config_errors(small_profile, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        compare(small_profile, small_profile, DriftOptions(**kwargs))


def test_options_may_name_output_columns(small_profile):
    report = compare(small_profile, small_profile, DriftOptions(methods={"probability": "ks"},
                                                                thresholds={"probability": 0.01}))
    assert report.column("probability").method == "ks" and report.column("probability").threshold == 0.01


@pytest.mark.parametrize("column, method, threshold", [
    ("income", None, float("nan")),  # would silently never flag drift
    ("income", "wasserstein", -0.1),  # every distance is >= -0.1: always drift
    ("income", None, -0.1),  # no p-value is <= -0.1: never drift
    ("income", None, "0.1"),  # a string: a TypeError deep in the comparison
    ("loan_purpose", "chisquare", 1.5),  # every p-value is < 1.5: always drift
])
def test_bad_thresholds_are_config_errors_naming_the_column(small_profile, column, method, threshold):
    with pytest.raises(ConfigError, match=column):
        options = DriftOptions(methods={column: method} if method else {}, thresholds={column: threshold})
        compare(small_profile, small_profile, options)


def test_high_cardinality_categories_pooled_beyond_the_cap_do_not_look_new():
    """1,100 equally likely categories (above MAX_CATEGORIES=1,000), same distribution in both samples.
    Each summary keeps its own 1,000 most frequent names and pools the rest, so a category pooled in the
    reference but named in the current window must not count as a category the reference never had
    (which would flag every window: JS 0.25 against 0.059 on the raw values)."""
    from mlops.stats.summaries import MAX_CATEGORIES

    g = np.random.default_rng(0)
    names = np.array([f"z{i:04d}" for i in range(1_100)], dtype=object)
    assert names.size > MAX_CATEGORIES
    ref, cur = pd.DataFrame({"zip": g.choice(names, 200_000)}), pd.DataFrame({"zip": g.choice(names, 50_000)})
    raw_js = expected_statistic("jensenshannon", ref["zip"], cur["zip"], numeric=False)
    assert raw_js < 0.07  # sampling noise only
    got = compare_frames(ref, cur, {"zip": "categorical"}).column("zip")
    assert got.method == "jensenshannon"
    assert got.value <= raw_js + 0.01 and not got.drifted
