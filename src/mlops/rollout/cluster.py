"""The rollout's cluster driver: KServe Knative-mode canary on the model's InferenceService.

KServe 0.21 in Knative mode (formerly "Serverless") splits a predictor between its
last ready revision and the new one by ``canaryTrafficPercent``:

- canary step: the predictor's ``storageUri`` and version env move to the
  candidate with ``canaryTrafficPercent: N``; Knative keeps the previous
  revision for the rest;
- promote: ``canaryTrafficPercent`` removed, so the latest revision takes 100%;
- roll back: ``canaryTrafficPercent: 0`` (traffic back at once), then the spec
  returns to the stable version so what is declared is what serves.

KServe has no shadow: the candidate runs as a second, predictor-only
InferenceService (``<model>-shadow``) and the transformers mirror to it via
the routing document. The InferenceService is named after the registered
model. The patches are plain functions so they can be checked against the
kserve SDK's schema without a cluster.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from mlops.errors import RolloutError
from mlops.rollout.traffic import wait_for_shadow
from mlops.serving.model_files import ModelRef, resolve_model
from mlops.serving.routing import Routing, ShadowTarget, write_routing

TEMPLATE = Path(__file__).resolve().parent / "templates" / "inferenceservice.yaml"
GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
SHADOW_SUFFIX = "-shadow"
TRANSFORMER_PORT = 8080
DEFAULT_NAMESPACE = "mlops"  # where manifests/base/serving puts the InferenceService


def template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def _model_env(ref: ModelRef) -> list[dict]:
    return [{"name": "MLOPS_MODEL_NAME", "value": ref.name}, {"name": "MLOPS_MODEL_VERSION", "value": ref.version},
            {"name": "MLOPS_MODEL_DIGEST", "value": ref.digest}]


def inference_service(ref: ModelRef, namespace: str, image: str | None = None) -> dict:
    """The model's InferenceService serving ``ref``, from the template."""
    isvc = template()
    isvc["metadata"].update({"name": ref.name, "namespace": namespace})
    model = isvc["spec"]["predictor"]["model"]
    model["storageUri"], model["env"] = ref.storage_uri, _model_env(ref)
    transformer = isvc["spec"]["transformer"]["containers"][0]
    transformer["args"] = ["--model-name", ref.name]
    if image:
        transformer["image"] = image
    return isvc


def shadow_service(ref: ModelRef, namespace: str) -> dict:
    """A predictor-only InferenceService for the candidate: what the transformers mirror to."""
    isvc = inference_service(ref, namespace)
    isvc["metadata"]["name"] = ref.name + SHADOW_SUFFIX
    isvc["metadata"]["labels"]["app.kubernetes.io/component"] = "shadow"
    del isvc["spec"]["transformer"]
    isvc["spec"]["predictor"]["minReplicas"] = isvc["spec"]["predictor"]["maxReplicas"] = 1
    return isvc


def canary_patch(ref: ModelRef, percent: int) -> dict:
    """Merge patch: the predictor serves ``ref`` on ``percent``% of traffic (None: all of it)."""
    return {"spec": {"predictor": {"canaryTrafficPercent": percent,
                                   "model": {"storageUri": ref.storage_uri, "env": _model_env(ref)}}}}


def traffic_patch(percent: int | None) -> dict:
    """Merge patch of the canary share alone; None removes it (the latest revision takes 100%)."""
    return {"spec": {"predictor": {"canaryTrafficPercent": percent}}}


def predictor_url(name: str, namespace: str) -> str:
    return f"http://{name}-predictor.{namespace}.svc.cluster.local"


class ClusterTraffic:
    """Drives the model's InferenceService through the Kubernetes API (in-cluster or kubeconfig)."""

    def __init__(self, store, model: str, namespace: str | None = None, ready_timeout_s: float = 600.0) -> None:
        self.store, self.model = store, model
        self.namespace = namespace or os.environ.get("MLOPS_SERVING_NAMESPACE") or DEFAULT_NAMESPACE
        self.ready_timeout_s = ready_timeout_s
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
                try:  # outside a pod: the kubeconfig's context, or the one MLOPS_KUBE_CONTEXT names
                    config.load_kube_config(context=os.environ.get("MLOPS_KUBE_CONTEXT") or None)
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
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        try:
            if self._get(name) is None:
                self._custom().create_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, manifest)
            else:
                self._patch(name, {"spec": manifest["spec"]})
        except ApiException as exc:
            raise RolloutError(f"cannot create InferenceService {self.namespace}/{name}: {exc.reason}") from None

    def _delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._custom().delete_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise RolloutError(f"cannot delete InferenceService {self.namespace}/{name}: {exc.reason}") from None

    def _wait_ready(self, name: str) -> None:
        """Ready, with the latest created predictor revision ready too (the canary actually runs)."""
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            isvc = self._get(name) or {}
            status = isvc.get("status", {})
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
            predictor = status.get("components", {}).get("predictor", {})
            if ready and predictor.get("latestCreatedRevision") == predictor.get("latestReadyRevision"):
                return
            time.sleep(2)
        raise RolloutError(f"InferenceService {self.namespace}/{name} was not Ready within {self.ready_timeout_s:.0f} s")

    # -- the driver's verbs ------------------------------------------------------------
    def serve(self, version: str, image: str | None = None) -> dict:
        """Declare the model's InferenceService serving ``version`` alone (created if missing); wait for Ready.

        The first deployment of a model, and the way back to a known state:
        rollouts then move traffic from here by canary patches.
        """
        self._apply(inference_service(resolve_model(self.model, version), self.namespace, image))
        self._wait_ready(self.model)
        return self._get(self.model) or {}

    def deploy(self, version: str) -> None:
        """Nothing to start ahead: the canary revision appears with the first canary patch."""
        if self._get(self.model) is None:
            raise RolloutError(f"no InferenceService {self.namespace}/{self.model}; serve production first "
                               "(`mlops cluster e2e` does, or ClusterTraffic.serve)")

    def start_shadow(self, version: str) -> None:
        ref = resolve_model(self.model, version)
        self._apply(shadow_service(ref, self.namespace))
        self._wait_ready(ref.name + SHADOW_SUFFIX)
        target = ShadowTarget(predictor_url(ref.name + SHADOW_SUFFIX, self.namespace), version)
        write_routing(self.store, self.model, Routing(target))
        wait_for_shadow(self, target, timeout_s=60.0)

    def stop_shadow(self) -> None:
        write_routing(self.store, self.model, Routing())
        wait_for_shadow(self, None, timeout_s=60.0)
        self._delete(self.model + SHADOW_SUFFIX)

    def set_canary(self, stable: str, candidate: str, percent: int) -> None:
        self._patch(self.model, canary_patch(resolve_model(self.model, candidate), percent))
        self._wait_ready(self.model)

    def finish(self, winner: str, loser: str) -> None:
        current = self._serving_version()
        if current == winner:  # promote: the latest revision (the winner) takes everything
            self._patch(self.model, traffic_patch(None))
        else:  # roll back: traffic to the previous revision at once, then declare the winner again
            self._patch(self.model, traffic_patch(0))
            patch = canary_patch(resolve_model(self.model, winner), None)
            self._patch(self.model, patch)
        self._wait_ready(self.model)

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

