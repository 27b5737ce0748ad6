"""What a cluster would refuse or regret, found without a cluster: `mlops cluster lint`.

Each kustomization under manifests/ is built with ``kubectl kustomize`` (the
kubectl of requirements.lock) and every object is checked:

- strictly against its schema (mlops.cluster.k8s_schema: unknown fields, wrong types);
- images pinned: a tag that is not ``latest``, or a digest;
- containers non-root, without privilege escalation, dropping every
  capability, with CPU and memory requests and limits;
- no credentials in plain text: credential-named variables come from Secrets,
  ConfigMaps hold none, and the only Secret with data is the one an overlay
  is allowed to generate (the kind overlay's local-dev ``mlops-s3``);
- Kubeflow Pipelines' launcher config survives a re-apply of KFP (immutable),
  keeps the pipeline root on s3://, and our RBAC names only service accounts
  the pinned KFP release creates (see ``kfp_problems``).

The tests plant faults in built objects to prove each check bites.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mlops.cluster.k8s_schema import validate_manifest
from mlops.errors import ConfigError

CREDENTIAL_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def kubectl() -> str:
    """The locked kubectl (next to this interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if not found:
        raise ConfigError("kubectl not found: it comes with the project's environment (make venv)")
    return found


def build(kustomization_dir: str | Path) -> list[dict]:
    """The objects ``kubectl kustomize DIR`` renders (offline: our kustomizations reference local files only)."""
    done = subprocess.run([kubectl(), "kustomize", str(kustomization_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"kubectl kustomize {kustomization_dir} failed: {done.stderr.strip()}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def name_of(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{namespace}{meta.get('name', '?')}"


def workloads(obj: dict) -> list[tuple[str, dict, list[dict]]]:
    """(where, pod-level securityContext, containers) of every pod an object declares."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        pod = (spec.get("template") or {}).get("spec") or {}
        return [("", pod.get("securityContext") or {}, pod.get("containers", []) + pod.get("initContainers", []))]
    if kind in ("ServingRuntime", "ClusterServingRuntime"):
        return [("", spec.get("securityContext") or {}, spec.get("containers", []))]
    if kind == "InferenceService":
        found = []
        for component in ("predictor", "transformer", "explainer"):
            part = spec.get(component) or {}
            if part.get("containers"):
                found.append((f"{component}.", part.get("securityContext") or {}, part["containers"]))
        return found
    return []


def image_problem(image: str) -> str | None:
    """Why ``image`` is not pinned, or None."""
    if _DIGEST.search(image):
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag: pin a version (or a digest)"
    if last.rsplit(":", 1)[1] in ("latest", "stable", "main", "master"):
        return f"image {image!r} uses a moving tag: pin a version (or a digest)"
    return None


def _container_problems(where: str, pod_sc: dict, c: dict) -> list[str]:
    problems, sc = [], c.get("securityContext") or {}
    label = f"{where}container {c.get('name', '?')}"
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        problems.append(f"{label}: runAsNonRoot is not true")
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if user is None or user == 0:
        problems.append(f"{label}: runAsUser must name a non-root uid (got {user})")
    if sc.get("privileged") is True:
        problems.append(f"{label}: privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{label}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{label}: capabilities do not drop ALL")
    resources = c.get("resources") or {}
    for bound in ("requests", "limits"):
        missing = {"cpu", "memory"} - set(resources.get(bound) or {})
        if missing:
            problems.append(f"{label}: no {' or '.join(sorted(missing))} {bound}")
    if problem := image_problem(c.get("image", "")):
        problems.append(f"{label}: {problem}")
    for var in c.get("env") or []:
        if CREDENTIAL_NAME.search(var.get("name", "")) and "value" in var:
            problems.append(f"{label}: {var['name']} is a credential in plain text: take it from a Secret (valueFrom)")
    return problems


def _credential_problems(obj: dict, allowed_secrets: set[str]) -> list[str]:
    kind, data = obj.get("kind"), obj.get("data") or {}
    if kind == "ConfigMap":
        leaked = sorted(k for k in data if CREDENTIAL_NAME.search(k))
        return [f"holds credentials in a ConfigMap: {', '.join(leaked)} (use a Secret)"] if leaked else []
    if kind == "Secret" and (data or obj.get("stringData")):
        if (obj.get("metadata") or {}).get("name") not in allowed_secrets:
            return ["a Secret with data in the manifests: credentials belong to the cluster's secret store "
                    "(only the local-dev Secret of the kind overlay may be generated)"]
    return []


# Kubeflow Pipelines 2.17 (kubeflow/pipelines release-2.17): the service accounts it creates in its namespace
# (manifests/kustomize/base/pipeline/*-sa.yaml, base/cache/cache-sa.yaml, base/metadata/base/metadata-grpc-sa.yaml).
# Drivers and launchers run as pipeline-runner; there is no driver-agent or executor-plugin account.
KFP_NAMESPACE = "kubeflow"
KFP_SERVICE_ACCOUNTS = frozenset({
    "pipeline-runner", "ml-pipeline", "ml-pipeline-ui", "ml-pipeline-persistenceagent", "ml-pipeline-scheduledworkflow",
    "ml-pipeline-viewer-crd-service-account", "ml-pipeline-visualizationserver", "kubeflow-pipelines-viewer",
    "kubeflow-pipelines-container-builder", "kubeflow-pipelines-metadata-writer", "kubeflow-pipelines-cache",
    "metadata-grpc-server"})
KFP_LAUNCHER = "kfp-launcher"


def kfp_problems(obj: dict) -> list[str]:
    """What would break, or silently stop working, in Kubeflow Pipelines 2.17 because of ``obj``."""
    kind, meta, problems = obj.get("kind"), obj.get("metadata") or {}, []
    if kind == "ConfigMap" and meta.get("name") == KFP_LAUNCHER:
        # KFP's own kustomization defines kfp-launcher too (manifests/kustomize/base/pipeline/kfp-launcher-
        # configmap.yaml): re-applying KFP (an upgrade) would put its pipeline root back and drop our S3
        # provider without a word. An immutable ConfigMap makes that re-apply fail on it instead.
        if obj.get("immutable") is not True:
            problems.append("kfp-launcher is not immutable: re-applying Kubeflow Pipelines, whose own "
                            "kustomization defines kfp-launcher, would silently reset the pipeline root to its "
                            "default and drop the S3 provider; set immutable: true")
        data = obj.get("data") or {}
        root = data.get("defaultPipelineRoot", "")
        # The UI reads s3:// artifacts through the provider recorded with each artifact; its only allow-list,
        # ALLOWED_ARTIFACT_DOMAIN_REGEX (frontend/server/configs.ts:69, default '^.*$'), governs http(s)
        # sources (handlers/artifacts.ts:355-422), and 2.17 has no ALLOWED_ARTIFACT_ENDPOINTS.
        if not root.startswith("s3://"):
            problems.append(f"kfp-launcher defaultPipelineRoot {root!r} is not s3://...: artifacts must stay in "
                            "MinIO, read through the S3 provider")
        try:
            providers = yaml.safe_load(data.get("providers") or "") or {}
        except yaml.YAMLError as exc:
            providers = {}
            problems.append(f"kfp-launcher providers is not YAML: {exc}")
        provider = ((providers.get("s3") if isinstance(providers, dict) else None) or {}).get("default") or {}
        if not ((provider.get("credentials") or {}).get("secretRef") or {}).get("secretName"):
            problems.append("kfp-launcher has no s3 default provider with a credentials secretRef: launchers would "
                            "look for credentials in their own environment")
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        for subject in obj.get("subjects") or []:
            if (subject.get("kind") == "ServiceAccount" and subject.get("namespace") == KFP_NAMESPACE
                    and subject.get("name") not in KFP_SERVICE_ACCOUNTS):
                problems.append(f"subject ServiceAccount {KFP_NAMESPACE}/{subject.get('name')} does not exist in "
                                "Kubeflow Pipelines 2.17 (drivers and launchers run as pipeline-runner)")
    return problems


def lint_objects(objects: list[dict], allowed_secrets: set[str] = frozenset()) -> list[str]:
    """Every problem of ``objects``, each prefixed with the object it is in."""
    problems = []
    for obj in objects:
        where = name_of(obj)
        found = validate_manifest(obj)
        for path, pod_sc, containers in workloads(obj):
            for c in containers:
                found += _container_problems(path, pod_sc, c)
        if obj.get("kind") == "InferenceService":  # the predictor's model runs in the runtime's container
            model = ((obj.get("spec") or {}).get("predictor") or {}).get("model") or {}
            missing = [b for b in ("requests", "limits") if {"cpu", "memory"} - set((model.get("resources") or {}).get(b) or {})]
            found += [f"predictor.model: no cpu and memory {b}" for b in missing]
        found += _credential_problems(obj, set(allowed_secrets))
        found += kfp_problems(obj)
        problems += [p if p.startswith(where) else f"{where}: {p}" for p in found]
    return problems


LOCAL_DEV_SECRET = "mlops-s3"  # generated by base/platform-config from local-dev-s3.env


def allowed_secrets(kustomization_dir: Path) -> set[str]:
    """The bases and the kind overlay carry the local-dev Secret; the real-cluster overlay must not."""
    return set() if kustomization_dir.name == "cluster" else {LOCAL_DEV_SECRET}


def kustomizations(manifests: str | Path) -> list[Path]:
    return sorted(p.parent for p in Path(manifests).rglob("kustomization.yaml"))


def lint_tree(manifests: str | Path) -> dict[Path, list[str]]:
    """Build and lint every kustomization under ``manifests``; directory -> problems."""
    return {d: lint_objects(build(d), allowed_secrets(d)) for d in kustomizations(manifests)}
