"""The compiled training pipeline YAML, run by kfp.local against the real local platform."""

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from mlops.data.generator import generate_credit_data
from mlops.datasets import write_table
from mlops.errors import PipelineError
from mlops.features.engineering import compute_features
from mlops.local_run import pipeline_file, run_local

pytestmark = pytest.mark.platform
MODEL = "credit-default-test"


@pytest.fixture(scope="module")
def data_uri(platform):
    uri = f"s3://{platform.bucket}/tests/pipeline/train.parquet"
    digest = write_table(generate_credit_data(5_000, seed=7), uri)
    return uri, digest


def run(tmp_path, **arguments):
    arguments = {"model_name": MODEL, "experiment": "pipeline-tests", "max_iter": 50, **arguments}
    return run_local(pipeline_file("training"), arguments, tmp_path / "root", tmp_path / "tasks.log")


def versions(name=MODEL):
    return {v.version for v in MlflowClient().search_model_versions(f"name = '{name}'")}


def version_of(result, name=MODEL) -> str:
    """The version a run registered (the pipeline registers only what the gate blessed)."""
    [mv] = MlflowClient().search_model_versions(f"run_id = '{result.outputs['run_id']}'")
    assert mv.name == name
    return mv.version


def test_runs_from_compiled_yaml_and_records_lineage(platform, data_uri, tmp_path):
    uri, digest = data_uri
    result = run(tmp_path, data_uri=uri)
    assert result.outputs["verdict"] == "BLESSED"
    version = version_of(result)
    client = MlflowClient()
    mv = client.get_model_version(MODEL, version)
    assert "staging" in mv.aliases  # high-stakes (the packaged gate): production waits for an approval
    assert mv.status == "READY" and mv.run_id == result.outputs["run_id"]
    run_ = client.get_run(mv.run_id)
    tags, params, metrics = run_.data.tags, run_.data.params, run_.data.metrics
    # The raw batch and the point-in-time training rows built from it are both recorded.
    assert tags["mlops.raw_data_digest"] == digest and tags["mlops.dataset_uri"] == uri
    assert mv.tags["mlops.dataset_digest"] == tags["mlops.dataset_digest"] != digest
    assert tags["mlops.environment_digest"].startswith("sha256:") and len(tags["mlops.environment_digest"]) == 71
    assert tags["mlops.code_version"] not in ("", "unknown")
    assert params["seed"] == "42" and params["max_iter"] == "50" and "income" in params["features"]
    assert 0.65 < metrics["validation_roc_auc"] < 0.95
    assert set(result.task_seconds) == {"validate-data", "build-features", "retrieve-training-data", "train-model",
                                        "evaluate-model", "promote-model"}
    assert tags["mlops.feature_snapshot"].startswith(f"s3://{platform.bucket}/features/credit/")
    assert tags["mlops.feature_definitions"].startswith("sha256:")
    # The model's bytes went through MLflow's proxy into our S3 bucket.
    assert any(k.endswith("model.skops") for k in platform_keys(platform, "mlflow-artifacts"))
    # No secret leaks into task logs.
    assert platform.s3_settings().secret_key not in (tmp_path / "tasks.log").read_text()


def platform_keys(platform, prefix):
    from mlops.storage import ObjectStore

    return ObjectStore(platform.s3_settings()).list_keys(prefix)


def test_retraining_on_same_data_and_seed_gives_identical_predictions(data_uri, tmp_path):
    uri, _ = data_uri
    first = run(tmp_path / "a", data_uri=uri)
    second = run(tmp_path / "b", data_uri=uri)
    assert version_of(first) != version_of(second)
    holdout = compute_features(generate_credit_data(2_000, seed=2024, start="2025-09-01"))
    scores = []
    for result in (first, second):
        model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version_of(result)}")
        features = MlflowClient().get_run(result.outputs["run_id"]).data.params["features"].split(",")
        scores.append(model.predict_proba(holdout[features])[:, 1])
    assert np.array_equal(scores[0], scores[1])


@pytest.mark.parametrize("arguments, stage, message", [
    ({"data_uri": "s3://mlops/tests/pipeline/absent.parquet"}, "validate", "data not found"),
    ({"learning_rate": 5.0}, "train", "learning_rate must be in (0, 1]"),
])
def test_bad_input_fails_at_its_stage_and_registers_nothing(data_uri, tmp_path, arguments, stage, message):
    before = versions()
    with pytest.raises(PipelineError) as info:
        run(tmp_path, **{"data_uri": data_uri[0], **arguments})
    assert f"[{stage}]" in str(info.value) and message in str(info.value)
    assert "Traceback" not in str(info.value)
    assert versions() == before


def test_missing_label_column_is_refused(platform, tmp_path):
    uri = f"s3://{platform.bucket}/tests/pipeline/nolabel.parquet"
    write_table(generate_credit_data(3_000, seed=1).drop(columns=["default"]), uri)
    with pytest.raises(PipelineError, match=r"(?s)\[validate\] .*schema.missing_column \[default\]"):
        run(tmp_path, data_uri=uri)


def test_empty_dataset_is_refused(platform, tmp_path):
    uri = f"s3://{platform.bucket}/tests/pipeline/empty.parquet"
    write_table(generate_credit_data(1_000, seed=1).head(0), uri)
    with pytest.raises(PipelineError, match=r"(?s)\[validate\] .*FAILED.*rows.empty.*the batch is empty.*report: s3://"):
        run(tmp_path, data_uri=uri)


def test_mlflow_unreachable_fails_before_training_and_registers_nothing(data_uri, tmp_path, monkeypatch):
    from mlops.local_platform import free_ports

    dead = f"http://127.0.0.1:{free_ports(['x'])['x']}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    with pytest.raises(PipelineError, match=rf"\[train\] MLflow tracking server at {dead} is unreachable"):
        run(tmp_path, data_uri=data_uri[0])


def test_wrong_s3_credentials_fail_at_the_first_step(data_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(PipelineError, match=r"\[validate\] S3 at .* rejected the credentials") as info:
        run(tmp_path, data_uri=data_uri[0])
    assert "wrong-secret" not in str(info.value)


@pytest.mark.parametrize("scenario, check", [
    ("null_column", "missing.all_null"), ("wrong_units", "range.below_min"), ("new_category", "category.unknown"),
])
def test_a_bad_batch_stops_the_pipeline_before_training(platform, tmp_path, scenario, check):
    uri = f"s3://{platform.bucket}/tests/pipeline/{scenario}.parquet"
    write_table(generate_credit_data(3_000, seed=8, scenario=scenario), uri)
    before = versions()
    with pytest.raises(PipelineError) as info:
        run(tmp_path, data_uri=uri)
    message = str(info.value)
    assert "[validate]" in message and check in message and "report: s3://" in message
    assert "Executing task 'train-model'" not in (tmp_path / "tasks.log").read_text()
    assert versions() == before
