"""The feature store, for real: Feast with DuckDB offline and SQLite online in tmp dirs, snapshots on real S3."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import Field
from feast.types import Int64

from mlops.data.generator import generate_credit_data
from mlops.errors import ConfigError, DataError, StorageError
from mlops.features.definitions import (CREATED_TIMESTAMP, FEATURE_NAMES, FEATURE_TIMESTAMP, definitions_version,
                                        feature_service, feature_view)
from mlops.features.engineering import FEATURE_TABLE_COLUMNS, compute_features, label_events
from mlops.features.skew import compare_online_offline
from mlops.features.store import (FeatureStoreConfig, FeatureStoreError, apply_definitions, check_online_store,
                                  fetch_snapshot, historical_features, materialize, online_features, open_store,
                                  publish_snapshot)
from mlops.storage import sha256_file
from mlops.local_platform import free_ports

T0 = pd.Timestamp("2025-03-01", tz="UTC")


def raw_applications(rows: list[dict]) -> pd.DataFrame:
    """Raw applications with plausible defaults; each dict overrides some columns of one row."""
    base = {
        "customer_id": "C1", "event_timestamp": T0, "age": 40, "income": 50_000.0, "employment_years": 5.0,
        "credit_utilization": 0.3, "num_open_accounts": 3, "num_late_payments_12m": 0, "loan_amount": 10_000.0,
        "debt_to_income": 0.25, "home_ownership": "RENT", "loan_purpose": "car", "region": "north",
        "employment_type": "salaried", "gender": "F", "default": 0, "label_timestamp": T0 + pd.Timedelta(days=60),
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def write_snapshot(features: pd.DataFrame, directory) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "features.parquet"
    features.to_parquet(path, index=False)
    return str(path)


# -- point-in-time correctness ---------------------------------------------------

@pytest.fixture(scope="module")
def pit_store(tmp_path_factory):
    """A store whose snapshot holds the three point-in-time cases, TTL 30 days."""
    root = tmp_path_factory.mktemp("pit")
    history = compute_features(raw_applications([
        {"customer_id": "leak", "income": 50_000.0},
        {"customer_id": "leak", "income": 90_000.0, "event_timestamp": T0 + pd.Timedelta(days=10)},
        {"customer_id": "stale", "income": 40_000.0},
    ]))
    # Two rows at the same feature time: the original and a later correction,
    # in both file orders, so the order rows happen to be read in cannot explain the winner.
    def tie(customer, income, created_hours):
        return compute_features(raw_applications([{"customer_id": customer, "income": income,
                                                   "created_timestamp": T0 + pd.Timedelta(hours=created_hours)}]))
    snapshot = pd.concat([history, tie("tie1", 70_000.0, 2), tie("tie1", 60_000.0, 1),
                          tie("tie2", 60_000.0, 1), tie("tie2", 70_000.0, 2)], ignore_index=True)
    config = FeatureStoreConfig(repo_dir=root / "feast")
    fs = open_store(config)
    apply_definitions(fs, write_snapshot(snapshot, config.snapshot_dir), ttl=timedelta(days=30))
    return fs


def as_of(fs, customer: str, days: float) -> pd.Series:
    events = pd.DataFrame({"customer_id": [customer], "event_timestamp": [T0 + pd.Timedelta(days=days)]})
    return historical_features(fs, events).iloc[0]


def test_a_value_changed_after_the_as_of_time_does_not_leak(pit_store):
    assert as_of(pit_store, "leak", 5)["income"] == 50_000.0
    assert as_of(pit_store, "leak", 11)["income"] == 90_000.0
    assert as_of(pit_store, "leak", 5)["loan_to_income"] == pytest.approx(10_000 / 50_000)


def test_b_a_row_older_than_the_ttl_gives_nulls(pit_store):
    fresh, expired = as_of(pit_store, "stale", 29), as_of(pit_store, "stale", 31)
    assert fresh["income"] == 40_000.0 and fresh["region"] == "north"
    assert all(expired[name] is None or math.isnan(expired[name]) for name in FEATURE_NAMES)


def test_c_equal_feature_times_resolve_to_the_latest_created(pit_store):
    assert as_of(pit_store, "tie1", 1)["income"] == 70_000.0
    assert as_of(pit_store, "tie2", 1)["income"] == 70_000.0


def test_historical_features_keep_the_callers_rows_order_label_and_carried_columns(pit_store):
    events = pd.DataFrame({
        "customer_id": ["tie1", "leak", "stale", "leak", "unknown"],
        "event_timestamp": [T0 + pd.Timedelta(days=d) for d in (1, 11, 31, 5, 1)],
        "default": [1, 0, 1, 0, 1],
        "other": list("abcde"),
    }, index=[10, 11, 12, 13, 14])
    out = historical_features(pit_store, events)
    assert list(out.columns) == ["customer_id", "event_timestamp", *FEATURE_NAMES, "default", "other"]
    assert out["customer_id"].tolist() == events["customer_id"].tolist()
    assert out["other"].tolist() == list("abcde")  # carried along untouched, in the caller's order
    assert out["default"].tolist() == [1, 0, 1, 0, 1]
    np.testing.assert_array_equal(out["income"].to_numpy(), [70_000.0, 90_000.0, np.nan, 50_000.0, np.nan])
    assert all(out[name].dtype == "float64" for name in ("age", "income", "has_late_payments"))


# -- online / offline parity ---------------------------------------------------------

@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    raw = generate_credit_data(2_000, seed=11)
    features = compute_features(raw)
    config = FeatureStoreConfig(repo_dir=tmp_path_factory.mktemp("parity") / "feast")
    fs = open_store(config)
    apply_definitions(fs, write_snapshot(features, config.snapshot_dir))
    end = features[FEATURE_TIMESTAMP].max().to_pydatetime()
    start, _ = materialize(fs, end)
    return fs, config, features, start, end


def test_online_features_equal_offline_features_of_materialized_customers(parity):
    fs, _, features, start, end = parity
    fresh = features[features[FEATURE_TIMESTAMP] > start]["customer_id"].iloc[::97].tolist()
    expired = features[features[FEATURE_TIMESTAMP] < start]["customer_id"].iloc[:3].tolist()
    served = online_features(fs, fresh + expired)
    served.insert(1, "event_timestamp", pd.Timestamp(end))  # the request time serving would log
    offline = historical_features(fs, served[["customer_id", "event_timestamp"]])

    report = compare_online_offline(served, offline)
    assert report.passed(), report.summary()
    assert report.matched_rows == len(fresh) + len(expired) and len(fresh) >= 10
    # Not a vacuous match: fresh customers carry their engineered values, expired ones nothing.
    expected = features.set_index("customer_id").loc[fresh]
    np.testing.assert_allclose(served["loan_amount"].to_numpy()[:len(fresh)], expected["loan_amount"].to_numpy())
    assert served["region"].tolist()[:len(fresh)] == expected["region"].tolist()
    assert served.iloc[len(fresh):][list(FEATURE_NAMES)].isna().all().all()


def test_online_features_of_unknown_customers_are_null_rows_in_order(parity):
    fs, _, features, *_ = parity
    known = features["customer_id"].iloc[-1]
    out = online_features(fs, ["nobody", known])
    assert out["customer_id"].tolist() == ["nobody", known]
    assert out.iloc[0][list(FEATURE_NAMES)].isna().all() and out.iloc[1]["age"] > 0


# -- feature engineering -----------------------------------------------------------

def test_compute_features_is_deterministic_and_order_independent():
    raw = generate_credit_data(1_000, seed=2)
    first = compute_features(raw)
    pd.testing.assert_frame_equal(first, compute_features(raw))
    pd.testing.assert_frame_equal(first, compute_features(raw.sample(frac=1.0, random_state=3)))
    assert list(first.columns) == list(FEATURE_TABLE_COLUMNS)
    assert not {"gender", "default", "label_timestamp"} & set(first.columns)


def test_derived_features_on_a_hand_built_example():
    raw = raw_applications([
        {"customer_id": "a", "income": 40_000.0, "loan_amount": 10_000.0, "num_late_payments_12m": 0},
        {"customer_id": "b", "income": np.nan, "num_late_payments_12m": 3},
        {"customer_id": "c", "income": 0.0, "num_late_payments_12m": 1},
    ])
    out = compute_features(raw).set_index("customer_id")
    assert out.loc["a", "loan_to_income"] == pytest.approx(0.25)
    assert out.loc["a", "log_income"] == pytest.approx(math.log(40_000))
    assert math.isnan(out.loc["b", "loan_to_income"]) and math.isnan(out.loc["b", "log_income"])
    assert math.isnan(out.loc["c", "loan_to_income"]) and math.isnan(out.loc["c", "log_income"])
    assert out["has_late_payments"].tolist() == [0, 1, 1]
    assert (out[FEATURE_TIMESTAMP] == T0).all() and (out[CREATED_TIMESTAMP] == T0).all()


def test_a_provided_created_timestamp_is_kept_and_the_latest_duplicate_wins():
    raw = raw_applications([
        {"income": 70_000.0, "created_timestamp": T0 + pd.Timedelta(hours=2)},
        {"income": 60_000.0, "created_timestamp": T0 + pd.Timedelta(hours=1)},
    ])
    out = compute_features(raw)
    assert len(out) == 1 and out.loc[0, "income"] == 70_000.0
    assert out.loc[0, CREATED_TIMESTAMP] == T0 + pd.Timedelta(hours=2)


def test_missing_raw_columns_are_named():
    raw = generate_credit_data(1_000, seed=2).drop(columns=["income", "region"])
    with pytest.raises(DataError, match=r"lack column\(s\) \['income', 'region'\]"):
        compute_features(raw)


def test_label_events_are_the_application_times_with_their_labels():
    raw = generate_credit_data(1_000, seed=2)
    raw.loc[5, "default"] = np.nan
    events = label_events(raw)
    assert list(events.columns) == ["customer_id", "event_timestamp", "default", "gender"]
    assert events["gender"].tolist() == raw["gender"].drop(5).tolist()  # for fairness, never a feature
    assert len(events) == 999 and events["default"].dtype == "int64"
    pd.testing.assert_series_equal(events["event_timestamp"], raw["event_timestamp"].drop(5).dt.floor("us")
                                   .reset_index(drop=True), check_names=False)


def test_definitions_version_is_stable_and_tracks_definition_changes():
    version = definitions_version()
    assert version == definitions_version() and version.startswith("sha256:")
    assert definitions_version(feature_view("/any/other/snapshot.parquet")) == version  # data is not definition
    assert definitions_version(feature_view("/s.parquet", ttl=timedelta(days=30))) != version
    retyped = feature_view("/s.parquet")
    retyped.features[1] = Field(name="income", dtype=Int64)
    assert definitions_version(retyped, feature_service(retyped)) != version


def test_apply_definitions_returns_the_version_and_refuses_a_table_without_features(tmp_path):
    config = FeatureStoreConfig(repo_dir=tmp_path / "feast")
    fs = open_store(config)
    features = compute_features(raw_applications([{}]))
    assert apply_definitions(fs, write_snapshot(features, config.snapshot_dir)) == definitions_version()
    bad = write_snapshot(features.drop(columns=["log_income"]), tmp_path / "bad")
    with pytest.raises(DataError, match=r"bad/features.parquet is not a feature table: .*'log_income'"):
        apply_definitions(fs, bad)


# -- user errors -----------------------------------------------------------------------

def test_reading_before_anything_is_applied_says_so(tmp_path):
    fs = open_store(FeatureStoreConfig(repo_dir=tmp_path / "feast"))
    with pytest.raises(FeatureStoreError, match=r"credit_default_v1.*Apply the feature definitions first"):
        online_features(fs, ["C1"])
    with pytest.raises(FeatureStoreError, match=r"credit_features.*Apply the feature definitions first"):
        materialize(fs, T0.to_pydatetime())


def test_a_registered_snapshot_missing_on_this_machine_is_named(tmp_path):
    config = FeatureStoreConfig(repo_dir=tmp_path / "feast")
    fs = open_store(config)
    path = write_snapshot(compute_features(raw_applications([{}])), config.snapshot_dir)
    apply_definitions(fs, path)
    (config.snapshot_dir / "features.parquet").unlink()
    with pytest.raises(DataError, match=rf"{path}, is missing on this machine"):
        historical_features(fs, pd.DataFrame({"customer_id": ["C1"], "event_timestamp": [T0]}))


@pytest.fixture
def unused_port():
    return free_ports(["unused"])["unused"]


def test_an_unreachable_redis_fails_fast_naming_it(parity, unused_port):
    _, config, *_ = parity  # the registry applied by the parity store, now with a Redis online store
    fs = open_store(FeatureStoreConfig(repo_dir=config.repo_dir, online_store="redis",
                                       redis_connection_string=f"127.0.0.1:{unused_port}"))
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


# -- snapshots on real S3 ---------------------------------------------------------------

@pytest.fixture(scope="module")
def credit_features():
    return compute_features(generate_credit_data(1_000, seed=21))


@pytest.mark.platform
def test_publish_is_content_addressed_and_idempotent(store, credit_features, tmp_path):
    prefix = f"test-features/{uuid.uuid4().hex}"
    first = publish_snapshot(credit_features, store, prefix=prefix)
    digest = first.digest.removeprefix("sha256:")
    assert first.uri == f"s3://{store.bucket}/{prefix}/{digest}.parquet" and first.rows == 1_000 and first.uploaded
    assert store.stat(f"{prefix}/{digest}.parquet").sha256 == digest

    again = publish_snapshot(credit_features.copy(), store, prefix=prefix)
    assert (again.uri, again.digest, again.uploaded) == (first.uri, first.digest, False)
    other = publish_snapshot(credit_features.head(999), store, prefix=prefix)
    assert other.uri != first.uri and other.uploaded
    assert len(store.list_keys(prefix)) == 2

    local = fetch_snapshot(first.uri, tmp_path / "cache", store)
    assert local.name == f"{digest}.parquet" and sha256_file(local) == digest
    pd.testing.assert_frame_equal(pd.read_parquet(local), credit_features)


@pytest.mark.platform
def test_fetch_refuses_a_snapshot_whose_content_does_not_match_its_digest(store, credit_features, tmp_path):
    prefix = f"test-features/{uuid.uuid4().hex}"
    snapshot = publish_snapshot(credit_features, store, prefix=prefix)
    # A stale cached copy is replaced by a verified download.
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / snapshot.uri.rsplit("/", 1)[-1]
    cached.write_bytes(b"truncated")
    assert sha256_file(fetch_snapshot(snapshot.uri, cache, store)) == snapshot.digest.removeprefix("sha256:")
    # Someone overwrites the object with other content: its name no longer matches it.
    impostor = tmp_path / "impostor.parquet"
    credit_features.head(10).to_parquet(impostor, index=False)
    store.put_file(impostor, snapshot.uri.split("/", 3)[3])
    with pytest.raises(StorageError, match="corrupt or was tampered with"):
        fetch_snapshot(snapshot.uri, tmp_path / "fresh", store)
    assert not list((tmp_path / "fresh").glob("*.parquet"))
    with pytest.raises(DataError, match="does not exist"):
        fetch_snapshot(f"s3://{store.bucket}/{prefix}/{'0' * 64}.parquet", tmp_path / "fresh", store)


@pytest.mark.platform
def test_an_s3_registry_is_shared_by_two_stores(platform, store, credit_features, tmp_path):
    """The cluster layout: one task applies to an S3 registry, another (own repo dir) reads through it."""
    snapshot = publish_snapshot(credit_features, store, prefix=f"test-features/{uuid.uuid4().hex}")
    registry = f"s3://{store.bucket}/test-feast/{uuid.uuid4().hex}/registry.pb"
    writer = FeatureStoreConfig(repo_dir=tmp_path / "writer", registry=registry)
    reader = FeatureStoreConfig(repo_dir=tmp_path / "reader", registry=registry)
    shared_cache = tmp_path / "snapshots"  # the same path in both "pods", as the registry records it
    apply_definitions(open_store(writer), fetch_snapshot(snapshot.uri, shared_cache, store))
    events = label_events(generate_credit_data(1_000, seed=21)).head(50)
    out = historical_features(open_store(reader), events)
    assert store.exists(registry.split("/", 3)[3])
    expected = credit_features.set_index("customer_id").loc[events["customer_id"], "income"].to_numpy()
    np.testing.assert_array_equal(out["income"].to_numpy(), expected)
