"""The gate inside the compiled training pipeline: blessed models promoted, others never registered."""

import pytest
import yaml
from mlflow import MlflowClient

from mlops import audit, registry
from mlops.data.generator import generate_credit_data
from mlops.datasets import write_table
from mlops.errors import PipelineError
from mlops.gate import PACKAGED_GATES
from mlops.local_run import pipeline_file, run_local

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module")
def data_uri(platform):
    uri = f"s3://{platform.bucket}/tests/gate/train.parquet"
    write_table(generate_credit_data(10_000, seed=42), uri)
    return uri


@pytest.fixture(scope="module")
def automated_gate(tmp_path_factory):
    """The packaged gate, but not high-stakes: blessed models go to production without a human."""
    raw = yaml.safe_load((PACKAGED_GATES / "credit_default.yaml").read_text()) | {"high_stakes": False}
    path = tmp_path_factory.mktemp("gate") / "automated.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def run(tmp_path, data_uri, model, **arguments):
    arguments = {"data_uri": data_uri, "model_name": model, "experiment": "gate-tests", **arguments}
    return run_local(pipeline_file("training"), arguments, tmp_path / "root", tmp_path / "tasks.log")


def registered(run_result):
    return MlflowClient().search_model_versions(f"run_id = '{run_result.outputs['run_id']}'")


def test_first_automated_then_worse_rejected_then_better_promoted(store, data_uri, automated_gate, tmp_path):
    model = "gate-auto"
    first = run(tmp_path / "1", data_uri, model, gate_config=automated_gate, max_iter=10)
    assert first.outputs["verdict"] == "BLESSED"
    [v1] = registered(first)
    assert registry.alias_version(model, registry.PRODUCTION) == v1.version  # no champion: values + fairness

    worse = run(tmp_path / "2", data_uri, model, gate_config=automated_gate, max_iter=3, learning_rate=0.05)
    assert worse.outputs["verdict"] == "NOT_BLESSED" and registered(worse) == []
    assert "Executing task 'promote-model'" not in (tmp_path / "2" / "tasks.log").read_text()
    assert registry.alias_version(model, registry.PRODUCTION) == v1.version

    better = run(tmp_path / "3", data_uri, model, gate_config=automated_gate, max_iter=30)
    assert better.outputs["verdict"] == "BLESSED"
    [v3] = registered(better)
    assert registry.alias_version(model, registry.PRODUCTION) == v3.version
    assert registry.alias_version(model, registry.ROLLBACK) == v1.version
    promotions = [(e.version, e.details["alias"]) for e in audit.trail(store, model) if e.action == "promote"]
    assert promotions == [(v1.version, "staging"), (v1.version, "production"),
                          (v3.version, "staging"), (v3.version, "production")]
    assert all(e.details["gate_report"].startswith("s3://") for e in audit.trail(store, model))
    assert MlflowClient().get_model_version(model, v3.version).tags["mlops.gate.champion"] == v1.version


def test_high_stakes_stops_at_staging(data_uri, tmp_path):
    model = "gate-high-stakes"
    result = run(tmp_path, data_uri, model, max_iter=10)
    [mv] = registered(result)
    assert registry.alias_version(model, registry.STAGING) == mv.version
    assert registry.alias_version(model, registry.PRODUCTION) is None


def test_an_unloadable_champion_is_a_clear_error_and_promotes_nothing(store, data_uri, automated_gate, tmp_path):
    model = "gate-broken-champion"
    first = run(tmp_path / "1", data_uri, model, gate_config=automated_gate, max_iter=10)
    [champion] = registered(first)
    # The champion's model file disappears from the artifact store.
    for key in store.list_keys("mlflow-artifacts"):
        if champion.source.removeprefix("models:/") in key and key.endswith("model.skops"):
            store.client.remove_object(store.bucket, key)
    before = {v.version for v in MlflowClient().search_model_versions(f"name = '{model}'")}
    with pytest.raises(PipelineError, match=rf"\[evaluate\] cannot load the champion {model} v{champion.version}"):
        run(tmp_path / "2", data_uri, model, gate_config=automated_gate, max_iter=30)
    assert {v.version for v in MlflowClient().search_model_versions(f"name = '{model}'")} == before
    assert registry.alias_version(model, registry.PRODUCTION) == champion.version
