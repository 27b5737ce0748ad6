"""Rollout: the declared policy, the analysis, and whole rollouts against real local serving processes.

A good candidate is promoted (registry and traffic), an erroring one and a
disagreeing one are rolled back automatically (registry and traffic both
restored), and callers never see a shadow's answers. Each whole rollout runs
on a copy of the credit-default project and on one of churn (integer ids,
its own threshold and stakes), under replayed traffic for the project's own
entities.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

from mlops.errors import ConfigError, RolloutError
from mlops.rollout import analysis
from mlops.rollout.policy import load_policy, parse_policy
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, renamed

# Small windows so a rollout takes seconds; latency bounds loose because CI machines are noisy.
FAST_POLICY = {
    "shadow": {"min_requests": 40, "timeout_s": 120,
               "success": [{"metric": "error_rate", "max": 0.05}, {"metric": "agreement", "min": 0.8},
                           {"metric": "p99_latency_ratio", "max": 20}]},
    "canary": {"steps": [20, 50], "min_requests": 20, "timeout_s": 120,
               "success": [{"metric": "error_rate", "max": 0.01}, {"metric": "p99_latency_ms", "max": 5000},
                           {"metric": "positive_rate_delta", "max": 0.25}]},
    "poll_s": 0.25,
}


# -- the policy ------------------------------------------------------------------------
@pytest.mark.parametrize("project, steps", [(CREDIT, (5, 25, 50)), (CHURN, (10, 50))], ids=["credit", "churn"])
def test_each_projects_rollout_policies_load(project, steps):
    policy = load_policy(project.rollout)
    assert policy.canary_steps == steps and policy.shadow.min_requests == 200
    assert {c.metric for c in policy.shadow.success} >= {"error_rate", "agreement"}
    assert policy.source == str(project.rollout)
    retrained = load_policy(project.root / "rollout-retrained.yaml")  # what monitoring's retraining rolls out
    assert retrained.shadow.success != policy.shadow.success  # a model retrained for drift may decide otherwise


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(surprise=1), "unknown key"),
    (lambda p: p["canary"].update(steps=[25, 5]), "must grow"),
    (lambda p: p["canary"].update(steps=[5, 100]), "in (0, 100)"),
    (lambda p: p["canary"].update(steps=["5"]), "integer percents"),
    (lambda p: p["canary"].update(min_requests=0), "positive integer"),
    (lambda p: p["canary"]["success"].append({"metric": "agreement", "min": 0.9}), "cannot be measured in the canary"),
    (lambda p: p["shadow"]["success"].append({"metric": "accuracy", "min": 0.9}), "unknown metric 'accuracy'"),
    (lambda p: p["shadow"]["success"].append({"metric": "error_rate"}), "give a min, a max or both"),
    (lambda p: p["shadow"]["success"].append({"metric": "error_rate", "max": "low"}), "must be a number"),
    (lambda p: p.pop("canary"), "missing ['canary']"),
])
def test_a_broken_policy_is_refused_with_its_place(change, message):
    raw = yaml.safe_load(yaml.safe_dump(FAST_POLICY))
    change(raw)
    with pytest.raises(ConfigError, match=None) as err:
        parse_policy(raw, "my-policy.yaml")
    assert message in str(err.value) and "my-policy.yaml" in str(err.value)


# -- the analysis ----------------------------------------------------------------------
def _histogram(values_s: np.ndarray, buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, float("inf"))):
    return analysis.Traffic(requests=len(values_s),
                            latency_buckets={b: float((values_s <= b).sum()) for b in buckets})


def test_latency_quantile_is_within_its_bucket_of_the_exact_value():
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=np.log(0.004), sigma=0.5, size=5_000)
    exact = np.percentile(values, 99) * 1000
    estimate = _histogram(values).latency_quantile_ms(0.99)
    buckets_ms = [1, 2, 5, 10, 20, 50, 100]
    lower = max(b for b in [0, *buckets_ms] if b < exact)
    upper = min(b for b in buckets_ms if b >= exact)
    assert lower <= estimate <= upper


def test_one_slow_request_among_few_does_not_make_a_tail_but_a_slow_tail_does():
    def delta(candidate_ms: list[float], stable_ms: list[float]):
        out = {}
        for version, values in (("2", candidate_ms), ("1", stable_ms)):
            labels = {"role": "primary", "model_version": version}
            out[("mlops_upstream_requests_total", frozenset({**labels, "outcome": "ok"}.items()))] = len(values)
            for bound in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, float("inf")):
                key = ("mlops_upstream_latency_seconds_bucket", frozenset({**labels, "le": str(bound)}.items()))
                out[key] = float(sum(v / 1000 <= bound for v in values))
        return out

    stable = [8.0] * 1_000 + [15.0] * 10
    hiccup, _ = analysis.measure(delta([8.0] * 59 + [150.0], stable), "canary", stable="1", candidate="2")
    assert hiccup["tail_quantile"] == pytest.approx(1 - 2 / 60) and hiccup["p99_latency_ratio"] < 2
    slow, _ = analysis.measure(delta([8.0] * 54 + [150.0] * 6, stable), "canary", stable="1", candidate="2")
    assert slow["p99_latency_ratio"] > 5
    many, _ = analysis.measure(delta([8.0] * 400, stable), "canary", stable="1", candidate="2")
    assert many["tail_quantile"] == 0.99


def test_a_positive_rate_gap_counts_only_beyond_its_sampling_noise():
    # 60 canary rows at 0.45 against 1,000 stable rows at 0.27: a 0.18 gap, half of it noise
    assert analysis.significant_gap(0.45, 60, 0.27, 1_000) == pytest.approx(
        0.18 - 2 * np.sqrt(0.45 * 0.55 / 60 + 0.27 * 0.73 / 1_000))
    assert analysis.significant_gap(0.45, 60, 0.27, 1_000) < 0.1
    assert analysis.significant_gap(0.45, 20_000, 0.27, 20_000) > 0.16  # well measured: nearly all of it
    assert analysis.significant_gap(0.30, 60, 0.31, 1_000) == 0.0
    assert analysis.significant_gap(None, 60, 0.3, 10) is None


def test_window_counts_only_new_traffic_and_survives_a_counter_reset():
    key = ("mlops_upstream_requests_total", frozenset({"role": "primary", "model_version": "2",
                                                       "outcome": "ok"}.items()))
    assert analysis.window({key: 100.0}, {key: 130.0})[key] == 30.0
    assert analysis.window({key: 100.0}, {key: 7.0})[key] == 7.0  # a restarted replica counts from zero


def test_unattributed_errors_count_against_the_candidate():
    def sample(version, outcome, value):
        return (("mlops_upstream_requests_total",
                 frozenset({"role": "primary", "model_version": version, "outcome": outcome}.items())), value)

    delta = dict([sample("1", "ok", 90), sample("2", "ok", 9), sample("unknown", "error", 1)])
    metrics, requests = analysis.measure(delta, "canary", stable="1", candidate="2")
    assert requests == 10 and metrics["error_rate"] == pytest.approx(0.1)


# -- whole rollouts against real serving processes ---------------------------------------------
@dataclass
class Rollout:
    """A project's model with three versions: v_a, v_b (another variant, agreeing with v_a), and v_bad, trained
    on flipped labels (fine to serve, wrong to ship: it disagrees with production)."""

    project: object
    versions: list[str]

    @property
    def model(self) -> str:
        return self.project.names.model


# Each project on a copy of its own (its own model, Feast project and logs), with its own params variants.
PROJECTS = {
    "credit": (CREDIT, lambda: generate_credit_data(4_000, seed=21), ({"max_iter": 10}, {"max_iter": 25})),
    "churn": (CHURN, lambda: generate_churn_data(2_000, seed=21), ({"C": 0.05}, {"C": 1.0})),
}


@pytest.fixture(scope="module", params=sorted(PROJECTS))
def versions(request, platform, tmp_path_factory) -> Rollout:
    """Three versions of the project's model on features from the feature store: v_a, a v_b agreeing with it,
    and v_bad, trained on flipped labels."""
    from mlops import stages
    from mlops.platform.datasets import DatasetInfo
    from mlops.platform.storage import ObjectStore
    from tests.feature_rows import training_rows

    example, data, (first, second) = PROJECTS[request.param]
    work = tmp_path_factory.mktemp(f"rollout-{request.param}")
    project = renamed(example, work, f"rollout-{request.param}")
    store = ObjectStore(platform.s3_settings())
    train, _, rows, flipped = training_rows(store, work, project, data())
    out = []
    for path, params in ((rows, first), (rows, second), (flipped, second)):
        info = DatasetInfo(str(path), train.rows, train.columns, train.digest)
        run = stages.train_and_log(project, str(path), info, {**project.model.params, **params}).run
        out.append(stages.register(run.model_uri, project.names.model, run.run_id, train.digest))
    return Rollout(project, out)


@pytest.fixture(scope="module")
def topology(versions, platform):
    """The serving processes of the project's model, started once per project."""
    from mlops.platform.local import free_ports
    from mlops.serving.local import LocalServing

    local = LocalServing(versions.project)
    local.down()
    local.up(versions.versions[0], port=free_ports(["t"])["t"], request_log=False, progress=lambda *_: None)
    try:
        yield local
    finally:
        local.down()


@pytest.fixture
def serving(topology, versions, platform):
    """v_a in production and serving 100% of traffic, whatever the previous test left."""
    from mlops.platform.storage import ObjectStore
    from mlops.registry import promotion as registry
    from mlops.serving.routing import Routing, write_routing

    store = ObjectStore(platform.s3_settings())
    model, stable = versions.model, versions.versions[0]
    current = registry.alias_version(model, registry.PRODUCTION)
    if current != stable:
        registry.promote(store, model, stable, registry.PRODUCTION, expected_current=current, actor="test",
                         reason="test setup")
    write_routing(store, model, Routing())
    topology.deploy(stable)
    topology.set_routes({stable: 100})
    for name in topology.urls():
        if name.startswith("predictor v") and name != f"predictor v{stable}":
            topology.retire(name.removeprefix("predictor v"))
    return topology, store


def _stage(store, model, version):
    from mlops.registry import promotion as registry

    registry.promote(store, model, version, registry.STAGING, expected_current=registry.ANY, actor="test",
                     reason="blessed (test)")


class Traffic:
    """Live traffic during a rollout: a background replay of the project's known entities until stopped."""

    def __init__(self, url: str, project, rate: float = 80.0) -> None:
        from mlops.serving.traffic_replay import known_ids, replay

        self.stop, self.stats = threading.Event(), None
        ids = known_ids(project)
        self.thread = threading.Thread(target=lambda: setattr(self, "stats", replay(
            url, project, ids, rate=rate, stop=self.stop)), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def _roll(store, local, project, candidate, faults=None, high_stakes=False):
    from mlops.rollout.controller import rollout
    from mlops.rollout.traffic import LocalTraffic

    with Traffic(local.urls()["transformer"], project) as traffic:
        result = rollout(store, LocalTraffic(local, store, faults=faults), project.names.model, candidate,
                         parse_policy(FAST_POLICY, "fast policy"), high_stakes=high_stakes, actor="test",
                         progress=lambda *_: None)
    return result, traffic.stats


@pytest.mark.platform
def test_an_erroring_candidate_is_rolled_back_in_its_first_canary_step(serving, versions):
    from mlops.registry import audit
    from mlops.registry import promotion as registry

    local, store = serving
    project, model = versions.project, versions.model
    stable, candidate, _ = versions.versions
    _stage(store, model, candidate)
    result, stats = _roll(store, local, project, candidate, faults={candidate: {"error_percent": 50}})
    assert result.outcome == "rolled_back"
    assert [p.name for p in result.phases] == ["shadow", "canary 20%"], result.markdown()
    assert result.phases[0].passed and not result.phases[-1].passed, result.markdown()
    assert "error_rate" in result.phases[-1].reason
    # registry and traffic both restored
    assert registry.alias_version(model, registry.PRODUCTION) == stable
    assert registry.alias_version(model, registry.STAGING) is None
    assert local.status()["routes"] == [{"version": stable, "weight": 100, "fault": {}}]
    assert f"predictor v{candidate}" not in local.urls()
    event = audit.trail(store, model)[-1]
    assert event.action == "rollout_rollback" and event.version == candidate
    assert any("traffic 100%" in step for step in event.details["restored"])
    assert stats.versions[stable] > 0


@pytest.mark.platform
def test_a_disagreeing_candidate_fails_in_shadow_and_callers_never_see_it(serving, versions):
    from mlops.registry import promotion as registry

    local, store = serving
    project, model = versions.project, versions.model
    stable, _, flipped = versions.versions
    _stage(store, model, flipped)
    result, stats = _roll(store, local, project, flipped)
    assert result.outcome == "rolled_back"
    [shadow] = result.phases
    assert shadow.name == "shadow" and shadow.metrics["agreement"] < 0.8, result.markdown()
    assert "agreement" in shadow.reason
    assert set(stats.statuses) == {200} and set(stats.versions) == {stable}  # no caller saw the shadow
    assert registry.alias_version(model, registry.PRODUCTION) == stable
    assert local.status()["routes"] == [{"version": stable, "weight": 100, "fault": {}}]


@pytest.mark.platform
def test_preconditions_are_checked_before_any_traffic_moves(serving, versions):
    from mlops.registry import promotion as registry

    local, store = serving
    project, model = versions.project, versions.model
    stable, candidate, flipped = versions.versions
    _stage(store, model, candidate)
    with pytest.raises(RolloutError, match="not the blessed staging version"):
        _roll(store, local, project, flipped)
    with pytest.raises(registry.PromotionRefused, match="needs a recorded approval"):
        _roll(store, local, project, candidate, high_stakes=True)
    with pytest.raises(RolloutError, match="already is production"):
        _roll(store, local, project, stable)
    assert local.status()["routes"] == [{"version": stable, "weight": 100, "fault": {}}]
    assert registry.alias_version(model, registry.PRODUCTION) == stable


@pytest.mark.platform
def test_a_good_candidate_goes_through_shadow_and_canary_to_production(serving, versions, tmp_path):
    """Credit through the very rollout_pipeline.yaml that goes to Kubeflow, run by kfp.local against local
    serving; churn through run_rollout, the entry that pipeline's component calls (in process: the pipeline's
    wiring is proven once). The stakes are the project's gate's: credit's needs a recorded approval, churn's
    does not."""
    import json

    from mlops.evaluation.gate import project_gate
    from mlops.platform.local_run import pipeline_file, run_local
    from mlops.registry import audit
    from mlops.registry import promotion as registry
    from mlops.rollout.run import run_rollout

    local, store = serving
    project, model = versions.project, versions.model
    stable, candidate, _ = versions.versions
    _stage(store, model, candidate)
    high_stakes = project_gate(project).high_stakes
    assert high_stakes == (project.name == "rollout-credit")
    if high_stakes:
        registry.approve(store, model, candidate, by="risk-officer", reason="credit decisions are high-stakes")
    policy = tmp_path / "fast-policy.yaml"
    policy.write_text(yaml.safe_dump(FAST_POLICY))
    with Traffic(local.urls()["transformer"], project) as traffic:
        if high_stakes:
            run = run_local(pipeline_file("rollout"),
                            {"project": project.source, "candidate": "staging", "policy": str(policy),
                             "target": "local"}, tmp_path / "kfp", tmp_path / "rollout.log")
            outcome, log = run.outputs["Output"], (tmp_path / "rollout.log").read_text()[-3000:]
        else:
            result = run_rollout(project, "staging", policy=str(policy), target="local", actor="test",
                                 progress=lambda *_: None)
            outcome, log = result.outcome, result.markdown()
    assert outcome == "promoted", log
    assert registry.alias_version(model, registry.PRODUCTION) == candidate
    assert registry.alias_version(model, registry.ROLLBACK) == stable
    assert local.status()["routes"] == [{"version": candidate, "weight": 100, "fault": {}}]
    assert f"predictor v{stable}" not in local.urls()  # the old version was retired
    stats = traffic.stats
    assert set(stats.statuses) == {200} and set(stats.versions) == {stable, candidate}
    actions = [e.action for e in audit.trail(store, model)]
    expected = ["approve", "rollout_start", "promote"] if high_stakes else ["rollout_start", "promote"]
    assert actions[-len(expected):] == expected and (high_stakes or "approve" not in actions), actions
    [report_key] = [k for k in store.list_keys(f"reports/rollout/{model}") if f"/v{candidate}-" in k][-1:]
    report = json.loads(store.get_bytes(report_key))
    assert report["outcome"] == "promoted"
    assert [p["name"] for p in report["phases"]] == ["shadow", "canary 20%", "canary 50%"]
    assert all(p["passed"] for p in report["phases"])
