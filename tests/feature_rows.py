"""Training rows the way the pipeline makes them (Feast features, point-in-time retrieval), for tests that
need real models: the rows, and a copy with flipped labels (a model fine to serve, wrong to ship)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def training_rows(store, tmp: Path, name: str, rows: int, seed: int):
    """(info of the retrieved training rows, their path, the flipped-label copy's path)."""
    from mlops import stages
    from mlops.data.generator import generate_credit_data
    from mlops.datasets import write_table

    uri = f"s3://{store.bucket}/datasets/{name}.parquet"
    write_table(generate_credit_data(rows, seed=seed), uri)
    features = stages.build_features(uri, "credit_features", tmp / "reports", store)
    train, _ = stages.retrieve_training_data(uri, features.snapshot_uri, tmp / "train.parquet",
                                             tmp / "test.parquet", store)
    flipped = pd.read_parquet(tmp / "train.parquet")
    flipped["default"] = 1 - flipped["default"]
    flipped.to_parquet(tmp / "flipped.parquet", index=False)
    return train, tmp / "train.parquet", tmp / "flipped.parquet"
