"""Column summaries: what drift statistics need of a column, without its rows.

A :class:`NumericSummary` keeps the column's sorted values (with weights once
they are compressed) and its exact moments; a :class:`CategoricalSummary`
keeps category counts. Both count missing values apart (NaN, None and
infinities: Evidently drops those before testing, so we do the same for the
distribution and watch the missing rate separately).

Summaries merge, so a large dataset is summarised batch by batch or
partition by partition. A numeric summary stays *exact* (every value, so
statistics equal those computed on the raw column) up to ``max_points``
values; beyond that it is compressed into ``max_points`` weighted points of
equal mass (a quantile summary: each point is its slice's mean, so the mean
is kept; CDF-based statistics move by at most one slice's mass, 1 /
max_points). Moments are kept exactly apart from the points, so the
standard deviation that norms the Wasserstein distance stays exact.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np

# Points kept per numeric column in a stored reference profile: exact for up to this many rows.
MAX_POINTS = 20_000
# Categories kept by name; the rest are pooled (a free-text column is not a category).
MAX_CATEGORIES = 1_000
OTHER = "__other__"


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").copy()


class _Counted:
    """Rows and the missing share, from ``count`` (present values) and ``missing``."""

    count: int
    missing: int

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @property
    def missing_fraction(self) -> float:
        return self.missing / self.rows if self.rows else 0.0


@dataclass(eq=False)
class NumericSummary(_Counted):
    """Sorted values (``weights`` None means one each) plus exact moments of the present values."""

    values: np.ndarray
    weights: np.ndarray | None = None
    missing: int = 0
    exact: bool = True
    integer: bool = False  # the source column held integers (numpy bins those differently)
    count: int = 0
    mean: float = float("nan")
    m2: float = 0.0  # sum of squared deviations from the mean (Chan et al.'s mergeable form)
    # Extremes kept apart: a compressed summary's points are slice means (histogram edges need these).
    lowest: float = float("nan")
    highest: float = float("nan")

    @classmethod
    def of(cls, column, max_points: int | None = MAX_POINTS, integer: bool | None = None) -> "NumericSummary":
        """Summarise one column (array-like); ``max_points=None`` keeps it exact at any size."""
        raw = np.asarray(column)
        integer = raw.dtype.kind in "iu" if integer is None else integer
        values = raw.astype(np.float64, copy=True) if raw.dtype != object else _floats(raw)
        finite = np.isfinite(values)
        present = values if finite.all() else values[finite]
        present.sort()
        mean = float(present.mean()) if present.size else float("nan")
        deviations = present - mean
        m2 = float(np.dot(deviations, deviations)) if present.size else 0.0
        del deviations
        lowest, highest = (float(present[0]), float(present[-1])) if present.size else (float("nan"),) * 2
        points, weights = present, None
        if present.size:
            # Still exact, far fewer points when values repeat (rounded amounts, counts, ages): every
            # statistic then runs over the distinct values.
            starts = np.flatnonzero(np.r_[True, present[1:] != present[:-1]])
            if starts.size <= present.size // 2:
                points, weights = present[starts], np.diff(np.r_[starts, present.size]).astype(np.float64)
        summary = cls(points, weights, int(values.size - present.size), True, integer, int(present.size), mean, m2,
                      lowest, highest)
        return summary.limited(max_points)

    # -- sizes and moments ------------------------------------------------------------------
    @property
    def std(self) -> float:
        """Population standard deviation (ddof 0, numpy's default, what Evidently norms by)."""
        return float(np.sqrt(self.m2 / self.count)) if self.count else float("nan")

    @property
    def minimum(self) -> float:
        return self.lowest

    @property
    def maximum(self) -> float:
        return self.highest

    def point_weights(self) -> np.ndarray:
        return self.weights if self.weights is not None else np.ones(self.values.size)

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values and their total weight."""
        if self.values.size == 0:
            return self.values, np.zeros(0)
        starts = np.flatnonzero(np.r_[True, self.values[1:] != self.values[:-1]])
        weights = np.add.reduceat(self.point_weights(), starts)
        return self.values[starts], weights

    def n_distinct(self) -> int:
        """Exact for an exact summary; a compressed one has more distinct values than points."""
        if self.values.size == 0:
            return 0
        return int(np.count_nonzero(self.values[1:] != self.values[:-1])) + 1

    def raw(self) -> np.ndarray:
        """The sorted present values themselves (exact summaries only)."""
        if not self.exact:
            raise ValueError("a compressed summary no longer holds its raw values")
        if self.weights is None:
            return self.values
        return np.repeat(self.values, np.rint(self.weights).astype(np.int64))

    # -- merging and compression ------------------------------------------------------------
    def merge(self, other: "NumericSummary", max_points: int | None = MAX_POINTS) -> "NumericSummary":
        """Both partitions as one summary (exact while both are and the result fits)."""
        values = np.concatenate([self.values, other.values])
        weights = np.concatenate([self.point_weights(), other.point_weights()])
        order = np.argsort(values, kind="stable")
        count = self.count + other.count
        if count:
            delta = (other.mean if other.count else 0.0) - (self.mean if self.count else 0.0)
            mean = ((self.mean * self.count if self.count else 0.0)
                    + (other.mean * other.count if other.count else 0.0)) / count
            m2 = self.m2 + other.m2 + (delta ** 2 * self.count * other.count / count if self.count and other.count
                                       else 0.0)
        else:
            mean, m2 = float("nan"), 0.0
        unweighted = self.weights is None and other.weights is None
        merged = NumericSummary(values[order], None if unweighted else weights[order], self.missing + other.missing,
                                self.exact and other.exact, self.integer and other.integer, count, mean, m2,
                                float(np.fmin(self.lowest, other.lowest)), float(np.fmax(self.highest, other.highest)))
        return merged.limited(max_points)

    def limited(self, max_points: int | None) -> "NumericSummary":
        if max_points is None or self.values.size <= max_points:
            return self
        values, weights = self.distinct()
        exact = self.exact
        if values.size > max_points:
            values, weights = _equal_mass_points(values, weights, max_points)
            exact = False
        return NumericSummary(values, weights, self.missing, exact, self.integer, self.count, self.mean, self.m2,
                              self.lowest, self.highest)

    # -- storage ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        values, weights = (self.values, self.weights) if self.weights is not None else self.distinct()
        return {"kind": "numeric", "exact": self.exact, "integer": self.integer, "missing": self.missing,
                "count": self.count, "mean": _plain(self.mean), "m2": self.m2,
                "min": _plain(self.lowest), "max": _plain(self.highest),
                "values_f64": _encode(values), "weights_f64": _encode(weights)}

    @classmethod
    def from_json(cls, doc: dict) -> "NumericSummary":
        values, weights = _decode(doc["values_f64"]), _decode(doc["weights_f64"])
        if values.size != weights.size or np.any(np.diff(values) < 0) or np.any(weights < 0):
            raise ValueError("values and weights must be equally long, values sorted, weights non-negative")
        if _not_count(doc["missing"]) or _not_count(doc["count"]):
            raise ValueError("missing and count must be non-negative integers")
        if not np.isclose(weights.sum(), doc["count"], rtol=1e-9, atol=1e-6):
            raise ValueError(f"count {doc['count']} disagrees with the points' total weight {weights.sum():g}")
        mean, lowest, highest = (float("nan") if doc[k] is None else float(doc[k]) for k in ("mean", "min", "max"))
        return cls(values, weights, doc["missing"], bool(doc["exact"]), bool(doc["integer"]),
                   doc["count"], mean, float(doc["m2"]), lowest, highest)


def _floats(values: np.ndarray) -> np.ndarray:
    """An object column (None or pandas.NA for missing) as float64."""
    import pandas as pd

    return pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)


def _plain(value: float):
    return None if value != value else value  # JSON has no NaN


def _equal_mass_points(values: np.ndarray, weights: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Compress sorted weighted values into ``points`` slices of equal mass, each at its mean.

    A value whose mass straddles a slice boundary is split between the two
    slices, so every slice weighs exactly total / points.
    """
    cumulative = np.cumsum(weights)
    total = cumulative[-1]
    cuts = total * np.arange(1, points) / points
    boundaries = np.unique(np.concatenate([[0.0], cumulative, cuts]))
    pieces = np.diff(boundaries)
    middles = (boundaries[:-1] + boundaries[1:]) / 2
    owner = np.minimum(np.searchsorted(cumulative, middles, side="right"), values.size - 1)
    slice_of = np.minimum((middles / total * points).astype(np.int64), points - 1)
    mass = np.bincount(slice_of, pieces, points)
    keep = mass > 0
    means = np.bincount(slice_of, pieces * values[owner], points)[keep] / mass[keep]
    # Means are non-decreasing up to rounding; keep the invariant exact.
    return np.maximum.accumulate(means), mass[keep]


@dataclass(eq=False)
class CategoricalSummary(_Counted):
    """Counts per category and missing values.

    A stored reference keeps at most ``limit`` categories by name (the most
    frequent first) and pools the rest as OTHER; a window compared with it is
    counted exactly and pooled the same way at comparison time.
    """

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    limit: int | None = MAX_CATEGORIES

    @classmethod
    def of(cls, column, limit: int | None = MAX_CATEGORIES) -> "CategoricalSummary":
        import pandas as pd

        series = pd.Series(column, copy=False)
        counts = series.value_counts(dropna=True)  # most frequent first: those keep their names
        return cls(limit=limit).add_counts({str(k): int(n) for k, n in counts.items()}, int(series.isna().sum()))

    def add_counts(self, counts: dict[str, int], missing: int = 0) -> "CategoricalSummary":
        for key, n in counts.items():
            if key not in self.counts and self.limit is not None and len(self.counts) >= self.limit:
                key = OTHER
            self.counts[key] = self.counts.get(key, 0) + int(n)
        self.missing += int(missing)
        return self

    def merge(self, other: "CategoricalSummary", max_points: int | None = None) -> "CategoricalSummary":
        limit = None if self.limit is None and other.limit is None else max(self.limit or 0, other.limit or 0)
        return CategoricalSummary(dict(self.counts), self.missing, limit).add_counts(other.counts, other.missing)

    @property
    def pooled(self) -> bool:
        return OTHER in self.counts

    def pooled_like(self, reference: "CategoricalSummary") -> "CategoricalSummary":
        """These counts with every category the (pooled) reference does not name moved to OTHER."""
        if not reference.pooled:
            return self
        counts: dict[str, int] = {}
        for key, n in self.counts.items():
            key = key if key in reference.counts else OTHER
            counts[key] = counts.get(key, 0) + n
        return CategoricalSummary(counts, self.missing, None)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def n_distinct(self) -> int:
        return sum(1 for n in self.counts.values() if n)

    def to_json(self) -> dict:
        return {"kind": "categorical", "missing": self.missing, "limit": self.limit, "counts": dict(self.counts)}

    @classmethod
    def from_json(cls, doc: dict) -> "CategoricalSummary":
        counts, missing, limit = doc["counts"], doc["missing"], doc.get("limit", MAX_CATEGORIES)
        if not isinstance(counts, dict) or any(_not_count(n) for n in counts.values()):
            raise ValueError("counts must map category names to non-negative integers")
        if _not_count(missing) or (limit is not None and _not_count(limit)):
            raise ValueError("missing and limit must be non-negative integers")
        return cls({str(k): n for k, n in counts.items()}, missing, limit)


def _not_count(value) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < 0


Summary = NumericSummary | CategoricalSummary


def summary_from_json(doc: dict) -> Summary:
    if not isinstance(doc, dict):
        raise ValueError(f"a column summary must be a mapping, got {type(doc).__name__}")
    kind = doc.get("kind")
    if kind == "numeric":
        return NumericSummary.from_json(doc)
    if kind == "categorical":
        return CategoricalSummary.from_json(doc)
    raise ValueError(f"unknown summary kind {kind!r} (expected 'numeric' or 'categorical')")
