"""The rollout's cluster driver (``ClusterTraffic``) against a double of KServe's Knative-mode control plane.

The driver is the real one, talking through the kubernetes client to
``tests/kserve_control_plane.py`` on 127.0.0.1 (its module docstring lists
each rule it follows and the upstream lines). The double records what
callers would get at every moment (the route's split by model version), so
the tests sample the whole rollback, not just its end. The registry is the
session's real MLflow: the versions are registered with a digest and an S3
location, as the driver resolves them.
"""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from mlops.errors import RolloutError
from mlops.registry.model_files import MODEL_DIGEST_TAG
from mlops.rollout.cluster import ClusterTraffic, PredictorStatus, new_revision_expected
from tests.kserve_control_plane import KServeControlPlane, merge_patch

pytestmark = pytest.mark.platform
NAMESPACE = "mlops"


@pytest.fixture
def model(platform, request) -> tuple[str, list[str]]:
    """A registered model with three versions, each with a digest and files on S3 (as the driver reads them)."""
    name = f"cluster-{request.node.name[:30].replace('[', '-').replace(']', '')}".rstrip("-_")
    client = MlflowClient()
    client.create_registered_model(name)
    versions = []
    for i in range(3):
        mv = client.create_model_version(name, source=f"s3://mlops/models/{name}/v{i + 1}",
                                         tags={MODEL_DIGEST_TAG: f"sha256:{i:064x}"})
        versions.append(str(mv.version))
    return name, versions


@pytest.fixture
def plane(tmp_path, monkeypatch):
    """The double, and a kubeconfig pointing at it (what `load_kube_config` reads outside a pod)."""
    double = KServeControlPlane(reconcile_delay_s=0.5, ready_delay_s=1.0).start()
    monkeypatch.setenv("KUBECONFIG", str(double.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("MLOPS_KUBE_CONTEXT", raising=False)
    yield double
    double.stop()


def driver(store, name: str, timeout_s: float = 30.0, project: str = "credit-default") -> ClusterTraffic:
    return ClusterTraffic(store, name, project, namespace=NAMESPACE, ready_timeout_s=timeout_s, poll_s=0.05)


def since(plane: KServeControlPlane, name: str, started: float) -> list[dict[str, int]]:
    """Every split callers got from ``started`` on: the one in force then, and each change after it."""
    before = [split for t, n, split in plane.timeline if n == name and t < started]
    after = [split for t, n, split in plane.timeline if n == name and t >= started]
    return before[-1:] + after


def settled(plane: KServeControlPlane, name: str, split: dict[str, int], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while plane.served(name) != split:
        assert time.monotonic() < deadline, f"callers got {plane.served(name)}, not {split}"
        time.sleep(0.05)


# -- the rules the driver must respect ------------------------------------------------------------

def test_a_rollback_never_routes_callers_to_the_losing_version(store, plane, model):
    name, (v1, v2, _) = model
    traffic = driver(store, name)
    traffic.serve(v1)
    traffic.set_canary(v1, v2, 10)
    settled(plane, name, {v1: 90, v2: 10})  # (that set_canary waits for it is the next test's business)
    started = time.monotonic()
    traffic.finish(winner=v1, loser=v2)
    assert plane.served(name) == {v1: 100}  # when finish returns
    time.sleep(plane.reconcile_delay_s + plane.ready_delay_s + 0.5)  # whatever the patches still do, done
    seen = since(plane, name, started)
    # From the rollback's start on, the candidate never gets more than its canary share, and callers end on
    # the winner alone, on a revision of the winner's spec.
    assert max(split.get(v2, 0) for split in seen) <= 10, seen
    assert plane.served(name) == {v1: 100} and seen[-1] == {v1: 100}, seen
    status = PredictorStatus.of(plane.object(name))
    assert status.traffic == {status.created: 100} and status.rolled_out == status.created
    assert dict(plane.revisions(name))[status.created] == v1
    assert "canaryTrafficPercent" not in plane.object(name)["spec"]["predictor"]


def test_waits_return_only_once_this_patch_took_effect(store, plane, model):
    # The controller reconciles 1.5 s after a patch: until then the status is the previous one, Ready.
    plane.reconcile_delay_s = 1.5
    name, (v1, v2, _) = model
    traffic = driver(store, name)
    traffic.serve(v1)
    traffic.set_canary(v1, v2, 20)
    assert plane.served(name) == {v1: 80, v2: 20}  # the canary really runs when set_canary returns
    traffic.set_canary(v1, v2, 50)
    assert plane.served(name) == {v1: 50, v2: 50}
    traffic.finish(winner=v1, loser=v2)
    assert plane.served(name) == {v1: 100}


def test_serve_clears_a_leftover_canary_split(store, plane, model):
    name, (v1, v2, v3) = model
    traffic = driver(store, name)
    traffic.serve(v1)
    traffic.set_canary(v1, v2, 30)  # ... and the run that set it died here
    assert plane.served(name) == {v1: 70, v2: 30}
    traffic.serve(v3)
    assert plane.served(name) == {v3: 100}
    assert "canaryTrafficPercent" not in plane.object(name)["spec"]["predictor"]
    traffic.serve(v3)  # the same version again: only the split would go, and there is none
    assert plane.served(name) == {v3: 100}


def test_serve_of_the_same_version_clears_a_split_set_by_hand(store, plane, model):
    name, (v1, *_) = model
    traffic = driver(store, name)
    traffic.serve(v1)
    spec = plane.object(name)["spec"]
    spec["predictor"]["canaryTrafficPercent"] = 40  # kubectl edit, say: no new revision, a split of one
    plane.put_spec(name, spec)
    traffic.serve(v1)
    assert "canaryTrafficPercent" not in plane.object(name)["spec"]["predictor"]
    assert plane.served(name) == {v1: 100}


def test_a_promotion_ends_with_the_winner_alone(store, plane, model):
    name, (v1, v2, _) = model
    traffic = driver(store, name)
    traffic.serve(v1)
    traffic.set_canary(v1, v2, 25)
    started = time.monotonic()
    traffic.finish(winner=v2, loser=v1)
    assert plane.served(name) == {v2: 100}
    status = PredictorStatus.of(plane.object(name))
    assert status.rolled_out == status.created and dict(plane.revisions(name))[status.created] == v2
    assert all(set(split) <= {v1, v2} for split in since(plane, name, started))


def test_a_wait_that_times_out_says_what_it_waited_for_and_what_the_status_said(store, plane, model):
    name, (v1, v2, _) = model
    traffic = driver(store, name)
    traffic.serve(v1)
    plane.ready_delay_s = 3600  # the candidate's revision never becomes Ready (a bad image, say)
    traffic.ready_timeout_s = 3.0
    with pytest.raises(RolloutError, match=r"did not reach a new predictor revision, Ready, with 10% on the "
                                           r"candidate's revision and 90% on the rolled-out one within 3 s; its "
                                           r"status says: conditions Ready=False \(RevisionMissing\); latest "
                                           r"created revision \S+-00002, latest ready \S+-00001"):
        traffic.set_canary(v1, v2, 10)
    assert plane.served(name) == {v1: 100}  # callers never left stable


def test_the_driver_sends_merge_patches_the_double_applies_as_the_api_server_would(store, plane, model):
    name, (v1, v2, _) = model
    traffic = driver(store, name)
    traffic.serve(v1)  # created
    traffic.serve(v2)  # patched
    patches = [c for m, _, c in plane.requests if m == "PATCH"]
    assert patches and all(c.startswith("application/merge-patch+json") for c in patches), patches
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    spec = {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": "s3://x"}}}
    assert not new_revision_expected(spec, {"spec": {"predictor": {"canaryTrafficPercent": None}}})
    assert new_revision_expected(spec, {"spec": {"predictor": {"model": {"storageUri": "s3://y"}}}})


PUSHED_CHURN = "s3://mlops/projects/churn/" + "ef" * 32 + ".tar.gz"


@pytest.mark.parametrize("project", ["churn", PUSHED_CHURN], ids=["example", "pushed"])
def test_revisions_load_project(store, plane, model, project):
    """Every revision the driver declares names the project its pods load (short name: it names the model)."""
    name, (v1, v2, _) = model
    traffic = driver(store, name, project=project)

    def declared() -> tuple[dict, list]:
        spec = plane.object(name)["spec"]
        return ({e["name"]: e["value"] for e in spec["predictor"]["model"]["env"]},
                spec["transformer"]["containers"][0]["args"])

    traffic.serve(v1)  # created
    env, args = declared()
    assert (env["MLOPS_PROJECT"], env["MLOPS_MODEL_NAME"], env["MLOPS_MODEL_VERSION"]) == (project, name, v1)
    assert args == ["--project", project, "--model-name", name]
    traffic.set_canary(v1, v2, 20)  # patched: the canary's revision loads the same project
    env, args = declared()
    assert (env["MLOPS_PROJECT"], env["MLOPS_MODEL_NAME"], env["MLOPS_MODEL_VERSION"]) == (project, name, v2)
    assert args == ["--project", project, "--model-name", name]
    traffic.finish(winner=v1, loser=v2)
    assert plane.served(name) == {v1: 100} and declared()[0]["MLOPS_PROJECT"] == project
