"""Our code of the cluster path, run here against real servers: the bootstrap Job's command on a real
S3 server, MLflow started with the Deployment's own arguments, and the gateway's Host header on the wire."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from mlops.cluster import bootstrap, e2e, kind, lint
from mlops.errors import ConfigError, StorageError
from mlops.platform.local import free_ports
from mlops.platform.settings import S3Settings
from mlops.platform.storage import ObjectStore

ROOT = Path(__file__).resolve().parent.parent


# -- mlops cluster bootstrap --------------------------------------------------------------------

@pytest.mark.parametrize("example, rows", [("credit-default", 1000), ("churn", 300)])
def test_bootstrap_creates_the_buckets_and_seeds_the_demo_data_once(store, tmp_path, example, rows):
    from mlops.platform.datasets import read_table
    from mlops.project.data import generate_data
    from tests.projects import renamed

    project = renamed(example, tmp_path, f"bootstrap-{example}")  # its own prefix: no other test's data
    uri = f"s3://mlops/datasets/{project.names.prefix}/train.parquet"
    first = bootstrap.bootstrap(store, buckets=["mlops-bootstrap-extra"], project=project, rows=rows, seed=3,
                                progress=lambda _: None)
    assert first.buckets == [store.bucket, "mlops-bootstrap-extra"] and first.seeded == uri
    assert store.client.bucket_exists("mlops-bootstrap-extra")
    seeded = read_table(uri, store)
    assert len(seeded) == rows and project.entity.key in seeded.columns and project.label.column in seeded.columns
    assert seeded.equals(generate_data(project, rows, seed=3))  # the project's own generator, nothing else
    etag = store.stat(f"datasets/{project.names.prefix}/train.parquet").etag
    lines: list[str] = []
    again = bootstrap.bootstrap(store, buckets=["mlops-bootstrap-extra"], project=project, rows=rows + 500, seed=4,
                                progress=lines.append)
    assert again.seeded is None and store.stat(f"datasets/{project.names.prefix}/train.parquet").etag == etag
    assert f"{uri}: already there, left as it is" in lines


def test_bootstrap_seeds_where_it_is_told_and_creates_buckets_only_without_a_project(store, tmp_path):
    from tests.projects import CHURN

    uri = "s3://mlops/datasets/bootstrap-test/elsewhere.parquet"
    seeded = bootstrap.bootstrap(store, buckets=[], project=CHURN, seed_uri=uri, rows=50, progress=lambda _: None)
    assert seeded.seeded == uri and store.exists("datasets/bootstrap-test/elsewhere.parquet")
    bare = bootstrap.bootstrap(store, buckets=["mlops-bootstrap-bare"], progress=lambda _: None)
    assert bare.seeded is None and bare.buckets == [store.bucket, "mlops-bootstrap-bare"]


@pytest.mark.parametrize("example", ["credit-default", "churn"])
def test_the_seeded_data_is_what_the_training_pipeline_reads_by_default(example):
    from mlops.project import dataset_uri, resolve_project

    project = resolve_project(example)
    # The training pipeline's data_uri defaults to "" and its tasks read dataset_uri(project, "", bucket).
    import inspect

    from pipelines.training import training_pipeline

    assert inspect.signature(training_pipeline.pipeline_func).parameters["data_uri"].default == ""
    assert dataset_uri(project, "", "mlops") == f"s3://mlops/datasets/{project.names.prefix}/train.parquet"
    assert dataset_uri(project, " s3://b/k.parquet ", "mlops") == "s3://b/k.parquet"


def test_bootstrap_waits_for_a_store_that_is_not_up_then_names_it():
    port = free_ports({"s3": 9000})["s3"]
    dead = ObjectStore(S3Settings(f"127.0.0.1:{port}", False, "k", "s"), timeout=0.5, retries=0)
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"did not answer within 2 s: .*unreachable"):
        bootstrap.bootstrap(dead, buckets=[], wait_s=2.0, progress=lines.append)
    assert 2.0 <= time.monotonic() - started < 10 and lines and "waiting for the object store" in lines[0]


def test_bootstrap_does_not_wait_on_rejected_credentials(platform):
    s3 = platform.s3_settings()
    wrong = ObjectStore(S3Settings(s3.endpoint, s3.secure, s3.access_key, "not-the-secret"))
    started = time.monotonic()
    with pytest.raises(StorageError, match="rejected the credentials"):
        bootstrap.bootstrap(wrong, buckets=[], wait_s=60.0, progress=lambda _: None)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("args, message", [
    (["--project", "churn", "--rows", "0"], "error: demo data rows must be at least 1, got 0"),
    (["--project", "credit-default", "--rows", "-5"], "error: demo data rows must be at least 1, got -5"),
    (["--rows", "100"], "error: name the project with --project (or MLOPS_PROJECT): an example (churn, credit-default)"),
    (["--project", "no-such-example"], "error: no example project named 'no-such-example'"),
], ids=["zero-rows", "negative-rows", "no-project", "unknown-project"])
def test_the_bootstrap_command_refuses_bad_arguments_clearly(tmp_path, args, message):
    # An object store that is not there: the arguments are refused before it is waited for.
    env = {**os.environ, "MLOPS_S3_ENDPOINT": f"127.0.0.1:{free_ports({'s3': 9000})['s3']}",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "MLOPS_HOME": str(tmp_path)}
    env.pop("MLOPS_PROJECT", None)
    started = time.monotonic()
    done = subprocess.run([Path(sys.executable).parent / "mlops", "cluster", "bootstrap", *args, "--wait", "60"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "waiting for the object store" not in done.stdout
    assert time.monotonic() - started < 50


# -- MLflow with the Deployment's arguments ---------------------------------------------------------

def test_mlflow_answers_every_name_the_cluster_and_kind_reach_it_by_and_refuses_others(tmp_path):
    deployment = next(o for o in lint.build(ROOT / "manifests/base/mlflow") if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    allowed = args[args.index("--allowed-hosts") + 1]
    port = free_ports({"mlflow": 5000})["mlflow"]
    # The manifest's command and flags; only storage and the listening address are this machine's.
    args[args.index("--backend-store-uri") + 1] = f"sqlite:///{tmp_path}/mlflow.db"
    args[args.index("--artifacts-destination") + 1] = str(tmp_path / "artifacts")
    args[args.index("--host") + 1], args[args.index("--port") + 1] = "127.0.0.1", str(port)
    args[args.index("--workers") + 1] = "1"
    command = [str(Path(sys.executable).parent / container["command"][0]), *container["command"][1:], *args]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                              env={**os.environ, "MLFLOW_S3_ENDPOINT_URL": ""})
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        config = next(o for o in lint.build(ROOT / "manifests/overlays/kind")
                      if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "mlops-config")["data"]
        in_cluster = config["MLFLOW_TRACKING_URI"].split("://", 1)[1]
        from_kind = f"127.0.0.1:{kind.host_ports(ROOT)['mlflow-ui'].port}"
        for host in (in_cluster, "mlflow:5000", "mlflow.mlops:5000", from_kind, "localhost:5000"):
            assert httpx.get(url, headers={"Host": host}, timeout=10).status_code == 200, (host, allowed)
        assert httpx.get(url, headers={"Host": "attacker.example.com"}, timeout=10).status_code == 403
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- the end-to-end check's own pieces ---------------------------------------------------------------

def test_the_e2e_reaches_the_cluster_through_kinds_ports():
    endpoints = e2e.Endpoints.from_kind(ROOT)
    assert endpoints == e2e.Endpoints(kfp="http://127.0.0.1:8080", gateway="http://127.0.0.1:8081",
                                      mlflow="http://127.0.0.1:8082", s3="http://127.0.0.1:8083")


def test_connect_points_every_setting_at_the_cluster(monkeypatch):
    touched = ("MLOPS_HOME", "MLOPS_S3_ENDPOINT", "MLOPS_BUCKET", "MLFLOW_TRACKING_URI", "MLOPS_FEAST_REGISTRY",
               "MLOPS_KUBE_CONTEXT", "MLOPS_SERVING_NAMESPACE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    for key in touched:
        monkeypatch.setenv(key, "local-value")  # monkeypatch puts every one back afterwards
    e2e.connect(e2e.Endpoints.from_kind(ROOT), ROOT, "mlops")
    assert os.environ["MLOPS_S3_ENDPOINT"] == "http://127.0.0.1:8083"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:8082"
    assert os.environ["MLOPS_KUBE_CONTEXT"] == "kind-mlops"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "mlops-local-dev"
    assert os.environ["MLOPS_FEAST_REGISTRY"] == "s3://mlops/feast/registry.db" and os.environ["MLOPS_BUCKET"] == "mlops"
    assert os.environ["MLOPS_HOME"].endswith(".mlops/kind-mlops")  # never the local platform's settings
    assert "local-value" not in {os.environ[k] for k in touched}


def test_the_gateway_host_is_the_transformers_when_there_is_one():
    status = {"status": {"url": "http://credit-default-predictor.mlops.example.com",
                         "components": {"transformer": {"url": "http://credit-default-transformer.mlops.example.com"},
                                        "predictor": {"url": "http://credit-default-predictor.mlops.example.com"}}}}
    assert e2e.gateway_host(status, "credit-default") == "credit-default-transformer.mlops.example.com"
    assert e2e.gateway_host({"status": {"url": "http://churn.mlops.example.com/"}}, "churn") == \
        "churn.mlops.example.com"
    with pytest.raises(e2e.ClusterCheckFailed, match="InferenceService mlops/churn is Ready but reports no URL"):
        e2e.gateway_host({"status": {}}, "churn")


def test_pipeline_versions_are_named_by_content(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x: 1\n")
    b.write_text("x: 1\n")
    assert e2e.version_name(a) == e2e.version_name(b) and e2e.version_name(a).startswith("sha256-")
    b.write_text("x: 2\n")
    assert e2e.version_name(a) != e2e.version_name(b)


def test_the_e2e_command_names_a_missing_checkout(tmp_path):
    with pytest.raises(ConfigError, match="kind-config.yaml not found: run from the repository's root"):
        e2e.Endpoints.from_kind(tmp_path)


@pytest.mark.parametrize("example, ids, datatype", [("credit-default", ["C0000001", "C0000002"], "BYTES"),
                                                     ("churn", [10000001, 10000002], "INT64")])
def test_requests_through_the_gateway_carry_the_inference_services_host(example, ids, datatype):
    """replay() with a Host header, on the wire: what Kourier routes by; the body is the project's id tensor."""
    import json

    from mlops.project import resolve_project

    project = resolve_project(example)
    model = project.names.model
    seen: list[tuple[str, str, dict]] = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            seen.append((self.headers["Host"], self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            body = json.dumps({"model_name": model, "model_version": "3", "outputs": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"{model}-transformer.mlops.example.com"
    try:
        from mlops.serving.traffic_replay import replay

        stats = replay(f"http://127.0.0.1:{server.server_port}", project, ids, rate=50, requests=6, protocol="v2",
                       headers={"Host": host})
    finally:
        server.shutdown()
    assert stats.statuses == {200: 6} and stats.versions == {"3": 6}
    assert [h for h, _, _ in seen] == [host] * 6
    assert {p for _, p, _ in seen} == {f"/v2/models/{model}/infer"}
    for _, _, body in seen:
        (tensor,) = body["inputs"]
        assert (tensor["name"], tensor["datatype"], tensor["shape"]) == (project.entity.key, datatype, [1])
        assert tensor["data"][0] in ids and type(tensor["data"][0]) is type(ids[0])


def test_the_kserve_ingress_patch_turns_istio_off_and_keeps_every_other_key():
    import json

    config = {"ingressGateway": "knative-serving/knative-ingress-gateway", "ingressDomain": "example.com",
              "urlScheme": "http", "disableIstioVirtualHost": False}
    done = subprocess.run([sys.executable, "-m", "mlops.cluster.kind"], input=json.dumps(config),
                          capture_output=True, text=True, check=True)  # as scripts/kind-up.sh runs it
    patched = json.loads(json.loads(done.stdout)["data"]["ingress"])
    assert patched == {**config, "disableIstioVirtualHost": True}
    again = subprocess.run([sys.executable, "-m", "mlops.cluster.kind"], input=json.dumps(patched),
                           capture_output=True, text=True, check=True)
    assert again.stdout == ""  # already off: no patch, no controller restart
    with pytest.raises(ConfigError, match="'ingress' is not JSON"):
        kind.kserve_ingress_patch("{not json")
    with pytest.raises(ConfigError, match="not a JSON object"):
        kind.kserve_ingress_patch("[1, 2]")
