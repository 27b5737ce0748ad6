"""Drift of a current window against a reference: per column, per model output, and overall.

Per column: the distribution test Evidently would choose (or the one the
options name), its verdict at the column's threshold, and separately the
missing-value rate, which Evidently cannot see because it drops missing
values first. Overall: the share of drifted feature columns against
``drift_share`` (Evidently's dataset drift), plus prediction drift on the
model's outputs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.errors import ConfigError, DataError
from mlops.stats.profile import Profile, kind_of, summarise_parquet_column
from mlops.stats.methods import METHODS, default_method, missing_rate_drift
from mlops.stats.summaries import Summary


@dataclass(frozen=True)
class DriftOptions:
    """Which test and threshold per column (default: Evidently's choice), and the overall rules."""

    methods: dict[str, str] = field(default_factory=dict)  # column -> method name
    thresholds: dict[str, float] = field(default_factory=dict)  # column -> threshold
    numeric_method: str | None = None  # for every numeric column without its own
    categorical_method: str | None = None
    drift_share: float = 0.5  # dataset drift when at least this share of feature columns drift
    missing_change: float = 0.05  # absolute change of the missing share that counts as drift
    missing_p_value: float = 0.05

    def __post_init__(self) -> None:
        for where, name in [*(("methods." + c, m) for c, m in self.methods.items()),
                            ("numeric_method", self.numeric_method), ("categorical_method", self.categorical_method)]:
            if name is not None and name not in METHODS:
                raise ConfigError(f"drift option {where}: unknown method {name!r}; known: {sorted(METHODS)}")
        for column, threshold in self.thresholds.items():
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < np.inf:
                raise ConfigError(f"drift option thresholds.{column}: a threshold must be a positive number, "
                                  f"got {threshold!r}")
        if not 0 < self.drift_share <= 1:
            raise ConfigError(f"drift option drift_share must be in (0, 1], got {self.drift_share}")
        if not 0 < self.missing_change <= 1 or not 0 < self.missing_p_value < 1:
            raise ConfigError("drift options missing_change must be in (0, 1] and missing_p_value in (0, 1)")

    def method_for(self, column: str, kind: str, reference: Summary, current: Summary):
        name = self.methods.get(column) or (self.numeric_method if kind == "numeric" else self.categorical_method)
        if name is None:
            return default_method(kind, reference, current)
        method = METHODS[name]
        if kind not in method.kinds:
            raise ConfigError(f"drift method {name!r} does not apply to {kind} column {column!r}")
        return method


@dataclass
class ColumnDrift:
    column: str
    kind: str
    method: str | None
    method_label: str | None
    value: float | None
    threshold: float | None
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_missing: float
    current_missing: float
    missing_change: float
    missing_p_value: float
    missing_drifted: bool
    exact: bool  # computed from every reference value (not a compressed summary)
    note: str = ""

    @property
    def any_drift(self) -> bool:
        return self.drifted or self.missing_drifted


@dataclass
class DriftReport:
    features: list[ColumnDrift]
    outputs: list[ColumnDrift]
    drift_share: float

    @property
    def drifted_features(self) -> list[str]:
        return [c.column for c in self.features if c.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.features) and self.share_drifted >= self.drift_share

    @property
    def missing_drift(self) -> list[str]:
        return [c.column for c in self.features if c.missing_drifted]

    @property
    def prediction_drift(self) -> bool:
        return any(c.drifted for c in self.outputs)

    def column(self, name: str) -> ColumnDrift:
        for c in (*self.features, *self.outputs):
            if c.column == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict:
        return {"dataset_drift": self.dataset_drift, "share_drifted": self.share_drifted,
                "drift_share": self.drift_share, "drifted_features": self.drifted_features,
                "missing_drift": self.missing_drift, "prediction_drift": self.prediction_drift,
                "features": [asdict(c) for c in self.features], "outputs": [asdict(c) for c in self.outputs]}


def column_drift(name: str, reference: Summary, current: Summary, options: DriftOptions) -> ColumnDrift:
    kind = kind_of(reference)
    if kind_of(current) != kind:
        raise DataError(f"column {name!r} is {kind} in the reference but {kind_of(current)} in the current data")
    change, p, missing_drifted = missing_rate_drift(reference, current, options.missing_change,
                                                    options.missing_p_value)
    base = dict(column=name, kind=kind, reference_rows=reference.rows, current_rows=current.rows,
                reference_missing=reference.missing_fraction, current_missing=current.missing_fraction,
                missing_change=change, missing_p_value=p, missing_drifted=missing_drifted,
                exact=getattr(reference, "exact", True))
    if reference.count == 0 or current.count == 0:
        side = "reference" if reference.count == 0 else "current window"
        return ColumnDrift(method=None, method_label=None, value=None, threshold=None, drifted=False,
                           note=f"no values in the {side}: only the missing rate is compared", **base)
    method = options.method_for(name, kind, reference, current)
    threshold = options.thresholds.get(name, method.threshold)
    if method.is_p_value and not threshold < 1:
        raise ConfigError(f"drift option thresholds.{name}: {method.name} gives a p-value, so its threshold must be "
                          f"below 1 (got {threshold:g}: every window would drift)")
    value = method.compute(reference, current)
    return ColumnDrift(method=method.name, method_label=method.label, value=value, threshold=threshold,
                       drifted=method.drifted(value, threshold), **base)


def compare(reference: Profile, current: Profile, options: DriftOptions | None = None,
            workers: int = 1) -> DriftReport:
    """Every reference feature (and output the current window has) against the current window."""
    options = options or DriftOptions()
    absent = [n for n in reference.features if n not in current.features]
    if absent:
        raise DataError(f"the current window lacks monitored column(s) {absent}")
    unknown = [c for c in (*options.methods, *options.thresholds) if c not in reference.features
               and c not in reference.outputs]
    if unknown:
        raise ConfigError(f"drift options name column(s) {unknown} that the reference profile does not have")
    jobs = [(n, s, current.features[n]) for n, s in reference.features.items()]
    outputs = [(n, s, current.outputs[n]) for n, s in reference.outputs.items() if n in current.outputs]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        done = list(pool.map(lambda job: column_drift(*job, options), jobs + outputs))
    return DriftReport(done[:len(jobs)], done[len(jobs):], options.drift_share)


def compare_frames(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str],
                   options: DriftOptions | None = None, workers: int = 1) -> DriftReport:
    """Exact drift between two frames (every reference value kept)."""
    return compare(Profile.of_frame(reference, kinds, max_points=None, source="reference"),
                   Profile.of_frame(current, kinds, max_points=None, source="current"), options, workers)


def compare_parquet(reference: str | Path, current: str | Path, kinds: dict[str, str],
                    options: DriftOptions | None = None, workers: int = 1) -> DriftReport:
    """Exact drift between two Parquet files, one column at a time on ``workers`` threads.

    Memory holds a few columns, never the files: the way to compare two large
    datasets without a stored profile.
    """
    import pyarrow.parquet as pq

    options = options or DriftOptions()
    files = {}
    for side, path in (("reference", reference), ("current", current)):
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the {side} data {path} as Parquet: {exc}") from None
        absent = [c for c in kinds if c not in names]
        if absent:
            raise DataError(f"{side} data {path}: column(s) {absent} to monitor are missing")
        files[side] = path

    def one(name: str) -> ColumnDrift:
        return column_drift(name, summarise_parquet_column(files["reference"], name, kinds[name]),
                            summarise_parquet_column(files["current"], name, kinds[name]), options)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        columns = list(pool.map(one, kinds))
    return DriftReport(columns, [], options.drift_share)
