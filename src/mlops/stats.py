"""Distribution profiles and drift statistics: one home for validation and monitoring.

A *profile* summarises a column without keeping its values: for numeric
columns counts over fixed bin edges (taken from the reference's quantiles)
plus moments, for categorical columns category counts, for both the missing
count. Profiles of the same column with the same edges merge by addition, so
a large dataset is profiled batch by batch in bounded memory and monitoring
never re-reads the training data.

Statistics compare two profiles. Where scipy has the statistic it computes
it (Jensen-Shannon, chi-squared), so the numbers match what users know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps
from scipy.spatial import distance

# Proportions are floored at this before taking logs (PSI's usual guard).
PSI_EPSILON = 1e-4
# Categories kept by name per column; the rest are counted as OTHER.
MAX_CATEGORIES = 1000
OTHER = "__other__"


@dataclass
class NumericProfile:
    """Counts over fixed ``edges`` (outer edges are -inf and +inf) plus moments."""

    edges: list[float]
    counts: list[int]
    missing: int = 0
    count: int = 0  # non-missing values
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")

    @classmethod
    def empty(cls, edges: list[float]) -> "NumericProfile":
        return cls(edges=list(edges), counts=[0] * (len(edges) - 1))

    def add(self, values: np.ndarray) -> "NumericProfile":
        """Fold a batch of values (NaN counts as missing) into this profile."""
        values = np.asarray(values, dtype=np.float64)
        present = values[~np.isnan(values)]
        self.missing += int(values.size - present.size)
        if present.size:
            hist, _ = np.histogram(present, bins=np.asarray(self.edges))
            self.counts = (np.asarray(self.counts) + hist).tolist()
            self.count += int(present.size)
            self.total += float(present.sum())
            self.total_sq += float(np.square(present).sum())
            self.minimum = min(self.minimum, float(present.min()))
            self.maximum = max(self.maximum, float(present.max()))
        return self

    def merge(self, other: "NumericProfile") -> "NumericProfile":
        if self.edges != other.edges:
            raise ValueError("numeric profiles merge only over the same bin edges")
        return NumericProfile(self.edges, (np.asarray(self.counts) + other.counts).tolist(),
                              self.missing + other.missing, self.count + other.count, self.total + other.total,
                              self.total_sq + other.total_sq, min(self.minimum, other.minimum),
                              max(self.maximum, other.maximum))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    @property
    def std(self) -> float:
        if self.count < 2:
            return float("nan")
        var = (self.total_sq - self.count * self.mean ** 2) / (self.count - 1)
        return float(np.sqrt(max(var, 0.0)))

    @property
    def missing_fraction(self) -> float:
        rows = self.count + self.missing
        return self.missing / rows if rows else 0.0


@dataclass
class CategoricalProfile:
    """Counts per category (at most MAX_CATEGORIES by name, the rest as OTHER)."""

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    def add_counts(self, counts: dict[str, int], missing: int = 0) -> "CategoricalProfile":
        for key, n in counts.items():
            key = str(key)
            if key not in self.counts and len(self.counts) >= MAX_CATEGORIES:
                key = OTHER
            self.counts[key] = self.counts.get(key, 0) + int(n)
        self.missing += int(missing)
        return self

    def merge(self, other: "CategoricalProfile") -> "CategoricalProfile":
        return CategoricalProfile(dict(self.counts)).add_counts(other.counts, self.missing + other.missing)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    @property
    def missing_fraction(self) -> float:
        rows = self.count + self.missing
        return self.missing / rows if rows else 0.0


def quantile_edges(values: np.ndarray, bins: int = 10) -> list[float]:
    """Bin edges at the reference's quantiles, deduplicated, with open outer bins."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [float("-inf"), float("inf")]
    inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    return [float("-inf"), *map(float, inner), float("inf")]


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=float)


def aligned(reference: CategoricalProfile, current: CategoricalProfile) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both profiles' counts over the union of their categories."""
    keys = sorted(set(reference.counts) | set(current.counts))
    return (keys, np.array([reference.counts.get(k, 0) for k in keys], dtype=float),
            np.array([current.counts.get(k, 0) for k in keys], dtype=float))


def psi(reference_counts, current_counts, epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index over the same bins: sum((c - r) * ln(c / r))."""
    r = np.clip(_proportions(np.asarray(reference_counts, dtype=float)), epsilon, None)
    c = np.clip(_proportions(np.asarray(current_counts, dtype=float)), epsilon, None)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(reference_counts, current_counts) -> float:
    """Jensen-Shannon distance (natural log, scipy's definition), 0 (same) to sqrt(ln 2)."""
    r, c = np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan")
    return float(distance.jensenshannon(r, c))


def l_infinity(reference_counts, current_counts) -> float:
    """Largest absolute difference between category proportions (TFDV's categorical drift)."""
    return float(np.max(np.abs(_proportions(np.asarray(reference_counts, dtype=float))
                               - _proportions(np.asarray(current_counts, dtype=float)))))


def chi_squared_pvalue(reference_counts, current_counts) -> float:
    """p-value of the chi-squared test that both samples share one distribution.

    A 2 x K contingency test (scipy.stats.chi2_contingency), so categories
    new in the current sample are handled; categories absent from both
    are dropped.
    """
    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(sps.chi2_contingency(table, correction=False).pvalue)


# Which statistic a drift method names, whether bigger means more drift, and its usual threshold.
DRIFT_METHODS = {
    "psi": (True, 0.2),
    "jensen_shannon": (True, 0.1),
    "l_infinity": (True, 0.1),
    "chi_squared": (False, 0.05),  # a p-value: drift when below
}
NUMERIC_METHODS = ("psi", "jensen_shannon")
CATEGORICAL_METHODS = ("jensen_shannon", "l_infinity", "chi_squared", "psi")


def drift_statistic(method: str, reference_counts, current_counts) -> float:
    return {"psi": psi, "jensen_shannon": jensen_shannon, "l_infinity": l_infinity,
            "chi_squared": chi_squared_pvalue}[method](reference_counts, current_counts)


def is_drift(method: str, value: float, threshold: float) -> bool:
    higher_is_drift, _ = DRIFT_METHODS[method]
    if np.isnan(value):
        return False
    return value > threshold if higher_is_drift else value < threshold
