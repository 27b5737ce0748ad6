"""The cluster side of serving, checked without a cluster: manifests and the rollout's patches.

Every object is validated strictly against the kserve SDK's and the
kubernetes client's model classes; the checker itself must catch planted
faults, or its silence would mean nothing.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlops.cluster.k8s_schema import validate, validate_manifest
from mlops.registry.model_files import ModelRef
from mlops.rollout import cluster
from pipelines.compile import SERVING_MANIFESTS

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "manifests" / "base" / "serving"
REF = ModelRef("credit-default", "7", "sha256:" + "ab" * 32, "s3://mlops/mlflow-artifacts/1/models/m-7/artifacts")
CHURN_REF = ModelRef("churn", "3", "sha256:" + "cd" * 32, "s3://mlops/mlflow-artifacts/2/models/m-3/artifacts")
PUSHED = "s3://mlops/projects/churn/" + "ef" * 32 + ".tar.gz"  # a pushed project, as pods name it
# (model ref, how the pods name the project): both example projects, and a pushed archive
SERVED = [pytest.param(REF, "credit-default", id="credit-default"), pytest.param(CHURN_REF, "churn", id="churn"),
          pytest.param(CHURN_REF, PUSHED, id="pushed-churn")]


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", sorted(p for p in SERVING.glob("*.yaml") if p.name != "kustomization.yaml"),
                         ids=lambda p: p.name)
def test_every_serving_manifest_validates_strictly(path):
    for doc in _docs(path):
        assert validate_manifest(doc) == []


@pytest.mark.parametrize("plant, expected", [
    (lambda d: d["spec"]["predictor"].update(canaryTrafficPercnt=5), "unknown field of V1beta1PredictorSpec"),
    (lambda d: d["spec"]["predictor"].update(minReplicas="1"), "minReplicas: expected int, got str"),
    (lambda d: d["spec"]["predictor"]["model"]["env"][0].update(value=3), "env[0].value: expected str, got int"),
    (lambda d: d["spec"]["transformer"]["containers"][0].update(args="--model-name x"), "args: expected a list"),
    (lambda d: d["spec"]["predictor"].update(minReplicas=True), "expected int, got bool"),
])
def test_the_checker_catches_planted_faults(plant, expected):
    doc = _docs(SERVING / "inferenceservice.yaml")[0]
    broken = copy.deepcopy(doc)
    plant(broken)
    problems = validate_manifest(broken)
    assert any(expected in p for p in problems), problems


def test_containers_run_as_non_root_with_requests_and_limits_and_pinned_images():
    for name in SERVING_MANIFESTS:
        doc = _docs(SERVING / name)[0]
        specs = [doc["spec"], doc["spec"].get("transformer", {})]
        containers = [c for s in specs for c in s.get("containers", [])]
        assert containers
        for c in containers:
            assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["runAsUser"] != 0
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"])
            assert ":" in c["image"] and not c["image"].endswith(":latest")
    model = _docs(SERVING / "inferenceservice.yaml")[0]["spec"]["predictor"]["model"]
    assert {"cpu", "memory"} <= set(model["resources"]["limits"])


def test_the_storage_initializer_finds_minio_through_the_service_account():
    account = _docs(SERVING / "serviceaccount.yaml")[0]
    kustomization = (SERVING / "kustomization.yaml").read_text()
    assert {"name": "mlops-s3"} in account["secrets"]
    assert "serving.kserve.io/s3-endpoint" in kustomization and 'serving.kserve.io/s3-usehttps: "0"' in kustomization
    isvc = _docs(SERVING / "inferenceservice.yaml")[0]
    assert isvc["spec"]["predictor"]["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize("ref, project", SERVED)
def test_the_filled_inference_service_and_shadow_validate_and_carry_the_version(ref, project):
    isvc = cluster.inference_service(ref, "mlops", project, image="registry.example/mlops:1.2.3")
    assert validate(isvc, "V1beta1InferenceService") == []
    assert isvc["metadata"]["name"] == ref.name
    model = isvc["spec"]["predictor"]["model"]
    assert model["storageUri"] == ref.storage_uri
    assert {e["name"]: e["value"] for e in model["env"]} == {
        "MLOPS_PROJECT": project, "MLOPS_MODEL_NAME": ref.name, "MLOPS_MODEL_VERSION": ref.version,
        "MLOPS_MODEL_DIGEST": ref.digest}
    transformer = isvc["spec"]["transformer"]["containers"][0]
    assert transformer["image"] == "registry.example/mlops:1.2.3"
    assert transformer["args"] == ["--project", project, "--model-name", ref.name]
    shadow = cluster.shadow_service(ref, "mlops", project)
    assert validate(shadow, "V1beta1InferenceService") == []
    assert shadow["metadata"]["name"] == f"{ref.name}-shadow" and "transformer" not in shadow["spec"]
    assert {e["name"]: e["value"] for e in shadow["spec"]["predictor"]["model"]["env"]}["MLOPS_PROJECT"] == project
    assert cluster.predictor_url(f"{ref.name}-shadow", "mlops") == \
        f"http://{ref.name}-shadow-predictor.mlops.svc.cluster.local"


@pytest.mark.parametrize("patch", [cluster.canary_patch(REF, 25, "credit-default"),
                                   cluster.canary_patch(REF, None, "credit-default"),
                                   cluster.canary_patch(CHURN_REF, 25, "churn"),
                                   cluster.canary_patch(CHURN_REF, 10, PUSHED),
                                   cluster.traffic_patch(0), cluster.traffic_patch(None)],
                         ids=["canary-25", "declare-100", "churn-canary-25", "pushed-canary-10", "all-back", "promote"])
def test_rollout_patches_are_valid_partial_inference_services(patch):
    assert validate(patch, "V1beta1InferenceService") == []


@pytest.mark.parametrize("ref, project", SERVED)
def test_a_canary_step_moves_the_predictor_and_its_share_only(ref, project):
    patch = cluster.canary_patch(ref, 5, project)
    assert patch == {"spec": {"predictor": {"canaryTrafficPercent": 5, "model": {
        "storageUri": ref.storage_uri, "env": [{"name": "MLOPS_PROJECT", "value": project},
                                               {"name": "MLOPS_MODEL_NAME", "value": ref.name},
                                               {"name": "MLOPS_MODEL_VERSION", "value": ref.version},
                                               {"name": "MLOPS_MODEL_DIGEST", "value": ref.digest}]}}}}
