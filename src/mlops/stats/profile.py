"""A dataset's reference profile: one summary per feature and per model output.

Computed once at training time and stored with the model's run, so
monitoring compares each window with it and never re-reads the training
data. Profiles of partitions merge into the profile of the whole, and a
Parquet file is profiled batch by batch in bounded memory.
"""

from __future__ import annotations

import binascii
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.errors import ConfigError, DataError
from mlops.stats.methods import CATEGORICAL, NUMERIC
from mlops.stats.summaries import (MAX_CATEGORIES, MAX_POINTS, CategoricalSummary, NumericSummary, Summary,
                                        summary_from_json)

FORMAT = "mlops-reference-profile/1"
PROBABILITY = "probability"  # the model output monitored for prediction drift


def summarise(column: pd.Series, kind: str, max_points: int | None = MAX_POINTS) -> Summary:
    if kind == NUMERIC:
        # Nullable integer columns (pandas.NA) become float64 with NaN, remembered as integers.
        return NumericSummary.of(column.to_numpy(dtype=np.float64, na_value=np.nan), max_points,
                                 integer=pd.api.types.is_integer_dtype(column.dtype))
    # Exact summaries (max_points None) keep every category too.
    return CategoricalSummary.of(column, MAX_CATEGORIES if max_points is not None else None)


def kind_of(summary: Summary) -> str:
    return NUMERIC if isinstance(summary, NumericSummary) else CATEGORICAL


@dataclass(eq=False)
class Profile:
    """Feature summaries, output summaries (e.g. ``probability``) and free-form metadata."""

    features: dict[str, Summary]
    outputs: dict[str, Summary] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return max((s.rows for s in self.features.values()), default=0)

    def kinds(self) -> dict[str, str]:
        return {name: kind_of(s) for name, s in self.features.items()}

    @classmethod
    def of_frame(cls, df: pd.DataFrame, kinds: dict[str, str], outputs: dict[str, np.ndarray] | None = None,
                 metadata: dict | None = None, max_points: int | None = MAX_POINTS,
                 source: str = "data") -> "Profile":
        """Profile ``df``'s columns named in ``kinds`` (column -> "numeric" | "categorical")."""
        missing = [c for c in kinds if c not in df.columns]
        if missing:
            raise DataError(f"{source}: column(s) {missing} to monitor are missing (has {list(df.columns)})")
        for name, kind in kinds.items():
            if kind not in (NUMERIC, CATEGORICAL):
                raise ConfigError(f"column {name!r}: kind must be {NUMERIC!r} or {CATEGORICAL!r}, got {kind!r}")
            if kind == NUMERIC and not (pd.api.types.is_numeric_dtype(df[name]) or df[name].isna().all()):
                raise DataError(f"{source}: column {name!r} should be numeric but holds {df[name].dtype} values")
        features = {name: summarise(df[name], kind, max_points) for name, kind in kinds.items()}
        outs = {name: NumericSummary.of(values, max_points) for name, values in (outputs or {}).items()}
        return cls(features, outs, dict(metadata or {}))

    def merge(self, other: "Profile", max_points: int | None = MAX_POINTS) -> "Profile":
        """The profile of both partitions together (same columns and kinds required)."""
        if self.kinds() != other.kinds() or set(self.outputs) != set(other.outputs):
            raise ConfigError("profiles merge only over the same columns of the same kinds "
                              f"({self.kinds()} vs {other.kinds()})")
        return Profile({n: s.merge(other.features[n], max_points) for n, s in self.features.items()},
                       {n: s.merge(other.outputs[n], max_points) for n, s in self.outputs.items()},
                       {**other.metadata, **self.metadata})

    # -- storage ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "metadata": self.metadata,
                "features": {n: s.to_json() for n, s in self.features.items()},
                "outputs": {n: s.to_json() for n, s in self.outputs.items()}}

    @classmethod
    def from_json(cls, doc, source: str = "profile") -> "Profile":
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise DataError(f"{source} is not a reference profile (format {found!r}, expected {FORMAT!r})")
        parts: dict[str, dict[str, Summary]] = {}
        for part in ("features", "outputs"):
            parts[part] = {}
            raw = doc.get(part) or {}
            if not isinstance(raw, dict):
                raise DataError(f"{source}: {part} must map column names to summaries, got {type(raw).__name__}")
            for name, summary in raw.items():
                try:
                    parts[part][name] = summary_from_json(summary)
                except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
                    raise DataError(f"{source}: {part}.{name} is malformed: {exc!r}") from None
        if not parts["features"]:
            raise DataError(f"{source}: the profile has no features")
        return cls(parts["features"], parts["outputs"], dict(doc.get("metadata") or {}))

    def save(self, path: str | Path) -> Path:
        """Write atomically: a reader never sees half a profile."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".profile-", dir=path.parent)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a committed profile from a non-root reader
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_json(), fh, separators=(",", ":"))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise DataError(f"cannot read reference profile {path}: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"reference profile {path} is not JSON: {exc}") from None
        return cls.from_json(doc, source=f"reference profile {path}")


def summarise_parquet_column(path: str | Path, name: str, kind: str, max_points: int | None = None) -> Summary:
    """One column of a Parquet file, read alone and summarised in Arrow: no Python objects per row,
    so a million strings cost their dictionary, not a million str objects."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    stored = pq.ParquetFile(path).schema_arrow.field(name).type
    # Text read dictionary-encoded: counting a million strings becomes counting their codes.
    text = pa.types.is_string(stored) or pa.types.is_large_string(stored)
    column = pq.read_table(path, columns=[name], read_dictionary=[name] if text else None).column(0)
    if kind == NUMERIC:
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_null(column.type)):
            raise DataError(f"{path}: column {name!r} should be numeric but holds {column.type} values")
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
        return NumericSummary.of(values, max_points, integer=pa.types.is_integer(column.type))
    counts = pc.value_counts(column.cast(pa.string()) if not pa.types.is_dictionary(column.type) else column)
    values, numbers = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    present = {str(v): n for v, n in sorted(zip(values, numbers), key=lambda vn: -vn[1]) if v is not None}
    return CategoricalSummary(limit=MAX_CATEGORIES if max_points is not None else None).add_counts(
        present, column.null_count)


def profile_parquet(path: str | Path, kinds: dict[str, str], batch_rows: int = 262_144,
                    max_points: int | None = MAX_POINTS, metadata: dict | None = None) -> Profile:
    """Profile a Parquet file batch by batch: memory is bounded by the batch, not the file."""
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}") from None
    absent = [c for c in kinds if c not in reader.schema_arrow.names]
    if absent:
        raise DataError(f"{path}: column(s) {absent} to monitor are missing")
    profile: Profile | None = None
    for batch in reader.iter_batches(batch_size=batch_rows, columns=list(kinds)):
        part = Profile.of_frame(batch.to_pandas(), kinds, max_points=max_points, source=str(path))
        profile = part if profile is None else profile.merge(part, max_points)
    if profile is None:
        raise DataError(f"{path} holds no rows")
    profile.metadata.update(metadata or {})
    return profile
