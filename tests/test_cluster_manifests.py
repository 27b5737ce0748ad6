"""The kind / real-cluster path, checked without a cluster.

Every kustomization builds with the locked kubectl and passes `mlops cluster
lint`; the lint catches faults planted in built objects (or its silence would
mean nothing); the pieces agree with each other (settings -> Services, the
KFP launcher -> MinIO and its Secret, compiled pipelines -> the ConfigMap and
Secret they mount, NodePorts -> kind-config.yaml); upstream installs are
pinned; the scripts pass shellcheck and fail early with clear errors.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from mlops.cluster import kind, lint
from mlops.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
KIND_OVERLAY = MANIFESTS / "overlays" / "kind"
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def kind_objects() -> list[dict]:
    return lint.build(KIND_OVERLAY)


def _find(objects: list[dict], kind_: str, name: str, namespace: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind_ and o["metadata"]["name"] == name
             and (namespace is None or o["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"{kind_} {namespace}/{name}: found {len(found)}"
    return found[0]


# -- every kustomization builds and is clean --------------------------------------------------

@pytest.mark.parametrize("directory", lint.kustomizations(MANIFESTS), ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_every_kustomization_builds_offline_and_passes_lint(directory):
    objects = lint.build(directory)
    assert objects
    assert lint.lint_objects(objects, lint.allowed_secrets(directory)) == []


def test_the_overlays_hold_everything_the_issue_names(kind_objects):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in kind_objects}
    assert {("Deployment", "minio"), ("PersistentVolumeClaim", "minio-data"), ("Service", "minio"),
            ("Job", "mlops-bootstrap"), ("Deployment", "mlflow"), ("Deployment", "redis"),
            ("ConfigMap", "kfp-launcher"), ("ServingRuntime", "mlops-predictor"), ("ServiceAccount", "mlops-serving"),
            ("Role", "mlops-rollout"), ("RoleBinding", "mlops-rollout"), ("Namespace", "mlops")} <= kinds


@pytest.mark.parametrize("model, project", [("credit-default", "credit-default"), ("churn", "churn"),
                                            ("churn", "s3://mlops/projects/churn/" + "ef" * 32 + ".tar.gz")],
                         ids=["credit-default", "churn", "pushed-churn"])
def test_the_rollout_renders_objects_that_pass_lint(model, project):
    from mlops.registry.model_files import ModelRef
    from mlops.rollout import cluster

    ref = ModelRef(model, "7", "sha256:" + "ab" * 32, "s3://mlops/mlflow-artifacts/1/models/m-7/artifacts")
    isvc = cluster.inference_service(ref, "mlops", project, image="registry.example/mlops:1.2.3")
    shadow = cluster.shadow_service(ref, "mlops", project)
    rendered = [isvc, shadow, *yaml.safe_load_all((MANIFESTS / "base/serving/servingruntime.yaml").read_text())]
    assert lint.lint_objects(rendered) == []
    # The pods find the project the way pods can: by an example's name or a pushed archive's URI.
    for service in (isvc, shadow):
        env = {e["name"]: e["value"] for e in service["spec"]["predictor"]["model"]["env"]}
        assert (env["MLOPS_PROJECT"], env["MLOPS_MODEL_NAME"]) == (project, model)
    assert isvc["spec"]["transformer"]["containers"][0]["args"] == ["--project", project, "--model-name", model]


def test_the_cluster_driver_takes_only_a_project_pods_can_load(tmp_path):
    from mlops.project import resolve_project
    from mlops.rollout.cluster import ClusterTraffic
    from tests.projects import CHURN, CREDIT, renamed

    pushed = "s3://mlops/projects/churn/" + "ef" * 32 + ".tar.gz"
    for project, source in (("credit-default", "credit-default"), ("churn", "churn"), (pushed, pushed),
                            (CHURN, "churn"), (resolve_project("credit-default"), "credit-default")):
        assert ClusterTraffic(None, "m", project, namespace="mlops").project == source
    folder = renamed(CREDIT, tmp_path, "team-model")  # a project folder on this machine: no pod can read it
    for project in (folder, str(folder.root), str(CHURN.root), "examples/churn", "./churn"):
        with pytest.raises(ConfigError, match=r"is a folder on this machine, which pods cannot read: push it "
                                              r"\(`mlops project push .*`\) and use the s3:// URI it prints"):
            ClusterTraffic(None, "m", project, namespace="mlops")


# -- the lint catches planted faults ------------------------------------------------------------

def _minio(objects):
    return _find(objects, "Deployment", "minio")["spec"]["template"]["spec"]


def _container(objects):
    return _minio(objects)["containers"][0]


PLANTED = {
    "misspelt field": (lambda o: _container(o).update(imagePullPolicyy="IfNotPresent"),
                       "imagePullPolicyy: unknown field of V1Container"),
    "string for an int": (lambda o: _find(o, "Deployment", "minio")["spec"].update(replicas="1"),
                          "replicas: expected int, got str"),
    "int for a string": (lambda o: _container(o)["env"][2].update(value=0), "value: expected str, got int"),
    "unpinned image": (lambda o: _container(o).update(image="quay.io/minio/minio"), "has no tag"),
    "latest image": (lambda o: _container(o).update(image="redis:latest"), "moving tag"),
    "root container": (lambda o: _container(o)["securityContext"].update(runAsUser=0),
                       "runAsUser must name a non-root uid (got 0)"),
    "root allowed": (lambda o: [_container(o)["securityContext"].pop("runAsNonRoot"),
                                _minio(o)["securityContext"].pop("runAsNonRoot")], "runAsNonRoot is not true"),
    "privilege escalation": (lambda o: _container(o)["securityContext"].update(allowPrivilegeEscalation=True),
                             "allowPrivilegeEscalation is not false"),
    "capabilities kept": (lambda o: _container(o)["securityContext"].pop("capabilities"), "do not drop ALL"),
    "no memory limit": (lambda o: _container(o)["resources"]["limits"].pop("memory"), "no memory limits"),
    "no requests": (lambda o: _container(o)["resources"].pop("requests"), "no cpu or memory requests"),
    "plaintext credential": (lambda o: _container(o)["env"].append({"name": "MINIO_ROOT_PASSWORD", "value": "x"}),
                             "MINIO_ROOT_PASSWORD is a credential in plain text"),
    "credential in a ConfigMap": (lambda o: _find(o, "ConfigMap", "mlops-config", "mlops")["data"].update(
        AWS_SECRET_ACCESS_KEY="x"), "holds credentials in a ConfigMap: AWS_SECRET_ACCESS_KEY"),
    "a second Secret": (lambda o: o.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                                            "stringData": {"password": "x"}}), "Secret/db: a Secret with data"),
    "runtime port as string": (lambda o: _find(o, "ServingRuntime", "mlops-predictor")["spec"]["containers"][0]
                               ["ports"][0].update(containerPort="8080"), "containerPort: expected int, got str"),
    "unknown runtime field": (lambda o: _find(o, "ServingRuntime", "mlops-predictor")["spec"].update(
        protocolVersion=["v2"]), "protocolVersion: unknown field of V1alpha1ServingRuntimeSpec"),
    # Kubeflow Pipelines 2.17 (issue 16): a re-apply of KFP must not reset the launcher; RBAC names real accounts.
    "mutable launcher config": (lambda o: _launcher(o).pop("immutable"),
                                "kfp-launcher is not immutable: re-applying Kubeflow Pipelines"),
    "pipeline root off S3": (lambda o: _launcher(o)["data"].update(defaultPipelineRoot="minio://mlpipeline/v2"),
                             "defaultPipelineRoot 'minio://mlpipeline/v2' is not s3://"),
    "launcher without credentials": (lambda o: _launcher(o)["data"].update(providers="s3:\n  default: {}\n"),
                                     "no s3 default provider with a credentials secretRef"),
    "no such KFP account": (lambda o: _find(o, "RoleBinding", "mlops-artifact-credentials", "kubeflow")["subjects"]
                            .append({"kind": "ServiceAccount", "name": "ml-pipeline-driver-agent-executor-plugin",
                                     "namespace": "kubeflow"}),
                            "ServiceAccount kubeflow/ml-pipeline-driver-agent-executor-plugin does not exist in "
                            "Kubeflow Pipelines 2.17"),
}


def _launcher(objects):
    return _find(objects, "ConfigMap", "kfp-launcher", "kubeflow")


@pytest.mark.parametrize("fault", list(PLANTED))
def test_lint_catches_a_planted_fault(kind_objects, fault):
    plant, expected = PLANTED[fault]
    broken = copy.deepcopy(kind_objects)
    plant(broken)
    problems = lint.lint_objects(broken, lint.allowed_secrets(KIND_OVERLAY))
    assert any(expected in p for p in problems), problems


def test_lint_of_a_tree_reports_a_kustomization_that_does_not_build(tmp_path):
    bad = tmp_path / "manifests" / "broken"
    bad.mkdir(parents=True)
    (bad / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(ConfigError, match="kubectl kustomize .*broken failed"):
        lint.lint_tree(tmp_path / "manifests")


def test_mlops_cluster_lint_exits_nonzero_on_a_fault(tmp_path):
    overlay = tmp_path / "manifests" / "bad"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources:\n  - pod.yaml\n")
    deployment = copy.deepcopy(_find(lint.build(MANIFESTS / "base/redis"), "Deployment", "redis"))
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "redis"
    (overlay / "pod.yaml").write_text(yaml.safe_dump(deployment))
    done = subprocess.run([BIN / "mlops", "cluster", "lint", str(tmp_path / "manifests")], capture_output=True,
                          text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "image 'redis' has no tag" in done.stdout


# -- the pieces agree ---------------------------------------------------------------------------

def _service_port(objects, url: str) -> tuple[dict, int]:
    """The Service an in-cluster URL (scheme://name.namespace.svc.cluster.local:port) reaches."""
    parsed = urlparse(url if "://" in url else "tcp://" + url)
    name, namespace = parsed.hostname.split(".")[:2]
    assert parsed.hostname == f"{name}.{namespace}.svc.cluster.local", url
    service = _find(objects, "Service", name, namespace)
    assert parsed.port in [p["port"] for p in service["spec"]["ports"]], url
    return service, parsed.port


def test_the_settings_point_at_services_of_the_overlay(kind_objects):
    for namespace in ("kubeflow", "mlops"):
        config = _find(kind_objects, "ConfigMap", "mlops-config", namespace)["data"]
        _service_port(kind_objects, config["MLOPS_S3_ENDPOINT"])
        _service_port(kind_objects, config["MLFLOW_TRACKING_URI"])
        _service_port(kind_objects, config["MLOPS_FEAST_REDIS"])
        assert config["MLOPS_FEAST_REGISTRY"].startswith(f"s3://{config['MLOPS_BUCKET']}/")


def test_every_reference_to_a_configmap_secret_or_claim_resolves(kind_objects):
    def has(kind_, name, namespace, key=None):
        found = [o for o in kind_objects if o["kind"] == kind_ and o["metadata"]["name"] == name
                 and o["metadata"].get("namespace") == namespace]
        return bool(found) and (key is None or key in (found[0].get("data") or {}))

    checked = 0
    for obj in kind_objects:
        namespace = obj["metadata"].get("namespace")
        for _, _, containers in lint.workloads(obj):
            for c in containers:
                for source in c.get("envFrom", []):
                    for kind_, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                        if ref in source:
                            assert has(kind_, source[ref]["name"], namespace), (lint.name_of(obj), source)
                            checked += 1
                for var in c.get("env", []):
                    for kind_, ref in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                        if ref in var.get("valueFrom", {}):
                            r = var["valueFrom"][ref]
                            assert has(kind_, r["name"], namespace, r["key"]), (lint.name_of(obj), var)
                            checked += 1
        pod = (obj.get("spec") or {}).get("template", {}).get("spec", {})
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert has("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], namespace)
                checked += 1
    assert checked >= 10  # MinIO, MLflow, Redis and the bootstrap Job: none may go unchecked


def test_every_service_selects_pods_of_the_overlay_or_a_known_upstream_component(kind_objects):
    upstream = {"kfp-ui": {"app": "ml-pipeline-ui"}, "inference-gateway": {"app": "3scale-kourier-gateway"}}
    pods = [(o["metadata"].get("namespace"), o["spec"]["template"]["metadata"]["labels"])
            for o in kind_objects if o["kind"] in ("Deployment", "Job")]
    for svc in (o for o in kind_objects if o["kind"] == "Service"):
        name, selector = svc["metadata"]["name"], svc["spec"]["selector"]
        if name in upstream:
            assert selector == upstream[name]
            continue
        assert any(ns == svc["metadata"]["namespace"] and selector.items() <= labels.items() for ns, labels in pods), \
            f"Service {name} selects no pod: {selector}"
        for port in svc["spec"]["ports"]:  # a named targetPort must be a port of the selected containers
            if isinstance(port["targetPort"], str):
                containers = [c for o in kind_objects if o["kind"] == "Deployment"
                              and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()
                              for c in o["spec"]["template"]["spec"]["containers"]]
                assert any(p["name"] == port["targetPort"] for c in containers for p in c.get("ports", [])), name


def test_the_kfp_launcher_keeps_artifacts_in_minio_with_the_pipelines_secret(kind_objects):
    launcher = _find(kind_objects, "ConfigMap", "kfp-launcher", "kubeflow")["data"]
    config = _find(kind_objects, "ConfigMap", "mlops-config", "kubeflow")["data"]
    root = urlparse(launcher["defaultPipelineRoot"])
    assert root.scheme == "s3" and root.netloc == config["MLOPS_BUCKET"]  # the bucket the bootstrap creates
    s3 = yaml.safe_load(launcher["providers"])["s3"]["default"]
    assert s3["endpoint"] == config["MLOPS_S3_ENDPOINT"] and s3["disableSSL"] is True and s3["forcePathStyle"] is True
    ref = s3["credentials"]["secretRef"]
    assert s3["credentials"]["fromEnv"] is False
    secret = _find(kind_objects, "Secret", ref["secretName"], "kubeflow")  # where the pipelines run
    assert {ref["accessKeyKey"], ref["secretKeyKey"]} <= set(secret["data"])
    role = _find(kind_objects, "Role", "mlops-artifact-credentials", "kubeflow")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [ref["secretName"]],
                              "verbs": ["get"]}]
    binding = _find(kind_objects, "RoleBinding", "mlops-artifact-credentials", "kubeflow")
    assert {"pipeline-runner", "ml-pipeline-ui"} <= {s["name"] for s in binding["subjects"]}


def test_kserve_finds_minio_through_the_serving_account(kind_objects):
    account = _find(kind_objects, "ServiceAccount", "mlops-serving", "mlops")
    secret = _find(kind_objects, "Secret", account["secrets"][0]["name"], "mlops")
    config = _find(kind_objects, "ConfigMap", "mlops-config", "mlops")["data"]
    annotations = secret["metadata"]["annotations"]
    assert "http://" + annotations["serving.kserve.io/s3-endpoint"] == config["MLOPS_S3_ENDPOINT"]
    assert annotations["serving.kserve.io/s3-usehttps"] == "0"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret["data"])  # KServe's default key names


def test_compiled_pipelines_mount_what_the_overlay_provides_and_use_the_loaded_image(kind_objects):
    from components import DEFAULT_IMAGE

    ours = [c["image"] for o in kind_objects for _, _, cs in lint.workloads(o) for c in cs
            if c["image"].startswith("mlops-suite/")]
    assert ours and set(ours) == {DEFAULT_IMAGE}  # the one image `make kind-up` builds and loads
    for path in sorted((ROOT / "pipelines/compiled").glob("*.yaml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for name, executor in executors.items():
            for mount in executor.get("configMapAsEnv", []):
                data = _find(kind_objects, "ConfigMap", mount["configMapName"], "kubeflow")["data"]
                assert {kv["configMapKey"] for kv in mount["keyToEnv"]} <= set(data), (path.name, name)
            for mount in executor.get("secretAsEnv", []):
                data = _find(kind_objects, "Secret", mount["secretName"], "kubeflow")["data"]
                assert {kv["secretKey"] for kv in mount["keyToEnv"]} <= set(data), (path.name, name)


def test_the_local_dev_credentials_live_in_one_file_only():
    from mlops.cluster.e2e import cluster_settings

    settings = cluster_settings(ROOT)
    values = [settings["AWS_ACCESS_KEY_ID"], settings["AWS_SECRET_ACCESS_KEY"]]
    holders = []
    for base in ("manifests", "pipelines", "components", "src", "scripts", "serving"):
        for path in (ROOT / base).rglob("*"):
            if path.is_file() and path.suffix in (".yaml", ".yml", ".py", ".sh", ".env", ".json", ".md", ""):
                text = path.read_text(errors="ignore")
                if any(v in text for v in values):
                    holders.append(str(path.relative_to(ROOT)))
    assert holders == ["manifests/base/platform-config/local-dev-s3.env"]


def test_the_real_cluster_overlay_generates_no_secret_and_seeds_no_demo_data():
    objects = lint.build(MANIFESTS / "overlays" / "cluster")
    assert not [o for o in objects if o["kind"] == "Secret"]
    job = _find(objects, "Job", "mlops-bootstrap")["spec"]["template"]["spec"]["containers"][0]
    assert "--no-demo-data" in job["args"]
    assert not [o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "NodePort"]


def _bootstrap_args(overlay: str) -> list[str]:
    job = _find(lint.build(MANIFESTS / "overlays" / overlay), "Job", "mlops-bootstrap")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlops", "cluster", "bootstrap"]
    return container["args"]


def test_the_bootstrap_job_seeds_the_example_project_it_names_and_the_cli_reads_its_args():
    from mlops.cli.main import build_parser

    kind_args, cluster_args = _bootstrap_args("kind"), _bootstrap_args("cluster")
    assert kind_args == ["--project", "credit-default", "--wait", "300"]
    assert cluster_args == [*kind_args, "--no-demo-data"]
    for args in (kind_args, cluster_args):
        parsed = build_parser().parse_args(["cluster", "bootstrap", *args])
        assert (parsed.project, parsed.wait, parsed.no_demo_data) == ("credit-default", 300.0, "--no-demo-data" in args)


def test_the_kind_e2e_script_passes_the_project_to_the_e2e_command():
    script = (ROOT / "scripts" / "kind-e2e.sh").read_text()
    call = next(line for line in script.splitlines() if "cluster e2e" in line and "mlops.cli" in line)
    assert '--project "${MLOPS_PROJECT:-credit-default}"' in call
    from mlops.cli.main import build_parser

    parsed = build_parser().parse_args(["cluster", "e2e", "--project", "churn", "--root", ".", "--cluster", "mlops"])
    assert parsed.project == "churn"


# -- kind-config.yaml, NodePorts and upstream pins ----------------------------------------------

def test_every_kind_port_mapping_is_a_nodeport_of_the_overlay_on_loopback():
    ports = kind.host_ports(ROOT)
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    mappings = config["nodes"][0]["extraPortMappings"]
    assert sorted(m["containerPort"] for m in mappings) == sorted(p.node_port for p in ports.values())
    assert {m["listenAddress"] for m in mappings} == {"127.0.0.1"}
    assert {"kfp-ui", "inference-gateway", "mlflow-ui", "minio-s3", "minio-console"} <= set(ports)


def test_a_nodeport_kind_does_not_map_is_named(tmp_path):
    (tmp_path / "manifests/overlays/kind").mkdir(parents=True)
    (tmp_path / "kind-config.yaml").write_text((ROOT / "kind-config.yaml").read_text().replace("30083", "30093"))
    (tmp_path / kind.NODEPORTS).write_text((ROOT / kind.NODEPORTS).read_text())
    with pytest.raises(ConfigError, match="minio-s3 uses node port 30083"):
        kind.host_ports(tmp_path)


def _upstream() -> dict[str, str]:
    done = subprocess.run(["bash", "-c", f"set -a; source {MANIFESTS / 'upstream.env'}; env -0"],
                          capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    env = dict(line.split("=", 1) for line in done.stdout.split("\0") if "=" in line)
    names = re.findall(r"^([A-Z_]+)=", (MANIFESTS / "upstream.env").read_text(), re.MULTILINE)
    return {n: env[n] for n in names}


def _installed(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def test_upstream_installs_are_pinned_releases_matching_the_locked_sdks():
    pins = _upstream()
    versions = {k: v for k, v in pins.items() if k.endswith("_VERSION")}
    sources = {k: v for k, v in pins.items() if k.endswith(("_URL", "_KUSTOMIZATION"))}
    assert len(sources) == 8
    for name, source in sources.items():
        assert any(v in source for v in versions.values()), f"{name} names no pinned version: {source}"
        assert not re.search(r"latest|master|/main\b|ref=main", source), f"{name} follows a moving target: {source}"
        assert source.startswith(("https://github.com/", "github.com/")), source
    assert pins["KSERVE_VERSION"] == "v" + _installed("kserve")
    assert pins["KFP_VERSION"].split(".")[:2] == _installed("kfp").split(".")[:2]
    assert pins["KNATIVE_SERVING_VERSION"].split(".")[:2] == pins["KNATIVE_KOURIER_VERSION"].split(".")[:2]


def test_the_kind_node_is_pinned_by_digest_within_the_locked_kubectls_skew():
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    image = config["nodes"][0]["image"]
    assert lint.image_problem(image) is None and "@sha256:" in image
    node_minor = int(re.match(r"kindest/node:v1\.(\d+)\.", image).group(1))
    client = subprocess.run([BIN / "kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True,
                            check=True)
    kubectl_minor = int(yaml.safe_load(client.stdout)["clientVersion"]["minor"].rstrip("+"))
    assert abs(kubectl_minor - node_minor) <= 1, "kubectl supports one minor version of skew with the API server"
    assert f"v1.{node_minor}" in (MANIFESTS / "base/namespace/namespace.yaml").read_text()  # pod-security version
    assert _upstream()["KIND_VERSION"] in (ROOT / "kind-config.yaml").read_text()


def test_the_component_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    uid = int(users[-1].split(":")[0])
    assert uid == 1000  # what the manifests' runAsUser says for our image


# -- scripts ------------------------------------------------------------------------------------

def test_the_scripts_pass_shellcheck():
    assert len(SCRIPTS) == 4
    done = subprocess.run([BIN / "shellcheck", "-x", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_and_manifests_hold_no_placeholder():
    pattern = re.compile(r"\b(TODO|FIXME|XXX|TBD)\b|placeholder|changeme|<your", re.IGNORECASE)
    files = [*SCRIPTS, *MANIFESTS.rglob("*.yaml"), MANIFESTS / "upstream.env", ROOT / "kind-config.yaml"]
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line) and "<registry>" not in line]
    assert hits == []


def _path_with_only(tmp_path: Path) -> Path:
    """A PATH directory holding just the plain tools the scripts use besides the ones under test."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("dirname", "awk", "grep"):
        os.symlink(subprocess.run(["bash", "-c", f"command -v {name}"], capture_output=True, text=True,
                                  check=True).stdout.strip(), tools / name)
    return tools


def _fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


@pytest.mark.parametrize("missing, expected", [
    ("docker", "docker not found on PATH. Install Docker"),
    ("docker-daemon", "its daemon does not answer"),
    ("kind", "kind not found on PATH. Install kind v0.33.0"),
    ("kubectl", "not found on PATH. Run through make (make kind-up), which uses the kubectl locked"),
])
@pytest.mark.parametrize("script", ["kind-up.sh", "kind-e2e.sh"])
def test_the_scripts_stop_before_doing_anything_when_a_tool_is_missing(tmp_path, script, missing, expected):
    """Real scripts with a PATH of only what the case allows: the preflight must name what is missing."""
    tools = _path_with_only(tmp_path)
    calls = tmp_path / "calls"
    if missing != "docker":
        _fake_tool(tools, "docker", f"echo docker \"$@\" >> {calls}; exit {1 if missing == 'docker-daemon' else 0}")
    if missing not in ("docker", "docker-daemon", "kind"):
        _fake_tool(tools, "kind", f"echo kind \"$@\" >> {calls}; [ \"$1\" = version ] && echo 'kind v0.33.0 go1.25'")
    env = {"PATH": str(tools), "KUBECTL": str(tmp_path / "no-kubectl"), "PYTHON": sys.executable,
           "HOME": str(tmp_path)}
    done = subprocess.run(["/bin/bash", str(ROOT / "scripts" / script)], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    made = calls.read_text().split("\n") if calls.exists() else []
    assert not [c for c in made if c and not c.startswith(("docker info", "kind version"))], made


def test_kind_down_needs_only_kind_and_says_when_there_is_nothing_to_delete(tmp_path):
    tools = _path_with_only(tmp_path)
    _fake_tool(tools, "kind", "[ \"$1\" = version ] && echo 'kind v0.33.0'; [ \"$1\" = get ] && echo other; exit 0")
    done = subprocess.run(["/bin/bash", str(ROOT / "scripts/kind-down.sh")], capture_output=True, text=True,
                          env={"PATH": str(tools), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "no kind cluster named mlops: nothing to delete" in done.stdout
