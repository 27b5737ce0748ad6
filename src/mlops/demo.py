"""`make demo`: the lifecycle on this machine, told step by step.

For now: platform up -> demo data to S3 -> the training pipeline run from its
compiled YAML by kfp.local -> what was registered. Later stages extend it.
"""

from __future__ import annotations

import os
import time

from mlops.datasets import write_table
from mlops.local_platform import LocalPlatform, state_dir
from mlops.local_run import pipeline_file, run_local
from mlops.run_summary import describe_training_outputs


def _step(n: int, total: int, text: str) -> None:
    print(f"\n=== [{n}/{total}] {text}", flush=True)


def run_demo(rows: int = 20_000, seed: int = 42) -> None:
    from mlops.data.generator import generate_credit_data

    started = time.perf_counter()
    total = 4
    _step(1, total, "local platform: S3 (SeaweedFS) + MLflow on 127.0.0.1")
    env = LocalPlatform().up()
    for key, value in env.items():
        os.environ.setdefault(key, value)

    bucket = os.environ.get("MLOPS_BUCKET", env["MLOPS_BUCKET"])
    data_uri = f"s3://{bucket}/datasets/credit/train.parquet"
    _step(2, total, f"demo data: {rows} credit applications (seed {seed}) -> {data_uri}")
    df = generate_credit_data(rows, seed=seed)
    digest = write_table(df, data_uri)
    print(f"wrote {len(df)} rows, default rate {df['default'].mean():.3f}, {digest}")

    path = pipeline_file("training")
    _step(3, total, f"training pipeline from its compiled YAML ({path.name}) with kfp.local")
    log_file = state_dir() / "logs" / f"demo-training-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"task logs: {log_file}")
    result = run_local(path, {"data_uri": data_uri, "seed": seed}, state_dir() / "kfp-local", log_file)

    _step(4, total, "result")
    for line in describe_training_outputs(result.outputs):
        print(line)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s. Look around: MLflow UI at "
          f"{os.environ['MLFLOW_TRACKING_URI']}; `mlops platform status`; `mlops platform down` to stop.")
