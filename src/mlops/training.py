"""Model training: a deterministic scikit-learn pipeline and its validation metrics.

The model is a gradient-boosted tree ensemble (HistGradientBoostingClassifier)
behind a column transformer that encodes categoricals; missing values are
handled natively. Same data + same config => bit-identical predictions: the
seed fixes every random choice and early stopping (which draws its own
split) is off.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import (accuracy_score, average_precision_score, brier_score_loss, f1_score, log_loss,
                             precision_score, recall_score, roc_auc_score)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from mlops.datasets import check_training_data, require_columns
from mlops.errors import ConfigError, DataError


@dataclass(frozen=True)
class TrainingConfig:
    """What to learn from which columns, and the model's hyperparameters.

    Columns named in ``id_columns``, ``exclude_columns``, the label and the
    timestamp are never features; everything else is, numeric or categorical
    by dtype. The sensitive attribute is excluded by default so the model
    cannot use it directly; fairness checks read it separately.
    """

    label_column: str = "default"
    timestamp_column: str = "event_timestamp"
    id_columns: tuple[str, ...] = ("customer_id",)
    exclude_columns: tuple[str, ...] = ("label_timestamp", "gender")
    validation_fraction: float = 0.2
    learning_rate: float = 0.1
    max_iter: int = 200
    max_leaf_nodes: int = 31
    l2_regularization: float = 0.0
    seed: int = 42

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 0.9:
            raise ConfigError(f"validation_fraction must be in (0, 0.9), got {self.validation_fraction}")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        if self.max_iter < 1 or self.max_leaf_nodes < 2:
            raise ConfigError(f"max_iter must be >= 1 and max_leaf_nodes >= 2, got {self.max_iter}, {self.max_leaf_nodes}")
        if self.l2_regularization < 0:
            raise ConfigError(f"l2_regularization must be >= 0, got {self.l2_regularization}")

    def params(self) -> dict[str, object]:
        """Flat hyperparameters as logged to the tracker."""
        out = asdict(self)
        for key in ("id_columns", "exclude_columns"):
            out[key] = ",".join(out[key])
        return out


@dataclass
class FeatureColumns:
    numeric: list[str]
    categorical: list[str]

    @property
    def all(self) -> list[str]:
        return self.numeric + self.categorical


@dataclass
class TrainedModel:
    """A fitted pipeline with what it was fitted on and how it validated."""

    pipeline: Pipeline
    features: FeatureColumns
    metrics: dict[str, float]
    train_rows: int
    validation_rows: int
    validation_scores: np.ndarray = field(repr=False)
    validation_labels: np.ndarray = field(repr=False)


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


def feature_columns(df: pd.DataFrame, config: TrainingConfig) -> FeatureColumns:
    """Split the usable columns into numeric and categorical by dtype."""
    skip = {config.label_column, config.timestamp_column, *config.id_columns, *config.exclude_columns}
    numeric, categorical = [], []
    for col in df.columns:
        if col in skip:
            continue
        dtype = df[col].dtype
        if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(dtype):
            numeric.append(col)
        # datetimes and other types are not features
    if not numeric and not categorical:
        raise DataError(f"no feature columns left after excluding {sorted(skip)}")
    return FeatureColumns(numeric, categorical)


def split_by_time(df: pd.DataFrame, timestamp_column: str, validation_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the most recent rows: validation is always later than training.

    A stable sort keeps the split deterministic when timestamps tie.
    """
    ordered = df.sort_values(timestamp_column, kind="stable").reset_index(drop=True)
    cut = int(round(len(ordered) * (1.0 - validation_fraction)))
    if cut < 1 or cut >= len(ordered):
        raise DataError(f"{len(ordered)} rows are too few to hold out {validation_fraction:.0%} for validation")
    return ordered.iloc[:cut], ordered.iloc[cut:]


def build_pipeline(features: FeatureColumns, config: TrainingConfig) -> Pipeline:
    # Unknown categories at predict time become NaN, which the trees route as missing.
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                             encoded_missing_value=np.nan, dtype=np.float64)
    columns = ColumnTransformer(
        [("categorical", encoder, features.categorical), ("numeric", "passthrough", features.numeric)],
        remainder="drop", verbose_feature_names_out=False)
    n_cat = len(features.categorical)
    model = HistGradientBoostingClassifier(
        learning_rate=config.learning_rate, max_iter=config.max_iter, max_leaf_nodes=config.max_leaf_nodes,
        l2_regularization=config.l2_regularization, early_stopping=False, random_state=config.seed,
        categorical_features=[i < n_cat for i in range(n_cat + len(features.numeric))] if n_cat else None)
    return Pipeline([("columns", columns), ("model", model)])


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


def train(df: pd.DataFrame, config: TrainingConfig, source: str = "training data") -> TrainedModel:
    """Fit on the earlier rows, validate on the most recent ones."""
    check_training_data(df, config.label_column, config.timestamp_column, source)
    features = feature_columns(df, config)
    require_columns(df, features.all, source)
    empty = [c for c in features.all if df[c].isna().all()]
    if empty:
        raise DataError(f"{source}: feature column(s) {empty} hold no values at all "
                        "(a broken upstream feed?); fix the data or exclude them")
    train_df, valid_df = split_by_time(df, config.timestamp_column, config.validation_fraction)
    if train_df[config.label_column].nunique() < 2:
        raise DataError(f"{source}: the training part (earliest {len(train_df)} rows) holds a single class")
    pipeline = build_pipeline(features, config)
    with threadpool_limits(limits=cpu_budget(), user_api="openmp"):
        pipeline.fit(train_df[features.all], train_df[config.label_column].astype(int))
        scores = pipeline.predict_proba(valid_df[features.all])[:, 1]
    y_valid = valid_df[config.label_column].astype(int).to_numpy()
    return TrainedModel(pipeline, features, classification_metrics(y_valid, scores),
                        len(train_df), len(valid_df), scores, y_valid)


def predict_scores(pipeline: Pipeline, df: pd.DataFrame, features: list[str]) -> np.ndarray:
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
