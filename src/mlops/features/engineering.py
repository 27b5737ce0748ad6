"""From a project's raw data to feature rows (what the store holds) and label events (what training asks for).

Both functions are pure, vectorised and deterministic: the same raw frame gives
the same output, row for row, so a feature snapshot's content digest identifies
the data and the code that made it.
"""

from __future__ import annotations

import pandas as pd

from mlops.errors import DataError
from mlops.features.definitions import CREATED_TIMESTAMP, FEATURE_TIMESTAMP, FeatureDefinitions
from mlops.project import Project, call_hook
from mlops.project.data import encode_labels


def _require(raw: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(f"{what}: the raw data lacks column(s) {missing}; it has {list(raw.columns)}")


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


def entity_ids(values: pd.Series, kind: str, column: str) -> pd.Series:
    """Entity ids as the entity's join key holds them: Python strings, or int64 for an integer key."""
    if values.isna().any():
        raise DataError(f"column {column!r} has {int(values.isna().sum())} missing entity ids")
    if kind == "string":
        return values.astype(str).astype(object)
    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.notna() & (numbers == numbers.round())
    if not whole.all():
        bad = sorted(map(repr, pd.unique(values[~whole])))[:5]
        raise DataError(f"column {column!r} must hold whole-number entity ids (the entity key is an integer); "
                        f"found {bad}")
    return numbers.astype("int64")


def _numeric(raw: pd.DataFrame, column: str, integer: bool) -> pd.Series:
    try:
        values = pd.to_numeric(raw[column], errors="raise")
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {column!r} must be numeric: {exc}") from None
    if not integer:
        return values.astype("float64")
    try:  # nullable: an integer feature may be missing without turning into a float
        return values.astype("Int64")
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {column!r} must hold whole numbers (it is an integer feature): {exc}") from None


def _categorical(values: pd.Series) -> pd.Series:
    text = values.astype("string").astype(object)
    return text.where(values.notna(), None)


def _feature_values(project: Project, raw: pd.DataFrame) -> pd.DataFrame:
    """What the features are computed from: the project's hook's output, or the raw columns themselves."""
    hook = project.features.hook
    if hook is None:
        _require(raw, project.features.names, "compute_features")
        return raw
    computed = call_hook(project, hook, raw.copy())
    if not isinstance(computed, pd.DataFrame):
        raise DataError(f"{hook} of project {project.name} returned {type(computed).__name__}, not a DataFrame")
    if len(computed) != len(raw):
        raise DataError(f"{hook} of project {project.name} returned {len(computed)} rows for {len(raw)} raw rows; "
                        "it must return one row per raw row, in order")
    missing = [c for c in project.features.names if c not in computed.columns]
    if missing:
        raise DataError(f"{hook} of project {project.name} returned no column(s) {missing} that "
                        f"{project.where} declares under features.columns; it returned {list(computed.columns)}")
    return computed.set_axis(raw.index)


def compute_features(project: Project, raw: pd.DataFrame) -> pd.DataFrame:
    """One feature row per (entity key, event time) from a project's raw data.

    Parameters
    ----------
    project : Project
        Whose features: its entity key, event timestamp, feature columns and
        their types, and its optional ``compute_features`` hook.
    raw : pandas.DataFrame
        The raw data: the entity key, the event timestamp and whatever the
        features are computed from. An optional ``created_timestamp`` column
        (when a record was written, e.g. a correction) is kept; without it the
        event time is used, so the output stays deterministic.

    Returns
    -------
    pandas.DataFrame
        Columns :attr:`FeatureDefinitions.table_columns`: the entity key,
        ``feature_timestamp`` (= the event time, UTC, to the microsecond),
        ``created_timestamp`` and every declared feature, typed as declared
        (float64, nullable Int64, or str/None). Rows are sorted by (key,
        feature_timestamp); when two share both, the one with the later
        ``created_timestamp`` is kept (the correction wins, as it would in a
        point-in-time lookup).

    Raises
    ------
    DataError
        Naming the missing raw columns, a column of the wrong type, or a hook
        whose output does not fit.
    """
    definitions = FeatureDefinitions(project)
    key, event = project.entity.key, project.event_timestamp
    _require(raw, (key, event), "compute_features")
    timestamps = utc_timestamps(raw[event], event)
    created = (utc_timestamps(raw[CREATED_TIMESTAMP], CREATED_TIMESTAMP)
               if CREATED_TIMESTAMP in raw.columns else timestamps)
    values = _feature_values(project, raw)
    out = pd.DataFrame({
        key: entity_ids(raw[key], project.entity.type, key),
        FEATURE_TIMESTAMP: timestamps,
        CREATED_TIMESTAMP: created,
    })
    for name, kind in project.features.columns:
        out[name] = (_categorical(values[name]) if kind == "string"
                     else _numeric(values, name, integer=kind == "integer"))
    out = out.sort_values([key, FEATURE_TIMESTAMP, CREATED_TIMESTAMP], kind="stable")
    out = out.drop_duplicates([key, FEATURE_TIMESTAMP], keep="last")
    return out[list(definitions.table_columns)].reset_index(drop=True)


def carried_columns(project: Project) -> tuple[str, ...]:
    """Columns label events carry beside the label: not features, but what evaluation and monitoring judge by."""
    return tuple(dict.fromkeys(c for c in (*project.sensitive, *project.slices) if c not in project.features.names))


def label_events(project: Project, raw: pd.DataFrame) -> pd.DataFrame:
    """The rows training asks features for: who, as of when, and the outcome.

    Returns
    -------
    pandas.DataFrame
        The entity key, the event timestamp (UTC: the as-of time of the
        point-in-time lookup, so no feature written after the decision can leak
        in), the label in the task's encoding (0/1 for binary classification,
        int64), and the :func:`carried_columns` the raw data has, in the raw
        order. Rows whose label is not known yet (missing) are dropped: they are
        not training examples.

    Raises
    ------
    DataError
        Naming the missing columns, or a label the task cannot read.
    """
    key, event, label = project.entity.key, project.event_timestamp, project.label.column
    _require(raw, (key, event, label, *project.sensitive), "label_events")
    known = raw[raw[label].notna()]
    return pd.DataFrame({
        key: entity_ids(known[key], project.entity.type, key),
        event: utc_timestamps(known[event], event),
        label: encode_labels(project, known[label], "label_events").astype("int64"),
        **{column: known[column] for column in carried_columns(project) if column in known.columns},
    }).reset_index(drop=True)


def same_row_training_rows(project: Project, raw: pd.DataFrame) -> pd.DataFrame:
    """Training rows without a feature store: each label event joined to the features of its own raw row.

    What point-in-time retrieval returns when every raw row is its entity's latest feature row as of its
    event time. For a dry run (``mlops project check --data``) and for tests of training that need no Feast;
    real training retrieves through the store, which also finds an entity's earlier rows.
    """
    key, event = project.entity.key, project.event_timestamp
    features = compute_features(project, raw).drop(columns=CREATED_TIMESTAMP).rename(
        columns={FEATURE_TIMESTAMP: event})
    return label_events(project, raw).merge(features, on=[key, event], how="left", validate="one_to_one")
