"""Each component's own YAML loads and runs alone with kfp.local, as users load single stages, for two projects.

Credit (string ids, a feature hook) and churn (integer ids, yes/no labels, no feature hook) each run as a
renamed copy of their example, so their models and Feast projects are this module's alone.
"""

from pathlib import Path

import pandas as pd
import pytest
from kfp import components, local
from mlflow import MlflowClient

from mlops.platform.datasets import DatasetInfo, write_table
from mlops.stages import train_and_log
from mlops.training.train import model_params
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, offline_rows, renamed

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.platform

GENERATE = {"credit-default": generate_credit_data, "churn": generate_churn_data}
QUICK = {"credit-default": {"max_iter": 20}, "churn": {"C": 0.5}}  # cheap params for a model only registered
SKEWED = {"credit-default": "debt_to_income", "churn": "usage_hours_30d"}  # a float feature to corrupt

EXAMPLES = pytest.mark.parametrize("example", ["credit-default", "churn"])


def generate(example, rows, seed):
    return GENERATE[example](rows, seed=seed)


def training_rows(project, raw):
    """Training rows as point-in-time retrieval returns them: numeric features float64 (NaN = missing)."""
    rows = offline_rows(project, raw)
    return rows.astype({c: "float64" for c in project.features.of_type("float", "integer")})


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """A renamed copy of each example: the module's own models and Feast projects."""
    folder = tmp_path_factory.mktemp("projects")
    return {p.name: renamed(p, folder, f"{p.name}-components") for p in (CREDIT, CHURN)}


@pytest.fixture
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))


def load(stage):
    return components.load_component_from_file(str(ROOT / "components" / stage / "component.yaml"))


@EXAMPLES
def test_ingest_component_alone(platform, local_runner, projects, example):
    """Ingest takes training rows (labels already 0/1): the project's columns, given as parameters."""
    project = projects[example]
    rows = training_rows(project, generate(example, 1_000, seed=4))
    uri = f"s3://{platform.bucket}/tests/components/{example}/rows.parquet"
    digest = write_table(rows, uri)
    task = load("ingest")(data_uri=uri, label_column=project.label.column, timestamp_column=project.event_timestamp)
    assert task.outputs["digest"] == digest and task.outputs["rows"] == 1_000
    assert Path(task.outputs["dataset"].path).stat().st_size > 0


@EXAMPLES
def test_register_component_alone(platform, local_runner, projects, example, tmp_path):
    project = projects[example]
    df = training_rows(project, generate(example, 2_000, seed=4))
    path = tmp_path / "train.parquet"
    digest = write_table(df, str(path))
    result = train_and_log(project, str(path), DatasetInfo(str(path), len(df), list(df.columns), digest),
                           model_params(project, QUICK[example]))
    task = load("register")(model_uri=result.run.model_uri, run_id=result.run.run_id,
                            model_name=project.names.model, dataset_digest=digest)
    mv = MlflowClient().get_model_version(project.names.model, task.output)
    assert mv.status == "READY" and mv.run_id == result.run.run_id
    assert MlflowClient().get_run(mv.run_id).data.tags["mlops.project"] == project.name


@EXAMPLES
def test_features_then_retrieval_components_alone(platform, local_runner, projects, example):
    project = projects[example]
    key, event, label = project.entity.key, project.event_timestamp, project.label.column
    uri = f"s3://{platform.bucket}/tests/components/{example}/raw.parquet"
    write_table(generate(example, 3_000, seed=6), uri)
    features = load("features")(project=str(project.root), data_uri=uri)
    assert features.outputs["snapshot_uri"].endswith(".parquet") and features.outputs["rows"] == 3_000
    assert f"/features/{project.names.prefix}/" in features.outputs["snapshot_uri"]
    assert features.outputs["definitions_version"].startswith("sha256:")
    assert "PASSED" in Path(features.outputs["summary"].path).read_text()
    retrieved = load("retrieve")(project=str(project.root), data_uri=uri, snapshot_uri=features.outputs["snapshot_uri"])
    assert project.split.test_fraction == 0.2
    assert (retrieved.outputs["rows"], retrieved.outputs["test_rows"]) == (2_400, 600)

    rows = pd.read_parquet(retrieved.outputs["train_set"].path)
    test = pd.read_parquet(retrieved.outputs["test_set"].path)
    assert rows[event].max() <= test[event].min()  # the test set is the most recent
    assert set(project.sensitive) <= set(test.columns)  # carried for the fairness evaluation, never a feature
    assert {key, event, label, *project.features.names} <= set(rows.columns)
    assert set(rows[label].unique()) == {0, 1}  # the task's encoding, whatever the data holds ("yes"/"no")
    first_feature = project.features.of_type("float")[0]
    assert rows[first_feature].notna().mean() > 0.9  # features found for (nearly) every label event


@EXAMPLES
def test_skew_component_passes_parity_and_names_a_skewed_feature(platform, local_runner, store, projects, example,
                                                                 tmp_path, capsys):
    """Serving's logged vectors (read online) agree with the offline recomputation; a skewed one is caught."""
    from mlops.features import store as feature_store
    from mlops.stages import build_features

    project = projects[example]
    key, event, skewed = project.entity.key, project.event_timestamp, SKEWED[example]
    raw = generate(example, 2_000, seed=12)
    uri = f"s3://{platform.bucket}/tests/components/{example}/skew-raw.parquet"
    write_table(raw, uri)
    build_features(project, uri, tmp_path / "features", store)
    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
    latest = raw.sort_values(event).drop_duplicates(key, keep="last")
    ids = latest[key].iloc[-20:].tolist()  # recent: inside the materialized window
    served = feature_store.online_features(fs, ids)
    assert served[key].tolist() == feature_store.online_ids(project, ids)
    served[event] = raw[event].max() + pd.Timedelta(seconds=5)
    good_uri, bad_uri = (f"s3://{platform.bucket}/tests/components/{example}/served-{n}.parquet"
                         for n in ("good", "bad"))
    write_table(served, good_uri)
    write_table(served.assign(**{skewed: served[skewed] * 1.5 + 1.0}), bad_uri)

    ok = load("skew")(project=str(project.root), served_uri=good_uri, max_mismatch_rate=0.0)
    assert ok.outputs["worst_mismatch_rate"] == 0.0 and ok.outputs["mismatched_features"] == ""
    capsys.readouterr()
    with pytest.raises(RuntimeError):
        load("skew")(project=str(project.root), served_uri=bad_uri, max_mismatch_rate=0.0)
    errors = [line for line in capsys.readouterr().out.splitlines() if "MLOPS-ERROR:" in line]
    assert "training-serving skew above 0.00%" in errors[0] and "[skew]" in errors[0]
    assert any(skewed in line for line in errors[1:])
