"""Realized performance once labels arrive: join them to the logged predictions, score per window.

Labels come late (an outcome is known weeks or months after it was scored) and some
never come. A label event names the prediction it judges either exactly
(``request_id`` and ``row``, when the caller kept them) or by entity id;
by entity, a prediction takes the first label of that entity that became
known at or after the prediction was made (an outcome known before the
prediction cannot be its outcome). Labels that become known after the
evaluation time (``as_of``) are *pending*: not used yet, counted, and
joined by a later run. Every window reports its label coverage, so a metric
over 3% of the predictions is never mistaken for the truth.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from mlops.errors import ConfigError, DataError
from mlops.training.train import classification_metrics

LOGGED_AT = "logged_at"
VERSION = "model_version"
SCORE = "probability"
PREDICTED = "predicted_class"
REQUEST_KEYS = ("request_id", "row")


@dataclass(frozen=True)
class LabelSpec:
    """Where the label events keep the entity, the outcome and when it became known."""

    entity: str
    label: str
    known_at: str

    @classmethod
    def of(cls, project) -> "LabelSpec":
        if project.label_timestamp is None:
            raise ConfigError(f"{project.where} declares no timestamps.label: realized performance needs to know "
                              "when each label became known")
        return cls(project.entity.key, project.label.column, project.label_timestamp)


@dataclass
class LabelJoin:
    frame: pd.DataFrame  # the predictions, with ``label`` (NaN when none yet) and ``label_known_at``
    pending_labels: int  # label events known only after as_of
    unmatched_labels: int  # label events (known by as_of) that judge no logged prediction
    by: str  # "request" or "entity"

    @property
    def predictions(self) -> int:
        return len(self.frame)

    @property
    def labeled(self) -> int:
        return int(self.frame["label"].notna().sum())

    @property
    def coverage(self) -> float:
        return self.labeled / self.predictions if self.predictions else 0.0


def _utc(series: pd.Series, what: str) -> pd.Series:
    try:
        out = pd.to_datetime(series, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what} holds values that are not timestamps: {exc}") from None
    return out.astype("datetime64[ns, UTC]")  # one resolution on both sides of the as-of join


def as_utc(moment) -> pd.Timestamp:
    """A timestamp in UTC; a naive one is taken as UTC."""
    ts = pd.Timestamp(moment)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, spec: LabelSpec,
                as_of: pd.Timestamp | None = None, source: str = "labels") -> LabelJoin:
    """Attach to each logged prediction the label that judges it, as known at ``as_of`` (default: now)."""
    need = [LOGGED_AT, SCORE, VERSION]
    missing = [c for c in need if c not in predictions.columns]
    if missing:
        raise DataError(f"the prediction log lacks column(s) {missing}")
    by_request = all(k in labels.columns for k in REQUEST_KEYS) and all(k in predictions.columns
                                                                        for k in REQUEST_KEYS)
    need = [spec.label, spec.known_at] + (list(REQUEST_KEYS) if by_request else [spec.entity])
    missing = [c for c in need if c not in labels.columns]
    if missing:
        raise DataError(f"{source} lack column(s) {missing} (has {list(labels.columns)})")
    if not by_request and spec.entity not in predictions.columns:
        raise DataError(f"the prediction log has no entity column {spec.entity!r} to join labels on")
    as_of = pd.Timestamp.now(tz="UTC") if as_of is None else as_utc(as_of)

    labels = labels[[*need]].copy()
    labels[spec.known_at] = _utc(labels[spec.known_at], f"{source} column {spec.known_at!r}")
    bad = labels[spec.label].dropna()
    bad = bad[~bad.isin([0, 1, True, False])]
    if len(bad):
        raise DataError(f"{source} column {spec.label!r} must hold 0/1 outcomes; found {sorted(set(bad))[:5]}")
    labels = labels.dropna(subset=[spec.label, spec.known_at])
    known = labels[spec.known_at] <= as_of
    pending = int((~known).sum())
    labels = labels[known].rename(columns={spec.label: "label", spec.known_at: "label_known_at"})
    labels["label"] = labels["label"].astype(float)

    frame = predictions.copy()
    frame[LOGGED_AT] = _utc(frame[LOGGED_AT], "the prediction log's logged_at")
    frame["_order"] = np.arange(len(frame))
    if by_request:
        # A corrected label for the same request replaces the earlier one: the latest known wins.
        labels = labels.sort_values("label_known_at", kind="stable").drop_duplicates(list(REQUEST_KEYS), keep="last")
        joined = frame.merge(labels, on=list(REQUEST_KEYS), how="left")
        matched = joined["label"].notna().sum()
    else:
        # Forward as-of join per entity: the first label known at or after the prediction.
        left = frame.sort_values(LOGGED_AT, kind="stable")
        right = labels.sort_values("label_known_at", kind="stable")
        left_key = left[spec.entity].astype(str)
        right = right.assign(**{spec.entity: right[spec.entity].astype(str)})
        joined = pd.merge_asof(left.assign(**{spec.entity: left_key}), right, left_on=LOGGED_AT,
                               right_on="label_known_at", by=spec.entity, direction="forward")
        matched = joined.loc[joined["label"].notna(), [spec.entity, "label_known_at"]].drop_duplicates().shape[0]
    joined = joined.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    return LabelJoin(joined, pending, max(0, len(labels) - int(matched)), "request" if by_request else "entity")


# A business KPI proxy: labeled rows (with label, probability, predicted_class and features) and
# the policy's parameters in, named numbers out.
Kpi = Callable[[pd.DataFrame, dict], dict]


def resolve_kpi(ref: str | None, project=None) -> Kpi | None:
    """A KPI hook: ``file.py:function`` in the project's folder, or an importable ``module:function``
    (None: no KPI)."""
    if not ref:
        return None
    if project is not None and ref.partition(":")[0].endswith(".py"):
        from mlops.project import call_hook, load_hook
        from mlops.project.spec import parse_hook

        hook = parse_hook(ref, project.root, f"{project.monitoring}: performance.kpi")
        load_hook(project, hook)  # a missing file or function fails now, not when labels arrive
        return lambda labeled, params: call_hook(project, hook, labeled, params)
    module, _, name = ref.partition(":")
    if not module or not name:
        raise ConfigError(f"a KPI hook is named module:function, got {ref!r}")
    try:
        hook = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the KPI hook {ref!r}: {exc}") from None
    if not callable(hook):
        raise ConfigError(f"the KPI hook {ref!r} is not callable")
    return hook


@dataclass
class WindowPerformance:
    window: str  # ISO start of the window, or "all"
    model_version: str
    predictions: int
    labeled: int
    metrics: dict[str, float] = field(default_factory=dict)
    kpi: dict[str, float] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        return self.labeled / self.predictions if self.predictions else 0.0

    def to_dict(self) -> dict:
        return {"window": self.window, "model_version": self.model_version, "predictions": self.predictions,
                "labeled": self.labeled, "coverage": self.coverage, "metrics": self.metrics, "kpi": self.kpi}


def _score(rows: pd.DataFrame, threshold: float, kpi: Kpi | None, kpi_params: dict) -> tuple[dict, dict]:
    labeled = rows[rows["label"].notna()]
    if labeled.empty:
        return {}, {}
    metrics = classification_metrics(labeled["label"].to_numpy(dtype=int), labeled[SCORE].to_numpy(dtype=float),
                                     threshold)
    metrics["mean_score"] = float(labeled[SCORE].mean())
    return metrics, (kpi(labeled, kpi_params) if kpi else {})


def realized_performance(joined: LabelJoin, window: str = "1D", threshold: float = 0.5, kpi: Kpi | None = None,
                         kpi_params: dict | None = None) -> list[WindowPerformance]:
    """Per model version: one row over all its predictions ("all"), then one per time window."""
    try:
        pd.tseries.frequencies.to_offset(window)
    except ValueError:
        raise ConfigError(f"performance window {window!r} is not a pandas frequency such as 1D, 6h or 7D") from None
    frame = joined.frame
    out: list[WindowPerformance] = []
    for version, rows in frame.groupby(VERSION, sort=True):
        groups = [("all", rows)] + [(start.isoformat(), part) for start, part in
                                    rows.groupby(rows[LOGGED_AT].dt.floor(window), sort=True)]
        for name, part in groups:
            metrics, kpis = _score(part, threshold, kpi, kpi_params or {})
            out.append(WindowPerformance(name, str(version), len(part), int(part["label"].notna().sum()),
                                         metrics, kpis))
    return out
