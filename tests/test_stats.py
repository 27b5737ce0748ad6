"""Drift statistics: exact values against scipy or hand computation; profiles merge."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from mlops import stats


def test_psi_matches_the_formula():
    ref, cur = np.array([50, 30, 20]), np.array([30, 30, 40])
    r, c = ref / ref.sum(), cur / cur.sum()
    assert stats.psi(ref, cur) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert stats.psi(ref, ref) == 0.0


def test_psi_guards_empty_bins():
    assert math.isfinite(stats.psi([10, 0], [0, 10]))


def test_jensen_shannon_is_scipys_distance_in_natural_log():
    ref, cur = [5, 3, 2], [1, 1, 8]
    assert stats.jensen_shannon(ref, cur) == pytest.approx(distance.jensenshannon(ref, cur))
    assert stats.jensen_shannon(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert stats.jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))


def test_l_infinity_is_the_largest_proportion_gap():
    assert stats.l_infinity([50, 50], [80, 20]) == pytest.approx(0.3)


def test_chi_squared_is_scipys_contingency_test_and_handles_new_categories():
    ref, cur = [100, 80, 20], [60, 90, 50]
    expected = sps.chi2_contingency(np.array([ref, cur]), correction=False).pvalue
    assert stats.chi_squared_pvalue(ref, cur) == pytest.approx(expected)
    assert stats.chi_squared_pvalue([100, 100, 0], [100, 100, 40]) < 1e-6  # a category new in the batch
    assert stats.chi_squared_pvalue([10, 10], [10, 10]) == pytest.approx(1.0)


def test_numeric_profiles_merge_to_the_whole():
    rng = np.random.default_rng(0)
    values = rng.normal(size=10_000)
    values[::50] = np.nan
    edges = stats.quantile_edges(values, 10)
    whole = stats.NumericProfile.empty(edges).add(values)
    parts = stats.NumericProfile.empty(edges).add(values[:3_000]).merge(stats.NumericProfile.empty(edges).add(values[3_000:]))
    assert parts.counts == whole.counts and parts.missing == whole.missing == 200
    assert parts.mean == pytest.approx(np.nanmean(values)) and parts.std == pytest.approx(np.nanstd(values, ddof=1))
    assert sum(whole.counts) == 9_800 and len(edges) == 11
    assert edges[0] == -math.inf and edges[-1] == math.inf


def test_categorical_profile_caps_categories():
    profile = stats.CategoricalProfile().add_counts({f"c{i}": 1 for i in range(stats.MAX_CATEGORIES + 5)})
    assert len(profile.counts) == stats.MAX_CATEGORIES + 1 and profile.counts[stats.OTHER] == 5


@pytest.mark.parametrize("method, value, threshold, drift", [
    ("psi", 0.3, 0.2, True), ("psi", 0.1, 0.2, False),
    ("chi_squared", 0.01, 0.05, True), ("chi_squared", 0.5, 0.05, False),
    ("jensen_shannon", float("nan"), 0.1, False),
])
def test_drift_direction_per_method(method, value, threshold, drift):
    assert stats.is_drift(method, value, threshold) is drift
