"""Monitoring end to end against a real S3, MLflow and kfp.local: logged windows -> drift and realized
performance -> alerts -> the action (notify, a real retraining pipeline run, a production revert), on the
credit-default project and on churn (integer ids, "yes"/"no" labels encoded by its positive class, no KPI)."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.errors import ConfigError, DataError
from mlops.monitoring.performance import LabelSpec, join_labels, realized_performance
from mlops.monitoring.policy import parse_policy, project_policy
from mlops.project.data import encode_labels
from mlops.serving.predictor import decision_threshold
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, renamed

THRESHOLD = decision_threshold(CREDIT)  # the credit-default gate's decision threshold
BY_NAME = {"credit": CREDIT, "churn": CHURN}


# -- the policy --------------------------------------------------------------------------------
def test_each_projects_policy_loads_with_its_hooks_and_its_retrained_rollout_policy():
    credit, churn = project_policy(CREDIT), project_policy(CHURN)
    for policy in (credit, churn):
        assert policy.action("dataset_drift") == "retrain" and policy.action("missing_drift") == "notify"
        assert policy.action("worse_than_previous") == "rollback"
    assert credit.performance.kpi == "kpi.py:net_value" and credit.performance.kpi_params["margin"] == 0.08
    assert churn.performance.kpi is None and churn.drift.methods == {"monthly_fee": "psi"}
    assert (credit.performance.min_value, churn.performance.min_value) == (0.72, 0.75)
    # retraining.rollout_policy is a file beside the policy: resolved against the project's folder
    assert credit.rollout_policy == str(CREDIT.root / "rollout-retrained.yaml")
    assert churn.rollout_policy == str(CHURN.root / "rollout-retrained.yaml")


def test_a_kpi_hook_names_a_function_of_the_project_and_computes_on_labeled_rows():
    from mlops.monitoring.performance import resolve_kpi

    kpi = resolve_kpi("kpi.py:net_value", CREDIT)
    labeled = pd.DataFrame({"loan_amount": [1_000.0, 2_000.0, 500.0], "label": [0.0, 1.0, 1.0],
                            "probability": [0.1, 0.2, 0.9], "predicted_class": [0, 0, 1]})
    got = kpi(labeled, {"margin": 0.1, "loss_given_default": 0.5})
    assert got["net_value"] == pytest.approx(1_000 * 0.1 - 2_000 * 0.5)
    assert got["approved_default_rate"] == pytest.approx(0.5)


@pytest.mark.parametrize("change, message", [
    ({"windw": {}}, "unknown key"),
    ({"window": {"hours": -1}}, "window.hours"),
    ({"actions": {"dataset_drift": "panic"}}, "unknown action 'panic'"),
    ({"actions": {"drift": "retrain"}}, "unknown key"),
    ({"drift": {"methods": {"age": "t_test"}}}, "unknown method 't_test'"),
    ({"drift": {"drift_share": 2}}, "drift_share"),
    ({"performance": {"metric": "log_loss"}}, "not a judged metric"),
    ({"performance": {"kpi": "nowhere:nothing"}}, "cannot load the KPI hook"),
    ({"performance": {"kpi": "kpi.py:nothing"}}, "has no function 'nothing'"),
    ({"performance": {"kpi": "elsewhere.py:net_value"}}, "'elsewhere.py' does not exist"),
    ({"performance": {"min_labeled": 0}}, "min_labeled"),
    ({"retraining": {"rollout": "yes"}}, "retraining.rollout"),
    ({"retraining": {"rollout_policy": ""}}, "retraining.rollout_policy"),
    ({"retraining": {"rollout_policy": "rollout-gone.yaml"}}, "'rollout-gone.yaml' does not exist in"),
])
def test_a_broken_policy_is_refused_with_its_place(change, message):
    with open(CREDIT.monitoring) as fh:
        raw = yaml.safe_load(fh)
    raw.update(change)
    if "windw" in change:
        raw.pop("window")
    with pytest.raises(ConfigError, match=message):
        parse_policy(raw, "test policy", CREDIT, CREDIT.root)


# -- delayed labels ----------------------------------------------------------------------------
T0 = pd.Timestamp("2026-03-01", tz="UTC")
# The same story on both projects' entities: credit's string ids, churn's integer ones.
IDS = {"credit": dict(zip("abcdez", ["a", "b", "c", "d", "e", "zz"])),
       "churn": dict(zip("abcdez", [10_000_001, 10_000_002, 10_000_003, 10_000_004, 10_000_005, 10_000_099]))}


def _hours(*h):
    return [T0 + pd.Timedelta(hours=x) for x in h]


def _predictions(project=CREDIT, ids=IDS["credit"]):
    return pd.DataFrame({
        "request_id": ["r1", "r1", "r2", "r3", "r4", "r5"], "row": [0, 1, 0, 0, 0, 0],
        "logged_at": _hours(0, 0, 1, 2, 30, 31),
        project.entity.key: [ids[k] for k in "abcade"],
        "model_version": ["1", "1", "1", "1", "2", "2"],
        "probability": [0.9, 0.2, 0.6, 0.4, 0.1, 0.7], "predicted_class": [1, 0, 1, 1, 0, 1]})


def _outcomes(project, flags):
    """0/1 outcomes as the project's raw labels hold them (credit: 1/0, churn: "yes"/"no"), then encoded as
    the monitoring run encodes a label feed."""
    raw = pd.Series([project.label.positive if f else ("no" if project is CHURN else 0) for f in flags])
    return encode_labels(project, raw, "test labels")


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_labels_join_by_entity_point_in_time_with_late_and_missing_labels(name):
    project, ids = BY_NAME[name], IDS[name]
    spec = LabelSpec.of(project)
    labels = pd.DataFrame({project.entity.key: [ids[k] for k in "abcdez"],
                           project.label.column: _outcomes(project, [1, 0, 0, 1, 0, 1]),
                           project.label_timestamp: _hours(1.5, 10, 500, 40, 20, 3)})
    predictions = _predictions(project, ids)
    joined = join_labels(predictions, labels, spec, as_of=T0 + pd.Timedelta(hours=48))
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
    later = join_labels(predictions, labels, spec, as_of=T0 + pd.Timedelta(hours=600))
    assert later.frame.set_index("request_id").loc["r2", "label"] == 0.0 and later.pending_labels == 0


def test_raw_labels_are_encoded_by_the_projects_positive_class_or_refused():
    assert encode_labels(CHURN, pd.Series(["yes", "no", None, "no"]), "feed").tolist() == [1, 0, pd.NA, 0]
    assert encode_labels(CREDIT, pd.Series([1, 0, 1]), "feed").tolist() == [1, 0, 1]
    with pytest.raises(DataError, match=r"never holds the positive class 'yes'"):
        encode_labels(CHURN, pd.Series(["no", "nope"]), "feed")
    with pytest.raises(DataError, match="holds 3 values"):
        encode_labels(CHURN, pd.Series(["yes", "no", "maybe"]), "feed")
    # unencoded churn labels never reach the join silently
    with pytest.raises(DataError, match="must hold 0/1 outcomes"):
        join_labels(_predictions(CHURN, IDS["churn"]), pd.DataFrame(
            {"subscriber_id": [10_000_001], "churned": ["yes"], "label_timestamp": _hours(1)}), LabelSpec.of(CHURN))


def test_labels_join_exactly_by_request_id_and_row_when_given():
    labels = pd.DataFrame({"request_id": ["r1", "r1", "r4", "r4"], "row": [1, 0, 0, 0], "default": [1, 0, 0, 1],
                           "label_timestamp": _hours(5, 5, 35, 36)})
    joined = join_labels(_predictions(), labels, LabelSpec.of(CREDIT), as_of=T0 + pd.Timedelta(days=3))
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
    joined = join_labels(preds, labels, LabelSpec.of(CREDIT), as_of=as_of)
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
    spec = LabelSpec.of(CREDIT)
    with pytest.raises(DataError, match=r"lack column\(s\) \['label_timestamp'\]"):
        join_labels(_predictions(), pd.DataFrame({"customer_id": ["a"], "default": [1]}), spec)
    with pytest.raises(DataError, match="must hold 0/1 outcomes"):
        join_labels(_predictions(), pd.DataFrame({"customer_id": ["a"], "default": [7],
                                                  "label_timestamp": _hours(1)}), spec)
    with pytest.raises(DataError, match="not timestamps"):
        join_labels(_predictions(), pd.DataFrame({"customer_id": ["a"], "default": [1],
                                                  "label_timestamp": ["soon"]}), spec)
    with pytest.raises(ConfigError, match="pandas frequency"):
        realized_performance(join_labels(_predictions(), pd.DataFrame(
            {"customer_id": ["a"], "default": [1], "label_timestamp": _hours(1)}), spec), "fortnightly")
    # a project whose data never says when a label became known cannot judge delayed labels
    no_label_time = renamed(CHURN, tempfile.mkdtemp(prefix="no-label-time-"), "no-label-time",
                            lambda doc: doc["timestamps"].pop("label"))
    with pytest.raises(ConfigError, match="declares no timestamps.label"):
        LabelSpec.of(no_label_time)


# -- whole monitoring runs ---------------------------------------------------------------------
# Per project: the rows its two training runs learn from, and a params override (churn trains its own params).
TRAINING = {
    "credit": (CREDIT, lambda: generate_credit_data(6_000, seed=31), {"max_iter": 40}),
    "churn": (CHURN, lambda: generate_churn_data(3_000, seed=31), {}),
}


@pytest.fixture(scope="module")
def runs(platform, tmp_path_factory):
    """Per project (trained on first use): two training runs on feature-store rows, a good model and one
    trained on flipped labels, and the training rows' digest. Each test registers them under a model of its
    own (a renamed copy of the example), so tests never share a model, an alias or a log."""
    from mlops import stages
    from mlops.platform.datasets import DatasetInfo
    from mlops.platform.storage import ObjectStore
    from tests.feature_rows import training_rows

    store = ObjectStore(platform.s3_settings())
    work = tmp_path_factory.mktemp("monitoring")
    done = {}

    def get(name: str):
        if name not in done:
            example, data, params = TRAINING[name]
            project = renamed(example, work / "training", f"monitoring-{name}")
            train, _, rows, flipped = training_rows(store, work / name, project, data())
            out = []
            for path in (rows, flipped):
                info = DatasetInfo(str(path), train.rows, train.columns, train.digest)
                out.append(stages.train_and_log(project, str(path), info, {**project.model.params, **params}))
            done[name] = out, train.digest
        return done[name]

    (work / "credit").mkdir()
    (work / "churn").mkdir()
    return get


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """``copies(example, name)``: the example under the model name ``name``, one folder per name.

    ``features_of="credit"``: the copy reads the Feast project (and snapshots) of that training copy, for a
    test that serves it: a second model of one team on the same features."""
    work = tmp_path_factory.mktemp("monitored")
    made = {}

    def get(example, name: str, features_of: str | None = None):
        def edit(doc):
            if features_of:
                doc["names"].update(feast_project=f"monitoring_{features_of}", prefix=f"monitoring-{features_of}")

        if name not in made:
            made[name] = renamed(example, work, name, edit)
        return made[name]

    return get


def _production(store, project, run, digest):
    from mlops import stages
    from mlops.registry import promotion as registry

    name = project.names.model
    version = stages.register(run.run.model_uri, name, run.run.run_id, digest)
    current = registry.alias_version(name, registry.PRODUCTION)
    registry.promote(store, name, version, registry.PRODUCTION, expected_current=current, actor="test",
                     reason="test setup")
    return version


def _served_rows(project, raw: pd.DataFrame) -> pd.DataFrame:
    """``raw``'s feature rows as the transformer logs them (the online store's representation): the entity
    key, numbers as float64 (NaN when missing), text as str or None."""
    from mlops.features.engineering import compute_features

    table = compute_features(project, raw).reset_index(drop=True)
    key = project.entity.key
    out = {key: table[key]}
    for name, kind in project.features.columns:
        column = table[name]
        out[name] = column.astype("float64") if kind != "string" else column.astype(object).where(column.notna(),
                                                                                                 None)
    return pd.DataFrame(out)


def _log(store, project, version, raw: pd.DataFrame, chunk: int = 250) -> pd.DataFrame:
    """Serve ``raw`` rows through ``version`` of the project's model the way the transformer logs them."""
    from mlops.registry.model_files import fetch_model, load_model, resolve_model
    from mlops.serving.request_log import RequestLog

    name = project.names.model
    ref = resolve_model(name, version)
    loaded = load_model(fetch_model(ref, tempfile.mkdtemp(prefix="monitor-model-"), store), ref.digest)
    features = _served_rows(project, raw)
    scores = loaded.estimator.predict_proba(features[[c for c, _ in loaded.columns]])[:, 1]
    threshold = decision_threshold(project)
    log = RequestLog(store, name, flush_interval_s=60)
    for i in range(0, len(features), chunk):
        part = slice(i, i + chunk)
        log.append(f"{version}-{i}", version, features.iloc[part].reset_index(drop=True), scores[part],
                   (scores[part] >= threshold).astype(int))
    log.close()
    return features.assign(probability=scores)


def _labels(store, project, raw: pd.DataFrame, key: str, pending: float = 0.0) -> str:
    """The rows' true outcomes as the project's raw data holds them (churn: "yes"/"no"), as a label feed:
    known from now on, except the last ``pending`` share, whose outcome is known only in 30 days."""
    from mlops.platform.datasets import write_table

    now = pd.Timestamp.now(tz="UTC")
    late = np.arange(len(raw)) >= round(len(raw) * (1 - pending))
    uri = f"s3://{store.bucket}/labels/{project.names.model}/{key}.parquet"
    write_table(pd.DataFrame({project.entity.key: raw[project.entity.key].to_numpy(),
                              project.label.column: raw[project.label.column].to_numpy(),
                              project.label_timestamp: np.where(late, now + pd.Timedelta(days=30), now)}), uri, store)
    return uri.rpartition("/")[0] + "/"


def _later():
    return (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).isoformat()


def _generate(name: str, rows: int, seed: int, scenario: str = "none", **options) -> pd.DataFrame:
    return (generate_credit_data if name == "credit" else generate_churn_data)(rows, seed=seed, scenario=scenario,
                                                                               **options)


@pytest.mark.platform
@pytest.mark.parametrize("name, rows", [("credit", 2_000), ("churn", 1_500)])
def test_a_quiet_window_raises_no_alert_and_publishes_reports(runs, copies, store, name, rows):
    from mlops.monitoring.run import run_monitor

    (good, _), digest = runs(name)
    project = copies(BY_NAME[name], f"monitor-quiet-{name}")
    version = _production(store, project, good, digest)
    raw = _generate(name, rows, seed=41)
    _log(store, project, version, raw)
    labels = _labels(store, project, raw, "quiet")
    run = run_monitor(project, labels_uri=labels, now=_later(), progress=lambda *_: None)
    result = run.result
    assert result.rows == rows and result.decision == "none", run.markdown
    assert not result.drift.dataset_drift and not result.drift.prediction_drift and not result.drift.missing_drift
    assert {c.column for c in result.drift.features} == set(project.features.names)  # the project's features
    assert result.labels["labeled"] == rows and result.labels["coverage"] == 1.0
    overall = result.overall(version)
    assert overall.metrics["roc_auc"] > project_policy(project).performance.min_value
    # credit's business KPI is its own hook (kpi.py:net_value); churn declares none
    assert set(overall.kpi) == ({"net_value", "net_value_per_loan", "approved_default_rate"} if name == "credit"
                                else set())
    prefix = result.report_uri.removeprefix(f"s3://{store.bucket}/")
    assert prefix.startswith(f"reports/monitoring/{project.names.model}/")
    assert {k.rpartition("/")[2] for k in store.list_keys(prefix)} == {"monitoring.json", "monitoring.html",
                                                                     "monitoring.md"}
    html = store.get_bytes(prefix + "monitoring.html").decode()
    assert html.count("<img") >= len(result.drift.features)  # a distribution plot per feature, plus performance
    assert json.loads(store.get_bytes(prefix + "monitoring.json"))["decision"] == "none"


@pytest.mark.platform
@pytest.mark.parametrize("name, column, before", [("credit", "debt_to_income", "3.0%"),
                                                  ("churn", "usage_hours_30d", None)])
def test_a_broken_feed_is_seen_as_missing_rate_drift(runs, copies, store, name, column, before):
    """Evidently drops missing values and would see nothing: the whole column is gone."""
    import re

    from mlops.monitoring.run import run_monitor
    from mlops.registry import audit

    (good, _), digest = runs(name)
    project = copies(BY_NAME[name], f"monitor-nulls-{name}")
    version = _production(store, project, good, digest)
    _log(store, project, version, _generate(name, 1_500, seed=42, scenario="null_column"))
    run = run_monitor(project, now=_later(), progress=lambda *_: None)
    result = run.result
    alerts = {a.name: a for a in result.alerts}
    assert alerts["missing_drift"].action == "notify", run.markdown
    rate = re.escape(before) if before else r"[1-9]\.[0-9]%"  # churn's feed loses ~4% of usage values
    assert re.search(rf"{column} {rate} -> 100\.0%", alerts["missing_drift"].reason), alerts["missing_drift"].reason
    drifted = result.drift.column(column)
    assert drifted.missing_drifted and not drifted.drifted
    assert drifted.note.startswith("no values in the current window")
    assert not result.drift.dataset_drift  # no other feature moved
    assert [c.column for c in result.drift.features if c.missing_drifted] == [column]
    assert audit.trail(store, project.names.model)[-1].action == f"monitoring_{result.decision}"


@pytest.mark.platform
def test_covariate_drift_launches_a_real_training_pipeline_run_once_per_cooldown(runs, copies, store):
    """The trigger runs the compiled training pipeline with kfp.local on the fresh window."""
    from mlflow import MlflowClient

    from mlops.monitoring.run import run_monitor
    from mlops.platform.datasets import write_table
    from mlops.registry import audit
    from mlops.registry import promotion as registry

    (good, _), digest = runs("credit")
    project = copies(CREDIT, "monitor-drift")
    name = project.names.model
    version = _production(store, project, good, digest)
    _log(store, project, version, generate_credit_data(2_000, seed=43, scenario="covariate_shift"))
    fresh = f"s3://{store.bucket}/datasets/monitoring-fresh.parquet"
    write_table(generate_credit_data(3_000, seed=44, scenario="covariate_shift", start="2025-07-01"), fresh)
    before = {v.version for v in MlflowClient().search_model_versions(f"name = '{name}'")}
    run = run_monitor(project, training_data=fresh, now=_later(), progress=lambda *_: None)
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
    again = run_monitor(project, training_data=fresh, now=_later(), progress=lambda *_: None).result
    assert again.decision == "retrain" and "cooldown" in again.actions[-1]
    assert [e.action for e in audit.trail(store, name)].count("retraining_started") == 1


@pytest.mark.platform
def test_churn_covariate_drift_over_its_own_features_warrants_retraining(runs, copies, store):
    """Churn's outage season: usage falls and support calls rise; the scores follow. A dry run decides and
    records, and launches nothing (the launch itself is proven on credit above)."""
    from mlflow import MlflowClient

    from mlops.monitoring.run import run_monitor
    from mlops.registry import audit

    (good, _), digest = runs("churn")
    project = copies(CHURN, "monitor-drift-churn")
    name = project.names.model
    version = _production(store, project, good, digest)
    _log(store, project, version, generate_churn_data(1_500, seed=43, scenario="covariate_shift"))
    run = run_monitor(project, now=_later(), launch=False, progress=lambda *_: None)
    result = run.result
    assert result.decision == "retrain", run.markdown
    assert set(result.drift.drifted_features) == {"support_calls_90d", "usage_hours_30d"}, run.markdown
    assert not result.drift.dataset_drift  # 2 of 10 features: below the policy's drift share
    assert result.drift.prediction_drift and result.alerts[0].name == "prediction_drift", run.markdown
    assert "dry run" in result.actions[-1]
    assert [e.action for e in audit.trail(store, name)][-1] == "monitoring_retrain"
    assert [v.version for v in MlflowClient().search_model_versions(f"name = '{name}'")] == [version]


@pytest.mark.platform
def test_churn_realized_performance_from_delayed_yes_no_labels_warrants_retraining(runs, copies, store):
    """concept_shift: no input moves, the outcomes do. The label feed holds churn's own "yes"/"no"; a quarter of
    the outcomes are still pending (their 30 days have not passed). Realized ROC AUC over the labels that have
    arrived falls below the policy's 0.75: retrain."""
    from sklearn.metrics import roc_auc_score

    from mlops.monitoring.run import run_monitor

    (good, _), digest = runs("churn")
    project = copies(CHURN, "monitor-concept-churn")
    version = _production(store, project, good, digest)
    raw = generate_churn_data(1_600, seed=45, scenario="concept_shift")
    served = _log(store, project, version, raw)
    assert set(raw["churned"]) == {"yes", "no"}
    feed = _labels(store, project, raw, "concept", pending=0.25)
    run = run_monitor(project, labels_uri=feed, now=_later(), launch=False, progress=lambda *_: None)
    result = run.result
    assert result.labels["labeled"] == 1_200 and result.labels["pending_labels"] == 400, run.markdown
    assert result.labels["coverage"] == pytest.approx(0.75)
    # the realized metric is sklearn's over the arrived labels, "yes" counted as the positive class
    arrived = raw.iloc[:1_200][["subscriber_id", "churned"]].merge(served, on="subscriber_id")
    realized = result.overall(version).metrics["roc_auc"]
    assert realized == pytest.approx(roc_auc_score(arrived["churned"] == "yes", arrived["probability"]))
    assert realized < 0.75, run.markdown
    assert not result.drift.dataset_drift and not result.drift.prediction_drift  # inputs unchanged
    [alert] = [a for a in result.alerts if a.name == "performance_below"]
    assert alert.action == "retrain" and "over 1200 labels" in alert.reason, alert.reason
    assert result.decision == "retrain" and "dry run" in result.actions[-1]


@pytest.mark.platform
def test_production_worse_than_the_previous_version_is_reverted_by_the_compiled_pipeline(runs, copies, store,
                                                                                         tmp_path):
    """monitoring_pipeline.yaml under kfp.local: check -> rollback branch -> local serving reverted."""
    from mlops.platform.local import free_ports
    from mlops.platform.local_run import pipeline_file, run_local
    from mlops.registry import audit
    from mlops.registry import promotion as registry
    from mlops.serving.local import LocalServing

    (good, flipped), digest = runs("credit")
    project = copies(CREDIT, "monitor-revert", features_of="credit")  # served: it needs online features
    name = project.names.model
    stable = _production(store, project, good, digest)
    _log(store, project, stable, generate_credit_data(1_000, seed=45))
    worse = _production(store, project, flipped, digest)
    assert registry.alias_version(name, registry.ROLLBACK) == stable
    raw = generate_credit_data(1_000, seed=46)
    _log(store, project, worse, raw)
    labels = pd.concat([generate_credit_data(1_000, seed=45), raw])
    feed = _labels(store, project, labels, "both")
    local = LocalServing(project)
    local.up(worse, port=free_ports(["t"])["t"], request_log=False, progress=lambda *_: None)
    try:
        run = run_local(pipeline_file("monitoring"),
                        {"project": project.source, "labels_uri": feed, "target": "local", "now": _later(),
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
    (["--project", "{never}"], "never-registered has no production version to monitor"),
    (["--project", "no-such-example"], "no example project named 'no-such-example'"),
    (["--policy", "strictest"], "monitoring policy strictest"),
    (["--policy", "{bad_kpi}"], "kpi.py has no function 'nothing'"),
    (["--labels", "s3://mlops/labels/none-here/"], "no Parquet files under s3://mlops/labels/none-here/"),
])
def test_mlops_monitor_names_what_is_wrong_without_a_traceback(runs, copies, store, tmp_path, args, message):
    from mlops.registry import promotion as registry
    from tests.test_cli import mlops

    project = copies(CREDIT, "monitor-cli")
    if registry.alias_version(project.names.model, registry.PRODUCTION) is None:
        (good, _), digest = runs("credit")
        _production(store, project, good, digest)
    never = copies(CREDIT, "never-registered")
    bad_kpi = tmp_path / "bad-kpi.yaml"
    policy = yaml.safe_load(open(CREDIT.monitoring))
    policy["performance"]["kpi"] = "kpi.py:nothing"
    policy["retraining"].pop("rollout_policy")
    bad_kpi.write_text(yaml.safe_dump(policy))
    args = [a.format(never=never.root, bad_kpi=bad_kpi) for a in args]
    result = mlops("monitor", "--project", str(project.root), *args)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
