"""Evaluate a candidate model on a held-out test set: overall, per slice, and fairness.

The test set is the most recent slice of the data, which neither training nor
its validation split ever saw; champion and challenger are scored on the very
same rows so their numbers can be compared. Slices are the groups of the
sensitive attribute and of any configured segment columns; each slice carries
its size, so a gate can refuse to judge groups too small to say anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve

from mlops.errors import DataError
from mlops.platform.datasets import require_columns
from mlops.training.train import classification_metrics, confusion, roc_points, split_by_time


@dataclass
class SliceMetrics:
    """One group's numbers (e.g. region=north)."""

    column: str
    value: str
    size: int
    positives: int
    selection_rate: float  # share predicted positive
    tpr: float  # recall of the positive class; NaN without positives
    fpr: float  # NaN without negatives
    metrics: dict[str, float]


@dataclass
class EvaluationResult:
    """Everything a gate and a report need about one model on one test set."""

    rows: int
    threshold: float
    metrics: dict[str, float]
    confusion: list[list[int]]
    roc: tuple[list[float], list[float], list[float]]
    reliability: tuple[list[float], list[float]]  # (mean predicted, observed frequency) per bin
    slices: list[SliceMetrics] = field(default_factory=list)
    test_digest: str = ""  # identifies the test set, so comparisons are on the same rows

    def slices_of(self, column: str) -> list[SliceMetrics]:
        return [s for s in self.slices if s.column == column]

    def to_json(self) -> dict:
        return asdict(self)


def split_test(df: pd.DataFrame, timestamp_column: str, test_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the most recent ``test_fraction`` of rows as the test set: (development, test)."""
    if not 0.0 < test_fraction < 0.9:
        raise DataError(f"test_fraction must be in (0, 0.9), got {test_fraction}")
    return split_by_time(df, timestamp_column, test_fraction)


def _rate(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def slice_metrics(column: str, value: str, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> SliceMetrics:
    y_pred = scores >= threshold
    positives, negatives = int(y_true.sum()), int((1 - y_true).sum())
    return SliceMetrics(
        column=column, value=value, size=int(len(y_true)), positives=positives,
        selection_rate=float(y_pred.mean()) if len(y_pred) else float("nan"),
        tpr=_rate(int((y_pred & (y_true == 1)).sum()), positives),
        fpr=_rate(int((y_pred & (y_true == 0)).sum()), negatives),
        metrics=classification_metrics(y_true, scores, threshold) if len(y_true) else {},
    )


def evaluate(scores: np.ndarray, test: pd.DataFrame, label_column: str, slice_columns: list[str],
             threshold: float = 0.5, reliability_bins: int = 10) -> EvaluationResult:
    """Score ``scores`` (positive-class probabilities for the rows of ``test``) against the labels.

    ``slice_columns`` are the sensitive attribute and any segments: each of
    their values becomes a slice.
    """
    require_columns(test, [label_column, *slice_columns], "test set")
    if test.empty:
        raise DataError("the test set is empty: nothing to evaluate on")
    y_true = test[label_column].astype(int).to_numpy()
    scores = np.asarray(scores, dtype=float)
    if scores.shape != y_true.shape:
        raise DataError(f"{scores.shape[0]} scores for {y_true.shape[0]} test rows")
    observed, predicted = calibration_curve(y_true, scores, n_bins=reliability_bins, strategy="quantile")
    slices = []
    for column in slice_columns:
        values = test[column].astype("string").fillna("<missing>").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            slices.append(slice_metrics(column, str(value), y_true[mask], scores[mask], threshold))
    return EvaluationResult(rows=len(test), threshold=threshold,
                            metrics=classification_metrics(y_true, scores, threshold),
                            confusion=confusion(y_true, scores, threshold), roc=roc_points(y_true, scores),
                            reliability=(predicted.tolist(), observed.tolist()), slices=slices)


def custom_metrics(project, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """The project's own metrics over a test set (``metrics.hook``): exactly the names it declares, as numbers."""
    from mlops.errors import ConfigError
    from mlops.project import call_hook

    if project.metrics is None:
        return {}
    hook = project.metrics.hook
    values = call_hook(project, hook, np.asarray(y_true), np.asarray(scores), float(threshold))
    if not isinstance(values, dict) or set(values) != set(project.metrics.names):
        got = sorted(values) if isinstance(values, dict) else type(values).__name__
        raise ConfigError(f"{hook} of project {project.name} must return a mapping of exactly "
                          f"{list(project.metrics.names)} (metrics.names), returned {got}")
    out = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{hook} of project {project.name} returned {name}={value!r}, not a number")
        out[name] = float(value)
    return out


@dataclass
class Fairness:
    """Largest gaps across the groups of one attribute (groups below ``min_size`` left out)."""

    column: str
    groups: list[str]
    excluded: list[str]  # too small to judge
    tpr_gap: float
    fpr_gap: float
    selection_rate_gap: float
    disparate_impact: float  # lowest / highest selection rate (the four-fifths rule wants >= 0.8)


def fairness(result: EvaluationResult, column: str, min_size: int = 0) -> Fairness:
    groups = result.slices_of(column)
    if not groups:
        raise DataError(f"no slices for {column!r}; evaluated slices: {sorted({s.column for s in result.slices})}")
    kept = [g for g in groups if g.size >= min_size]
    excluded = [g.value for g in groups if g.size < min_size]

    def gap(values: list[float]) -> float:
        values = [v for v in values if not np.isnan(v)]
        return float(max(values) - min(values)) if len(values) >= 2 else 0.0

    rates = [g.selection_rate for g in kept if not np.isnan(g.selection_rate)]
    impact = float(min(rates) / max(rates)) if len(rates) >= 2 and max(rates) > 0 else 1.0
    return Fairness(column, [g.value for g in kept], excluded, gap([g.tpr for g in kept]),
                    gap([g.fpr for g in kept]), gap([g.selection_rate for g in kept]), impact)
