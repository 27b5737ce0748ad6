"""Training rows the way the pipeline makes them (Feast features, point-in-time retrieval), for tests that
need real models: the rows, and a copy with flipped labels (a model fine to serve, wrong to ship)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def training_rows(store, work: Path, project, raw: pd.DataFrame):
    """``raw`` data of ``project`` to S3 -> Feast features (snapshot, apply, materialize) -> point-in-time rows.

    Returns (info of the training rows, the features stage's result, the rows' path, a flipped-label copy's
    path); the rows are ``work/train.parquet``, the held-out ones ``work/test.parquet``.
    """
    from mlops import stages
    from mlops.platform.datasets import write_table

    uri = f"s3://{store.bucket}/datasets/{project.names.prefix}/train.parquet"
    write_table(raw, uri, store)
    features = stages.build_features(project, uri, work / "feature-reports", store)
    train, _ = stages.retrieve_training_data(project, uri, features.snapshot_uri, work / "train.parquet",
                                             work / "test.parquet", store)
    flipped = pd.read_parquet(work / "train.parquet")
    label = project.label.column
    flipped[label] = 1 - flipped[label]
    flipped.to_parquet(work / "flipped.parquet", index=False)
    return train, features, work / "train.parquet", work / "flipped.parquet"
