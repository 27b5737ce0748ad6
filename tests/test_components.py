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
    retrieved = load("retrieve")(data_uri=uri, snapshot_uri=features.outputs["snapshot_uri"])
    assert retrieved.outputs["rows"] == 3_000
    import pandas as pd

    rows = pd.read_parquet(retrieved.outputs["dataset"].path)
    assert {"customer_id", "event_timestamp", "default", "loan_to_income"} <= set(rows.columns)
    assert rows["income"].notna().mean() > 0.95  # features found for (nearly) every label event
