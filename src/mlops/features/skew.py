"""Training/serving skew: compare the feature vectors serving logged with an offline recomputation.

Serving logs, for each request, the keys (entity and request time) and the
feature vector the model saw. Recomputing the same keys offline (a
point-in-time lookup as of the request time) must give the same vector; any
difference means the online path (materialization, the online store, a
transformer) diverged from what training sees.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from mlops.errors import DataError

MAX_EXAMPLES = 5
_SIDES = ("served", "offline")


@dataclass(frozen=True)
class FeatureSkew:
    """How one feature compares across the rows both sides have."""

    feature: str
    kind: str  # "numeric" (within tolerance) or "categorical" (exact)
    compared: int
    mismatches: int
    max_abs_diff: float | None  # numeric only, over rows where both sides have a value
    examples: tuple[dict, ...]  # a few mismatching rows: keys, served value, offline value

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class SkewReport:
    """The outcome of :func:`compare_online_offline`."""

    keys: tuple[str, ...]
    rtol: float
    served_rows: int
    offline_rows: int
    matched_rows: int
    features: tuple[FeatureSkew, ...]
    only_served: int  # rows serving logged that the offline side lacks
    only_offline: int
    only_served_examples: tuple[dict, ...]
    only_offline_examples: tuple[dict, ...]

    def feature(self, name: str) -> FeatureSkew:
        """The comparison of one feature, by name."""
        for skew in self.features:
            if skew.feature == name:
                return skew
        raise KeyError(f"feature {name!r} was not compared; compared: {[s.feature for s in self.features]}")

    @property
    def mismatched_features(self) -> list[str]:
        return [s.feature for s in self.features if s.mismatches]

    def passed(self, max_mismatch_rate: float = 0.0, allow_unmatched: bool = False) -> bool:
        """True when every feature's mismatch rate is at most ``max_mismatch_rate``.

        Rows present on one side only fail the check unless ``allow_unmatched``:
        a served vector that cannot be recomputed is not verified.
        """
        if not allow_unmatched and (self.only_served or self.only_offline):
            return False
        return all(s.mismatch_rate <= max_mismatch_rate for s in self.features)

    def to_dict(self) -> dict:
        out = asdict(self)
        for entry, skew in zip(out["features"], self.features):
            entry["mismatch_rate"] = skew.mismatch_rate
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (timestamps ISO 8601, missing values null)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def summary(self) -> str:
        """A few human-readable lines: matched rows, one-sided rows, each mismatching feature."""
        lines = [f"skew: {self.matched_rows} rows compared on {', '.join(self.keys)} "
                 f"({self.served_rows} served, {self.offline_rows} offline, rtol={self.rtol:g})"]
        if self.only_served or self.only_offline:
            lines.append(f"  rows on one side only: {self.only_served} served-only, {self.only_offline} offline-only")
        bad = [s for s in self.features if s.mismatches]
        if not bad:
            lines.append(f"  all {len(self.features)} features match")
        for s in bad:
            diff = f", max abs diff {s.max_abs_diff:.6g}" if s.max_abs_diff is not None else ""
            lines.append(f"  {s.feature} ({s.kind}): {s.mismatches}/{s.compared} mismatch "
                         f"({s.mismatch_rate:.2%}){diff}")
        return "\n".join(lines)


def _jsonable(value: object) -> object:
    """A value as JSON can hold it: timestamps as ISO strings, NaN/NA as None, NumPy scalars as Python."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _normalize_keys(frame: pd.DataFrame, keys: tuple[str, ...], side: str) -> pd.DataFrame:
    """Key columns in one comparable form: datetimes as UTC nanoseconds (naive = UTC), ids as str."""
    frame = frame.copy()
    for key in keys:
        column = frame[key]
        if column.isna().any():
            raise DataError(f"skew: the {side} frame has {int(column.isna().sum())} missing values in key {key!r}")
        if pd.api.types.is_datetime64_any_dtype(column):
            column = column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
            frame[key] = column.astype("datetime64[ns, UTC]")
        elif pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            frame[key] = column.astype(str)
    duplicated = frame.duplicated(list(keys), keep=False)
    if duplicated.any():
        example = frame.loc[duplicated, list(keys)].head(3).to_dict("records")
        raise DataError(f"skew: the {side} frame has {int(duplicated.sum())} rows with repeated keys {list(keys)}, "
                        f"e.g. {[{k: _jsonable(v) for k, v in row.items()} for row in example]}")
    return frame


def _require(frame: pd.DataFrame, columns: list[str], side: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"skew: the {side} frame lacks column(s) {missing}; it has {list(frame.columns)}")


def _as_floats(column: pd.Series) -> np.ndarray | None:
    """The column as float64 (NaN = missing) if it holds numbers, else None.

    An object column qualifies when every present value is a real number:
    logged JSON with nulls arrives that way. Strings never do ("1.0" against
    1.0 is a type skew worth seeing).
    """
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_object_dtype(column):
        present = column[column.notna()]
        if all(isinstance(v, numbers.Real) and not isinstance(v, str) for v in present):
            return column.to_numpy(dtype="float64", na_value=np.nan)
    return None


def _examples(joined: pd.DataFrame, mask: np.ndarray, keys: tuple[str, ...], feature: str | None) -> tuple[dict, ...]:
    rows = joined.loc[mask].head(MAX_EXAMPLES)
    out = []
    for _, row in rows.iterrows():
        example = {key: _jsonable(row[key]) for key in keys}
        if feature is not None:
            for side in _SIDES:
                example[side] = _jsonable(row[f"{feature}__{side}"])
        out.append(example)
    return tuple(out)


def _compare_feature(joined: pd.DataFrame, feature: str, keys: tuple[str, ...], rtol: float, atol: float) -> FeatureSkew:
    served, offline = joined[f"{feature}__served"], joined[f"{feature}__offline"]
    a, b = _as_floats(served), _as_floats(offline)
    if a is not None and b is not None:
        a_nan, b_nan = np.isnan(a), np.isnan(b)
        both = ~a_nan & ~b_nan
        # NaN on both sides is agreement (the value is missing on both paths); on one side, a mismatch.
        equal = (a_nan & b_nan) | (both & np.isclose(a, b, rtol=rtol, atol=atol))
        diffs = np.abs(a[both] - b[both])
        kind, max_diff = "numeric", (float(diffs.max()) if diffs.size else None)
    else:
        a_na, b_na = served.isna().to_numpy(), offline.isna().to_numpy()
        same = served.astype(object).to_numpy() == offline.astype(object).to_numpy()
        equal = (a_na & b_na) | (~a_na & ~b_na & same)
        kind, max_diff = "categorical", None
    mismatched = ~equal
    return FeatureSkew(feature=feature, kind=kind, compared=len(joined), mismatches=int(mismatched.sum()),
                       max_abs_diff=max_diff, examples=_examples(joined, mismatched, keys, feature))


def compare_online_offline(served: pd.DataFrame, offline: pd.DataFrame,
                           keys: Iterable[str], features: Iterable[str], rtol: float = 1e-9,
                           atol: float = 0.0) -> SkewReport:
    """Compare served feature vectors with an offline recomputation of the same keys.

    Parameters
    ----------
    served : pandas.DataFrame
        What serving logged: the key columns and the feature columns.
    offline : pandas.DataFrame
        The offline recomputation for the same keys, e.g.
        :func:`mlops.features.store.historical_features` as of each request time.
    keys : iterable of str
        Columns that identify a request on both sides (the entity key and the
        request time); unique per side. Datetime keys are compared in UTC (naive = UTC).
    features : iterable of str
        The project's feature columns.
    rtol, atol : float
        Numeric features match when ``|served - offline| <= atol + rtol * |offline|``;
        NaN on both sides matches, NaN on one side does not. Non-numeric
        features must be exactly equal (missing on both sides matches).

    Returns
    -------
    SkewReport
        Per feature: rows compared, mismatches, mismatch rate, max absolute
        difference and a few mismatching keys; plus the rows only one side has.

    Raises
    ------
    DataError
        If a side lacks a key or feature column, or repeats a key.
    """
    keys, features = tuple(keys), list(features)
    _require(served, [*keys, *features], "served")
    _require(offline, [*keys, *features], "offline")
    left = _normalize_keys(served[[*keys, *features]], keys, "served")
    right = _normalize_keys(offline[[*keys, *features]], keys, "offline")
    joined = left.merge(right, on=list(keys), how="outer", suffixes=("__served", "__offline"), indicator=True)
    where = joined["_merge"].to_numpy()
    both = joined.loc[where == "both"].reset_index(drop=True)
    return SkewReport(
        keys=keys,
        rtol=rtol,
        served_rows=len(served),
        offline_rows=len(offline),
        matched_rows=len(both),
        features=tuple(_compare_feature(both, f, keys, rtol, atol) for f in features),
        only_served=int((where == "left_only").sum()),
        only_offline=int((where == "right_only").sum()),
        only_served_examples=_examples(joined, where == "left_only", keys, None),
        only_offline_examples=_examples(joined, where == "right_only", keys, None),
    )
