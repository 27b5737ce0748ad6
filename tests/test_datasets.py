"""Dataset fetching, checks and digests: each bad input named precisely, nothing left behind."""

import pandas as pd
import pytest

from mlops.data.generator import generate_credit_data
from mlops.datasets import ingest, read_table, write_table
from mlops.errors import DataError, StorageError


@pytest.fixture(scope="module")
def credit():
    return generate_credit_data(2_000, seed=3)


def test_local_write_read_and_digest_is_content_addressed(credit, tmp_path):
    d1 = write_table(credit, str(tmp_path / "a.parquet"))
    d2 = write_table(credit, str(tmp_path / "b.parquet"))
    d3 = write_table(credit.head(1_500), str(tmp_path / "c.parquet"))
    assert d1 == d2 != d3 and d1.startswith("sha256:")
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "a.parquet")), credit)
    assert not list(tmp_path.glob(".*partial"))


def test_ingest_copies_checks_and_digests(credit, tmp_path):
    write_table(credit, str(tmp_path / "in.parquet"))
    info = ingest(str(tmp_path / "in.parquet"), tmp_path / "out" / "data", "default", "event_timestamp")
    assert info.rows == 2_000 and "default" in info.columns
    assert info.digest == write_table(credit, str(tmp_path / "again.parquet"))


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "data not found: .* does not exist"),
    (lambda p: p.mkdir(), "is not a file"),
    (lambda p: p.write_text("id,default\n1,0\n"), "cannot read .* as Parquet"),
])
def test_unusable_paths_are_named(tmp_path, make, message):
    path = tmp_path / "data.parquet"
    make(path)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=message) as info:
        ingest(str(path), dest, "default", "event_timestamp")
    assert str(path) in str(info.value)
    assert not dest.exists()


def test_empty_dataset(credit, tmp_path):
    write_table(credit.head(0), str(tmp_path / "empty.parquet"))
    with pytest.raises(DataError, match=r"is empty: 0 rows"):
        ingest(str(tmp_path / "empty.parquet"), tmp_path / "d", "default", "event_timestamp")
    assert not (tmp_path / "d").exists()


def test_label_column_absent(credit, tmp_path):
    write_table(credit.drop(columns=["default"]), str(tmp_path / "nolabel.parquet"))
    with pytest.raises(DataError, match=r"lacks required column\(s\) \['default'\]"):
        ingest(str(tmp_path / "nolabel.parquet"), tmp_path / "d", "default", "event_timestamp")


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.assign(default=df["default"] * 3), "must be binary 0/1"),
    (lambda df: df.assign(default=0), "single class"),
    (lambda df: df.assign(default=df["default"].astype(float).where(df.index > 5)), "missing values"),
    (lambda df: df.assign(event_timestamp=df["event_timestamp"].astype(str)), "must be a datetime"),
])
def test_untrainable_labels_and_timestamps(credit, tmp_path, mutate, message):
    write_table(mutate(credit), str(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match=message):
        ingest(str(tmp_path / "bad.parquet"), tmp_path / "d", "default", "event_timestamp")


@pytest.mark.platform
def test_s3_round_trip_and_missing_key(credit, store, tmp_path):
    uri = f"s3://{store.bucket}/tests/datasets/credit.parquet"
    digest = write_table(credit, uri, store)
    info = ingest(uri, tmp_path / "d", "default", "event_timestamp", store)
    assert info.digest == digest and info.rows == len(credit)
    with pytest.raises(DataError, match=r"data not found: s3://.*/tests/datasets/absent.parquet does not exist"):
        ingest(f"s3://{store.bucket}/tests/datasets/absent.parquet", tmp_path / "e", "default",
               "event_timestamp", store)
    with pytest.raises(StorageError, match="not a plain relative path"):
        read_table(f"s3://{store.bucket}/../etc/passwd", store)


def test_written_files_have_bounded_row_groups(tmp_path):
    """Streaming readers decode a row group at a time: our files keep them small."""
    import pyarrow.parquet as pq

    from mlops.datasets import ROW_GROUP_ROWS

    write_table(generate_credit_data(200_000, seed=1), str(tmp_path / "big.parquet"))
    meta = pq.ParquetFile(tmp_path / "big.parquet").metadata
    assert meta.num_row_groups == 4
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == ROW_GROUP_ROWS
