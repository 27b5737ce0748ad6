"""Reading and writing tabular datasets (Parquet) on local disk or S3.

A dataset is addressed by a URI: ``s3://bucket/key.parquet`` or a local path.
Its identity is the SHA-256 of its bytes (the *content digest*), recorded
with every run trained on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops.errors import DataError, StorageError
from mlops.platform.storage import ObjectStore, is_s3_uri, parse_s3_uri, sha256_file

# Rows per Parquet row group in the files we write. Readers that stream (the
# validator) decode one row group at a time, so this bounds their memory.
ROW_GROUP_ROWS = 65_536


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as a training run records it."""

    uri: str
    rows: int
    columns: list[str]
    digest: str  # "sha256:<hex>" of the Parquet bytes


def _readable_local_file(uri: str) -> Path:
    source = Path(uri)
    if not source.exists():
        raise DataError(f"data not found: {source} does not exist")
    if not source.is_file():
        raise DataError(f"data path {source} is not a file (expected one Parquet file)")
    if not os.access(source, os.R_OK):
        raise DataError(f"data file {source} is not readable (permissions)")
    return source


def _copy_atomically(source: Path, dest: Path) -> None:
    """Copy beside ``dest`` then rename: readers see the old file or the whole new one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, dest)


def fetch(uri: str, dest: str | os.PathLike, store: ObjectStore | None = None) -> Path:
    """Copy the file at ``uri`` to ``dest`` (complete or not at all)."""
    dest = Path(dest)
    if is_s3_uri(uri):
        bucket, key = parse_s3_uri(uri)
        store = store or ObjectStore.from_env()
        if store.stat(key, bucket) is None:
            raise DataError(f"data not found: {uri} does not exist on S3 at {store.settings.url}")
        store.get_file(key, dest, bucket)
        return dest
    _copy_atomically(_readable_local_file(uri), dest)
    return dest


def read_parquet(path: str | os.PathLike, source: str | None = None) -> pd.DataFrame:
    """Read a local Parquet file, naming ``source`` (the URI) in any error."""
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataError(f"cannot read {source or path} as Parquet: {exc}") from None


def read_table(uri: str, store: ObjectStore | None = None) -> pd.DataFrame:
    """Read the Parquet dataset at ``uri`` (local path or s3://)."""
    if not is_s3_uri(uri):
        return read_parquet(_readable_local_file(uri), uri)
    with tempfile.TemporaryDirectory() as tmp:
        return read_parquet(fetch(uri, Path(tmp) / "data.parquet", store), uri)


def read_tables(uri: str, store: ObjectStore | None = None) -> pd.DataFrame:
    """One Parquet file, or every ``*.parquet`` under a prefix/folder ending in "/" (e.g. a label feed)."""
    if not uri.endswith("/"):
        return read_table(uri, store)
    if is_s3_uri(uri):
        bucket, prefix = parse_s3_uri(uri)
        store = store or ObjectStore.from_env()
        uris = [f"s3://{bucket}/{k}" for k in sorted(store.list_keys(prefix, bucket)) if k.endswith(".parquet")]
    else:
        uris = sorted(str(p) for p in Path(uri).glob("*.parquet"))
    if not uris:
        raise DataError(f"no Parquet files under {uri}")
    return pd.concat([read_table(u, store) for u in uris], ignore_index=True)


def write_table(df: pd.DataFrame, uri: str, store: ObjectStore | None = None) -> str:
    """Write ``df`` as Parquet to ``uri`` atomically; returns its content digest."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "data.parquet"
        df.to_parquet(local, index=False, row_group_size=ROW_GROUP_ROWS)
        digest = "sha256:" + sha256_file(local)
        if is_s3_uri(uri):
            bucket, key = parse_s3_uri(uri)
            store = store or ObjectStore.from_env()
            store.ensure_bucket(bucket)
            store.put_file(local, key, bucket)
        else:
            _copy_atomically(local, Path(uri))
    return digest


def require_columns(df: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{source} lacks required column(s) {missing}; it has {list(df.columns)}")


def check_training_data(df: pd.DataFrame, label_column: str, timestamp_column: str, source: str) -> None:
    """The minimum a training set must satisfy, each failure named precisely."""
    if df.empty:
        raise DataError(f"{source} is empty: 0 rows (columns: {list(df.columns)})")
    require_columns(df, [label_column, timestamp_column], source)
    labels = df[label_column]
    if labels.isna().any():
        raise DataError(f"{source}: label column {label_column!r} has {int(labels.isna().sum())} missing values")
    classes = set(pd.unique(labels))
    if not classes <= {0, 1, True, False}:
        raise DataError(f"{source}: label column {label_column!r} must be binary 0/1, found values {sorted(map(str, classes))[:10]}")
    if len(classes) < 2:
        raise DataError(f"{source}: label column {label_column!r} has a single class {classes}; cannot train a classifier")
    if not pd.api.types.is_datetime64_any_dtype(df[timestamp_column]):
        raise DataError(f"{source}: timestamp column {timestamp_column!r} must be a datetime, "
                        f"found dtype {df[timestamp_column].dtype}")


def ingest(uri: str, dest: str | os.PathLike, label_column: str, timestamp_column: str,
           store: ObjectStore | None = None) -> DatasetInfo:
    """Fetch a dataset to ``dest``, check it is trainable, and digest it.

    Nothing is left at ``dest`` when the data is unusable.
    """
    dest = Path(dest)
    try:
        fetch(uri, dest, store)
        df = read_parquet(dest, uri)
        check_training_data(df, label_column, timestamp_column, uri)
    except (DataError, StorageError):
        dest.unlink(missing_ok=True)
        raise
    return DatasetInfo(uri=uri, rows=len(df), columns=list(df.columns), digest="sha256:" + sha256_file(dest))
