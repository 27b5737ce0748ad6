"""The credit-default project's own gate metric (``metrics.hook`` in project.yaml).

The suite calls ``lending_metrics(y_true, scores, threshold)`` on the held-out test set with the
labels (1 = defaulted), the model's default probabilities and the gate's decision threshold, and its
gate may bound what it returns like any metric of the task.
"""

import numpy as np


def lending_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """``default_rate_cut``: how much lower the default rate of the approved applications (score below the
    threshold) is than the base rate, as a share of it: 0 when approving says nothing, 1 when no approved
    loan defaults. Unlike the approved default rate itself it keeps its meaning when defaults double."""
    base = float(np.mean(y_true)) if len(y_true) else float("nan")
    approved = scores < threshold
    if not approved.any() or not base:
        return {"default_rate_cut": 0.0}
    return {"default_rate_cut": 1.0 - float(np.mean(y_true[approved])) / base}
