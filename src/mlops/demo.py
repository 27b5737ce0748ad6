"""`make demo`: the lifecycle on this machine, told step by step.

For now: platform up -> demo data to S3 -> a broken batch stopped by data
validation (its report saved locally) -> the training pipeline run from its
compiled YAML by kfp.local on good data (validate, Feast features, point-in-time
retrieval, train, register) -> what was registered. Later stages
extend it.
"""

from __future__ import annotations

import os
import time

from mlops.datasets import write_table
from mlops.errors import PipelineError
from mlops.local_platform import LocalPlatform, state_dir
from mlops.local_run import pipeline_file, run_local
from mlops.run_summary import describe_training_outputs

STEPS = 6


def _step(n: int, text: str) -> None:
    print(f"\n=== [{n}/{STEPS}] {text}", flush=True)


def _run_training(data_uri: str, seed: int, label: str):
    path = pipeline_file("training")
    log_file = state_dir() / "logs" / f"demo-{label}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"pipeline: {path.name}; task logs: {log_file}")
    return run_local(path, {"data_uri": data_uri, "seed": seed}, state_dir() / "kfp-local", log_file)


def _save_report_locally(report_uri: str) -> str:
    """Copy a published validation report next to the platform state, for a browser."""
    from mlops.storage import ObjectStore, parse_s3_uri

    store = ObjectStore.from_env()
    bucket, key = parse_s3_uri(report_uri)
    target = state_dir() / "reports" / key.replace("/", "_")
    store.get_file(key, target, bucket)
    return str(target)


def _show_online_features(customer_id: str) -> None:
    from mlops.features import store as feature_store

    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env())
    feature_store.online_features(fs, [customer_id])  # first read resolves the feature service
    start = time.perf_counter()
    row = feature_store.online_features(fs, [customer_id]).iloc[0]
    elapsed_ms = (time.perf_counter() - start) * 1000
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
    print(f"{shown}\n(read in {elapsed_ms:.2f} ms; try `mlops features online --customer {customer_id}`)")


def run_demo(rows: int = 20_000, seed: int = 42) -> None:
    from mlops.data.generator import generate_credit_data

    started = time.perf_counter()
    _step(1, "local platform: S3 (SeaweedFS) + MLflow on 127.0.0.1")
    env = LocalPlatform().up()
    for key, value in env.items():
        os.environ.setdefault(key, value)
    bucket = os.environ.get("MLOPS_BUCKET", env["MLOPS_BUCKET"])

    good_uri = f"s3://{bucket}/datasets/credit/train.parquet"
    bad_uri = f"s3://{bucket}/datasets/credit/incoming-wrong-units.parquet"
    _step(2, f"demo data: {rows} credit applications (seed {seed}), and a broken upstream batch")
    df = generate_credit_data(rows, seed=seed)
    print(f"{good_uri}: {len(df)} rows, default rate {df['default'].mean():.3f}, {write_table(df, good_uri)}")
    broken = generate_credit_data(max(rows // 4, 2_000), seed=seed + 1, scenario="wrong_units")
    print(f"{bad_uri}: {len(broken)} rows whose income arrives in thousands, {write_table(broken, bad_uri)}")

    _step(3, "the broken batch goes into the training pipeline: data validation must stop it")
    try:
        _run_training(bad_uri, seed, "bad-batch")
    except PipelineError as exc:
        print(f"stopped as it should be:\n{exc}")
        report = next((w.split("report: ", 1)[1].strip() for w in str(exc).splitlines() if "report: s3://" in w), None)
        if report:
            print(f"validation report (HTML with plots): {_save_report_locally(report)}")
    else:
        raise PipelineError("the broken batch passed validation: the data contract is not doing its job")

    _step(4, "the good data goes through: validate -> features (Feast) -> point-in-time retrieval -> train -> register")
    result = _run_training(good_uri, seed, "training")

    _step(5, "result")
    for line in describe_training_outputs(result.outputs):
        print(line)

    _step(6, "the same features, online: what serving will read for a customer")
    _show_online_features(df["customer_id"].iloc[-1])
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s. Look around: MLflow UI at "
          f"{os.environ['MLFLOW_TRACKING_URI']}; reports in {state_dir() / 'reports'}; "
          "`mlops platform status`; `mlops platform down` to stop.")
