"""Two teams' projects on one platform never touch each other.

Renamed copies of the credit-default and churn examples share one S3 bucket,
one MLflow, one Feast registry and online store: each is trained,
registered, served (two local serving topologies on free ports at once, with
their request logs on), monitored and batch-scored. Then every place one of
them writes is checked for the other: model registries and aliases, audit
trails, Feast views and online rows (re-applying one project's definitions
leaves the other's view and rows as they were), inference logs, monitoring
reports, feature snapshots and predictions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from mlops.platform.storage import ObjectStore
from mlops.registry import audit
from mlops.registry import promotion as registry
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, renamed

pytestmark = pytest.mark.platform

REQUESTS = 120  # per project, both at once
MIN_ROWS = 100  # the copies' monitoring policies judge drift over this few rows (the examples ask for 500)


@dataclass
class Side:
    """One project and everything the fixture made it do."""

    project: object
    versions: list[str]
    snapshot_uri: str  # its published feature snapshot (the batch input)
    snapshot_rows: int
    ids: list  # entities its online store knows
    url: str = ""  # its transformer, while it served
    replay: object = None  # ReplayStats of its callers
    monitor: object = None  # MonitorResult
    batch: object = None  # BatchResult
    batch_output: str = ""
    audit_keys: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.project.names.model


def _small_window_policy(example) -> str:
    """The example's monitoring policy with a smaller minimum window (comments dropped), as project text."""
    policy = yaml.safe_load(Path(example.monitoring).read_text())
    policy["window"]["min_rows"] = MIN_ROWS
    return yaml.safe_dump(policy, sort_keys=False)


def _feature_store(project):
    from mlops.features.store import FeatureStoreConfig, open_store

    return open_store(FeatureStoreConfig.from_env(), project)


@pytest.fixture(scope="module")
def both(platform, tmp_path_factory, train_versions):
    """credit and churn copies, each trained, registered, promoted, served, called, monitored and batch-scored
    on the session's platform; both serving topologies run at the same time."""
    from mlops.batch.run import default_output, run_batch_prediction
    from mlops.monitoring.run import run_monitor
    from mlops.platform.local import free_ports
    from mlops.serving.local import LocalServing
    from mlops.serving.request_log import read_log
    from mlops.serving.traffic_replay import known_ids, replay

    store = ObjectStore(platform.s3_settings())
    work = tmp_path_factory.mktemp("side-by-side")
    plans = (
        ("credit", CREDIT, "sbs-credit", generate_credit_data(2_000, seed=81), ({"max_iter": 5}, {"max_iter": 15})),
        ("churn", CHURN, "sbs-churn", generate_churn_data(1_500, seed=81), ({"C": 0.05}, {"C": 1.0})),
    )
    sides: dict[str, Side] = {}
    for key, example, name, raw, variants in plans:
        project = renamed(example, work / "projects", name, files={"monitoring.yaml": _small_window_policy(example)})
        versions, features = train_versions(project, raw, work / key, variants)
        registry.promote(store, name, versions[0], registry.PRODUCTION, expected_current=None, actor="test",
                         reason="side by side")
        sides[key] = Side(project, versions, features.snapshot_uri, features.rows, known_ids(project))

    servings = {key: LocalServing(side.project) for key, side in sides.items()}
    try:
        for key, local in servings.items():
            local.down()
            urls = local.up(sides[key].versions[0], port=free_ports(["t"])["t"], request_log=True,
                            progress=lambda *_: None)
            sides[key].url = urls["transformer"]
        # both serve at once: callers of each, concurrently
        threads = [threading.Thread(target=lambda s=side: setattr(s, "replay", replay(
            s.url, s.project, s.ids, rate=60.0, requests=REQUESTS)), daemon=True) for side in sides.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # each transformer logs its rows within a flush interval
        deadline = time.monotonic() + 60
        while any(len(read_log(store, s.model)) < REQUESTS for s in sides.values()):
            assert time.monotonic() < deadline, {k: len(read_log(store, s.model)) for k, s in sides.items()}
            time.sleep(0.5)
        # a caller that names the other project's entities is answered by neither model, and logs nothing
        for key, other in (("credit", "churn"), ("churn", "credit")):
            side, foreign = sides[key], sides[other]
            path = f"/v1/models/{side.model}:predict"
            body = {"instances": [{side.project.entity.key: foreign.ids[0]}]}
            wrong = httpx.post(side.url + path, json=body, timeout=30)
            assert wrong.status_code in (400, 422), (key, wrong.status_code, wrong.text)
        wrong_model = httpx.post(f"{sides['credit'].url}/v1/models/{sides['churn'].model}:predict",
                                 json={"instances": [{"customer_id": sides["credit"].ids[0]}]}, timeout=30)
        assert wrong_model.status_code == 404, wrong_model.text
    finally:
        for local in servings.values():
            local.down()
    later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).isoformat()
    for side in sides.values():
        side.monitor = run_monitor(side.project, now=later, launch=False, progress=lambda *_: None).result
        side.batch_output = default_output(side.project, "", store.bucket)
        side.batch = run_batch_prediction(side.project, side.snapshot_uri, side.batch_output, "production", shards=1,
                                          workers=1, store=store)
        side.audit_keys = store.list_keys(f"{audit.PREFIX}/{side.model}/")
    return sides, store


def test_each_project_served_only_its_own_callers_at_the_same_time(both):
    sides, _ = both
    assert sides["credit"].url != sides["churn"].url
    for side in sides.values():
        stats = side.replay
        assert stats.sent == REQUESTS and set(stats.statuses) == {200}, stats.summary()
        assert set(stats.versions) == {side.versions[0]}


def test_distinct_registries_aliases_and_audit_trails(both):
    from mlflow import MlflowClient

    sides, store = both
    client = MlflowClient()
    for key, side in sides.items():
        other = sides["churn" if key == "credit" else "credit"]
        versions = client.search_model_versions(f"name = '{side.model}'")
        assert sorted(v.version for v in versions) == sorted(side.versions)
        # every version was trained in the project's own experiment, tagged with its own project
        experiment = client.get_experiment_by_name(side.project.names.experiment)
        for v in versions:
            run = client.get_run(v.run_id)
            assert run.info.experiment_id == experiment.experiment_id
            assert run.data.tags["mlops.project"] == side.project.name
            assert run.data.tags["mlops.project_digest"] == side.project.digest != other.project.digest
        assert dict(client.get_registered_model(side.model).aliases) == {registry.PRODUCTION: side.versions[0]}
        trail = audit.trail(store, side.model)
        assert trail and {e.model for e in trail} == {side.model}
        # its promotion, then its own monitoring run's decision (a dry run: recorded, nothing launched)
        decided = [] if side.monitor.decision in ("none", "ignore") else [f"monitoring_{side.monitor.decision}"]
        assert [e.action for e in trail] == ["promote", *decided], side.monitor.alerts
        assert side.audit_keys and not set(side.audit_keys) & set(other.audit_keys)
    # moving one project's alias leaves the other's registry and trail as they were
    churn_before = (dict(client.get_registered_model(sides["churn"].model).aliases),
                    store.list_keys(f"{audit.PREFIX}/{sides['churn'].model}/"))
    registry.promote(store, sides["credit"].model, sides["credit"].versions[1], registry.STAGING,
                     expected_current=registry.ANY, actor="test", reason="side by side")
    assert registry.alias_version(sides["credit"].model, registry.STAGING) == sides["credit"].versions[1]
    assert registry.alias_version(sides["churn"].model, registry.STAGING) is None
    assert (dict(client.get_registered_model(sides["churn"].model).aliases),
            store.list_keys(f"{audit.PREFIX}/{sides['churn'].model}/")) == churn_before


def _known(fs, ids) -> list[bool]:
    from mlops.features.store import online_features

    rows = online_features(fs, ids)
    return rows[list(fs.definitions.feature_names)].notna().any(axis=1).tolist()


def test_distinct_feast_views_and_online_rows(both):
    from mlops.errors import DataError
    from mlops.features.store import applied_snapshot, apply_definitions, materialize, online_features

    sides, _ = both
    credit, churn = sides["credit"], sides["churn"]
    fs = {key: _feature_store(side.project) for key, side in sides.items()}
    # one registry, one online store, two Feast projects
    assert fs["credit"].feast.config.registry.path == fs["churn"].feast.config.registry.path
    assert fs["credit"].feast.project != fs["churn"].feast.project
    views = {key: [v.name for v in f.feast.list_feature_views()] for key, f in fs.items()}
    assert views == {"credit": [fs["credit"].definitions.view_name], "churn": [fs["churn"].definitions.view_name]}
    assert fs["credit"].definitions.view_name != fs["churn"].definitions.view_name
    services = {key: [s.name for s in f.feast.list_feature_services()] for key, f in fs.items()}
    assert services == {key: [f.definitions.service_name] for key, f in fs.items()}
    # each online store knows its own entities only
    assert all(_known(fs["credit"], credit.ids[:20])) and all(_known(fs["churn"], churn.ids[:20]))
    assert not any(_known(fs["credit"], [str(i) for i in churn.ids[:20]]))  # churn's ids, as credit's keys
    with pytest.raises(DataError, match="is not an integer id"):
        online_features(fs["churn"], credit.ids[:5])
    # re-applying credit's view with another TTL (and re-materializing it) changes credit's view only: churn's
    # view and online rows stay exactly as they were
    view_before = fs["churn"].feast.get_feature_view(fs["churn"].definitions.view_name).to_proto()
    rows_before = online_features(fs["churn"], churn.ids[:50])
    snapshot, ttl = applied_snapshot(fs["credit"]), fs["credit"].definitions.ttl
    apply_definitions(fs["credit"], snapshot, ttl=ttl / 2)
    materialize(fs["credit"], end=datetime.now(timezone.utc))
    reread = {key: _feature_store(side.project) for key, side in sides.items()}  # nothing cached: the registry
    assert reread["credit"].feast.get_feature_view(reread["credit"].definitions.view_name).ttl == ttl / 2
    assert reread["churn"].feast.get_feature_view(reread["churn"].definitions.view_name).to_proto() == view_before
    pd.testing.assert_frame_equal(online_features(reread["churn"], churn.ids[:50]), rows_before)
    assert [v.name for v in reread["churn"].feast.list_feature_views()] == views["churn"]
    apply_definitions(fs["credit"], snapshot, ttl=ttl)  # back as it was
    assert all(_known(_feature_store(credit.project), credit.ids[:20]))


def test_distinct_inference_logs(both):
    from mlops.serving.request_log import log_prefix, read_log

    sides, store = both
    for key, side in sides.items():
        other = sides["churn" if key == "credit" else "credit"]
        log = read_log(store, side.model)
        assert len(log) == REQUESTS and set(log["model_name"]) == {side.model}
        assert set(log["model_version"]) == {side.versions[0]}
        entity = side.project.entity.key
        assert entity in log.columns and other.project.entity.key not in log.columns
        assert set(side.project.features.names) <= set(log.columns)
        assert not (set(other.project.features.names) - set(side.project.features.names)) & set(log.columns)
        assert set(log[entity]) <= set(side.ids)  # only its own callers' entities, not the cross requests
        keys = store.list_keys(log_prefix(side.model) + "/")
        assert keys and not any(k.startswith(log_prefix(other.model) + "/") for k in keys)


def test_distinct_monitoring_reports_and_batch_outputs(both):
    from mlops.batch import read_predictions
    from mlops.platform.storage import parse_s3_uri
    from mlops.serving.predictor import decision_threshold

    sides, store = both
    prefixes = {}
    for key, side in sides.items():
        other = sides["churn" if key == "credit" else "credit"]
        result = side.monitor
        assert result.model == side.model and result.rows == REQUESTS and result.drift is not None
        assert {c.column for c in result.drift.features} == set(side.project.features.names)
        report = result.report_uri.removeprefix(f"s3://{store.bucket}/")
        assert report.startswith(f"reports/monitoring/{side.model}/")
        prefixes[key] = report
        # validation reports are kept per the project's contract (its dataset name)
        dataset = yaml.safe_load(Path(side.project.contract("features")).read_text())["dataset"]
        assert store.list_keys(f"reports/validation/{dataset}/")
        # features and predictions under the project's own prefixes
        bucket, snapshot_key = parse_s3_uri(side.snapshot_uri)
        assert snapshot_key.startswith(f"features/{side.project.names.prefix}/")
        assert side.batch_output.endswith(f"/predictions/{side.model}")
        assert side.batch_output != other.batch_output
        got = read_predictions(side.batch_output, store)
        assert set(got["model_name"]) == {side.model} and len(got) == side.batch.rows == side.snapshot_rows
        assert side.batch.manifest["keep"] == [side.project.entity.key]
        assert side.batch.manifest["threshold"] == decision_threshold(side.project)  # its own gate's (0.3, 0.2)
        kept = got[side.project.entity.key]
        assert set(side.ids) <= set(kept) and not {str(i) for i in kept} & {str(i) for i in other.ids}
    assert not prefixes["credit"].startswith(f"reports/monitoring/{sides['churn'].model}/")
    assert not prefixes["churn"].startswith(f"reports/monitoring/{sides['credit'].model}/")
    for key, side in sides.items():
        other = sides["churn" if key == "credit" else "credit"]
        mine = store.list_keys(f"reports/monitoring/{side.model}/")
        assert mine and all(k.startswith(f"reports/monitoring/{side.model}/") for k in mine)
        assert not set(mine) & set(store.list_keys(f"reports/monitoring/{other.model}/"))
