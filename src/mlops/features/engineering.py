"""From raw credit applications to feature rows (what the store holds) and label events (what training asks for).

Both functions are pure, vectorised and deterministic: the same raw frame gives
the same output, row for row, so a feature snapshot's content digest identifies
the data and the code that made it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops.errors import DataError
from mlops.features.definitions import (CATEGORICAL_FEATURES, CREATED_TIMESTAMP, ENTITY_KEY, EVENT_TIMESTAMP,
                                        FEATURE_NAMES, FEATURE_TIMESTAMP, INTEGER_FEATURES, LABEL,
                                        RAW_FEATURE_TYPES, SENSITIVE_ATTRIBUTE)

RAW_COLUMNS: tuple[str, ...] = (ENTITY_KEY, EVENT_TIMESTAMP, *RAW_FEATURE_TYPES)
"""Columns :func:`compute_features` needs in the raw applications."""
FEATURE_TABLE_COLUMNS: tuple[str, ...] = (ENTITY_KEY, FEATURE_TIMESTAMP, CREATED_TIMESTAMP, *FEATURE_NAMES)
"""Columns of a feature table (and of its Parquet snapshot), in order."""


def _require(raw: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(f"{what}: raw credit applications lack column(s) {missing}; "
                        f"they have {list(raw.columns)}")


def utc_timestamps(values: pd.Series, column: str) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]`` floored to microseconds; naive values are taken as UTC.

    Microseconds are the offline store's resolution: Feast (through ibis and
    DuckDB) refuses an entity dataframe whose timestamps carry nanoseconds
    ("would lose data"), and flooring feature and event times alike keeps
    their order consistent.

    Raises
    ------
    DataError
        If the column is not a datetime or holds missing values.
    """
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise DataError(f"column {column!r} must hold datetimes, found dtype {values.dtype}")
    if values.isna().any():
        raise DataError(f"column {column!r} has {int(values.isna().sum())} missing timestamps")
    values = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    return values.astype("datetime64[ns, UTC]").dt.floor("us")


def entity_ids(values: pd.Series, column: str = ENTITY_KEY) -> pd.Series:
    """Entity ids as Python strings (the entity's join key is a STRING)."""
    if values.isna().any():
        raise DataError(f"column {column!r} has {int(values.isna().sum())} missing entity ids")
    return values.astype(str).astype(object)


def _numeric(raw: pd.DataFrame, column: str) -> pd.Series:
    try:
        values = pd.to_numeric(raw[column], errors="raise")
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {column!r} must be numeric: {exc}") from None
    if column not in INTEGER_FEATURES:
        return values.astype("float64")
    try:  # nullable: an integer feature may be missing without turning into a float
        return values.astype("Int64")
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {column!r} must hold whole numbers (it is an Int64 feature): {exc}") from None


def _categorical(values: pd.Series) -> pd.Series:
    text = values.astype("string").astype(object)
    return text.where(values.notna(), None)


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """One feature row per (customer_id, event_timestamp) from raw credit applications.

    Parameters
    ----------
    raw : pandas.DataFrame
        Applications as :func:`mlops.data.generator.generate_credit_data` makes
        them: at least :data:`RAW_COLUMNS`. An optional ``created_timestamp``
        column (when a record was written, e.g. a correction) is kept; without
        it the application time is used, so the output stays deterministic.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FEATURE_TABLE_COLUMNS`: ``customer_id``,
        ``feature_timestamp`` (= ``event_timestamp``, UTC, to the microsecond),
        ``created_timestamp``, the raw model features (never ``gender``, the
        label or its timestamp) and the derived ones:

        * ``loan_to_income`` = loan_amount / income, NaN when income is missing or <= 0;
        * ``log_income`` = ln(income), NaN when income is missing or <= 0;
        * ``has_late_payments`` = 1 if any late payment in 12 months, else 0 (missing stays missing).

        Rows are sorted by (customer_id, feature_timestamp); when two share both,
        the one with the later ``created_timestamp`` is kept (the correction wins,
        as it would in a point-in-time lookup).

    Raises
    ------
    DataError
        Naming the missing raw columns, or a column of the wrong type.
    """
    _require(raw, RAW_COLUMNS, "compute_features")
    timestamps = utc_timestamps(raw[EVENT_TIMESTAMP], EVENT_TIMESTAMP)
    created = (utc_timestamps(raw[CREATED_TIMESTAMP], CREATED_TIMESTAMP)
               if CREATED_TIMESTAMP in raw.columns else timestamps)
    out = pd.DataFrame({
        ENTITY_KEY: entity_ids(raw[ENTITY_KEY]),
        FEATURE_TIMESTAMP: timestamps,
        CREATED_TIMESTAMP: created,
    })
    for column in RAW_FEATURE_TYPES:
        out[column] = _categorical(raw[column]) if column in CATEGORICAL_FEATURES else _numeric(raw, column)

    income = out["income"].to_numpy(dtype="float64")
    usable_income = np.isfinite(income) & (income > 0)
    safe_income = np.where(usable_income, income, 1.0)  # avoids divide/log warnings on rows masked below
    out["loan_to_income"] = np.where(usable_income, out["loan_amount"].to_numpy(dtype="float64") / safe_income, np.nan)
    out["log_income"] = np.where(usable_income, np.log(safe_income), np.nan)
    out["has_late_payments"] = (out["num_late_payments_12m"] > 0).astype("Int64")  # NA stays NA

    out = out.sort_values([ENTITY_KEY, FEATURE_TIMESTAMP, CREATED_TIMESTAMP], kind="stable")
    out = out.drop_duplicates([ENTITY_KEY, FEATURE_TIMESTAMP], keep="last")
    return out[list(FEATURE_TABLE_COLUMNS)].reset_index(drop=True)


def label_events(raw: pd.DataFrame, carry: tuple[str, ...] = (SENSITIVE_ATTRIBUTE,)) -> pd.DataFrame:
    """The rows training asks features for: who, as of when, and the outcome.

    Parameters
    ----------
    raw : pandas.DataFrame
        Raw applications with ``customer_id``, ``event_timestamp`` and ``default``.
    carry : tuple of str
        Columns carried along unchanged when ``raw`` has them: not features,
        but needed to evaluate the model (the sensitive attribute for fairness).

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``event_timestamp`` (the application time, UTC: the
        as-of time of the point-in-time lookup, so no feature written after the
        decision can leak in) and ``default`` (int64), in the raw order. Rows
        whose label is not known yet (missing) are dropped: they are not
        training examples.

    Raises
    ------
    DataError
        Naming the missing columns, or a label that is not 0/1.
    """
    _require(raw, (ENTITY_KEY, EVENT_TIMESTAMP, LABEL), "label_events")
    known = raw[raw[LABEL].notna()]
    labels = known[LABEL]
    if not labels.isin([0, 1]).all():
        bad = sorted(map(str, pd.unique(labels[~labels.isin([0, 1])])))[:10]
        raise DataError(f"label_events: label column {LABEL!r} must be 0/1, found {bad}")
    return pd.DataFrame({
        ENTITY_KEY: entity_ids(known[ENTITY_KEY]),
        EVENT_TIMESTAMP: utc_timestamps(known[EVENT_TIMESTAMP], EVENT_TIMESTAMP),
        LABEL: labels.astype("int64"),
        **{column: known[column] for column in carry if column in known.columns},
    }).reset_index(drop=True)
