"""Monitoring end to end against a real S3, MLflow and kfp.local: logged windows -> drift and realized
performance -> alerts -> the action (notify, a real retraining pipeline run, a production revert)."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.errors import ConfigError, DataError
from mlops.monitoring.performance import LabelSpec, join_labels, realized_performance
from mlops.monitoring.policy import parse_policy, resolve_policy

THRESHOLD = 0.3  # the credit_default gate's decision threshold


# -- the policy --------------------------------------------------------------------------------
def test_the_packaged_policy_loads(tmp_path):
    policy = resolve_policy("credit_default", tmp_path)
    assert policy.action("dataset_drift") == "retrain" and policy.action("missing_drift") == "notify"
    assert policy.action("worse_than_previous") == "rollback"


@pytest.mark.parametrize("change, message", [
    ({"windw": {}}, "unknown key"),
    ({"window": {"hours": -1}}, "window.hours"),
    ({"actions": {"dataset_drift": "panic"}}, "unknown action 'panic'"),
    ({"actions": {"drift": "retrain"}}, "unknown key"),
    ({"drift": {"methods": {"age": "t_test"}}}, "unknown method 't_test'"),
    ({"drift": {"drift_share": 2}}, "drift_share"),
    ({"performance": {"metric": "log_loss"}}, "not a judged metric"),
    ({"performance": {"kpi": "nowhere:nothing"}}, "cannot load the KPI hook"),
    ({"performance": {"min_labeled": 0}}, "min_labeled"),
    ({"retraining": {"rollout": "yes"}}, "retraining.rollout"),
    ({"retraining": {"rollout_policy": ""}}, "retraining.rollout_policy"),
])
def test_a_broken_policy_is_refused_with_its_place(tmp_path, change, message):
    with open(resolve_policy("credit_default", tmp_path).source) as fh:
        raw = yaml.safe_load(fh)
    raw.update(change)
    if "windw" in change:
        raw.pop("window")
    with pytest.raises(ConfigError, match=message):
        parse_policy(raw, "test policy")


# -- delayed labels ----------------------------------------------------------------------------
T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _hours(*h):
    return [T0 + pd.Timedelta(hours=x) for x in h]


def _predictions():
    return pd.DataFrame({
        "request_id": ["r1", "r1", "r2", "r3", "r4", "r5"], "row": [0, 1, 0, 0, 0, 0],
        "logged_at": _hours(0, 0, 1, 2, 30, 31),
        "customer_id": ["a", "b", "c", "a", "d", "e"],
        "model_version": ["1", "1", "1", "1", "2", "2"],
        "probability": [0.9, 0.2, 0.6, 0.4, 0.1, 0.7], "predicted_class": [1, 0, 1, 1, 0, 1]})


def test_labels_join_by_entity_point_in_time_with_late_and_missing_labels():
    labels = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e", "zz"], "default": [1, 0, 0, 1, 0, 1],
                           "label_timestamp": _hours(1.5, 10, 500, 40, 20, 3)})
    joined = join_labels(_predictions(), labels, as_of=T0 + pd.Timedelta(hours=48))
    got = joined.frame.set_index("request_id")["label"]
    # a's label (known at 1.5 h) judges a's prediction at 0 h, not the one at 2 h (made after it was known);
    # c's label arrives at 500 h: pending; e's label was known (20 h) before e was scored (31 h): no outcome.
    assert got.loc["r1"].tolist() == [1.0, 0.0]
    assert np.isnan(got.loc["r2"]) and np.isnan(got.loc["r3"]) and np.isnan(got.loc["r5"])
    assert got.loc["r4"] == 1.0
    assert (joined.labeled, joined.predictions, joined.pending_labels) == (3, 6, 1)
    assert joined.unmatched_labels == 2  # e's and zz's labels judge no logged prediction
    assert joined.coverage == pytest.approx(0.5)
    # the late label joins once it has arrived
    later = join_labels(_predictions(), labels, as_of=T0 + pd.Timedelta(hours=600))
    assert later.frame.set_index("request_id").loc["r2", "label"] == 0.0 and later.pending_labels == 0


def test_labels_join_exactly_by_request_id_and_row_when_given():
    labels = pd.DataFrame({"request_id": ["r1", "r1", "r4", "r4"], "row": [1, 0, 0, 0], "default": [1, 0, 0, 1],
                           "label_timestamp": _hours(5, 5, 35, 36)})
    joined = join_labels(_predictions(), labels, as_of=T0 + pd.Timedelta(days=3))
    assert joined.by == "request"
    got = joined.frame.set_index(["request_id", "row"])["label"]
    assert got.loc[("r1", 0)] == 0.0 and got.loc[("r1", 1)] == 1.0
    assert got.loc[("r4", 0)] == 1.0  # a corrected label: the latest known wins
    assert joined.labeled == 3


def test_realized_metrics_per_window_and_version_equal_sklearn_on_the_labeled_rows():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    n = 400
    preds = pd.DataFrame({"request_id": [f"q{i}" for i in range(n)], "row": 0,
                          "logged_at": [T0 + pd.Timedelta(hours=int(h)) for h in rng.integers(0, 72, n)],
                          "customer_id": [f"c{i}" for i in range(n)], "model_version": rng.choice(["1", "2"], n),
                          "probability": rng.random(n)})
    preds["predicted_class"] = (preds["probability"] >= THRESHOLD).astype(int)
    truth = (rng.random(n) < preds["probability"]).astype(int)
    known = preds["logged_at"] + pd.to_timedelta(rng.integers(1, 200, n), unit="h")
    labels = pd.DataFrame({"customer_id": preds["customer_id"], "default": truth, "label_timestamp": known})
    labels = labels[rng.random(n) > 0.2]  # a fifth never arrive
    as_of = T0 + pd.Timedelta(hours=150)
    joined = join_labels(preds, labels, as_of=as_of)
    rows = realized_performance(joined, "1D", THRESHOLD)
    for w in rows:
        part = joined.frame[joined.frame["model_version"] == w.model_version]
        if w.window != "all":
            part = part[part["logged_at"].dt.floor("1D") == pd.Timestamp(w.window)]
        lab = part[part["label"].notna()]
        assert (w.predictions, w.labeled) == (len(part), len(lab))
        assert w.metrics["roc_auc"] == pytest.approx(roc_auc_score(lab["label"], lab["probability"]))
        assert w.metrics["f1"] == pytest.approx(f1_score(lab["label"], lab["probability"] >= THRESHOLD))
    # the labeled rows are exactly those whose label arrived by as_of
    expected = labels[labels["label_timestamp"] <= as_of]
    assert joined.labeled == len(expected) and joined.pending_labels == int((labels["label_timestamp"] > as_of).sum())


def test_bad_label_feeds_are_refused_with_what_is_wrong():
    with pytest.raises(DataError, match=r"lack column\(s\) \['label_timestamp'\]"):
        join_labels(_predictions(), pd.DataFrame({"customer_id": ["a"], "default": [1]}))
    with pytest.raises(DataError, match="must hold 0/1 outcomes"):
        join_labels(_predictions(), pd.DataFrame({"customer_id": ["a"], "default": [7],
                                                  "label_timestamp": _hours(1)}))
    with pytest.raises(DataError, match="not timestamps"):
        join_labels(_predictions(), pd.DataFrame({"customer_id": ["a"], "default": [1],
                                                  "label_timestamp": ["soon"]}))
    with pytest.raises(ConfigError, match="pandas frequency"):
        realized_performance(join_labels(_predictions(), pd.DataFrame(
            {"customer_id": ["a"], "default": [1], "label_timestamp": _hours(1)}), LabelSpec()), "fortnightly")


# -- whole monitoring runs ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(platform, tmp_path_factory):
    """Two training runs on feature-store rows: a good model, and one trained on flipped labels."""
    from mlops import stages
    from mlops.datasets import DatasetInfo
    from mlops.storage import ObjectStore
    from mlops.training import TrainingConfig
    from mlops.data.generator import generate_credit_data
    from tests.feature_rows import training_rows

    store = ObjectStore(platform.s3_settings())
    train, _, rows, flipped = training_rows(store, tmp_path_factory.mktemp("monitoring"), "monitoring-tests",
                                            generate_credit_data(6_000, seed=31))
    out = []
    for path in (rows, flipped):
        info = DatasetInfo(str(path), train.rows, train.columns, train.digest)
        out.append(stages.train_and_log(str(path), info, TrainingConfig(max_iter=40), "monitoring-tests"))
    return out, train.digest


def _production(store, name, run, digest):
    from mlops import registry, stages

    version = stages.register(run.run.model_uri, name, run.run.run_id, digest)
    current = registry.alias_version(name, registry.PRODUCTION)
    registry.promote(store, name, version, registry.PRODUCTION, expected_current=current, actor="test",
                     reason="test setup")
    return version


def _log(store, name, version, raw: pd.DataFrame, chunk: int = 250) -> pd.DataFrame:
    """Serve ``raw`` applications through ``version`` the way the transformer logs them."""
    from mlops.features.definitions import FEATURE_NAMES
    from mlops.features.engineering import compute_features
    from mlops.serving.model_files import fetch_model, load_model, resolve_model
    from mlops.serving.request_log import RequestLog

    ref = resolve_model(name, version)
    loaded = load_model(fetch_model(ref, tempfile.mkdtemp(prefix="monitor-model-"), store), ref.digest)
    features = compute_features(raw)[["customer_id", *FEATURE_NAMES]].reset_index(drop=True)
    columns = [c for c, _ in loaded.columns]
    scores = loaded.estimator.predict_proba(features[columns])[:, 1]
    log = RequestLog(store, name, flush_interval_s=60)
    for i in range(0, len(features), chunk):
        part = slice(i, i + chunk)
        log.append(f"{version}-{i}", version, features.iloc[part].reset_index(drop=True), scores[part],
                   (scores[part] >= THRESHOLD).astype(int))
    log.close()
    return features.assign(probability=scores)


def _labels(store, name, raw: pd.DataFrame, key: str) -> str:
    """The applications' true outcomes as a label feed, known from now on."""
    from mlops.datasets import write_table

    uri = f"s3://{store.bucket}/labels/{name}/{key}.parquet"
    write_table(pd.DataFrame({"customer_id": raw["customer_id"].astype(str), "default": raw["default"],
                              "label_timestamp": pd.Timestamp.now(tz="UTC")}), uri, store)
    return uri.rpartition("/")[0] + "/"


def _later():
    return (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).isoformat()


@pytest.mark.platform
def test_a_quiet_window_raises_no_alert_and_publishes_reports(runs, store):
    from mlops.data.generator import generate_credit_data
    from mlops.monitoring.run import run_monitor

    (good, _), digest = runs
    name = "monitor-quiet"
    version = _production(store, name, good, digest)
    raw = generate_credit_data(2_000, seed=41)
    _log(store, name, version, raw)
    labels = _labels(store, name, raw, "quiet")
    run = run_monitor(name, labels_uri=labels, now=_later(), progress=lambda *_: None)
    result = run.result
    assert result.rows == 2_000 and result.decision == "none", run.markdown
    assert not result.drift.dataset_drift and not result.drift.prediction_drift and not result.drift.missing_drift
    assert result.labels["labeled"] == 2_000 and result.labels["coverage"] == 1.0
    assert result.overall(version).metrics["roc_auc"] > 0.72
    prefix = result.report_uri.removeprefix(f"s3://{store.bucket}/")
    assert {k.rpartition("/")[2] for k in store.list_keys(prefix)} == {"monitoring.json", "monitoring.html",
                                                                     "monitoring.md"}
    html = store.get_bytes(prefix + "monitoring.html").decode()
    assert html.count("<img") >= len(result.drift.features)  # a distribution plot per feature, plus performance
    assert json.loads(store.get_bytes(prefix + "monitoring.json"))["decision"] == "none"


@pytest.mark.platform
def test_a_broken_feed_is_seen_as_missing_rate_drift(runs, store):
    """Evidently drops missing values and would see nothing: the whole column is gone."""
    from mlops import audit
    from mlops.data.generator import generate_credit_data
    from mlops.monitoring.run import run_monitor

    (good, _), digest = runs
    name = "monitor-nulls"
    version = _production(store, name, good, digest)
    _log(store, name, version, generate_credit_data(1_500, seed=42, scenario="null_column"))
    run = run_monitor(name, now=_later(), progress=lambda *_: None)
    result = run.result
    alerts = {a.name: a for a in result.alerts}
    assert alerts["missing_drift"].action == "notify", run.markdown
    assert "debt_to_income 3.0% -> 100.0%" in alerts["missing_drift"].reason
    column = result.drift.column("debt_to_income")
    assert column.missing_drifted and not column.drifted
    assert column.note.startswith("no values in the current window")
    assert not result.drift.dataset_drift  # no other feature moved
    assert audit.trail(store, name)[-1].action == f"monitoring_{result.decision}"


@pytest.mark.platform
def test_covariate_drift_launches_a_real_training_pipeline_run_once_per_cooldown(runs, store):
    """The trigger runs the compiled training pipeline with kfp.local on the fresh window."""
    from mlflow import MlflowClient

    from mlops import audit, registry
    from mlops.data.generator import generate_credit_data
    from mlops.datasets import write_table
    from mlops.monitoring.run import run_monitor

    (good, _), digest = runs
    name = "monitor-drift"
    version = _production(store, name, good, digest)
    _log(store, name, version, generate_credit_data(2_000, seed=43, scenario="covariate_shift"))
    fresh = f"s3://{store.bucket}/datasets/monitoring-fresh.parquet"
    write_table(generate_credit_data(3_000, seed=44, scenario="covariate_shift", start="2025-07-01"), fresh)
    before = {v.version for v in MlflowClient().search_model_versions(f"name = '{name}'")}
    run = run_monitor(name, training_data=fresh, now=_later(), progress=lambda *_: None)
    result = run.result
    # Lower incomes, higher utilization, more late payments: those features and the model's scores move
    # (fewer than half of the 15 features, so Evidently's dataset-drift share alone would not say so).
    assert result.decision == "retrain", run.markdown
    assert {"income", "credit_utilization", "log_income"} <= set(result.drift.drifted_features), run.markdown
    assert result.drift.prediction_drift and "prediction_drift" in {a.name for a in result.alerts}
    events = [e for e in audit.trail(store, name) if e.action.startswith(("retraining", "monitoring"))]
    assert [e.action for e in events] == ["monitoring_retrain", "retraining_started", "retraining_finished"]
    training = events[-1].details["training"]
    assert training["succeeded"], training["detail"]
    assert training["verdict"] in ("BLESSED", "NOT_BLESSED")
    after = {v.version for v in MlflowClient().search_model_versions(f"name = '{name}'")}
    if training["verdict"] == "BLESSED":  # high-stakes: the new version waits for a human
        [new] = after - before
        assert registry.alias_version(name, registry.STAGING) == new
        assert registry.alias_version(name, registry.PRODUCTION) == version
        assert "awaiting a human approval" in result.actions[-1]
    else:
        assert after == before and "did not bless" in result.actions[-1]
    # A second run inside the cooldown decides the same, but does not launch again.
    again = run_monitor(name, training_data=fresh, now=_later(), progress=lambda *_: None).result
    assert again.decision == "retrain" and "cooldown" in again.actions[-1]
    assert [e.action for e in audit.trail(store, name)].count("retraining_started") == 1


@pytest.mark.platform
def test_production_worse_than_the_previous_version_is_reverted_by_the_compiled_pipeline(runs, store, tmp_path):
    """monitoring_pipeline.yaml under kfp.local: check -> rollback branch -> local serving reverted."""
    from mlops import audit, registry
    from mlops.data.generator import generate_credit_data
    from mlops.local_platform import free_ports
    from mlops.local_run import pipeline_file, run_local
    from mlops.serving.local import LocalServing

    (good, flipped), digest = runs
    name = "monitor-revert"
    stable = _production(store, name, good, digest)
    _log(store, name, stable, generate_credit_data(1_000, seed=45))
    worse = _production(store, name, flipped, digest)
    assert registry.alias_version(name, registry.ROLLBACK) == stable
    raw = generate_credit_data(1_000, seed=46)
    _log(store, name, worse, raw)
    labels = pd.concat([generate_credit_data(1_000, seed=45), raw])
    feed = _labels(store, name, labels, "both")
    local = LocalServing(name)
    local.up(worse, port=free_ports(["t"])["t"], request_log=False, progress=lambda *_: None)
    try:
        run = run_local(pipeline_file("monitoring"),
                        {"model_name": name, "labels_uri": feed, "target": "local", "now": _later(),
                         "training_data_uri": ""}, tmp_path / "kfp", tmp_path / "monitoring.log")
        assert run.outputs["Output"] == "rollback", (tmp_path / "monitoring.log").read_text()[-3000:]
        assert registry.alias_version(name, registry.PRODUCTION) == stable
        assert registry.alias_version(name, registry.ROLLBACK) == worse
        assert local.status()["routes"] == [{"version": stable, "weight": 100, "fault": {}}]
        assert f"predictor v{worse}" not in local.urls()
    finally:
        local.down()
    actions = [e.action for e in audit.trail(store, name)]
    assert actions[-2:] == ["monitoring_rollback", "rollback"]
    report = [k for k in store.list_keys(f"reports/monitoring/{name}/") if k.endswith("actions.json")]
    assert report and "reverted" in json.loads(store.get_bytes(report[-1]))["actions"][-1]


@pytest.mark.platform
@pytest.mark.parametrize("args, message", [
    (["--model", "never-registered"], "never-registered has no production version to monitor"),
    (["--policy", "strictest"], "no packaged monitoring policy named 'strictest'"),
    (["--gate-config", "nowhere.yaml"], "cannot read gate config nowhere.yaml"),
    (["--labels", "s3://mlops/labels/none-here/"], "no Parquet files under s3://mlops/labels/none-here/"),
])
def test_mlops_monitor_names_what_is_wrong_without_a_traceback(platform, args, message):
    from tests.test_cli import mlops

    result = mlops("monitor", "--model", "monitor-quiet", *args)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
