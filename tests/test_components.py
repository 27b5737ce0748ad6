"""Each component's own YAML loads and runs alone with kfp.local, as users load single stages."""

from pathlib import Path

import pytest
from kfp import components, local
from mlflow import MlflowClient

from mlops.data.generator import generate_credit_data
from mlops.datasets import DatasetInfo, write_table
from mlops.stages import train_and_log
from mlops.training import TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.platform


@pytest.fixture
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))


def load(stage):
    return components.load_component_from_file(str(ROOT / "components" / stage / "component.yaml"))


def test_ingest_component_alone(platform, local_runner):
    uri = f"s3://{platform.bucket}/tests/components/train.parquet"
    digest = write_table(generate_credit_data(1_000, seed=4), uri)
    task = load("ingest")(data_uri=uri, label_column="default", timestamp_column="event_timestamp")
    assert task.outputs["digest"] == digest and task.outputs["rows"] == 1_000
    assert Path(task.outputs["dataset"].path).stat().st_size > 0


def test_register_component_alone(platform, local_runner, tmp_path):
    df = generate_credit_data(2_000, seed=4)
    path = tmp_path / "train.parquet"
    digest = write_table(df, str(path))
    result = train_and_log(str(path), DatasetInfo(str(path), len(df), list(df.columns), digest),
                           TrainingConfig(max_iter=20), "component-tests")
    task = load("register")(model_uri=result.run.model_uri, run_id=result.run.run_id,
                            model_name="component-test-model", dataset_digest=digest)
    mv = MlflowClient().get_model_version("component-test-model", task.output)
    assert mv.status == "READY" and mv.run_id == result.run.run_id


def test_features_then_retrieval_components_alone(platform, local_runner):
    uri = f"s3://{platform.bucket}/tests/components/raw.parquet"
    write_table(generate_credit_data(3_000, seed=6), uri)
    features = load("features")(data_uri=uri, features_contract="credit_features")
    assert features.outputs["snapshot_uri"].endswith(".parquet") and features.outputs["rows"] == 3_000
    assert features.outputs["definitions_version"].startswith("sha256:")
    assert "PASSED" in Path(features.outputs["summary"].path).read_text()
    retrieved = load("retrieve")(data_uri=uri, snapshot_uri=features.outputs["snapshot_uri"], test_fraction=0.25)
    assert (retrieved.outputs["rows"], retrieved.outputs["test_rows"]) == (2_250, 750)
    import pandas as pd

    rows = pd.read_parquet(retrieved.outputs["train_set"].path)
    test = pd.read_parquet(retrieved.outputs["test_set"].path)
    assert rows["event_timestamp"].max() <= test["event_timestamp"].min()  # the test set is the most recent
    assert "gender" in test.columns  # carried for the fairness evaluation, never a feature
    assert {"customer_id", "event_timestamp", "default", "loan_to_income"} <= set(rows.columns)
    assert rows["income"].notna().mean() > 0.95  # features found for (nearly) every label event


def test_skew_component_passes_parity_and_names_a_skewed_feature(platform, local_runner, store, tmp_path, capsys):
    """Serving's logged vectors (read online) agree with the offline recomputation; a skewed one is caught."""
    import pandas as pd

    from mlops.features import store as feature_store
    from mlops.stages import build_features

    raw = generate_credit_data(2_000, seed=12)
    uri = f"s3://{platform.bucket}/tests/components/skew-raw.parquet"
    write_table(raw, uri)
    build_features(uri, "credit_features", tmp_path / "features", store)
    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env())
    customers = raw["customer_id"].iloc[-20:].tolist()  # recent: inside the materialized window
    served = feature_store.online_features(fs, customers)
    served["event_timestamp"] = raw["event_timestamp"].max() + pd.Timedelta(seconds=5)
    good_uri, bad_uri = (f"s3://{platform.bucket}/tests/components/served-{n}.parquet" for n in ("good", "bad"))
    write_table(served, good_uri)
    write_table(served.assign(debt_to_income=served["debt_to_income"] * 1.5), bad_uri)

    ok = load("skew")(served_uri=good_uri, max_mismatch_rate=0.0)
    assert ok.outputs["worst_mismatch_rate"] == 0.0 and ok.outputs["mismatched_features"] == ""
    capsys.readouterr()
    with pytest.raises(RuntimeError):
        load("skew")(served_uri=bad_uri, max_mismatch_rate=0.0)
    errors = [line for line in capsys.readouterr().out.splitlines() if "MLOPS-ERROR:" in line]
    assert "training-serving skew above 0.00%" in errors[0] and "[skew]" in errors[0]
    assert any("debt_to_income" in line for line in errors[1:])
