"""The compiled training pipeline YAML, run by kfp.local against the real local platform, for two projects.

The file run is pipelines/compiled/training_pipeline.yaml, the very file submitted to Kubeflow; the project
is one run parameter (a folder here, as `mlops project push` makes an s3:// URI of one for a cluster). Each
project is a renamed copy of an example, so its model, experiment, Feast project and S3 prefix are this
module's alone.
"""

import json
import re

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from mlops.errors import PipelineError
from mlops.features.engineering import compute_features
from mlops.platform.datasets import write_table
from mlops.platform.local_run import pipeline_file, run_local
from mlops.project import dataset_uri
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, renamed

pytestmark = pytest.mark.platform
MODEL = "credit-pipeline-test"


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return renamed(CREDIT, tmp_path_factory.mktemp("projects"), MODEL)


@pytest.fixture(scope="module")
def data_uri(platform, credit):
    """The project's raw data where the pipeline looks by default: s3://<bucket>/datasets/<prefix>/train.parquet."""
    uri = dataset_uri(credit, "", platform.bucket)
    digest = write_table(generate_credit_data(5_000, seed=7), uri)
    return uri, digest


def run(tmp_path, project, params=None, **arguments):
    arguments = {"project": str(project.root) if hasattr(project, "root") else project,
                 "model_params": json.dumps({"max_iter": 50} if params is None else params), **arguments}
    return run_local(pipeline_file("training"), arguments, tmp_path / "root", tmp_path / "tasks.log")


def versions(name=MODEL):
    return {v.version for v in MlflowClient().search_model_versions(f"name = '{name}'")}


def registry_state():
    """Every registered model and version on the platform: what a refused run must leave as it was."""
    client = MlflowClient()
    return {(m.name, v.version) for m in client.search_registered_models()
            for v in client.search_model_versions(f"name = '{m.name}'")}


def version_of(result, name=MODEL) -> str:
    """The version a run registered (the pipeline registers only what the gate blessed)."""
    [mv] = MlflowClient().search_model_versions(f"run_id = '{result.outputs['run_id']}'")
    assert mv.name == name
    return mv.version


def platform_keys(platform, prefix):
    from mlops.platform.storage import ObjectStore

    return ObjectStore(platform.s3_settings()).list_keys(prefix)


STAGES = {"validate-data", "build-features", "retrieve-training-data", "train-model", "evaluate-model",
          "promote-model"}


@pytest.fixture(scope="module")
def first_run(credit, data_uri, tmp_path_factory):
    """One whole run of the credit copy with no data_uri (the project's default location): (result, its logs)."""
    tmp_path = tmp_path_factory.mktemp("first-run")
    return run(tmp_path, credit), tmp_path / "tasks.log"


def test_runs_from_compiled_yaml_and_records_lineage(platform, credit, data_uri, first_run):
    uri, digest = data_uri
    result, log = first_run
    assert result.outputs["verdict"] == "BLESSED"
    version = version_of(result)
    client = MlflowClient()
    mv = client.get_model_version(MODEL, version)
    assert "staging" in mv.aliases  # high-stakes (the project's gate): production waits for an approval
    assert "production" not in mv.aliases
    assert mv.status == "READY" and mv.run_id == result.outputs["run_id"]
    run_ = client.get_run(mv.run_id)
    tags, params, metrics = run_.data.tags, run_.data.params, run_.data.metrics
    # The raw batch and the point-in-time training rows built from it are both recorded.
    assert tags["mlops.raw_data_digest"] == digest and tags["mlops.dataset_uri"] == uri
    assert mv.tags["mlops.dataset_digest"] == tags["mlops.dataset_digest"] != digest
    assert tags["mlops.environment_digest"].startswith("sha256:") and len(tags["mlops.environment_digest"]) == 71
    assert tags["mlops.code_version"] not in ("", "unknown")
    assert (tags["mlops.project"], tags["mlops.project_digest"]) == (MODEL, credit.digest)
    assert params["seed"] == "42" and params["max_iter"] == "50" and "income" in params["features"]
    assert params["learning_rate"] == "0.1"  # the project's own params under the run's override
    assert 0.65 < metrics["validation_roc_auc"] < 0.95
    assert set(result.task_seconds) == STAGES
    assert tags["mlops.feature_snapshot"].startswith(f"s3://{platform.bucket}/features/{credit.names.prefix}/")
    assert tags["mlops.feature_definitions"].startswith("sha256:")
    assert run_.info.experiment_id == client.get_experiment_by_name(credit.names.experiment).experiment_id
    # The model's bytes went through MLflow's proxy into our S3 bucket.
    assert any(k.endswith("model.skops") for k in platform_keys(platform, "mlflow-artifacts"))
    # No secret leaks into task logs.
    assert platform.s3_settings().secret_key not in log.read_text()


def test_retraining_on_same_data_and_seed_gives_identical_predictions(credit, data_uri, first_run, tmp_path):
    uri, _ = data_uri
    first, _ = first_run
    second = run(tmp_path, credit, data_uri=uri)  # the same data, named this time
    assert version_of(first) != version_of(second)
    holdout = compute_features(credit, generate_credit_data(2_000, seed=2024, start="2025-09-01"))
    scores = []
    for result in (first, second):
        model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version_of(result)}")
        features = MlflowClient().get_run(result.outputs["run_id"]).data.params["features"].split(",")
        scores.append(model.predict_proba(holdout[features])[:, 1])
    assert np.array_equal(scores[0], scores[1])


@pytest.mark.parametrize("arguments, stage, message", [
    ({"data_uri": "s3://mlops/tests/pipeline/absent.parquet"}, "validate", "data not found"),
    # Refused by the first step (the estimator is built there, not fitted), not after features and retrieval.
    ({"model_params": '{"learning_rate_": 0.1}'}, "validate",
     "model.params: sklearn.ensemble.HistGradientBoostingClassifier refuses them"),
    ({"model_params": '[0.1]'}, "validate", "model params override must be a JSON object"),
], ids=["absent data", "unknown model param", "params not an object"])
def test_bad_input_fails_at_its_first_step_and_registers_nothing(credit, data_uri, tmp_path, arguments, stage,
                                                                 message):
    before = versions()
    with pytest.raises(PipelineError) as info:
        run(tmp_path, credit, **{"data_uri": data_uri[0], **arguments})
    assert f"[{stage}]" in str(info.value) and message in str(info.value)
    assert "Traceback" not in str(info.value)
    assert "Executing task 'build-features'" not in (tmp_path / "tasks.log").read_text()
    assert versions() == before


def test_missing_label_column_is_refused(platform, credit, tmp_path):
    uri = f"s3://{platform.bucket}/tests/pipeline/nolabel.parquet"
    write_table(generate_credit_data(3_000, seed=1).drop(columns=[credit.label.column]), uri)
    with pytest.raises(PipelineError, match=r"(?s)\[validate\] .*schema.missing_column \[default\]"):
        run(tmp_path, credit, data_uri=uri)


def test_empty_dataset_is_refused(platform, credit, tmp_path):
    uri = f"s3://{platform.bucket}/tests/pipeline/empty.parquet"
    write_table(generate_credit_data(1_000, seed=1).head(0), uri)
    with pytest.raises(PipelineError, match=r"(?s)\[validate\] .*FAILED.*rows.empty.*the batch is empty.*report: s3://"):
        run(tmp_path, credit, data_uri=uri)


def test_mlflow_unreachable_fails_before_training_and_registers_nothing(credit, data_uri, tmp_path, monkeypatch):
    from mlops.platform.local import free_ports

    dead = f"http://127.0.0.1:{free_ports(['x'])['x']}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    with pytest.raises(PipelineError, match=rf"\[train\] MLflow tracking server at {dead} is unreachable"):
        run(tmp_path, credit, data_uri=data_uri[0])


def test_wrong_s3_credentials_fail_at_the_first_step(credit, data_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(PipelineError, match=r"\[validate\] S3 at .* rejected the credentials") as info:
        run(tmp_path, credit, data_uri=data_uri[0])
    assert "wrong-secret" not in str(info.value)


@pytest.mark.parametrize("scenario, check", [
    ("null_column", "missing.all_null"), ("wrong_units", "range.below_min"), ("new_category", "category.unknown"),
])
def test_a_bad_batch_stops_the_pipeline_before_training(platform, credit, tmp_path, scenario, check):
    uri = f"s3://{platform.bucket}/tests/pipeline/{scenario}.parquet"
    write_table(generate_credit_data(3_000, seed=8, scenario=scenario), uri)
    before = versions()
    with pytest.raises(PipelineError) as info:
        run(tmp_path, credit, data_uri=uri)
    message = str(info.value)
    assert "[validate]" in message and check in message and "report: s3://" in message
    assert "Executing task 'train-model'" not in (tmp_path / "tasks.log").read_text()
    assert versions() == before


# -- a second project: churn (integer ids, yes/no labels, two sensitive attributes, a build hook) ---------

CHURN_MODEL = "churn-pipeline-test"


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    return renamed(CHURN, tmp_path_factory.mktemp("projects"), CHURN_MODEL)


@pytest.fixture(scope="module")
def churn_data(platform, churn):
    raw = generate_churn_data(5_000)
    uri = f"s3://{platform.bucket}/tests/pipeline/churn/snapshots.parquet"
    return uri, write_table(raw, uri), raw


def test_a_second_project_runs_end_to_end_through_the_same_compiled_yaml(platform, store, churn, churn_data,
                                                                         tmp_path):
    """validate -> features -> retrieve -> train -> gate -> promote, every stage reading the churn project."""
    uri, digest, raw = churn_data
    result = run(tmp_path, churn, params={"C": 1.0}, data_uri=uri)
    assert result.outputs["verdict"] == "BLESSED"
    assert set(result.task_seconds) == STAGES
    version = version_of(result, CHURN_MODEL)
    client = MlflowClient()
    mv = client.get_model_version(CHURN_MODEL, version)
    # Churn's gate is not high-stakes: the first blessed version serves at once.
    assert {"staging", "production"} <= set(mv.aliases)
    run_ = client.get_run(mv.run_id)
    tags, params = run_.data.tags, run_.data.params
    assert (tags["mlops.project"], tags["mlops.project_digest"]) == (CHURN_MODEL, churn.digest)
    assert tags["mlops.raw_data_digest"] == digest and tags["mlops.dataset_uri"] == uri
    assert tags["mlops.feature_snapshot"].startswith(f"s3://{platform.bucket}/features/{CHURN_MODEL}/")
    assert run_.info.experiment_id == client.get_experiment_by_name(churn.names.experiment).experiment_id
    assert params["C"] == "1.0" and params["max_iter"] == "1000"  # the override on the project's params
    assert params["seed"] == "7" and params["label_column"] == "churned"
    assert params["estimator"] == "hook model.py:build_model"
    assert params["features"].split(",") == [*churn.features.of_type("float", "integer"),
                                             *churn.features.of_type("string")]
    # The gate judged fairness on both sensitive attributes; its blessing is on S3 beside its report.
    [key] = [k for k in store.list_keys(f"reports/gate/{CHURN_MODEL}/{result.outputs['run_id']}")
             if k.endswith("blessing.json")]
    blessing = json.loads(store.get_bytes(key))
    judged = {r["rule"] for r in blessing["rules"]}
    assert {"fairness:selection_rate_gap:age_band", "fairness:selection_rate_gap:gender",
            "slice_size:age_band", "slice_size:gender"} <= judged
    assert blessing["verdict"] == "BLESSED" and blessing["model"] == CHURN_MODEL
    # The registered model scores the project's feature columns (no hook needed to load it).
    model = mlflow.sklearn.load_model(f"models:/{CHURN_MODEL}/{version}")
    scores = model.predict_proba(raw.head(50)[params["features"].split(",")])[:, 1]
    assert ((scores > 0) & (scores < 1)).all()


# -- bad project input: one clear error naming the file and the key, before anything is registered ---------

def _drop(column):
    return lambda raw: raw.drop(columns=[column])


def _three_labels(raw):
    raw = raw.copy()
    raw.loc[raw.index[::7], "churned"] = "maybe"
    return raw


BAD_DATA = [
    ("label with a third value", _three_labels, r"category.unknown \[churned\]"),
    ("no entity key", _drop("subscriber_id"), r"schema.missing_column \[subscriber_id\]"),
    ("no sensitive attribute", _drop("gender"), r"schema.missing_column \[gender\]"),
]


@pytest.mark.parametrize("change, message", [pytest.param(c, m, id=i) for i, c, m in BAD_DATA])
def test_bad_project_data_fails_at_validate_naming_the_file_and_column(platform, churn, tmp_path, change,
                                                                       message):
    uri = f"s3://{platform.bucket}/tests/pipeline/churn/bad-{tmp_path.name}.parquet"
    write_table(change(generate_churn_data(3_000, seed=3)), uri)
    before = registry_state()
    with pytest.raises(PipelineError) as info:
        run(tmp_path, churn, params={}, data_uri=uri)
    text = str(info.value)
    assert "[validate]" in text and uri in text and "Traceback" not in text, text
    assert re.search(message, text), text
    assert "Executing task 'build-features'" not in (tmp_path / "tasks.log").read_text()
    assert registry_state() == before


BAD_PROJECTS = [
    ("unknown key", lambda d: d.update(modle={}), r"unknown key\(s\) \['modle'\]"),
    ("estimator not allowed", lambda d: d.update(model={"estimator": "sklearn.svm.SVC"}),
     r"model.estimator 'sklearn.svm.SVC' is not allowed for binary_classification"),
]


@pytest.mark.parametrize("edit, message", [pytest.param(e, m, id=i) for i, e, m in BAD_PROJECTS])
def test_a_bad_project_file_fails_the_first_step_naming_project_yaml_and_the_key(churn_data, tmp_path, edit,
                                                                                 message):
    root = renamed(CHURN, tmp_path, "bad-churn").root
    doc = yaml.safe_load((root / "project.yaml").read_text())
    edit(doc)
    (root / "project.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    before = registry_state()
    with pytest.raises(PipelineError) as info:
        run(tmp_path, str(root), params={}, data_uri=churn_data[0])
    text = str(info.value)
    assert "[validate]" in text and str(root / "project.yaml") in text and "Traceback" not in text, text
    assert re.search(message, text), text
    assert "Executing task 'build-features'" not in (tmp_path / "tasks.log").read_text()
    assert registry_state() == before


def test_a_project_path_that_does_not_exist_fails_the_first_step_naming_it(churn_data, tmp_path):
    missing = tmp_path / "no-such-project"
    before = registry_state()
    with pytest.raises(PipelineError) as info:
        run(tmp_path, str(missing), params={}, data_uri=churn_data[0])
    text = str(info.value)
    assert f"[validate] project {missing}: not a folder" in text and "Traceback" not in text, text
    assert "Executing task 'build-features'" not in (tmp_path / "tasks.log").read_text()
    assert registry_state() == before
