"""The churn example project (examples/churn): it loads, its generator keeps its promises, its model
fits, its raw contract tells a broken feed from a clean one, and its gate passes on reference data.

Real code throughout: the project is loaded and its hooks imported as the suite does, data is
generated, written to Parquet and validated, the model is fitted. The gate's numbers are
recomputed here with scikit-learn and pandas directly, not with the suite's evaluation.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.exceptions import NotFittedError
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, log_loss, precision_score, recall_score,
                             roc_auc_score)
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from mlops.project import call_hook, load_hook, load_project
from mlops.project.spec import Hook
from mlops.validation.checks import validate_parquet
from mlops.validation.contract import load_contract, load_reference_profile

ROOT = Path(__file__).resolve().parents[1] / "examples" / "churn"
FEATURES = ("tenure_months", "monthly_fee", "plan", "contract_type", "support_calls_90d", "usage_hours_30d",
            "payment_method", "late_payments_12m", "discount_pct", "region")
SCENARIOS = ("none", "covariate_shift", "concept_shift", "price_increase", "null_column")


@pytest.fixture(scope="module")
def project():
    return load_project(ROOT)


@pytest.fixture(scope="module")
def generate(project):
    return load_hook(project, project.data_hook)


@pytest.fixture(scope="module")
def frames(generate):
    """5,000 rows of every scenario, seed 7: the size the gate was measured at."""
    return {scenario: generate(5000, seed=7, scenario=scenario) for scenario in SCENARIOS}


def time_split(df: pd.DataFrame, column: str, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The most recent ``fraction`` of rows held out, as the pipeline splits (stable sort by time)."""
    ordered = df.sort_values(column, kind="stable").reset_index(drop=True)
    cut = int(round(len(ordered) * (1.0 - fraction)))
    return ordered.iloc[:cut], ordered.iloc[cut:].reset_index(drop=True)


def labels(project, df: pd.DataFrame) -> np.ndarray:
    return (df[project.label.column] == project.label.positive).to_numpy().astype(int)


def fitted(project, train: pd.DataFrame):
    model = call_hook(project, project.model.build, dict(project.model.params))
    return model.fit(train[list(project.features.names)], labels(project, train))


# -- the project -------------------------------------------------------------------------------

def test_the_project_loads_with_every_field_as_declared(project):
    assert (project.name, project.task.name) == ("churn", "binary_classification")
    assert project.description.startswith("Will a subscriber cancel within 30 days")
    assert (project.entity.name, project.entity.key, project.entity.type) == ("subscriber", "subscriber_id", "integer")
    assert (project.event_timestamp, project.label_timestamp) == ("snapshot_timestamp", "label_timestamp")
    assert (project.label.column, project.label.positive) == ("churned", "yes")
    assert project.sensitive == ("age_band", "gender") and project.slices == ("region",)
    assert project.features.names == FEATURES and project.features.hook is None
    assert project.features.of_type("integer") == ("tenure_months", "support_calls_90d", "late_payments_12m")
    assert project.features.of_type("string") == ("plan", "contract_type", "payment_method", "region")
    assert not set(project.sensitive) & set(project.features.names)  # never features
    assert "region" in project.features.names  # a slice may be a feature
    assert project.model.estimator is None and project.model.build == Hook("model.py", "build_model")
    assert project.model.params == {"C": 0.5, "max_iter": 1000, "random_state": 7}
    assert (project.split.test_fraction, project.split.validation_fraction, project.split.seed) == (0.2, 0.2, 7)
    assert (project.names.model, project.names.experiment, project.names.feast_project, project.names.prefix) == \
        ("churn", "churn", "churn", "churn")
    assert (project.gate, project.rollout, project.monitoring) == \
        (ROOT / "gate.yaml", ROOT / "rollout.yaml", ROOT / "monitoring.yaml")
    assert project.contracts == {"raw": ROOT / "contracts" / "raw.yaml",
                                 "features": ROOT / "contracts" / "features.yaml"}
    assert project.data_hook == Hook("data.py", "generate") and project.metrics is None


def test_the_policies_load_with_the_suites_parsers(project):
    from mlops.evaluation.gate import load_gate
    from mlops.monitoring.policy import load_policy as load_monitoring
    from mlops.rollout.policy import load_policy as load_rollout

    gate_doc = yaml.safe_load(project.gate.read_text())
    assert "segments" not in gate_doc and "attribute" not in gate_doc["fairness"]  # both come from project.yaml
    gate = load_gate(project.gate)
    assert (gate.decision_threshold, gate.high_stakes, gate.fairness.four_fifths) == (0.2, False, False)
    rollout = load_rollout(project.rollout)
    assert rollout.canary_steps == (10, 50) and rollout.shadow is not None
    monitoring = load_monitoring(project.monitoring)
    retrained = load_rollout(project.root / monitoring.rollout_policy)  # named relative to the project
    assert [c.min for c in retrained.shadow.success if c.metric == "agreement"] == [0.65]
    named = set(monitoring.drift.methods) | set(monitoring.drift.thresholds)
    assert named and named <= set(project.features.names)  # churn's feature names, not credit's


def test_the_contracts_describe_the_raw_frame_and_the_feature_table(project, frames):
    raw, features = load_contract(project.contracts["raw"]), load_contract(project.contracts["features"])
    assert list(raw.columns) == list(frames["none"].columns)
    assert raw.key == [project.entity.key] and raw.timestamp == project.event_timestamp
    assert list(features.columns) == [project.entity.key, "feature_timestamp", "created_timestamp",
                                      *project.features.names]
    assert features.key == [project.entity.key, "feature_timestamp"]
    for contract in (raw, features):
        assert contract.columns["subscriber_id"].type == "integer"
        assert contract.drift_rule(contract.columns["subscriber_id"]) is None  # an id never drifts
        profile = load_reference_profile(contract)  # beside the contract, as credit's
        assert profile.rows == 20_000
        assert set(profile.features) == {n for n, c in contract.columns.items() if contract.drift_rule(c) is not None}


# -- the generator -----------------------------------------------------------------------------

def test_the_generator_is_deterministic_and_documents_its_frame(generate, frames):
    first, again = generate(3000, seed=11), generate(3000, seed=11)
    pd.testing.assert_frame_equal(first, again)
    assert not first["churned"].equals(generate(3000, seed=12)["churned"])
    df = frames["none"]
    assert df["subscriber_id"].dtype == np.int64 and df["subscriber_id"].is_unique
    assert df["subscriber_id"].between(10_000_000, 99_999_999).all()
    assert str(df["snapshot_timestamp"].dt.tz) == "UTC" and df["snapshot_timestamp"].is_monotonic_increasing
    start = pd.Timestamp("2025-01-01", tz="UTC")
    assert df["snapshot_timestamp"].min() >= start
    assert df["snapshot_timestamp"].max() < start + pd.Timedelta(days=365)
    assert (df["label_timestamp"] - df["snapshot_timestamp"] == pd.Timedelta(days=30)).all()
    assert set(df["churned"]) == {"yes", "no"} and 0.18 <= (df["churned"] == "yes").mean() <= 0.28
    assert set(df["age_band"]) == {"18-29", "30-44", "45-64", "65+"} and set(df["gender"]) == {"F", "M"}
    assert df["support_calls_90d"].dtype == "Int64"
    missing = df.isna().mean()
    assert 0.02 < missing["usage_hours_30d"] < 0.06 and 0.015 < missing["support_calls_90d"] < 0.045
    assert 0.01 < missing["discount_pct"] < 0.035
    assert missing.drop(["usage_hours_30d", "support_calls_90d", "discount_pct"]).eq(0).all()
    assert set(df["plan"]) == {"basic", "standard", "premium"}
    assert set(df["contract_type"]) == {"monthly", "annual", "two_year"}
    assert df["late_payments_12m"].between(0, 12).all() and df["tenure_months"].between(0, 72).all()


@pytest.mark.parametrize("arguments, message", [
    ({"rows": 0}, r"rows must be an integer in \[1, 1000000\]; got 0"),
    ({"rows": 2.5}, r"rows must be an integer in \[1, 1000000\]; got 2.5 \(float\)"),
    ({"rows": True}, r"rows must be an integer .*got True \(bool\)"),
    ({"rows": 10, "seed": -1}, r"seed must be an integer >= 0; got -1"),
    ({"rows": 10, "seed": "7"}, r"seed must be an integer >= 0; got '7' \(str\)"),
    ({"rows": 10, "scenario": "recession"},
     r"scenario must be one of none, covariate_shift, concept_shift, price_increase, null_column; got 'recession'"),
    ({"rows": 10, "start": "someday"}, r"start must be a date or timestamp such as '2025-01-01'; got 'someday'"),
    ({"rows": 10, "days": 0}, r"days must be an integer in \[1, 36500\]; got 0"),
], ids=["no rows", "fractional rows", "bool rows", "negative seed", "seed as text", "unknown scenario",
        "bad start", "no days"])
def test_bad_arguments_are_refused_naming_the_argument(generate, arguments, message):
    with pytest.raises(ValueError, match=message):
        generate(**arguments)


def _unchanged(frames, scenario, *changed):
    """Every column but ``changed`` is exactly as in ``none``: the other variables' draws are intact."""
    keep = [c for c in frames["none"].columns if c not in changed]
    pd.testing.assert_frame_equal(frames[scenario][keep], frames["none"][keep])


def churn_rate(df):
    return (df["churned"] == "yes").mean()


def test_covariate_shift_moves_usage_and_support_calls_and_churn_follows(frames):
    none, shifted = frames["none"], frames["covariate_shift"]
    _unchanged(frames, "covariate_shift", "usage_hours_30d", "support_calls_90d", "churned")
    both = none["usage_hours_30d"].notna() & shifted["usage_hours_30d"].notna()
    ratio = shifted.loc[both, "usage_hours_30d"].sum() / none.loc[both, "usage_hours_30d"].sum()
    assert ratio == pytest.approx(0.7, abs=0.01)
    assert shifted["support_calls_90d"].mean() > 1.4 * none["support_calls_90d"].mean()
    assert churn_rate(shifted) > churn_rate(none) + 0.03


def test_concept_shift_keeps_every_input_and_changes_the_labels(frames):
    none, shifted = frames["none"], frames["concept_shift"]
    _unchanged(frames, "concept_shift", "churned")
    assert (none["churned"] != shifted["churned"]).mean() > 0.1
    assert churn_rate(shifted) > churn_rate(none) + 0.03


def test_price_increase_raises_every_fee_and_the_churn_rate(frames):
    none, priced = frames["none"], frames["price_increase"]
    _unchanged(frames, "price_increase", "monthly_fee", "churned")
    np.testing.assert_allclose(priced["monthly_fee"], none["monthly_fee"] * 1.2, atol=0.011)
    churned_before, churned_after = none["churned"] == "yes", priced["churned"] == "yes"
    assert not (churned_before & ~churned_after).any()  # the unchanged rule: nobody who left stays
    assert churn_rate(priced) > churn_rate(none) + 0.015


def test_null_column_empties_usage_and_nothing_else(frames):
    assert frames["null_column"]["usage_hours_30d"].isna().all()
    _unchanged(frames, "null_column", "usage_hours_30d")


# -- the model ---------------------------------------------------------------------------------

def test_build_model_returns_an_unfitted_pipeline_that_fits_the_data_deterministically(project, frames):
    model = call_hook(project, project.model.build, dict(project.model.params))
    assert isinstance(model, Pipeline)
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    assert model.named_steps["model"].get_params()["C"] == 0.5
    development, _ = time_split(frames["none"], project.event_timestamp, project.split.test_fraction)
    train, valid = time_split(development, project.event_timestamp, project.split.validation_fraction)
    scores = fitted(project, train).predict_proba(valid[list(project.features.names)])[:, 1]
    assert 0.74 <= roc_auc_score(labels(project, valid), scores) <= 0.86  # measured: 0.782
    again = fitted(project, train).predict_proba(valid[list(project.features.names)])[:, 1]
    np.testing.assert_array_equal(scores, again)


def test_the_model_takes_nullable_integers_and_missing_text_and_pickles_without_the_project(project, frames):
    df = frames["none"].iloc[:2000].copy()
    for column in project.features.of_type("integer"):
        df[column] = df[column].astype("Int64")
    df.loc[df.index[:40], "tenure_months"] = pd.NA
    df.loc[df.index[40:80], "plan"] = None
    df.loc[df.index[80:120], "payment_method"] = np.nan
    df["region"] = df["region"].astype("string")
    df.loc[df.index[120:160], "region"] = pd.NA
    model = fitted(project, df)
    probe = df.iloc[:200].copy()
    probe.loc[probe.index[0], "plan"] = "platinum"  # a category never seen in training
    scores = model.predict_proba(probe[list(project.features.names)])[:, 1]
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    blob = pickle.dumps(model)
    assert b"mlops_project" not in blob  # nothing of the hook's module inside the fitted model
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(probe[list(project.features.names)])[:, 1], scores)


# -- the raw contract --------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_raw_contract_passes_clean_scenarios_and_fails_the_broken_feed(project, frames, scenario, tmp_path):
    path = tmp_path / f"{scenario}.parquet"
    frames[scenario].to_parquet(path, index=False)
    result = validate_parquet(path, load_contract(project.contracts["raw"]))
    if scenario == "null_column":
        assert not result.passed
        assert [(f.check, f.column) for f in result.errors] == [("missing.all_null", "usage_hours_30d")]
    else:
        assert result.passed, result.summary()


def test_the_features_contract_passes_the_feature_table_of_reference_data(project, frames, tmp_path):
    raw = frames["none"]
    timestamps = raw[project.event_timestamp].dt.floor("us")
    table = pd.DataFrame({project.entity.key: raw[project.entity.key].astype("int64"),
                          "feature_timestamp": timestamps, "created_timestamp": timestamps})
    for name, kind in project.features.columns:  # typed as declared: float64, nullable Int64, str/None
        if kind == "string":
            table[name] = raw[name].astype(object).where(raw[name].notna(), None)
        else:
            table[name] = raw[name].astype("Int64" if kind == "integer" else "float64")
    table.to_parquet(tmp_path / "features.parquet", index=False)
    result = validate_parquet(tmp_path / "features.parquet", load_contract(project.contracts["features"]))
    assert result.passed and not result.warnings, result.summary()


# -- the gate ----------------------------------------------------------------------------------

def _log_loss_skill(y, scores):
    return 1.0 - log_loss(y, scores, labels=[0, 1]) / log_loss(y, np.full(len(y), y.mean()), labels=[0, 1])


METRICS = {"roc_auc": lambda y, s, t: roc_auc_score(y, s), "pr_auc": lambda y, s, t: average_precision_score(y, s),
           "log_loss_skill": lambda y, s, t: _log_loss_skill(y, s), "f1": lambda y, s, t: f1_score(y, s >= t),
           "precision": lambda y, s, t: precision_score(y, s >= t), "recall": lambda y, s, t: recall_score(y, s >= t),
           "accuracy": lambda y, s, t: accuracy_score(y, s >= t), "log_loss": lambda y, s, t: log_loss(y, s)}


def test_the_gate_passes_on_reference_data_measured_independently(project, frames):
    gate = yaml.safe_load(project.gate.read_text())
    threshold, fairness = gate["decision_threshold"], gate["fairness"]
    development, test = time_split(frames["none"], project.event_timestamp, project.split.test_fraction)
    train, _ = time_split(development, project.event_timestamp, project.split.validation_fraction)
    scores = fitted(project, train).predict_proba(test[list(project.features.names)])[:, 1]
    y = labels(project, test)
    for rule in gate["value_thresholds"]:
        value = METRICS[rule["metric"]](y, scores, threshold)
        assert rule.get("min", -np.inf) <= value <= rule.get("max", np.inf), (rule, value)
    offered = scores >= threshold
    for attribute in project.sensitive:  # every sensitive attribute, as the gate judges them
        groups = pd.DataFrame({"group": test[attribute], "y": y, "offered": offered}).groupby("group")
        rates = pd.DataFrame({
            "size": groups.size(),
            "tpr": groups.apply(lambda g: g.offered[g.y == 1].mean(), include_groups=False),
            "fpr": groups.apply(lambda g: g.offered[g.y == 0].mean(), include_groups=False),
            "selection": groups["offered"].mean(),
        })
        assert len(rates) >= 2 and (rates["size"] >= gate["min_slice_size"]).all(), rates
        assert np.ptp(rates["tpr"]) <= fairness["max_tpr_gap"], (attribute, rates)
        assert np.ptp(rates["fpr"]) <= fairness["max_fpr_gap"], (attribute, rates)
        assert np.ptp(rates["selection"]) <= fairness["max_selection_rate_gap"], (attribute, rates)
        if fairness["four_fifths"]:
            assert rates["selection"].min() / rates["selection"].max() >= 0.8, (attribute, rates)
