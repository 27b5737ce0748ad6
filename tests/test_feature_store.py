"""The feature store, for real: Feast with DuckDB offline and SQLite online in tmp dirs, snapshots on real S3.

Every capability runs on both example projects: credit (string keys ``customer_id``, a feature
hook) and churn (integer keys ``subscriber_id``, raw columns as features, a nullable Int64
count). Two projects (and two copies of one) share one registry and one online store without
touching each other's views or rows.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import Field
from feast.types import Int64, String

from mlops.errors import ConfigError, DataError, StorageError
from mlops.features.definitions import CREATED_TIMESTAMP, FEATURE_TIMESTAMP, FeatureDefinitions
from mlops.features.engineering import compute_features, label_events
from mlops.features.skew import compare_online_offline
from mlops.features.store import (FeatureStoreConfig, FeatureStoreError, applied_snapshot, apply_definitions,
                                  check_online_store, fetch_snapshot, historical_features, materialize, online_features,
                                  online_ids, open_store, publish_snapshot, snapshot_prefix)
from mlops.platform.local import free_ports
from mlops.platform.storage import sha256_file
from tests.projects import CHURN, CREDIT, EXAMPLES, generate_churn_data, generate_credit_data, renamed

T0 = pd.Timestamp("2025-03-01", tz="UTC")


@dataclass(frozen=True)
class Case:
    """How one project's point-in-time cases are written: a plausible raw row, its ids, a float feature."""

    project: object
    base: dict  # a raw row; each test row overrides some columns
    ids: dict  # role -> entity id: leak, stale, tie1, tie2, unknown
    value: str  # a float feature whose value tells the rows apart
    numeric: tuple  # numeric features, Int64 ones included, that come back as float64

    def raw(self, rows: list[dict]) -> pd.DataFrame:
        key = self.project.entity.key
        return pd.DataFrame([{**self.base, **{(key if k == "id" else k): (self.ids[v] if k == "id" else v)
                                              for k, v in row.items()}} for row in rows])

    def id(self, role: str):
        return self.ids[role]


CASES = {  # by entity key, so a renamed copy of an example finds its example's case
    CREDIT.entity.key: Case(
        CREDIT,
        base={"customer_id": "C1", "event_timestamp": T0, "age": 40, "income": 50_000.0, "employment_years": 5.0,
              "credit_utilization": 0.3, "num_open_accounts": 3, "num_late_payments_12m": 0, "loan_amount": 10_000.0,
              "debt_to_income": 0.25, "home_ownership": "RENT", "loan_purpose": "car", "region": "north",
              "employment_type": "salaried", "gender": "F", "default": 0,
              "label_timestamp": T0 + pd.Timedelta(days=60)},
        ids={"leak": "leak", "stale": "stale", "tie1": "tie1", "tie2": "tie2", "unknown": "unknown", "base": "C1"},
        value="income", numeric=("age", "income", "has_late_payments")),
    CHURN.entity.key: Case(
        CHURN,
        base={"subscriber_id": 10_000_001, "snapshot_timestamp": T0, "label_timestamp": T0 + pd.Timedelta(days=30),
              "tenure_months": 12, "monthly_fee": 15.99, "plan": "standard", "contract_type": "monthly",
              "support_calls_90d": 1, "usage_hours_30d": 20.0, "payment_method": "card", "late_payments_12m": 0,
              "discount_pct": 0.0, "region": "north", "age_band": "30-44", "gender": "F", "churned": "no"},
        ids={"leak": 10_000_101, "stale": 10_000_102, "tie1": 10_000_103, "tie2": 10_000_104, "unknown": 10_000_105,
             "base": 10_000_001},
        value="monthly_fee", numeric=("tenure_months", "monthly_fee", "support_calls_90d")),
}
RAW = {CREDIT.entity.key: generate_credit_data, CHURN.entity.key: generate_churn_data}
by_name = pytest.mark.parametrize("project", EXAMPLES, ids=lambda p: p.name)


def case_of(project) -> Case:
    return CASES[project.entity.key]


def raw_data(project, rows: int, seed: int) -> pd.DataFrame:
    return RAW[project.entity.key](rows, seed=seed)


def write_snapshot(features: pd.DataFrame, directory) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "features.parquet"
    features.to_parquet(path, index=False)
    return str(path)


def feature_names(project) -> list[str]:
    return list(project.features.names)


# -- point-in-time correctness ---------------------------------------------------

@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.name)
def pit(request, tmp_path_factory):
    """A store whose snapshot holds the three point-in-time cases, TTL 30 days."""
    case = case_of(request.param)
    project, v = case.project, case.value
    root = tmp_path_factory.mktemp(f"pit-{project.name}")
    history = compute_features(project, case.raw([
        {"id": "leak", v: 50.0},
        {"id": "leak", v: 90.0, project.event_timestamp: T0 + pd.Timedelta(days=10)},
        {"id": "stale", v: 40.0},
    ]))
    # Two rows at the same feature time: the original and a later correction,
    # in both file orders, so the order rows happen to be read in cannot explain the winner.
    def tie(role, value, created_hours):
        return compute_features(project, case.raw([{"id": role, v: value,
                                                    CREATED_TIMESTAMP: T0 + pd.Timedelta(hours=created_hours)}]))
    snapshot = pd.concat([history, tie("tie1", 70.0, 2), tie("tie1", 60.0, 1),
                          tie("tie2", 60.0, 1), tie("tie2", 70.0, 2)], ignore_index=True)
    config = FeatureStoreConfig(repo_dir=root / "feast")
    fs = open_store(config, project)
    apply_definitions(fs, write_snapshot(snapshot, config.snapshot_dir), ttl=timedelta(days=30))
    return fs, case


def as_of(pit, role: str, days: float) -> pd.Series:
    fs, case = pit
    project = case.project
    events = pd.DataFrame({project.entity.key: [case.id(role)], project.event_timestamp: [T0 + pd.Timedelta(days=days)]})
    return historical_features(fs, events).iloc[0]


def test_a_value_changed_after_the_as_of_time_does_not_leak(pit):
    _, case = pit
    assert as_of(pit, "leak", 5)[case.value] == 50.0
    assert as_of(pit, "leak", 11)[case.value] == 90.0
    if case.project is CREDIT:  # the feature hook's value is the one of that time too
        assert as_of(pit, "leak", 5)["loan_to_income"] == pytest.approx(10_000 / 50.0)


def test_b_a_row_older_than_the_ttl_gives_nulls(pit):
    _, case = pit
    fresh, expired = as_of(pit, "stale", 29), as_of(pit, "stale", 31)
    assert fresh[case.value] == 40.0 and fresh["region"] == "north"
    assert all(expired[name] is None or math.isnan(expired[name]) for name in feature_names(case.project))


def test_c_equal_feature_times_resolve_to_the_latest_created(pit):
    _, case = pit
    assert as_of(pit, "tie1", 1)[case.value] == 70.0
    assert as_of(pit, "tie2", 1)[case.value] == 70.0


def test_historical_features_keep_the_callers_rows_order_label_and_carried_columns(pit):
    fs, case = pit
    project = case.project
    key, event, label = project.entity.key, project.event_timestamp, project.label.column
    events = pd.DataFrame({
        key: [case.id(r) for r in ("tie1", "leak", "stale", "leak", "unknown")],
        event: [T0 + pd.Timedelta(days=d) for d in (1, 11, 31, 5, 1)],
        label: [1, 0, 1, 0, 1],
        "other": list("abcde"),
    }, index=[10, 11, 12, 13, 14])
    out = historical_features(fs, events)
    assert list(out.columns) == [key, event, *feature_names(project), label, "other"]
    assert out[key].tolist() == events[key].tolist()
    assert out["other"].tolist() == list("abcde")  # carried along untouched, in the caller's order
    assert out[label].tolist() == [1, 0, 1, 0, 1]
    np.testing.assert_array_equal(out[case.value].to_numpy(), [70.0, 90.0, np.nan, 50.0, np.nan])
    assert all(out[name].dtype == "float64" for name in case.numeric)


def test_integer_keys_given_as_text_find_the_same_rows(pit):
    """An integer entity key is looked up as int64 whatever the caller's column holds."""
    fs, case = pit
    project = case.project
    if project.entity.type != "integer":
        assert online_ids(project, [1, "C1"]) == ["1", "C1"]  # string keys: anything is its text
        return
    key, event = project.entity.key, project.event_timestamp
    as_text = pd.DataFrame({key: [str(case.id("leak"))], event: [T0 + pd.Timedelta(days=11)]})
    assert historical_features(fs, as_text).iloc[0][case.value] == 90.0
    assert online_ids(project, ["12345678", np.int64(5), 7]) == [12345678, 5, 7]
    for bad in ("C1", True, 1.5):
        with pytest.raises(DataError, match=rf"subscriber_id {bad!r} is not an integer id"):
            online_ids(project, [bad])
    with pytest.raises(DataError, match="must hold whole-number entity ids"):
        historical_features(fs, as_text.assign(**{key: ["abc"]}))


# -- the project's TTL --------------------------------------------------------------

@by_name
def test_the_projects_ttl_bounds_lookups_and_the_materialized_window(project, tmp_path):
    """features.ttl_days is the view's TTL: an older row gives nulls, and materialize starts at end - TTL."""
    short = renamed(project, tmp_path, f"{project.name}-ttl", edit=lambda doc: doc["features"].update(ttl_days=7))
    assert FeatureDefinitions(project).ttl == timedelta(days=project.features.ttl_days)
    definitions = FeatureDefinitions(short)
    assert definitions.ttl == timedelta(days=7) and definitions.feature_view("/s.parquet").ttl == timedelta(days=7)
    case = case_of(project)
    config = FeatureStoreConfig(repo_dir=tmp_path / "feast")
    fs = open_store(config, short)
    features = compute_features(short, case.raw([{"id": "stale", case.value: 40.0}]))
    apply_definitions(fs, write_snapshot(features, config.snapshot_dir))  # no ttl given: the project's
    key, event = short.entity.key, short.event_timestamp
    lookups = pd.DataFrame({key: [case.id("stale")] * 2, event: [T0 + pd.Timedelta(days=6), T0 + pd.Timedelta(days=8)]})
    assert historical_features(fs, lookups)[case.value].tolist()[0] == 40.0
    assert math.isnan(historical_features(fs, lookups)[case.value].tolist()[1])
    end = (T0 + pd.Timedelta(days=8)).to_pydatetime()
    start, _ = materialize(fs, end)
    assert end - start == timedelta(days=7)
    assert online_features(fs, [case.id("stale")])[case.value].isna().all()  # expired by then: not served
    start, _ = materialize(fs, (T0 + pd.Timedelta(days=6)).to_pydatetime())
    assert online_features(fs, [case.id("stale")])[case.value].tolist() == [40.0]


# -- online / offline parity ---------------------------------------------------------

@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.name)
def parity(request, tmp_path_factory):
    project = request.param
    features = compute_features(project, raw_data(project, 2_000, seed=11))
    config = FeatureStoreConfig(repo_dir=tmp_path_factory.mktemp(f"parity-{project.name}") / "feast")
    fs = open_store(config, project)
    apply_definitions(fs, write_snapshot(features, config.snapshot_dir))
    end = features[FEATURE_TIMESTAMP].max().to_pydatetime()
    start, _ = materialize(fs, end)
    return fs, config, features, start, end


def test_online_features_equal_offline_features_of_materialized_entities(parity):
    fs, _, features, start, end = parity
    project = fs.project
    key, event, names = project.entity.key, project.event_timestamp, feature_names(project)
    in_window = features[features[FEATURE_TIMESTAMP] > start][key]
    fresh = in_window.iloc[::len(in_window) // 12].tolist()  # a dozen or so, spread over the window
    expired = features[features[FEATURE_TIMESTAMP] < start][key].iloc[:3].tolist()
    assert end - start == timedelta(days=project.features.ttl_days) and len(expired) == 3
    served = online_features(fs, fresh + expired)
    assert served[key].dtype == (object if project.entity.type == "string" else "int64")
    served.insert(1, event, pd.Timestamp(end))  # the request time serving would log
    offline = historical_features(fs, served[[key, event]])

    report = compare_online_offline(served, offline, (key, event), names)
    assert report.passed(), report.summary()
    assert report.matched_rows == len(fresh) + len(expired) and len(fresh) >= 10
    # Not a vacuous match: fresh entities carry their engineered values, expired ones nothing.
    expected = features.set_index(key).loc[fresh]
    for name in project.features.of_type("float", "integer"):
        np.testing.assert_allclose(served[name].to_numpy()[:len(fresh)], expected[name].to_numpy(dtype="float64",
                                                                                                  na_value=np.nan))
    assert served["region"].tolist()[:len(fresh)] == expected["region"].tolist()
    assert served.iloc[len(fresh):][names].isna().all().all()


def test_online_features_of_unknown_entities_are_null_rows_in_order(parity):
    fs, _, features, *_ = parity
    project = fs.project
    key, names = project.entity.key, feature_names(project)
    known = features.loc[features[FEATURE_TIMESTAMP].idxmax(), key]  # the latest row: materialized
    nobody = "nobody" if project.entity.type == "string" else 1
    out = online_features(fs, [nobody, known])
    assert out[key].tolist() == [nobody, known]
    assert out.iloc[0][names].isna().all() and out.iloc[1][project.features.of_type("float", "integer")[0]] >= 0
    assert online_features(fs, []).columns.tolist() == [key, *names]


# -- two projects in one registry and one online store --------------------------------

def test_two_projects_share_a_registry_and_an_online_store_without_touching_each_other(tmp_path):
    """Credit, a second copy of credit (same keys, other data) and churn (integer keys) in one repo."""
    other = renamed(CREDIT, tmp_path / "projects", "credit-second")
    config = FeatureStoreConfig(repo_dir=tmp_path / "feast")
    data = {CREDIT.name: compute_features(CREDIT, generate_credit_data(1_000, seed=1)),
            other.name: compute_features(other, generate_credit_data(1_000, seed=2)),
            CHURN.name: compute_features(CHURN, generate_churn_data(1_000, seed=1))}
    stores = {p.name: open_store(config, p) for p in (CREDIT, other, CHURN)}
    for name, fs in stores.items():
        apply_definitions(fs, write_snapshot(data[name], config.snapshot_dir / name))
        materialize(fs, data[name][FEATURE_TIMESTAMP].max().to_pydatetime())
    assert config.registry_path == str(tmp_path / "feast" / "registry.db") and config.online_path.is_file()

    # Each Feast project holds its own view and service only.
    for name, fs in stores.items():
        definitions = fs.definitions
        assert [v.name for v in fs.feast.list_feature_views()] == [definitions.view_name]
        assert [s.name for s in fs.feast.list_feature_services()] == [definitions.service_name]
    assert {fs.definitions.view_name for fs in stores.values()} == {"credit_features", "credit_second_features",
                                                                   "churn_features"}

    # The same customer ids in both credit projects: each reads its own values.
    def latest(name, ids):
        key = stores[name].project.entity.key
        frame = data[name].sort_values(FEATURE_TIMESTAMP, kind="stable")
        return frame.drop_duplicates(key, keep="last").set_index(key).loc[ids]

    def recent(name, n=20):  # entities whose latest row is inside the materialized window
        return data[name].sort_values(FEATURE_TIMESTAMP, kind="stable")[stores[name].project.entity.key].iloc[-n:].tolist()

    shared = recent(CREDIT.name)
    assert set(shared) <= set(data[other.name]["customer_id"])
    for name in (CREDIT.name, other.name):
        served = online_features(stores[name], shared)
        np.testing.assert_allclose(served["income"].to_numpy(), latest(name, shared)["income"].to_numpy())
    assert not np.allclose(online_features(stores[CREDIT.name], shared)["income"].to_numpy(),
                           online_features(stores[other.name], shared)["income"].to_numpy(), equal_nan=True)
    subscribers = recent(CHURN.name)
    served = online_features(stores[CHURN.name], subscribers)
    np.testing.assert_allclose(served["monthly_fee"].to_numpy(), latest(CHURN.name, subscribers)["monthly_fee"])

    # Re-applying and re-materializing one project with other data changes nothing of the others.
    before = {n: online_features(stores[n], ids) for n, ids in ((other.name, shared), (CHURN.name, subscribers))}
    changed = data[CREDIT.name].assign(income=data[CREDIT.name]["income"] * 2)
    apply_definitions(stores[CREDIT.name], write_snapshot(changed, config.snapshot_dir / "changed"))
    materialize(stores[CREDIT.name], changed[FEATURE_TIMESTAMP].max().to_pydatetime())
    np.testing.assert_allclose(online_features(stores[CREDIT.name], shared)["income"].to_numpy(),
                               2 * latest(CREDIT.name, shared)["income"].to_numpy())
    for name, ids in ((other.name, shared), (CHURN.name, subscribers)):
        pd.testing.assert_frame_equal(online_features(stores[name], ids), before[name])
        assert applied_snapshot(stores[name]) == config.snapshot_dir / name / "features.parquet"
    # A fresh store of each project, reading the same registry, still finds its own service.
    again = open_store(config, CHURN)
    pd.testing.assert_frame_equal(online_features(again, subscribers), before[CHURN.name])


# -- feature engineering -----------------------------------------------------------

@by_name
def test_compute_features_is_deterministic_and_order_independent(project):
    raw = raw_data(project, 1_000, seed=2)
    first = compute_features(project, raw)
    pd.testing.assert_frame_equal(first, compute_features(project, raw))
    pd.testing.assert_frame_equal(first, compute_features(project, raw.sample(frac=1.0, random_state=3)))
    assert list(first.columns) == list(FeatureDefinitions(project).table_columns)
    never = {project.label.column, *project.sensitive, *filter(None, [project.label_timestamp])}
    assert not never & set(first.columns)
    assert first[project.entity.key].dtype == (object if project.entity.type == "string" else "int64")
    for name in project.features.of_type("integer"):
        assert str(first[name].dtype) == "Int64", name


def test_derived_features_on_a_hand_built_example():
    case = case_of(CREDIT)
    raw = pd.DataFrame([{**case.base, **row} for row in [
        {"customer_id": "a", "income": 40_000.0, "loan_amount": 10_000.0, "num_late_payments_12m": 0},
        {"customer_id": "b", "income": np.nan, "num_late_payments_12m": 3},
        {"customer_id": "c", "income": 0.0, "num_late_payments_12m": 1},
    ]])
    out = compute_features(CREDIT, raw).set_index("customer_id")
    assert out.loc["a", "loan_to_income"] == pytest.approx(0.25)
    assert out.loc["a", "log_income"] == pytest.approx(math.log(40_000))
    assert math.isnan(out.loc["b", "loan_to_income"]) and math.isnan(out.loc["b", "log_income"])
    assert math.isnan(out.loc["c", "loan_to_income"]) and math.isnan(out.loc["c", "log_income"])
    assert out["has_late_payments"].tolist() == [0, 1, 1]
    assert (out[FEATURE_TIMESTAMP] == T0).all() and (out[CREATED_TIMESTAMP] == T0).all()


def test_without_a_hook_the_raw_columns_are_the_features_typed_as_declared():
    raw = case_of(CHURN).raw([{"id": "base", "support_calls_90d": None, "plan": None, "tenure_months": 3.0}])
    out = compute_features(CHURN, raw)
    assert out.loc[0, "subscriber_id"] == 10_000_001 and out.loc[0, "tenure_months"] == 3
    assert out["support_calls_90d"].isna().all() and str(out["support_calls_90d"].dtype) == "Int64"
    assert out.loc[0, "plan"] is None and out.loc[0, "monthly_fee"] == 15.99
    with pytest.raises(DataError, match="'tenure_months' must hold whole numbers"):
        compute_features(CHURN, raw.assign(tenure_months=2.5))
    with pytest.raises(DataError, match=r"'subscriber_id' must hold whole-number entity ids.*'S1'"):
        compute_features(CHURN, raw.assign(subscriber_id="S1"))


@by_name
def test_a_provided_created_timestamp_is_kept_and_the_latest_duplicate_wins(project):
    case = case_of(project)
    raw = case.raw([
        {case.value: 70.0, CREATED_TIMESTAMP: T0 + pd.Timedelta(hours=2)},
        {case.value: 60.0, CREATED_TIMESTAMP: T0 + pd.Timedelta(hours=1)},
    ])
    out = compute_features(project, raw)
    assert len(out) == 1 and out.loc[0, case.value] == 70.0
    assert out.loc[0, CREATED_TIMESTAMP] == T0 + pd.Timedelta(hours=2)


def test_missing_raw_columns_are_named():
    churn = generate_churn_data(100, seed=2).drop(columns=["plan", "region"])
    with pytest.raises(DataError, match=r"the raw data lacks column\(s\) \['plan', 'region'\]"):
        compute_features(CHURN, churn)
    credit = generate_credit_data(1_000, seed=2)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['customer_id'\]"):
        compute_features(CREDIT, credit.drop(columns=["customer_id"]))
    # With a feature hook: a declared column the hook does not return, or the hook's own failure, is named.
    with pytest.raises(DataError, match=r"features.py:compute_features of project credit-default returned no "
                                        r"column\(s\) \['home_ownership', 'region'\]"):
        compute_features(CREDIT, credit.drop(columns=["region", "home_ownership"]))
    with pytest.raises(ConfigError, match=r"features.py:compute_features of project credit-default raised "
                                          r"KeyError: 'income' \(at .*features.py:\d+\)"):
        compute_features(CREDIT, credit.drop(columns=["income"]))


@pytest.mark.parametrize("project, carried", [(CREDIT, ["gender"]), (CHURN, ["age_band", "gender"])],
                         ids=lambda v: getattr(v, "name", None))
def test_label_events_are_the_event_times_with_their_labels(project, carried):
    """The label encoded 0/1 (credit's 1, churn's "yes"), the sensitive attributes carried, never a feature;
    a slice that is also a feature (region) is not carried twice."""
    key, event, label = project.entity.key, project.event_timestamp, project.label.column
    raw = raw_data(project, 1_000, seed=2)
    raw.loc[5, label] = np.nan
    events = label_events(project, raw)
    assert list(events.columns) == [key, event, label, *carried]
    for column in carried:  # for fairness, never a feature
        assert events[column].tolist() == raw[column].drop(5).tolist()
    assert len(events) == 999 and events[label].dtype == "int64"
    expected = (raw[label].drop(5) == project.label.positive).astype("int64").reset_index(drop=True)
    pd.testing.assert_series_equal(events[label], expected, check_names=False)
    assert 0.1 < events[label].mean() < 0.35
    pd.testing.assert_series_equal(events[event], raw[event].drop(5).dt.floor("us")
                                   .reset_index(drop=True), check_names=False)


@by_name
def test_definitions_version_is_stable_and_tracks_definition_changes(project, tmp_path):
    definitions = FeatureDefinitions(project)
    version = definitions.version()
    assert version == FeatureDefinitions(project).version() and version.startswith("sha256:")
    assert definitions.version(definitions.feature_view("/any/other/snapshot.parquet")) == version  # data is not definition
    assert definitions.version(definitions.feature_view("/s.parquet", ttl=timedelta(days=30))) != version
    retyped = definitions.feature_view("/s.parquet")
    first = retyped.features[1]
    retyped.features[1] = Field(name=first.name, dtype=String if first.dtype != String else Int64)
    assert definitions.version(retyped, definitions.feature_service(retyped)) != version
    # Another project's definitions, or this one's under another Feast name, are another version.
    assert FeatureDefinitions(CHURN if project is CREDIT else CREDIT).version() != version
    assert FeatureDefinitions(renamed(project, tmp_path, f"{project.name}-copy")).version() != version


@by_name
def test_apply_definitions_returns_the_version_and_refuses_a_table_without_features(project, tmp_path):
    case = case_of(project)
    config = FeatureStoreConfig(repo_dir=tmp_path / "feast")
    fs = open_store(config, project)
    features = compute_features(project, case.raw([{}]))
    assert apply_definitions(fs, write_snapshot(features, config.snapshot_dir)) == FeatureDefinitions(project).version()
    last = feature_names(project)[-1]
    bad = write_snapshot(features.drop(columns=[last]), tmp_path / "bad")
    with pytest.raises(DataError, match=rf"bad/features.parquet is not a feature table: .*'{last}'"):
        apply_definitions(fs, bad)
    float_feature = project.features.of_type("float")[0]
    mistyped = write_snapshot(features.assign(**{float_feature: "x"}), tmp_path / "mistyped")
    with pytest.raises(DataError, match=rf"wrong type: .*'{float_feature}'"):
        apply_definitions(fs, mistyped)


# -- user errors -----------------------------------------------------------------------

@pytest.mark.parametrize("project, service, view", [(CREDIT, "credit_default", "credit_features"),
                                                    (CHURN, "churn", "churn_features")],
                         ids=lambda v: getattr(v, "name", None))
def test_reading_before_anything_is_applied_says_so(project, service, view, tmp_path):
    fs = open_store(FeatureStoreConfig(repo_dir=tmp_path / "feast"), project)
    assert (fs.definitions.service_name, fs.definitions.view_name) == (service, view)
    with pytest.raises(FeatureStoreError, match=rf"{service}.*Apply the feature definitions first"):
        online_features(fs, [case_of(project).id("base")])
    with pytest.raises(FeatureStoreError, match=rf"{view}.*Apply the feature definitions first"):
        materialize(fs, T0.to_pydatetime())


@by_name
def test_a_registered_snapshot_missing_on_this_machine_is_named(project, tmp_path):
    case = case_of(project)
    config = FeatureStoreConfig(repo_dir=tmp_path / "feast")
    fs = open_store(config, project)
    path = write_snapshot(compute_features(project, case.raw([{}])), config.snapshot_dir)
    apply_definitions(fs, path)
    (config.snapshot_dir / "features.parquet").unlink()
    with pytest.raises(DataError, match=rf"{path}, is missing on this machine"):
        historical_features(fs, pd.DataFrame({project.entity.key: [case.id("base")], project.event_timestamp: [T0]}))


@pytest.fixture
def unused_port():
    return free_ports(["unused"])["unused"]


def test_an_unreachable_redis_fails_fast_naming_it(parity, unused_port):
    fs, config, *_ = parity  # the registry applied by the parity store, now with a Redis online store
    fs = open_store(FeatureStoreConfig(repo_dir=config.repo_dir, online_store="redis",
                                       redis_connection_string=f"127.0.0.1:{unused_port}"), fs.project)
    with pytest.raises(FeatureStoreError, match=rf"Redis online store at 127.0.0.1:{unused_port} is unreachable.*MLOPS_FEAST_REDIS"):
        check_online_store(fs)
    with pytest.raises(FeatureStoreError, match="MLOPS_FEAST_REDIS"):
        materialize(fs, T0.to_pydatetime())


# -- configuration -----------------------------------------------------------------------

@pytest.mark.parametrize("env, variable", [
    ({"MLOPS_FEAST_ONLINE_STORE": "memcached"}, "MLOPS_FEAST_ONLINE_STORE"),
    ({"MLOPS_FEAST_ONLINE_STORE": "redis"}, "MLOPS_FEAST_REDIS"),
    ({"MLOPS_FEAST_ONLINE_STORE": "redis", "MLOPS_FEAST_REDIS": "redis://r:6379"}, "MLOPS_FEAST_REDIS"),
    ({"MLOPS_FEAST_REGISTRY": "gs://bucket/registry.pb"}, "MLOPS_FEAST_REGISTRY"),
    ({"MLOPS_FEAST_REGISTRY": "s3://bucket-without-key"}, "MLOPS_FEAST_REGISTRY"),
])
def test_from_env_names_the_bad_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        FeatureStoreConfig.from_env(env)


def test_from_env_defaults_under_mlops_home(tmp_path):
    config = FeatureStoreConfig.from_env({"MLOPS_HOME": str(tmp_path)})
    assert config.repo_dir == tmp_path / "feast" and config.online_store == "sqlite"
    assert config.registry_path == str(tmp_path / "feast" / "registry.db")
    redis = FeatureStoreConfig.from_env({"MLOPS_FEAST_REPO": str(tmp_path / "r"), "MLOPS_FEAST_ONLINE_STORE": "Redis",
                                         "MLOPS_FEAST_REDIS": "redis.feast:6379,ssl=true",
                                         "MLOPS_FEAST_REGISTRY": "s3://mlops/feast/registry.pb"})
    assert (redis.repo_dir, redis.online_store, redis.registry) == (tmp_path / "r", "redis", "s3://mlops/feast/registry.pb")


@by_name
def test_the_feast_project_is_the_projects(project, tmp_path):
    fs = open_store(FeatureStoreConfig(repo_dir=tmp_path / "feast"), project)
    assert fs.feast.project == project.names.feast_project and fs.project is project


# -- snapshots on real S3 ---------------------------------------------------------------

@pytest.fixture(scope="module")
def snapshot_features():
    return {p.name: compute_features(p, raw_data(p, 1_000, seed=21)) for p in EXAMPLES}


def own_copy(project, tmp_path):
    """A copy of ``project`` with a prefix (and Feast project) of its own, so S3 keys never collide."""
    return renamed(project, tmp_path / "projects", f"fs-{project.names.prefix}-{uuid.uuid4().hex[:10]}")


@pytest.mark.platform
@by_name
def test_publish_is_content_addressed_and_idempotent(project, store, snapshot_features, tmp_path):
    features = snapshot_features[project.name]
    copy = own_copy(project, tmp_path)
    prefix = snapshot_prefix(copy)
    assert prefix == f"features/{copy.names.prefix}"
    first = publish_snapshot(copy, features, store)
    digest = first.digest.removeprefix("sha256:")
    assert first.uri == f"s3://{store.bucket}/{prefix}/{digest}.parquet" and first.rows == 1_000 and first.uploaded
    assert store.stat(f"{prefix}/{digest}.parquet").sha256 == digest

    again = publish_snapshot(copy, features.copy(), store)
    assert (again.uri, again.digest, again.uploaded) == (first.uri, first.digest, False)
    other = publish_snapshot(copy, features.head(999), store)
    assert other.uri != first.uri and other.uploaded
    assert len(store.list_keys(prefix + "/")) == 2

    local = fetch_snapshot(first.uri, tmp_path / "cache", store)
    assert local.name == f"{digest}.parquet" and sha256_file(local) == digest
    pd.testing.assert_frame_equal(pd.read_parquet(local), features)
    with pytest.raises(DataError, match="is not a feature table"):
        publish_snapshot(copy, features.drop(columns=[project.entity.key]), store)


@pytest.mark.platform
@by_name
def test_fetch_refuses_a_snapshot_whose_content_does_not_match_its_digest(project, store, snapshot_features,
                                                                          tmp_path):
    features = snapshot_features[project.name]
    copy = own_copy(project, tmp_path)
    snapshot = publish_snapshot(copy, features, store)
    # A stale cached copy is replaced by a verified download.
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / snapshot.uri.rsplit("/", 1)[-1]
    cached.write_bytes(b"truncated")
    assert sha256_file(fetch_snapshot(snapshot.uri, cache, store)) == snapshot.digest.removeprefix("sha256:")
    # Someone overwrites the object with other content: its name no longer matches it.
    impostor = tmp_path / "impostor.parquet"
    features.head(10).to_parquet(impostor, index=False)
    store.put_file(impostor, snapshot.uri.split("/", 3)[3])
    with pytest.raises(StorageError, match="corrupt or was tampered with"):
        fetch_snapshot(snapshot.uri, tmp_path / "fresh", store)
    assert not list((tmp_path / "fresh").glob("*.parquet"))
    with pytest.raises(DataError, match="does not exist"):
        fetch_snapshot(f"s3://{store.bucket}/{snapshot_prefix(copy)}/{'0' * 64}.parquet", tmp_path / "fresh", store)
    with pytest.raises(DataError, match="is not a feature snapshot"):
        fetch_snapshot(f"s3://{store.bucket}/{snapshot_prefix(copy)}/latest.parquet", tmp_path / "fresh", store)


@pytest.mark.platform
def test_an_s3_registry_is_shared_by_two_stores_and_two_projects(platform, store, snapshot_features, tmp_path):
    """The cluster layout: one task applies to an S3 registry, another (own repo dir) reads through it; two
    projects' definitions live in the one registry, each found by its own store."""
    registry = f"s3://{store.bucket}/test-feast/{uuid.uuid4().hex}/registry.pb"
    writer = FeatureStoreConfig(repo_dir=tmp_path / "writer", registry=registry)
    reader = FeatureStoreConfig(repo_dir=tmp_path / "reader", registry=registry)
    shared_cache = tmp_path / "snapshots"  # the same path in both "pods", as the registry records it
    copies = {p.name: own_copy(p, tmp_path) for p in EXAMPLES}
    for name, copy in copies.items():
        snapshot = publish_snapshot(copy, snapshot_features[name], store)
        apply_definitions(open_store(writer, copy), fetch_snapshot(snapshot.uri, shared_cache, store))
    assert store.exists(registry.split("/", 3)[3])
    for name, copy in copies.items():
        events = label_events(copy, raw_data(copy, 1_000, seed=21)).head(50)
        out = historical_features(open_store(reader, copy), events)
        key, value = copy.entity.key, case_of(copy).value
        expected = snapshot_features[name].set_index(key).loc[events[key], value].to_numpy()
        np.testing.assert_array_equal(out[value].to_numpy(), expected)
        assert [v.name for v in open_store(reader, copy).feast.list_feature_views()] == [
            FeatureDefinitions(copy).view_name]
