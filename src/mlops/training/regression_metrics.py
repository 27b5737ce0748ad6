"""Regression metrics: what a model predicting a number is judged on, at training and at the gate.

Residuals are ``actual - predicted``, so ``bias`` (the mean residual) is
positive when the model predicts too low on average. Where scikit-learn has
the metric it computes it. MAPE divides by the actual value, so it is only
defined where no actual value is zero: asking for it on such a target is a
DataError, never a silently huge or clipped number (scikit-learn's own MAPE
divides by a machine epsilon instead). sMAPE divides by the mean of both
magnitudes and counts a row where both are zero as no error.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score, root_mean_squared_error

from mlops.errors import DataError

METRICS = ("rmse", "mae", "median_absolute_error", "r2", "mape", "smape", "bias")
LOWER_IS_BETTER = frozenset({"rmse", "mae", "median_absolute_error", "mape", "smape"})  # r2 higher; bias: nearer 0


def _arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    actual, predicted = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if actual.shape != predicted.shape or actual.ndim != 1:
        raise DataError(f"{predicted.shape} predictions for {actual.shape} actual values: one per row expected")
    if actual.size == 0:
        raise DataError("no rows to compute regression metrics on")
    bad = ~(np.isfinite(actual) & np.isfinite(predicted))
    if bad.any():
        which = "actual values" if not np.isfinite(actual).all() else "predictions"
        raise DataError(f"{int(bad.sum())} of {actual.size} rows have missing or infinite {which}")
    return actual, predicted


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, as a fraction (0.1 is 10%); a zero actual value is a DataError."""
    actual, predicted = _arrays(y_true, y_pred)
    zeros = int(np.count_nonzero(actual == 0))
    if zeros:
        raise DataError(f"MAPE is undefined: {zeros} of {actual.size} actual values are 0 "
                        "(use smape or mae for a target that can be zero)")
    return float(np.mean(np.abs((actual - predicted) / actual)))


def smape(y_true, y_pred) -> float:
    """Symmetric MAPE, as a fraction from 0 to 2: mean of |a - p| / ((|a| + |p|) / 2), 0/0 counted as 0."""
    actual, predicted = _arrays(y_true, y_pred)
    scale = (np.abs(actual) + np.abs(predicted)) / 2
    errors = np.divide(np.abs(actual - predicted), scale, out=np.zeros_like(scale), where=scale > 0)
    return float(np.mean(errors))


def regression_metrics(y_true, y_pred, with_mape: bool = True) -> dict[str, float]:
    """Every regression metric of one set of predictions; ``with_mape=False`` leaves MAPE out (a target
    that can be zero), asking for it on a zero actual value is a DataError."""
    actual, predicted = _arrays(y_true, y_pred)
    out = {
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "median_absolute_error": float(median_absolute_error(actual, predicted)),
        # R² of a constant target is undefined (scikit-learn answers 1.0 or 0.0 by convention).
        "r2": float(r2_score(actual, predicted)) if np.ptp(actual) > 0 else float("nan"),
        "smape": smape(actual, predicted),
        "bias": float(np.mean(actual - predicted)),
    }
    if with_mape:
        out["mape"] = mape(actual, predicted)
    return out
