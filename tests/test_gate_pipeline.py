"""The gate inside the compiled training pipeline: blessed models promoted, others never registered.

Each test's project is a renamed copy of an example (its own model name); "automated" copies of credit have
their gate's ``high_stakes`` turned off, so a blessed first version goes to production without a human.
(A high-stakes first version stopping at staging is test_training_pipeline's first run.)
"""

import json

import pytest
import yaml
from mlflow import MlflowClient

from mlops.errors import PipelineError
from mlops.platform.datasets import write_table
from mlops.platform.local_run import pipeline_file, run_local
from mlops.project import load_project
from mlops.registry import audit
from mlops.registry import promotion as registry
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, renamed
from tests.registered import registered_versions

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module")
def data_uri(platform):
    uri = f"s3://{platform.bucket}/tests/gate/train.parquet"
    write_table(generate_credit_data(10_000, seed=42), uri)
    return uri


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("projects")


def project(folder, name, example=CREDIT, high_stakes=None):
    """A renamed copy of ``example`` whose model is ``name``; ``high_stakes`` set in its gate when given."""
    copy = renamed(example, folder, name)
    if high_stakes is not None:
        gate = yaml.safe_load(copy.gate.read_text()) | {"high_stakes": high_stakes}
        copy.gate.write_text(yaml.safe_dump(gate, sort_keys=False))
        copy = load_project(copy.root)  # the digest covers the gate file
    return copy


def run(tmp_path, data_uri, project, **params):
    arguments = {"project": str(project.root), "data_uri": data_uri, "model_params": json.dumps(params)}
    return run_local(pipeline_file("training"), arguments, tmp_path / "root", tmp_path / "tasks.log")


def registered(run_result):
    return MlflowClient().search_model_versions(f"run_id = '{run_result.outputs['run_id']}'")


def test_first_automated_then_worse_rejected_then_better_staged(store, data_uri, folder, tmp_path):
    auto = project(folder, "gate-auto", high_stakes=False)
    model = auto.names.model
    first = run(tmp_path / "1", data_uri, auto, max_iter=10)
    assert first.outputs["verdict"] == "BLESSED"
    [v1] = registered(first)
    assert registry.alias_version(model, registry.PRODUCTION) == v1.version  # no champion: values + fairness

    worse = run(tmp_path / "2", data_uri, auto, max_iter=3, learning_rate=0.05)
    assert worse.outputs["verdict"] == "NOT_BLESSED" and registered(worse) == []
    assert "Executing task 'promote-model'" not in (tmp_path / "2" / "tasks.log").read_text()
    assert registry.alias_version(model, registry.PRODUCTION) == v1.version

    better = run(tmp_path / "3", data_uri, auto, max_iter=30)
    assert better.outputs["verdict"] == "BLESSED"
    [v3] = registered(better)
    # Once a version serves, production changes only through a rollout: the better one waits in staging.
    assert registry.alias_version(model, registry.STAGING) == v3.version
    assert registry.alias_version(model, registry.PRODUCTION) == v1.version
    promotions = [(e.version, e.details["alias"]) for e in audit.trail(store, model) if e.action == "promote"]
    assert promotions == [(v1.version, "staging"), (v1.version, "production"), (v3.version, "staging")]
    assert all(e.details["gate_report"].startswith("s3://") for e in audit.trail(store, model))
    client = MlflowClient()
    assert client.get_model_version(model, v3.version).tags["mlops.gate.champion"] == v1.version
    # The blessing judged the project's own metric and fairness on its sensitive attribute.
    [key] = [k for k in store.list_keys(f"reports/gate/{model}/{better.outputs['run_id']}") if k.endswith(
        "blessing.json")]
    rules = {r["rule"]: r for r in json.loads(store.get_bytes(key))["rules"]}
    assert {"value:default_rate_cut", "change:f1", "fairness:four_fifths:gender"} <= set(rules)
    assert all(r["passed"] for r in rules.values())


def test_an_unloadable_champion_is_a_clear_error_and_promotes_nothing(store, data_uri, folder, tmp_path):
    """The champion is registered and put in production directly (how it got there is not this test's
    subject); the run that must compare against it is the compiled pipeline."""
    auto = project(folder, "gate-broken-champion", high_stakes=False)
    model = auto.names.model
    [version] = registered_versions(tmp_path, auto, CREDIT, versions=1)
    registry.promote(store, model, version, registry.PRODUCTION, expected_current=None, actor="test",
                     reason="a champion to compare against")
    champion = MlflowClient().get_model_version(model, version)
    # The champion's model file disappears from the artifact store.
    for key in store.list_keys("mlflow-artifacts"):
        if champion.source.removeprefix("models:/") in key and key.endswith("model.skops"):
            store.client.remove_object(store.bucket, key)
    before = {v.version for v in MlflowClient().search_model_versions(f"name = '{model}'")}
    with pytest.raises(PipelineError, match=rf"\[evaluate\] cannot load the champion {model} v{champion.version}"):
        run(tmp_path, data_uri, auto, max_iter=30)
    assert {v.version for v in MlflowClient().search_model_versions(f"name = '{model}'")} == before
    assert registry.alias_version(model, registry.PRODUCTION) == champion.version


def test_a_churn_model_its_gate_refuses_is_never_registered(platform, store, folder, tmp_path):
    """Churn's gate (its own thresholds, two sensitive attributes): a model that ranks nobody is refused."""
    churn = project(folder, "gate-churn-refused", example=CHURN)
    uri = f"s3://{platform.bucket}/tests/gate/churn.parquet"
    write_table(generate_churn_data(4_000), uri)
    result = run(tmp_path, uri, churn, **CHURN.demo.worse)  # so strongly penalized it keeps no coefficient
    assert result.outputs["verdict"] == "NOT_BLESSED" and registered(result) == []
    assert "Executing task 'promote-model'" not in (tmp_path / "tasks.log").read_text()
    assert MlflowClient().search_registered_models(f"name = '{churn.names.model}'") == []
    [key] = [k for k in store.list_keys(f"reports/gate/{churn.names.model}/{result.outputs['run_id']}")
             if k.endswith("blessing.json")]
    rules = {r["rule"]: r for r in json.loads(store.get_bytes(key))["rules"]}
    assert not rules["value:roc_auc"]["passed"]
    assert {"slice_size:age_band", "slice_size:gender"} <= set(rules)  # judged on both sensitive attributes
