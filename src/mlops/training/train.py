"""Model training: the project's estimator, fitted deterministically, and its validation metrics.

A project names its model one of two ways. An allow-listed estimator class
with params gets the suite's preprocessing for its kind: gradient-boosted
trees see string columns as ordinal categories and route missing values
natively; every other estimator sees imputed, scaled numbers and one-hot
categories. A ``build_model(params)`` hook returns any scikit-learn-compatible
estimator (a Pipeline with its own preprocessing, typically) that fits on the
feature frame and has ``predict_proba``. Either way the project's seed is set
on every ``random_state`` left unset, so the same data and project give
bit-identical predictions.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import (accuracy_score, average_precision_score, brier_score_loss, f1_score, log_loss,
                             precision_score, recall_score, roc_auc_score)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from mlops.errors import ConfigError, DataError
from mlops.platform.datasets import check_training_data, require_columns
from mlops.project import Project, call_hook

# Estimators that take string categories as ordinal codes and missing values as they are.
_NATIVE_CATEGORICAL = {"sklearn.ensemble.HistGradientBoostingClassifier"}


@dataclass
class FeatureColumns:
    numeric: list[str]
    categorical: list[str]

    @property
    def all(self) -> list[str]:
        return self.numeric + self.categorical

    @classmethod
    def of(cls, project: Project) -> "FeatureColumns":
        return cls(list(project.features.of_type("float", "integer")), list(project.features.of_type("string")))


@dataclass
class TrainedModel:
    """A fitted model with what it was fitted on and how it validated."""

    pipeline: object  # the fitted estimator (a scikit-learn Pipeline for allow-listed estimators)
    features: FeatureColumns
    metrics: dict[str, float]
    train_rows: int
    validation_rows: int
    validation_scores: np.ndarray = field(repr=False)
    validation_labels: np.ndarray = field(repr=False)
    params: dict = field(default_factory=dict)  # the model's params as fitted (project's, then overrides)


def cpu_budget() -> int:
    """CPUs this process may really use: its affinity, capped by a container CPU quota.

    OpenMP (which the tree ensemble uses) sizes itself by the host's cores;
    in a pod with a CPU limit that many spinning threads slow training down
    by far more than the lost share. ``MLOPS_TRAIN_THREADS`` overrides (e.g.
    1 on a machine shared with other busy processes).
    """
    if os.environ.get("MLOPS_TRAIN_THREADS", "").isdigit():
        return max(1, int(os.environ["MLOPS_TRAIN_THREADS"]))
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def split_by_time(df: pd.DataFrame, timestamp_column: str, validation_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the most recent rows: validation is always later than training.

    A stable sort keeps the split deterministic when timestamps tie.
    """
    ordered = df.sort_values(timestamp_column, kind="stable").reset_index(drop=True)
    cut = int(round(len(ordered) * (1.0 - validation_fraction)))
    if cut < 1 or cut >= len(ordered):
        raise DataError(f"{len(ordered)} rows are too few to hold out {validation_fraction:.0%} for validation")
    return ordered.iloc[:cut], ordered.iloc[cut:]


def model_params(project: Project, overrides: dict | str | None = None) -> dict:
    """The project's model params with ``overrides`` (a mapping, or a JSON object as pipelines pass it) on top."""
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model params override {overrides!r} is not JSON: {exc}") from None
    if overrides is not None and not (isinstance(overrides, dict) and all(isinstance(k, str) for k in overrides)):
        raise ConfigError(f"model params override must be a JSON object of parameter names, got {overrides!r}")
    return {**project.model.params, **(overrides or {})}


def _estimator_class(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _preprocessed(project: Project, estimator) -> Pipeline:
    """The suite's preprocessing for an allow-listed estimator, in front of it."""
    features = FeatureColumns.of(project)
    if project.model.estimator in _NATIVE_CATEGORICAL:
        # Unknown categories at predict time become NaN, which the trees route as missing.
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                 encoded_missing_value=np.nan, dtype=np.float64)
        columns = ColumnTransformer([("categorical", encoder, features.categorical),
                                     ("numeric", "passthrough", features.numeric)],
                                    remainder="drop", verbose_feature_names_out=False)
        n_cat = len(features.categorical)
        if n_cat:
            estimator.set_params(categorical_features=[i < n_cat for i in range(n_cat + len(features.numeric))])
        return Pipeline([("columns", columns), ("model", estimator)])
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                                OneHotEncoder(handle_unknown="ignore"))
    columns = ColumnTransformer([("numeric", numeric, features.numeric),
                                 ("categorical", categorical, features.categorical)],
                                remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("columns", columns), ("model", estimator)])


def build_model(project: Project, params: dict | None = None):
    """An unfitted estimator for ``project``, seeded: every ``random_state`` left unset takes the split seed.

    Raises
    ------
    ConfigError
        An estimator that refuses its params, or a build hook that returns
        something without ``fit`` and ``predict_proba``; the message names
        ``project.yaml``'s model key or the hook.
    """
    params = project.model.params if params is None else params
    where = f"{project.where}: model"
    if project.model.build is not None:
        estimator = call_hook(project, project.model.build, dict(params))
        what = f"{project.model.build} of project {project.name}"
    else:
        try:
            estimator = _estimator_class(project.model.estimator)(**params)
        except TypeError as exc:
            raise ConfigError(f"{where}.params: {project.model.estimator} refuses them: {exc}") from None
        what = project.model.estimator
    missing = [m for m in ("fit", "predict_proba", "get_params", "set_params") if not hasattr(estimator, m)]
    if missing:
        raise ConfigError(f"{what} returned {type(estimator).__name__}, which lacks {missing}: a binary "
                          "classifier must be a scikit-learn-compatible estimator with fit and predict_proba")
    seeds = {k: project.split.seed for k, v in estimator.get_params(deep=True).items()
             if (k == "random_state" or k.endswith("__random_state")) and v is None}
    estimator.set_params(**seeds)
    return estimator if project.model.build is not None else _preprocessed(project, estimator)


def log_loss_skill(y_true: np.ndarray, scores: np.ndarray) -> float:
    """1 - log loss / log loss of always predicting the base rate: how much of the label's uncertainty the
    model removes. Unlike log loss itself it does not move with the base rate (a downturn that doubles
    defaults raises every model's log loss), so a fixed bound on it means the same in any period."""
    if len(np.unique(y_true)) < 2:
        return float("nan")
    clipped = np.clip(scores, 1e-15, 1 - 1e-15)
    baseline = log_loss(y_true, np.full(len(y_true), np.mean(y_true)), labels=[0, 1])
    return float(1.0 - log_loss(y_true, clipped, labels=[0, 1]) / baseline)


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Standard binary-classification metrics from positive-class scores."""
    y_pred = (scores >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, scores)) if both else float("nan"),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "log_loss": float(log_loss(y_true, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "log_loss_skill": log_loss_skill(y_true, scores),
        "brier": float(brier_score_loss(y_true, scores)),
        "positive_rate": float(np.mean(y_true)),
    }


def model_inputs(df: pd.DataFrame, features: FeatureColumns) -> pd.DataFrame:
    """The feature columns as the model sees them everywhere: numbers as float64 (a missing value NaN), as the
    MLflow signature declares them and serving and batch scoring send them. A model fitted on nullable
    integers would otherwise refuse the floats it is served."""
    return df[features.all].astype({c: "float64" for c in features.numeric})


def train(project: Project, df: pd.DataFrame, params: dict | None = None,
          source: str = "training data") -> TrainedModel:
    """Fit the project's model on the earlier rows, validate on the most recent ones.

    ``df`` holds training rows as retrieval makes them: the label in the
    task's encoding (0/1), the event timestamp and every feature column.
    """
    label, timestamp = project.label.column, project.event_timestamp
    check_training_data(df, label, timestamp, source)
    features = FeatureColumns.of(project)
    require_columns(df, features.all, source)
    empty = [c for c in features.all if df[c].isna().all()]
    if empty:
        raise DataError(f"{source}: feature column(s) {empty} hold no values at all "
                        "(a broken upstream feed?); fix the data or drop them from the project")
    train_df, valid_df = split_by_time(df, timestamp, project.split.validation_fraction)
    if train_df[label].nunique() < 2:
        raise DataError(f"{source}: the training part (earliest {len(train_df)} rows) holds a single class")
    params = project.model.params if params is None else params
    model = build_model(project, params)
    with threadpool_limits(limits=cpu_budget(), user_api="openmp"):
        try:
            model.fit(model_inputs(train_df, features), train_df[label].astype(int))
            scores = np.asarray(model.predict_proba(model_inputs(valid_df, features)))[:, 1]
        except (ValueError, TypeError) as exc:
            raise DataError(f"{source}: the model of project {project.name} could not be fitted: "
                            f"{type(exc).__name__}: {exc}") from None
    y_valid = valid_df[label].astype(int).to_numpy()
    return TrainedModel(model, features, classification_metrics(y_valid, scores), len(train_df), len(valid_df),
                        scores, y_valid, dict(params))


def predict_scores(pipeline, df: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Positive-class probabilities for the rows of ``df``."""
    require_columns(df, features, "scoring data")
    return pipeline.predict_proba(df[features])[:, 1]


def roc_points(y_true: np.ndarray, scores: np.ndarray, max_points: int = 101) -> tuple[list[float], list[float], list[float]]:
    """A ROC curve thinned to at most ``max_points`` (fpr, tpr, threshold) for dashboards."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y_true, scores)
    thresholds = np.clip(thresholds, 0.0, 1.0)  # sklearn puts +inf first
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    return fpr.tolist(), tpr.tolist(), thresholds.tolist()


def confusion(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> list[list[int]]:
    """Confusion matrix [[tn, fp], [fn, tp]] at ``threshold``."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, (scores >= threshold).astype(int), labels=[0, 1]).tolist()
