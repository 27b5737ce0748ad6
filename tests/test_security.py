"""Security basics: no secret in logs or compiled YAML, artifact keys that cannot leave their prefix, models
verified before they are used, containers that do not run as root.

| point | proven by |
|---|---|
| no secret key in command output, task logs, server logs, the MLflow database, S3's data or process arguments | test_no_secret_key_in_output_logs_stored_data_or_process_arguments (here) |
| a refused secret is never echoed; the error names the access key | test_storage.py::test_wrong_credentials_fail_with_a_clear_message, test_training_pipeline.py::test_wrong_s3_credentials_fail_at_the_first_step, and here through the CLI |
| settings never print the secret | test_settings.py::test_s3_settings_from_env_and_defaults |
| the platform's credential files are private (0600) | test_platform.py::test_state_and_credentials_are_private_and_local |
| no secret written into compiled YAML | test_compiling_with_credentials_in_the_environment_writes_none_of_them, test_compiled_yaml_takes_credentials_only_from_the_secret (here) |
| manifests: local-dev credentials in one file, none in a ConfigMap or a plain env value | test_cluster_manifests.py::test_the_local_dev_credentials_live_in_one_file_only, test_cluster_manifests.py::test_every_kustomization_builds_offline_and_passes_lint, test_cluster_manifests.py::test_lint_catches_a_planted_fault (plaintext credential, credential in a ConfigMap, a second Secret), test_cluster_manifests.py::test_the_real_cluster_overlay_generates_no_secret_and_seeds_no_demo_data |
| keys cannot leave their prefix: `..`, absolute, empty parts, backslashes | test_storage.py::test_keys_cannot_escape_their_prefix, test_storage.py::test_join_key_refuses_traversal_in_any_part |
| ... nor percent-encoded, nor through any key built from user input (dataset URIs, report prefixes, batch outputs and manifests, model names in keys and cache folders) | test_encoded_traversal_is_refused, test_keys_built_from_user_input_stay_in_their_prefix, test_model_names_never_leave_the_model_cache (here); batch output prefixes: test_batch_prediction.py::test_bad_input_is_refused_naming_what_and_where |
| local writes from a hostile manifest | test_a_hostile_manifest_writes_nothing_anywhere (here) |
| a model whose digest does not match is refused | test_serving.py::test_tampered_model_files_are_refused (the cache, `--model-dir`); test_faults.py::test_a_model_file_tampered_in_s3_is_refused_by_the_predictor_and_by_batch_scoring (the registered file in S3: the predictor from the registry, batch scoring); stored objects and published files: test_storage.py::test_tampered_object_is_refused_and_nothing_is_left, test_storage.py::test_manifest_mismatch_is_detected |
| containers run as non-root, without privilege escalation, dropping all capabilities | test_cluster_manifests.py::test_every_kustomization_builds_offline_and_passes_lint, test_cluster_manifests.py::test_lint_catches_a_planted_fault (root container, root allowed, privilege escalation, capabilities kept), test_cluster_manifests.py::test_the_component_image_runs_as_a_non_root_user, test_serving_manifests.py::test_containers_run_as_non_root_with_requests_and_limits_and_pinned_images |
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from mlops.errors import ServingError, StorageError
from mlops.platform.storage import join_key, parse_s3_uri, safe_key

ROOT = Path(__file__).resolve().parent.parent
CREDENTIAL = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE_KEY", re.IGNORECASE)


def mlops(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlops.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


# -- 1. no secret printed or stored ----------------------------------------------------------------------------

@pytest.mark.platform
def test_no_secret_key_in_output_logs_stored_data_or_process_arguments(platform, tmp_path):
    """Commands that print, log and fail, with the platform's real credentials and with a wrong secret: the
    secret keys appear nowhere but in the three private files that must hold them (access key ids may)."""
    settings = platform.s3_settings()
    secret, wrong = settings.secret_key, f"wrong-secret-{uuid.uuid4().hex}"
    env = {**os.environ, "MLOPS_HOME": str(platform.home)}
    absent = f"s3://{settings.bucket}/security/absent.parquet"
    runs = {
        "status": (mlops(["platform", "status"], env, tmp_path), 0, "s3      running"),
        "up": (mlops(["platform", "up"], env, tmp_path), 0, "platform already running"),
        "run": (mlops(["run", "training", "--local", "--param", "project=credit-default", "--param",
                       f"data_uri={absent}"], env, tmp_path), 1, "[validate] data not found"),
        "validate, wrong secret": (mlops(["validate", "--project", "churn", "--data", absent, "--report-dir",
                                          str(tmp_path / "r")], {**env, "AWS_SECRET_ACCESS_KEY": wrong}, tmp_path), 1,
                                   f"rejected the credentials for access key {settings.access_key!r}"),
        "run, wrong secret": (mlops(["run", "training", "--local", "--param", "project=churn"],
                                    {**env, "AWS_SECRET_ACCESS_KEY": wrong}, tmp_path), 1, "rejected the credentials"),
    }
    from mlops.platform.local import free_ports

    for project in ("credit-default", "churn"):  # a server that fails at start-up: where a settings dump would show
        predictor = subprocess.run(
            [sys.executable, "-m", "mlops.serving.predictor", "--project", project, "--model-name",
             "security-no-such-model", "--model-version", "1", "--host", "127.0.0.1", "--http-port",
             str(free_ports(["p"])["p"]), "--cache-dir", str(tmp_path / "c")],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        runs[f"predictor of {project}"] = (predictor, 1, "has no version or alias '1'")
    for name, (done, code, expected) in runs.items():
        output = done.stdout + done.stderr
        assert done.returncode == code and expected in output, (name, output[-2000:])
        assert secret not in output and wrong not in output, name
        assert "Traceback" not in output, (name, output[-2000:])

    home = platform.home
    private = {home / "platform.env", home / "credentials.json", home / "s3-identities.json"}
    for path in private:
        assert path.stat().st_mode & 0o077 == 0, path  # only the owner reads them
    # Everything else the platform keeps: server and task logs, kfp.local's outputs, MLflow's database, the
    # stored objects (SeaweedFS's volumes), the servers' folders.
    files = [p for p in home.rglob("*") if p.is_file() and p not in private]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name.startswith("training-") for p in files)
    holders = [str(p.relative_to(home)) for p in files if secret.encode() in p.read_bytes()]
    assert holders == [], f"the secret key is stored in {holders}"
    assert not [p for p in files if wrong.encode() in p.read_bytes()]

    started = [psutil.Process(s.pid) for s in platform.services().values()]
    for state in home.glob("serving/*/state.json"):
        served = json.loads(state.read_text())
        for service in [*served.get("predictors", {}).values(), served.get("splitter"), served.get("transformer")]:
            if service and psutil.pid_exists(service["pid"]):
                started.append(psutil.Process(service["pid"]))
    processes = {p for proc in started for p in (proc, *proc.children(recursive=True))}
    assert len(processes) >= 2
    for proc in processes:
        assert secret not in " ".join(proc.cmdline()), proc.cmdline()[:3]  # `ps` shows arguments to every user


# -- 2. no secret written into compiled YAML -------------------------------------------------------------------

def compiled_files(root: Path) -> list[Path]:
    return sorted([*(root / "pipelines/compiled").glob("*.yaml"), *root.glob("components/*/*component*.yaml"),
                   *(root / "manifests/base/serving").glob("inferenceservice.yaml"),
                   *(root / "manifests/base/serving").glob("servingruntime.yaml")])


def test_compiling_with_credentials_in_the_environment_writes_none_of_them(tmp_path):
    """`mlops compile` run where credentials are set (a developer's shell, CI): none reaches the YAML."""
    token = uuid.uuid4().hex
    canaries = {"AWS_ACCESS_KEY_ID": f"AKIACANARY{token[:10].upper()}", "AWS_SECRET_ACCESS_KEY": f"canary-{token}",
                "MLOPS_FEAST_REDIS": f"redis:6379,password=canary-redis-{token}",
                "MLFLOW_TRACKING_TOKEN": f"canary-mlflow-{token}"}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **canaries}
    subprocess.run([sys.executable, "-m", "pipelines.compile", "--out", str(tmp_path)], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=600)
    written = compiled_files(tmp_path)
    assert len(written) == len(compiled_files(ROOT)) >= 20
    for path in written:
        text = path.read_text()
        assert not [name for name, value in canaries.items() if value in text], path
        assert token not in text, path


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_compiled_yaml_takes_credentials_only_from_the_secret():
    """Every pipeline and component YAML: no credential as a literal env value or a parameter default, and the
    tasks that get credentials get them from the mlops-s3 Secret, never from a ConfigMap."""
    from mlops.cluster.e2e import cluster_settings

    settings = cluster_settings(ROOT)
    local_dev = [settings["AWS_ACCESS_KEY_ID"], settings["AWS_SECRET_ACCESS_KEY"]]
    checked = 0
    for path in compiled_files(ROOT):
        text = path.read_text()
        assert not any(value in text for value in local_dev), path
        for doc in yaml.safe_load_all(text):
            for node in _walk(doc):
                if "value" in node and isinstance(node.get("name"), str) and CREDENTIAL.search(node["name"]):
                    raise AssertionError(f"{path}: {node['name']} has a literal value")
                parameters = node.get("parameters")
                for name, spec in parameters.items() if isinstance(parameters, dict) else ():
                    if isinstance(spec, dict) and CREDENTIAL.search(name):
                        assert "defaultValue" not in spec, f"{path}: parameter {name} has a default"
                for mount in node.get("configMapAsEnv", []):
                    assert not [kv for kv in mount["keyToEnv"] if CREDENTIAL.search(kv["envVar"])], path
                for mount in node.get("secretAsEnv", []):
                    checked += 1
                    assert mount["secretName"] == "mlops-s3", path
                    assert {kv["envVar"] for kv in mount["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert checked >= 10  # every pipeline task gets them this way


# -- 3. keys and local paths never leave their prefix ------------------------------------------------------------

ENCODED = ["%2e%2e/escape", "a/%2e%2e/%2e%2e/b", "a/%2E%2E/b", "a/..%2fb", "..%2f..%2fetc/passwd",
           "a/%252e%252e/%252e%252e/b", "a/%2e/b", "%2fabsolute", "a%2f%2fb", "a/..%5c..%5cb", "a%5cb", "a/%00/b",
           "a/b/%2e%2e"]


@pytest.mark.parametrize("key", ENCODED)
def test_encoded_traversal_is_refused(key):
    with pytest.raises(StorageError, match="not a plain relative path"):
        safe_key(key)
    with pytest.raises(StorageError):
        join_key("reports/validation", key)


@pytest.mark.parametrize("key", ["reports/validation/credit/0a1b/report.html", "inference-log/m/date=2026-11-26/x.parquet",
                                 "a%20b/c", "100%/x", "a/%zz/b", "a%2Fb", "_staging/x/plan.json", "a/.hidden"])
def test_plain_keys_pass(key):
    assert safe_key(key) == key


def test_join_key_refuses_an_absolute_or_empty_part_instead_of_rerooting_it():
    assert join_key("reports/", "gate", "m/") == "reports/gate/m"
    assert join_key("", "audit", "m") == "audit/m"
    for parts in (("/etc/passwd",), ("gate", "/abs"), ("", "x"), ("a", "..", "b")):
        with pytest.raises(StorageError):
            join_key("reports", *parts)


@pytest.mark.platform
def test_keys_built_from_user_input_stay_in_their_prefix(platform, store, tmp_path):
    """Dataset URIs (library and CLI), report prefixes (a contract's dataset name, a model name), model names in
    audit, lock, routing, request-log and report keys, batch output URIs and the part keys of their manifests:
    each hostile value is refused before anything is written, and nothing lands outside its prefix."""
    from mlops.batch import read_predictions
    from mlops.batch.output import FORMAT, Output
    from mlops.platform.datasets import fetch, write_table
    from mlops.registry import audit
    from mlops.registry import promotion as registry
    from mlops.serving import request_log, routing
    from mlops.stages import validate_dataset
    from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data

    bucket = store.bucket
    before = set(store.list_keys(""))
    for uri in (f"s3://{bucket}/../audit/x.parquet", f"s3://{bucket}/a/%2e%2e/%2e%2e/audit/x.parquet",
                f"s3://{bucket}//audit/x.parquet", f"s3://{bucket}/a\\..\\audit/x.parquet"):
        with pytest.raises(StorageError, match="not a plain relative path"):
            parse_s3_uri(uri)
        with pytest.raises(StorageError):
            fetch(uri, tmp_path / "fetched.parquet", store)
        with pytest.raises(StorageError):
            Output.parse(uri)
    assert not (tmp_path / "fetched.parquet").exists()
    cli = mlops(["validate", "--project", "churn", "--data", f"s3://{bucket}/security/%2e%2e/%2e%2e/audit/x.parquet",
                 "--report-dir", str(tmp_path / "cli-reports")], {**os.environ, "MLOPS_HOME": str(platform.home)},
                tmp_path)
    assert cli.returncode == 1 and "not a plain relative path" in cli.stderr and "Traceback" not in cli.stderr

    # A contract (a pipeline parameter may point at any file) whose dataset name climbs out of reports/:
    # each project's own raw contract, beside its reference profile, with the dataset name made hostile.
    for project, raw in ((CREDIT, generate_credit_data(2_000, seed=9)), (CHURN, generate_churn_data(500, seed=9))):
        data = tmp_path / f"{project.name}-batch.parquet"
        write_table(raw, str(data))
        packaged = Path(project.contract("raw"))
        doc = yaml.safe_load(packaged.read_text())
        for hostile in ("../../audit/planted", "%2e%2e/%2e%2e/audit/planted"):
            folder = tmp_path / f"contract-{uuid.uuid4().hex[:6]}"
            folder.mkdir()
            for profile in packaged.parent.glob("*.profile.json"):
                (folder / profile.name).write_text(profile.read_text())
            (folder / packaged.name).write_text(yaml.safe_dump(doc | {"dataset": hostile}))
            with pytest.raises(StorageError, match="not a plain relative path"):
                validate_dataset(str(data), str(folder / packaged.name), folder / "reports", publish_to=store)
    # A model name in the gate's report prefix (reports/gate/<model>/<run>) and in every per-model key.
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.html").write_text("<html></html>")
    for model in ("../../audit/planted", "..%2f..%2faudit", "a/../../../locks"):
        with pytest.raises(StorageError):
            store.publish_dir(tmp_path / "report", f"reports/gate/{model}/run-1")
        with pytest.raises(StorageError):
            audit.record(store, audit.AuditEvent("promote", model, "1", "mallory", "escape"))
        with pytest.raises(StorageError):
            with registry.registry_lock(store, model, wait_s=1):
                pass
        for key_of in (routing.routing_key, request_log.log_prefix,
                       lambda m: join_key("reports", "rollout", m, "v1.json"),
                       lambda m: join_key("reports", "monitoring", m, "20261126T000000Z")):
            with pytest.raises(StorageError):
                key_of(model)

    # A batch manifest (read from the output prefix) whose part keys point elsewhere: refused, nothing read.
    store.put_bytes(b"not a parquet file, and not for readers of security/out", "security/elsewhere/x.parquet")
    for part in ("../elsewhere/x.parquet", "%2e%2e/elsewhere/x.parquet", "/security/elsewhere/x.parquet"):
        manifest = {"format": FORMAT, "job": "0" * 64, "parts": [{"key": part, "rows": 1, "size": 1, "sha256": ""}]}
        store.put_bytes(json.dumps(manifest).encode(), "security/out/_MANIFEST.json")
        with pytest.raises(StorageError, match="not a plain relative path"):
            read_predictions(f"s3://{bucket}/security/out", store)

    written = set(store.list_keys("")) - before
    assert not [k for k in written if k.startswith(("audit/", "locks/", "reports/", "serving/")) or "planted" in k
                or "escape" in k], sorted(written)


def test_model_names_never_leave_the_model_cache(tmp_path):
    """A model reference read from a batch plan or given on a command line names a folder of the model cache,
    which a fetch replaces: a name that climbs out is refused before anything is touched."""
    from mlops.registry.model_files import ModelRef, fetch_model

    cache = tmp_path / "cache"
    bystander = tmp_path / "bystander" / ".1.partial" / "keep.txt"  # what a fetch of "../bystander" v1 would remove
    bystander.parent.mkdir(parents=True)
    bystander.write_text("not the cache's")
    for name, version in (("../bystander", "1"), ("..", "bystander"), ("m", "../../bystander"), ("m/../..", "1"),
                          ("%2e%2e", "1"), ("", "1"), ("m", ".")):
        ref = ModelRef(name, version, "sha256:" + "0" * 64, "s3://mlops/mlflow-artifacts/1/models/m-1/artifacts")
        with pytest.raises(ServingError, match="not a plain name"):
            fetch_model(ref, cache, store=object())  # refused before it could ever reach a store
    assert bystander.read_text() == "not the cache's" and not cache.exists()


@pytest.mark.platform
def test_a_hostile_manifest_writes_nothing_anywhere(store, tmp_path):
    """A published artifact whose manifest was rewritten to list names outside the target folder: the download
    is refused before any file is written, inside the folder or outside it."""
    from mlops.platform.storage import MANIFEST

    source = tmp_path / "artifact"
    source.mkdir()
    (source / "good.txt").write_text("fine")
    prefix = f"security/artifact-{uuid.uuid4().hex[:8]}"
    store.publish_dir(source, prefix)
    entry = json.loads(store.get_bytes(f"{prefix}/{MANIFEST}"))["files"]["good.txt"]
    outside = Path(f"/tmp/mlops-security-{uuid.uuid4().hex}.txt")
    for hostile in ("../escape.txt", str(outside), "sub/../../escape.txt", "..\\escape.txt", "%2e%2e/escape.txt",
                    "sub/%2e%2e/%2e%2e/escape.txt", "", "."):
        store.put_bytes(json.dumps({"files": {"good.txt": entry, hostile: entry}}).encode(), f"{prefix}/{MANIFEST}")
        target = tmp_path / "download"
        with pytest.raises(StorageError, match="not a plain relative path"):
            store.download_dir(prefix, target)
        assert not target.exists(), hostile  # not even the good file: no partial copy
    assert not (tmp_path / "escape.txt").exists() and not outside.exists()
