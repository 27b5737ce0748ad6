"""The rollout's cluster driver: KServe Knative-mode canary on the model's InferenceService.

KServe 0.21 in Knative mode (formerly "Serverless") splits a predictor between the latest
ready revision and the last rolled-out one while ``canaryTrafficPercent`` is set, and
sends 100% to the latest *ready* revision without it (KServe ``ksvc_reconciler.go``
123-164; Knative ``route_types.go`` 88-93). So:

- canary step: the predictor's ``storageUri`` and version env move to the candidate with
  ``canaryTrafficPercent: N``; the previous revision keeps the rest;
- promote: ``canaryTrafficPercent`` removed once the candidate's revision has its share,
  so it takes 100%;
- roll back: the spec returns to the winner *with* ``canaryTrafficPercent: 0``, so the
  rolled-out revision keeps 100% while the winner's new revision starts; only when that
  revision is Ready and holds its 0% is the field removed. Removing it earlier would route
  everything to the latest ready revision, which until then is the losing candidate.

Every patch is followed by a wait for *that* patch's effect: a spec change must have
created a new predictor revision, the latest created revision must be the latest ready
one, and ``status.components.predictor.traffic`` must show the split asked for. Right
after a patch the status is the previous one, still Ready; ``status.observedGeneration``
cannot tell (KServe copies the Knative Service's generation into it:
``inference_service_status.go`` 635).

KServe has no shadow: the candidate runs as a second, predictor-only
InferenceService (``<model>-shadow``) and the transformers mirror to it via
the routing document. The InferenceService is named after the registered
model. The patches are plain functions so they can be checked against the
kserve SDK's schema without a cluster; ``tests/test_cluster_rollout.py`` drives
this driver against a double of KServe's control plane that follows those rules.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops.errors import RolloutError
from mlops.registry.model_files import ModelRef, resolve_model
from mlops.rollout.traffic import wait_for_shadow
from mlops.serving.routing import Routing, ShadowTarget, write_routing

TEMPLATE = Path(__file__).resolve().parent / "templates" / "inferenceservice.yaml"
GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
SHADOW_SUFFIX = "-shadow"
TRANSFORMER_PORT = 8080
DEFAULT_NAMESPACE = "mlops"  # where manifests/base/serving puts the InferenceService


def template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def _model_env(ref: ModelRef, project: str) -> list[dict]:
    return [{"name": "MLOPS_PROJECT", "value": project}, {"name": "MLOPS_MODEL_NAME", "value": ref.name},
            {"name": "MLOPS_MODEL_VERSION", "value": ref.version}, {"name": "MLOPS_MODEL_DIGEST", "value": ref.digest}]


def inference_service(ref: ModelRef, namespace: str, project: str, image: str | None = None) -> dict:
    """The model's InferenceService serving ``ref``, from the template.

    ``project`` is how the pods find the project: an example's name (shipped in
    the image) or a pushed project's s3:// URI.
    """
    isvc = template()
    isvc["metadata"].update({"name": ref.name, "namespace": namespace})
    model = isvc["spec"]["predictor"]["model"]
    model["storageUri"], model["env"] = ref.storage_uri, _model_env(ref, project)
    transformer = isvc["spec"]["transformer"]["containers"][0]
    transformer["args"] = ["--project", project, "--model-name", ref.name]
    if image:
        transformer["image"] = image
    return isvc


def shadow_service(ref: ModelRef, namespace: str, project: str) -> dict:
    """A predictor-only InferenceService for the candidate: what the transformers mirror to."""
    isvc = inference_service(ref, namespace, project)
    isvc["metadata"]["name"] = ref.name + SHADOW_SUFFIX
    isvc["metadata"]["labels"]["app.kubernetes.io/component"] = "shadow"
    del isvc["spec"]["transformer"]
    isvc["spec"]["predictor"]["minReplicas"] = isvc["spec"]["predictor"]["maxReplicas"] = 1
    return isvc


def canary_patch(ref: ModelRef, percent: int, project: str) -> dict:
    """Merge patch: the predictor serves ``ref`` on ``percent``% of traffic (None: all of it)."""
    return {"spec": {"predictor": {"canaryTrafficPercent": percent,
                                   "model": {"storageUri": ref.storage_uri, "env": _model_env(ref, project)}}}}


def traffic_patch(percent: int | None) -> dict:
    """Merge patch of the canary share alone; None removes it (the latest revision takes 100%)."""
    return {"spec": {"predictor": {"canaryTrafficPercent": percent}}}


def merged(target: object, patch: object) -> object:
    """``target`` with a JSON merge patch applied (RFC 7386, what the API server does with ours)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


def new_revision_expected(spec: dict, patch: dict) -> bool:
    """Whether ``patch`` changes the predictor's template, i.e. makes Knative create a revision: any
    change of the predictor's spec but its traffic split (KServe ``ksvc_reconciler.go`` 225-247)."""
    def template(s: dict) -> dict:
        return {k: v for k, v in (s.get("predictor") or {}).items() if k != "canaryTrafficPercent"}

    return template(merged(spec, patch.get("spec", {}))) != template(spec)


@dataclass(frozen=True)
class PredictorStatus:
    """What KServe reports of an InferenceService's predictor."""

    ready: bool
    created: str  # latestCreatedRevision
    latest_ready: str  # latestReadyRevision
    rolled_out: str  # latestRolledoutRevision
    traffic: dict  # revision -> percent, the revisions with a share
    conditions: str  # for messages

    @classmethod
    def of(cls, isvc: dict | None) -> "PredictorStatus":
        status = (isvc or {}).get("status") or {}
        predictor = (status.get("components") or {}).get("predictor") or {}
        traffic: dict[str, int] = {}
        for target in predictor.get("traffic") or []:
            if target.get("percent"):
                traffic[target.get("revisionName", "?")] = traffic.get(target.get("revisionName", "?"), 0) \
                    + target["percent"]
        conditions = status.get("conditions") or []
        return cls(any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
                   predictor.get("latestCreatedRevision") or "", predictor.get("latestReadyRevision") or "",
                   predictor.get("latestRolledoutRevision") or "", traffic,
                   ", ".join(f"{c.get('type')}={c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else "")
                             for c in conditions) or "none")

    def describe(self) -> str:
        split = ", ".join(f"{r} {p}%" for r, p in sorted(self.traffic.items())) or "none"
        return (f"conditions {self.conditions}; latest created revision {self.created or '-'}, latest ready "
                f"{self.latest_ready or '-'}, rolled out {self.rolled_out or '-'}; traffic {split}")


def predictor_url(name: str, namespace: str) -> str:
    return f"http://{name}-predictor.{namespace}.svc.cluster.local"


class ClusterTraffic:
    """Drives the model's InferenceService through the Kubernetes API (in-cluster or kubeconfig)."""

    def __init__(self, store, model: str, project: str, namespace: str | None = None, ready_timeout_s: float = 600.0,
                 poll_s: float = 2.0) -> None:
        from mlops.project import cluster_source

        self.store, self.model, self.project = store, model, cluster_source(project)
        self.namespace = namespace or os.environ.get("MLOPS_SERVING_NAMESPACE") or DEFAULT_NAMESPACE
        self.ready_timeout_s, self.poll_s = ready_timeout_s, poll_s
        self._api = None

    def describe(self) -> str:
        return f"InferenceService {self.namespace}/{self.model} (KServe Knative-mode canary)"

    # -- Kubernetes access ------------------------------------------------------------
    @property
    def api(self):
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:  # outside a pod: the kubeconfig's context, or the one MLOPS_KUBE_CONTEXT names. KUBECONFIG
                    # is read now: the client reads it once, when it is first imported.
                    config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None,
                                            context=os.environ.get("MLOPS_KUBE_CONTEXT") or None)
                except (config.ConfigException, OSError) as exc:
                    raise RolloutError(f"no Kubernetes access (not in a pod, no usable kubeconfig): {exc}") from None
            self._api = client
        return self._api

    def _custom(self):
        return self.api.CustomObjectsApi()

    def _get(self, name: str) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._custom().get_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise RolloutError(f"cannot read InferenceService {self.namespace}/{name}: {exc.reason}") from None

    def _patch(self, name: str, body: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._custom().patch_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, name, body)
        except ApiException as exc:
            raise RolloutError(f"cannot patch InferenceService {self.namespace}/{name}: {exc.reason} "
                               f"({(exc.body or '')[:300]})") from None

    def _apply(self, manifest: dict) -> None:
        """Create the InferenceService, or declare its spec on the existing one (a leftover traffic split
        included: ``canaryTrafficPercent`` is removed unless the manifest sets it), then wait for it to
        serve that spec alone."""
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        existing = self._get(name)
        if existing is None:
            try:
                self._custom().create_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, manifest)
            except ApiException as exc:
                raise RolloutError(f"cannot create InferenceService {self.namespace}/{name}: {exc.reason}") from None
            self._await(name, "its first revision Ready with 100% of traffic",
                        lambda s: s.ready and s.created != "" and s.traffic == {s.created: 100})
            return
        spec = dict(manifest["spec"])
        spec["predictor"] = {"canaryTrafficPercent": None, **spec["predictor"]}
        self._patch_and_await(name, {"spec": spec}, "the declared spec alone, with 100% of traffic",
                              lambda s, new: s.traffic == {new: 100})

    def _patch_and_await(self, name: str, patch: dict, what: str,
                         traffic_ok: Callable[[PredictorStatus, str], bool]) -> PredictorStatus:
        """Patch, then wait for this patch's effect: a new revision if the patch changes the template, the
        latest created revision Ready, and the traffic ``traffic_ok(status, that revision)`` accepts."""
        current = self._get(name) or {}
        before, fresh = PredictorStatus.of(current), new_revision_expected(current.get("spec", {}), patch)
        self._patch(name, patch)

        def done(s: PredictorStatus) -> bool:
            if fresh and s.created in ("", before.created):
                return False  # not reconciled yet: the status is the one before the patch
            return s.ready and s.created == s.latest_ready and traffic_ok(s, s.created)

        return self._await(name, ("a new predictor revision, Ready, with " if fresh else "") + what, done)

    def _await(self, name: str, what: str, done: Callable[[PredictorStatus], bool]) -> PredictorStatus:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            status = PredictorStatus.of(self._get(name))
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise RolloutError(f"InferenceService {self.namespace}/{name} did not reach {what} within "
                                   f"{self.ready_timeout_s:.0f} s; its status says: {status.describe()}")
            time.sleep(self.poll_s)

    def _delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._custom().delete_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise RolloutError(f"cannot delete InferenceService {self.namespace}/{name}: {exc.reason}") from None

    # -- the driver's verbs ------------------------------------------------------------
    def serve(self, version: str, image: str | None = None) -> dict:
        """Declare the model's InferenceService serving ``version`` alone (created if missing); wait for Ready.

        The first deployment of a model, and the way back to a known state:
        rollouts then move traffic from here by canary patches.
        """
        self._apply(inference_service(resolve_model(self.model, version), self.namespace, self.project, image))
        return self._get(self.model) or {}

    def deploy(self, version: str) -> None:
        """Nothing to start ahead: the canary revision appears with the first canary patch."""
        if self._get(self.model) is None:
            raise RolloutError(f"no InferenceService {self.namespace}/{self.model}; serve production first "
                               "(`mlops cluster e2e` does, or ClusterTraffic.serve)")

    def start_shadow(self, version: str) -> None:
        ref = resolve_model(self.model, version)
        self._apply(shadow_service(ref, self.namespace, self.project))
        target = ShadowTarget(predictor_url(ref.name + SHADOW_SUFFIX, self.namespace), version)
        write_routing(self.store, self.model, Routing(target))
        wait_for_shadow(self, target, timeout_s=60.0)

    def stop_shadow(self) -> None:
        write_routing(self.store, self.model, Routing())
        wait_for_shadow(self, None, timeout_s=60.0)
        self._delete(self.model + SHADOW_SUFFIX)

    def set_canary(self, stable: str, candidate: str, percent: int) -> None:
        """The candidate's revision takes ``percent``%, the last rolled-out one (stable) the rest."""
        self._patch_and_await(
            self.model, canary_patch(resolve_model(self.model, candidate), percent, self.project),
            f"{percent}% on the candidate's revision and {100 - percent}% on the rolled-out one",
            lambda s, new: s.traffic == ({new: percent, s.rolled_out: 100 - percent} if percent < 100
                                         else {new: 100}) and s.rolled_out != new)

    def finish(self, winner: str, loser: str) -> None:
        if self._serving_version() == winner:  # promote: the winner's revision takes everything
            self._patch_and_await(self.model, traffic_patch(None), "100% on the winner's revision",
                                  lambda s, new: s.traffic == {new: 100} and s.rolled_out == new)
            return
        # Roll back: the rolled-out revision keeps 100% (0% to the latest) while the winner's spec gets its
        # new revision; only once that one is Ready, holding its 0%, may the split go.
        rolled_out = PredictorStatus.of(self._get(self.model)).rolled_out
        self._patch_and_await(self.model, canary_patch(resolve_model(self.model, winner), 0, self.project),
                              f"100% on the rolled-out revision {rolled_out} and 0% on the winner's new one",
                              lambda s, new: s.traffic == {rolled_out: 100})
        self._patch_and_await(self.model, traffic_patch(None), "100% on the winner's new revision",
                              lambda s, new: s.traffic == {new: 100} and s.rolled_out == new)

    def _serving_version(self) -> str | None:
        isvc = self._get(self.model) or {}
        env = isvc.get("spec", {}).get("predictor", {}).get("model", {}).get("env", [])
        return next((e.get("value") for e in env if e.get("name") == "MLOPS_MODEL_VERSION"), None)

    def metrics_urls(self) -> list[str]:
        """Every ready transformer pod's /metrics (the analysis sums them)."""
        selector = f"serving.kserve.io/inferenceservice={self.model},component=transformer"
        pods = self.api.CoreV1Api().list_namespaced_pod(self.namespace, label_selector=selector).items
        urls = [f"http://{p.status.pod_ip}:{TRANSFORMER_PORT}/metrics" for p in pods
                if p.status.phase == "Running" and p.status.pod_ip]
        if not urls:
            raise RolloutError(f"no running transformer pods for {self.namespace}/{self.model} ({selector})")
        return urls

