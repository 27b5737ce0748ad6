"""Dataset fetching, checks and digests: each bad input named precisely, nothing left behind.

Checked on the training rows of both example projects (credit: string ids, label ``default``;
churn: integer ids, label ``churned`` encoded 0/1 from "yes"/"no"), each with its own label and
event-time columns.
"""

import pandas as pd
import pytest

from mlops.errors import DataError, StorageError
from mlops.platform.datasets import ingest, read_table, write_table
from tests.projects import CHURN, CREDIT, EXAMPLES, generate_churn_data, generate_credit_data, offline_rows


@pytest.fixture(scope="module")
def credit():
    return generate_credit_data(2_000, seed=3)


@pytest.fixture(scope="module")
def frames(credit):
    """A trainable frame per project: credit's raw rows (label already 0/1), churn's training rows."""
    return {CREDIT.name: credit, CHURN.name: offline_rows(CHURN, generate_churn_data(2_000, seed=3))}


@pytest.fixture(params=EXAMPLES, ids=lambda p: p.name)
def case(request, frames):
    project = request.param
    return project, frames[project.name], project.label.column, project.event_timestamp


def test_local_write_read_and_digest_is_content_addressed(case, tmp_path):
    _, frame, *_ = case
    d1 = write_table(frame, str(tmp_path / "a.parquet"))
    d2 = write_table(frame, str(tmp_path / "b.parquet"))
    d3 = write_table(frame.head(1_500), str(tmp_path / "c.parquet"))
    assert d1 == d2 != d3 and d1.startswith("sha256:")
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "a.parquet")), frame)
    assert not list(tmp_path.glob(".*partial"))


def test_ingest_copies_checks_and_digests(case, tmp_path):
    _, frame, label, event = case
    write_table(frame, str(tmp_path / "in.parquet"))
    info = ingest(str(tmp_path / "in.parquet"), tmp_path / "out" / "data", label, event)
    assert info.rows == 2_000 and label in info.columns and event in info.columns
    assert info.digest == write_table(frame, str(tmp_path / "again.parquet"))


def test_raw_text_labels_are_not_training_rows(tmp_path):
    """Churn's raw "yes"/"no" label must be encoded (label_events) before it is trained on."""
    write_table(generate_churn_data(500), str(tmp_path / "raw.parquet"))
    with pytest.raises(DataError, match=r"label column 'churned' must be binary 0/1, found values \['no', 'yes'\]"):
        ingest(str(tmp_path / "raw.parquet"), tmp_path / "d", CHURN.label.column, CHURN.event_timestamp)
    assert not (tmp_path / "d").exists()


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


def test_empty_dataset(case, tmp_path):
    _, frame, label, event = case
    write_table(frame.head(0), str(tmp_path / "empty.parquet"))
    with pytest.raises(DataError, match=r"is empty: 0 rows"):
        ingest(str(tmp_path / "empty.parquet"), tmp_path / "d", label, event)
    assert not (tmp_path / "d").exists()


def test_label_column_absent(case, tmp_path):
    _, frame, label, event = case
    write_table(frame.drop(columns=[label]), str(tmp_path / "nolabel.parquet"))
    with pytest.raises(DataError, match=rf"lacks required column\(s\) \['{label}'\]"):
        ingest(str(tmp_path / "nolabel.parquet"), tmp_path / "d", label, event)


@pytest.mark.parametrize("mutate, message", [
    (lambda df, label, event: df.assign(**{label: df[label] * 3}), "must be binary 0/1"),
    (lambda df, label, event: df.assign(**{label: 0}), "single class"),
    (lambda df, label, event: df.assign(**{label: df[label].astype(float).where(df.index > 5)}), "missing values"),
    (lambda df, label, event: df.assign(**{event: df[event].astype(str)}), "must be a datetime"),
])
def test_untrainable_labels_and_timestamps(case, tmp_path, mutate, message):
    _, frame, label, event = case
    write_table(mutate(frame, label, event), str(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match=message) as info:
        ingest(str(tmp_path / "bad.parquet"), tmp_path / "d", label, event)
    assert repr(label if "datetime" not in message else event) in str(info.value)


@pytest.mark.platform
def test_s3_round_trip_and_missing_key(case, store, tmp_path):
    project, frame, label, event = case
    uri = f"s3://{store.bucket}/tests/datasets/{project.names.prefix}.parquet"
    digest = write_table(frame, uri, store)
    info = ingest(uri, tmp_path / "d", label, event, store)
    assert info.digest == digest and info.rows == len(frame)
    with pytest.raises(DataError, match=r"data not found: s3://.*/tests/datasets/absent.parquet does not exist"):
        ingest(f"s3://{store.bucket}/tests/datasets/absent.parquet", tmp_path / "e", label, event, store)
    with pytest.raises(StorageError, match="not a plain relative path"):
        read_table(f"s3://{store.bucket}/../etc/passwd", store)


def test_written_files_have_bounded_row_groups(tmp_path):
    """Streaming readers decode a row group at a time: our files keep them small."""
    import pyarrow.parquet as pq

    from mlops.platform.datasets import ROW_GROUP_ROWS

    write_table(generate_credit_data(200_000, seed=1), str(tmp_path / "big.parquet"))
    meta = pq.ParquetFile(tmp_path / "big.parquet").metadata
    assert meta.num_row_groups == 4
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == ROW_GROUP_ROWS
