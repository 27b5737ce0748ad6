"""From Parquet columns to the frame the model scores, and the output columns written beside it.

The input must hold the model's feature columns (its signature), with
types the predictor would accept: numbers for numeric features, text for
text features. They become the very frame the predictor builds from a
request (:func:`mlops.serving.request_schema.model_frame`), so a row scores
the same online and in batch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlops.errors import DataError
from mlops.serving.request_schema import NUMERIC_TYPES, model_frame

PROBABILITY, PREDICTED_CLASS = "probability", "predicted_class"
MODEL_NAME, MODEL_VERSION, SCORED_AT = "model_name", "model_version", "scored_at"
OUTPUT_COLUMNS = (PROBABILITY, PREDICTED_CLASS, MODEL_NAME, MODEL_VERSION, SCORED_AT)
SCORED_AT_TYPE = pa.timestamp("us", tz="UTC")


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t)


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            or pa.types.is_null(t))


def check_columns(schema: pa.Schema, columns: tuple[tuple[str, str], ...], keep: tuple[str, ...],
                  source: str) -> None:
    """Raise DataError naming ``source`` unless it has every feature (of a usable type) and every kept column."""
    names = set(schema.names)
    missing = [name for name, _ in columns if name not in names]
    if missing:
        raise DataError(f"{source} lacks the model's feature column(s) {missing}; it has {schema.names}")
    absent = [name for name in keep if name not in names]
    if absent:
        raise DataError(f"{source} lacks column(s) {absent} to keep (--keep); it has {schema.names}")
    wrong = []
    for name, kind in columns:
        arrow_type = schema.field(name).type
        numeric = kind in NUMERIC_TYPES
        if not (_is_numeric(arrow_type) if numeric else _is_text(arrow_type)):
            wrong.append(f"{name} is {arrow_type}, the model expects {'numbers' if numeric else 'text'} ({kind})")
    if wrong:
        raise DataError(f"{source} has feature columns of the wrong type: " + "; ".join(wrong))


def resolve_keep(keep: str | list[str] | tuple[str, ...] | None, schema: pa.Schema,
                 entity_key: str | None = None) -> tuple[str, ...]:
    """The columns passed through to the output: as given, or the entity key when the input has it."""
    if keep is None or keep == "":
        return (entity_key,) if entity_key and entity_key in schema.names else ()
    names = [n.strip() for n in keep.split(",")] if isinstance(keep, str) else list(keep)
    if any(not n for n in names) or len(set(names)) != len(names):
        raise DataError(f"columns to keep must be distinct non-empty names separated by commas, got {keep!r}")
    clash = sorted(set(names) & set(OUTPUT_COLUMNS))
    if clash:
        raise DataError(f"cannot keep column(s) {clash}: the output writes columns of those names itself")
    return tuple(names)


def output_schema(input_schema: pa.Schema, keep: tuple[str, ...]) -> pa.Schema:
    return pa.schema([input_schema.field(n) for n in keep] + [
        pa.field(PROBABILITY, pa.float64()), pa.field(PREDICTED_CLASS, pa.int64()),
        pa.field(MODEL_NAME, pa.string()), pa.field(MODEL_VERSION, pa.string()),
        pa.field(SCORED_AT, SCORED_AT_TYPE)])


def _values(column: pa.Array, kind: str) -> np.ndarray:
    if kind in NUMERIC_TYPES:  # integers too, so a missing value is NaN, as the predictor does
        return column.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return column.cast(pa.string()).to_numpy(zero_copy_only=False)  # None where missing


def features(batch: pa.RecordBatch, columns: tuple[tuple[str, str], ...]):
    """The model's input frame for one batch of rows (see the module docstring)."""
    return model_frame(columns, {name: _values(batch.column(name), kind) for name, kind in columns})


def scored(batch: pa.RecordBatch, keep: tuple[str, ...], probability: np.ndarray, threshold: float,
           model_name: str, model_version: str, scored_at: pa.Scalar, schema: pa.Schema) -> pa.RecordBatch:
    """The output rows for ``batch``: kept columns, probability, class at ``threshold``, model and time."""
    n = len(probability)
    arrays = [batch.column(name) for name in keep] + [
        pa.array(probability, pa.float64()), pa.array((probability >= threshold).astype(np.int64)),
        pa.repeat(pa.scalar(model_name), n), pa.repeat(pa.scalar(model_version), n), pa.repeat(scored_at, n)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
