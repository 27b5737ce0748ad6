"""`mlops cluster e2e`: the kind cluster end to end, driven from this machine.

After `make kind-up` and the image load (scripts/kind-e2e.sh), this proves
the cluster path the way a user would walk it:

1. every compiled pipeline is uploaded to Kubeflow Pipelines (so they also
   run from the dashboard);
2. the compiled training pipeline runs in the cluster on the seeded demo
   data; the gate blesses the model, a human approval promotes it (on a
   rerun, production from the earlier run stays, and the identical model is
   rightly not blessed over it);
3. production is served as a KServe InferenceService (transformer +
   predictor) and answers V2 requests through the ingress gateway;
4. a second, better model is trained; one canary step sends it a share of
   the traffic, both versions answer, and the canary is rolled back so
   production alone serves again.

Everything talks to the cluster through the 127.0.0.1 ports kind maps
(mlops.cluster.kind) and the kubeconfig context ``kind-<cluster>``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import MlopsError, PipelineError, RolloutError

NAMESPACE = "mlops"
PLATFORM_CONFIG = "manifests/base/platform-config"
COMPILED = "pipelines/compiled"
CANARY_PERCENT = 30
E2E_ACTOR, E2E_REASON = "kind-e2e", "cluster end-to-end check"  # who the approvals and promotions name


class ClusterCheckFailed(MlopsError):
    """The cluster answered, but not as the suite promises."""


@dataclass(frozen=True)
class Endpoints:
    kfp: str
    gateway: str
    mlflow: str
    s3: str

    @classmethod
    def from_kind(cls, root: str | Path = ".") -> "Endpoints":
        from mlops.cluster.kind import host_ports

        ports = host_ports(root)
        return cls(kfp=ports["kfp-ui"].url, gateway=ports["inference-gateway"].url,
                   mlflow=ports["mlflow-ui"].url, s3=ports["minio-s3"].url)


def _step(text: str, started: float) -> None:
    print(f"\n[{time.perf_counter() - started:6.0f} s] {text}", flush=True)


def cluster_settings(root: Path) -> dict[str, str]:
    """What pipeline tasks get in the cluster (ConfigMap mlops-config, Secret mlops-s3), as kustomize builds it."""
    from mlops.cluster.lint import build

    objects = build(root / PLATFORM_CONFIG)
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    secret = next(o for o in objects if o["kind"] == "Secret")["data"]
    return {**config, **{k: base64.b64decode(v).decode() for k, v in secret.items()}}


def connect(endpoints: Endpoints, root: Path, cluster: str) -> None:
    """Point this process's settings at the cluster's MinIO and MLflow (not the local platform's).

    Bucket, Feast registry and credentials are the cluster's own; only the
    endpoints differ: the in-cluster names become kind's 127.0.0.1 ports.
    """
    settings = cluster_settings(root)
    os.environ.update({key: settings[key] for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLOPS_BUCKET",
                                                      "MLOPS_FEAST_REGISTRY")})
    os.environ.update({
        "MLOPS_HOME": str(root / ".mlops" / f"kind-{cluster}"),  # keeps the local platform's settings out
        "MLOPS_S3_ENDPOINT": endpoints.s3, "MLFLOW_TRACKING_URI": endpoints.mlflow,
        "MLOPS_KUBE_CONTEXT": f"kind-{cluster}", "MLOPS_SERVING_NAMESPACE": NAMESPACE,
    })


def version_name(path: Path) -> str:
    """Pipeline versions are named by content, so re-uploading an unchanged file is a no-op."""
    return "sha256-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def upload_pipelines(client, compiled: Path) -> dict[str, tuple[str, str]]:
    """Upload every compiled pipeline (new content: a new version).

    Returns file stem (``training``) -> (pipeline id, version id).
    """
    import yaml

    uploaded = {}
    for path in sorted(compiled.glob("*_pipeline.yaml")):
        spec = next(d for d in yaml.safe_load_all(path.read_text()) if d and "pipelineInfo" in d)
        name, version = spec["pipelineInfo"]["name"], version_name(path)
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:  # its first version is named after the pipeline; ours follow, named by content
            pipeline_id = client.upload_pipeline(str(path), pipeline_name=name,
                                                 description=spec["pipelineInfo"].get("description")).pipeline_id
        versions = client.list_pipeline_versions(pipeline_id, page_size=200).pipeline_versions or []
        existing = next((v for v in versions if v.display_name == version), None)
        version_id = (existing or client.upload_pipeline_version(
            str(path), pipeline_version_name=version, pipeline_id=pipeline_id)).pipeline_version_id
        uploaded[path.name.removesuffix("_pipeline.yaml")] = (pipeline_id, version_id)
        print(f"  {path.name}: pipeline {name!r} version {version}")
    return uploaded


def run_training(client, project, pipeline: tuple[str, str], model_params: dict, label: str, timeout_s: int,
                 require_blessed: bool = True) -> str | None:
    """One training run in the cluster; the version it put on ``staging``, or None if the gate did not bless it.

    The run itself must succeed either way; ``require_blessed`` also demands a new blessed version.
    """
    import json

    from mlops.project import cluster_source
    from mlops.registry import promotion as registry

    model = project.names.model
    params = {"project": cluster_source(project), "model_params": json.dumps(model_params)}
    before = registry.alias_version(model, registry.STAGING)
    run = client.run_pipeline(_experiment_id(client, "mlops-kind-e2e"), f"e2e-{label}-{time.strftime('%H%M%S')}",
                              pipeline_id=pipeline[0], version_id=pipeline[1], params=params, enable_caching=False)
    print(f"  run {run.run_id} ({params}); follow it in the KFP UI")
    done = client.wait_for_run_completion(run.run_id, timeout=timeout_s, sleep_duration=10)
    if done.state != "SUCCEEDED":
        raise PipelineError(f"training run {run.run_id} ended {done.state}: {getattr(done, 'error', None) or ''} "
                            "(task logs: kubectl -n kubeflow logs -l pipeline/runid=" + run.run_id + ")")
    after = registry.alias_version(model, registry.STAGING)
    if after is not None and after != before:
        print(f"  {model} v{after} blessed and on staging")
        return after
    if require_blessed:
        raise ClusterCheckFailed(f"the {label} run succeeded but put no new version on staging (the gate did "
                                 "not bless it: see the run's gate report in the KFP UI)")
    print("  the run succeeded; the gate did not bless its model over production (see its report in the KFP UI)")
    return None


def _experiment_id(client, name: str) -> str:
    try:
        return client.get_experiment(experiment_name=name).experiment_id
    except ValueError:  # kfp: no experiment of that name
        return client.create_experiment(name=name).experiment_id


def gateway_host(isvc: dict, name: str) -> str:
    """The Host the ingress gateway routes to the model's transformer.

    Without Istio's virtual host (Kourier), KServe leaves the top-level URL
    to the components: the transformer's, when there is one, is what
    callers must reach, so it is preferred to ``status.url``.
    """
    status = isvc.get("status", {})
    url = (status.get("components", {}).get("transformer", {}).get("url") or status.get("url") or "")
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if not host:
        raise ClusterCheckFailed(f"InferenceService {NAMESPACE}/{name} is Ready but reports no URL")
    return host


def send(endpoints: Endpoints, project, host: str, ids: list, requests: int) -> dict[str, int]:
    """``requests`` V2 inference requests through the gateway; fails unless every one is answered (200)."""
    from mlops.serving.traffic_replay import replay

    stats = replay(endpoints.gateway, project, ids, rate=5.0, requests=requests, protocol="v2",
                   headers={"Host": host}, concurrency=2)
    print(f"  {stats.summary()}")
    if stats.statuses.get(200, 0) != requests:
        raise ClusterCheckFailed(f"through the gateway ({endpoints.gateway}, Host {host}) not every request was "
                                 f"answered: {dict(stats.statuses)}")
    return dict(stats.versions)


def run_e2e(project, root: str | Path = ".", cluster: str = "mlops", image: str | None = None,
            run_timeout_s: int = 2400) -> None:
    """The project's model through the cluster: its demo's first and better params (project.yaml, demo.models)
    train in Kubeflow, KServe serves them, one canary step splits and rolls back."""
    import kfp

    from mlops.errors import ConfigError
    from mlops.evaluation.gate import project_gate
    from mlops.platform.storage import ObjectStore
    from mlops.registry import promotion as registry
    from mlops.rollout.cluster import ClusterTraffic
    from mlops.serving.traffic_replay import known_ids
    from mlops.training import tracking

    if project.demo is None:
        raise ConfigError(f"{project.where} has no demo section: the e2e check trains its first and better models")
    model = project.names.model

    root, started = Path(root).resolve(), time.perf_counter()
    endpoints = Endpoints.from_kind(root)
    connect(endpoints, root, cluster)

    _step(f"Kubeflow Pipelines at {endpoints.kfp}: upload every compiled pipeline", started)
    client = kfp.Client(host=endpoints.kfp)
    pipelines = upload_pipelines(client, root / COMPILED)
    tracking.connect()
    store = ObjectStore.from_env()
    training = pipelines["training"]

    _step("the compiled training pipeline in the cluster, on the seeded demo data (first model)", started)
    production = registry.alias_version(model, registry.PRODUCTION)
    # On a rerun, production is the first model of an earlier run: this run must succeed, and its identical
    # model is rightly not blessed over it.
    blessed = run_training(client, project, training, project.demo.first, "first", run_timeout_s,
                           require_blessed=production is None)
    if production is None:
        registry.approve(store, model, blessed, E2E_ACTOR, E2E_REASON)
        registry.promote_blessed(store, model, blessed, high_stakes=project_gate(project).high_stakes,
                                 actor=E2E_ACTOR, reason=E2E_REASON)
    first = production or blessed

    _step(f"serve production v{first} as InferenceService {NAMESPACE}/{model}; V2 through the gateway", started)
    traffic = ClusterTraffic(store, model, project, NAMESPACE)
    host = gateway_host(traffic.serve(first, image), model)
    ids = known_ids(project, limit=500)
    answered = send(endpoints, project, host, ids, requests=20)
    if set(answered) != {first}:
        raise ClusterCheckFailed(f"production v{first} should answer every request, answered: {answered}")

    _step("a better candidate from the same pipeline; one canary step, then back to production alone", started)
    candidate = run_training(client, project, training, project.demo.better, "candidate", run_timeout_s)
    registry.approve(store, model, candidate, E2E_ACTOR, E2E_REASON)
    traffic.deploy(candidate)
    traffic.set_canary(first, candidate, CANARY_PERCENT)
    answered = send(endpoints, project, host, ids, requests=60)
    if set(answered) != {first, candidate}:  # P(no candidate answer in 60 at 30%) = 0.7**60, about 5e-10
        raise ClusterCheckFailed(f"a {CANARY_PERCENT}% canary of v{candidate} should share the traffic with "
                                 f"v{first}; answered: {answered}")
    traffic.finish(winner=first, loser=candidate)
    answered = send(endpoints, project, host, ids, requests=20)
    if set(answered) != {first}:
        raise RolloutError(f"after rolling the canary back, v{first} alone should answer; answered: {answered}")
    _step(f"cluster path proven: pipelines uploaded, training ran in Kubeflow, v{first} served by KServe through "
          f"the gateway, a canary of v{candidate} split and rolled back", started)
