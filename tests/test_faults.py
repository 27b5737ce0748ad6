"""Faults: each ends in a clear failure or an automatic recovery, with nothing lost, no partial artifact
visible, the registry consistent, and a rerun that completes.

Real servers and processes only: SeaweedFS and MLflow (a platform of this module's own for the faults that
stop them, the session's for the others), kfp.local running the compiled YAML, the local serving topology.

| fault | proven by |
|---|---|
| S3 unreachable before a run (no task starts) | test_cli.py::test_unreachable_platform_is_reported_before_any_task_runs |
| S3 unreachable, bounded retries | test_storage.py::test_unreachable_store_fails_fast |
| S3 refuses the credentials at the first step | test_training_pipeline.py::test_wrong_s3_credentials_fail_at_the_first_step |
| **S3 stopped in the middle of a pipeline run** (compiled batch_prediction YAML; a promotion tried meanwhile) | test_s3_stopped_in_the_middle_of_a_pipeline_run (here) |
| MLflow unreachable before training | test_training_pipeline.py::test_mlflow_unreachable_fails_before_training_and_registers_nothing |
| **MLflow killed during a promotion** (`mlops promote`, and the library's own callers) | test_mlflow_killed_during_a_promotion (here) |
| a crash between registering and promoting, or between moving an alias and recording it | test_registry.py::test_promotion_rerun_after_a_crash_reuses_the_registered_version, test_registry.py::test_a_rerun_after_a_crash_completes_the_promotion_once |
| **a promotion or a rollback killed before any one of its writes** (production and rollback never on one version; the rerun completes it once) | test_registry.py::test_a_move_killed_between_any_two_writes_is_consistent_and_a_rerun_completes_it |
| a crashed lock holder | test_registry.py::test_an_expired_lock_is_taken_over_and_a_live_one_waits |
| the cluster driver's rollback, promotion, waits and leftover splits against KServe's rules | test_cluster_rollout.py (a double of KServe's Knative-mode control plane) |
| a candidate answering errors (injected at the splitter) | test_rollout.py::test_an_erroring_candidate_is_rolled_back_in_its_first_canary_step |
| **the candidate predictor killed -9 during a canary step** | test_a_candidate_predictor_killed_in_a_canary_step_is_rolled_back (here) |
| model files changed in the server's cache, or passed as `--model-dir` | test_serving.py::test_tampered_model_files_are_refused |
| a stored object or a published file changed behind our back | test_storage.py::test_tampered_object_is_refused_and_nothing_is_left, test_storage.py::test_manifest_mismatch_is_detected |
| **the registered model file changed in S3** (predictor from the registry, batch scoring) | test_a_model_file_tampered_in_s3_is_refused_by_the_predictor_and_by_batch_scoring (here) |
| a batch run SIGKILLed while scoring (its staging left behind) | test_batch_prediction.py::test_a_killed_run_leaves_nothing_readable_and_a_rerun_completes |
| a shard missing at the commit | test_batch_prediction.py::test_a_failed_shard_leaves_no_manifest_and_the_rerun_commits_once |
| a batch input replaced during the run | test_batch_prediction.py::test_an_input_replaced_after_planning_fails_the_shard |
| **a commit interrupted after copying some parts** (its lock and orphan parts left; an older output published) | test_an_interrupted_commit_leaves_the_previous_output_readable_and_the_rerun_commits_once (here) |

The figures (caller errors while the killed predictor is rolled back, seconds to roll back) are printed: run
with ``-s`` to see them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops.batch import read_manifest, read_predictions, run_batch_prediction
from mlops.batch.output import LOCK, Output, save_plan
from mlops.batch.run import plan
from mlops.batch.scoring import score_shard
from mlops.errors import ModelIntegrityError, StorageError, TrackingError
from mlops.platform.local import DEFAULT_PORTS, LocalPlatform, free_ports
from mlops.platform.storage import ObjectStore, parse_s3_uri
from mlops.registry import audit
from mlops.registry import promotion as registry
from mlops.registry import model_files
from tests.projects import CREDIT, generate_credit_data, offline_rows, renamed

pytestmark = pytest.mark.platform

# Copies of the credit-default project under these names (its model, Feast project and logs):
SERVED = "faults-serving"  # served, tampered and batch-scored on the session's platform
OWN = "faults-own-platform"  # on this module's own platform, whose S3 and MLflow get stopped
JSON = {"content-type": "application/json"}


def wait_for(condition, what: str, timeout_s: float, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
    return value


def kill_group(pid: int) -> None:
    """SIGKILL a server and everything it started (each runs in its own process group), and wait for them."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    os.killpg(pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(procs, timeout=15)
    assert not alive, f"still running after SIGKILL: {alive}"


class Cli:
    """`mlops ...` in a subprocess, its output in files so a test can watch it while it runs."""

    def __init__(self, args: list[str], env: dict[str, str], work: Path, name: str) -> None:
        self.out, self.err = work / f"{name}.out", work / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mlops.cli", *args], env=env, stdout=out, stderr=err)

    def stdout(self) -> str:
        return self.out.read_text()

    def finish(self, timeout_s: float) -> tuple[int, str, str]:
        try:
            self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode, self.out.read_text(), self.err.read_text()


def feature_rows(n: int, seed: int) -> pd.DataFrame:
    """Credit feature rows as the feature store holds them (the batch input of a credit model)."""
    from mlops.features.engineering import compute_features

    return compute_features(CREDIT, generate_credit_data(n, seed=seed)).drop(columns=["created_timestamp"])


def put_parquet(store: ObjectStore, frame: pd.DataFrame, key: str, tmp: Path, row_group_rows: int = 250) -> str:
    local = tmp / key.replace("/", "_")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), local, row_group_size=row_group_rows)
    store.put_file(local, key)
    return f"s3://{store.bucket}/{key}"


def keys_under(store: ObjectStore, uri: str) -> list[str]:
    out = Output.parse(uri)
    return sorted(k[len(out.prefix) + 1:] for k in store.list_keys(out.prefix, out.bucket))


# == faults on the session's platform: serving, tampering, batch commits =====================================

@dataclass
class Served:
    project: object  # the renamed credit-default copy whose model is SERVED
    local: object  # LocalServing
    store: ObjectStore
    v1: str
    v2: str
    input_uri: str
    rows: pd.DataFrame


@pytest.fixture(scope="module")
def served(platform, tmp_path_factory, train_versions):
    """Two versions of SERVED on Feast features; v1 served (predictor, splitter, transformer); batch input rows."""
    from mlops.serving import routing
    from mlops.serving.local import LocalServing

    work = tmp_path_factory.mktemp("faults")
    store = ObjectStore(platform.s3_settings())
    project = renamed(CREDIT, work, SERVED)
    (v1, v2), _ = train_versions(project, generate_credit_data(3_000, seed=71), work)
    rows = feature_rows(2_000, seed=72)
    input_uri = put_parquet(store, rows, "faults-tests/input/rows.parquet", work)
    routing.write_routing(store, SERVED, routing.Routing())
    local = LocalServing(project)
    local.down()
    local.up(v1, port=free_ports(["t"])["t"], request_log=False, progress=lambda *_: None)
    try:
        yield Served(project, local, store, v1, v2, input_uri, rows)
    finally:
        local.down()


class LiveTraffic:
    """Callers: a background replay at ``rate`` requests/s to the transformer until the block ends."""

    def __init__(self, url: str, project, rate: float) -> None:
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
        self.thread.join(60)


def splitter_count(splitter: str, version: str, status: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{splitter}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "mlops_splitter_requests_total" and s.labels == {"model_version": version, "status": status})


def test_a_candidate_predictor_killed_in_a_canary_step_is_rolled_back(served):
    """kill -9 of the candidate's predictor while it takes 20% of live traffic: the canary analysis sees the
    errors, the controller rolls back on its own (traffic, registry, audit), and callers' errors stay bounded."""
    from mlflow import MlflowClient

    from mlops.rollout.controller import rollout
    from mlops.rollout.policy import parse_policy
    from mlops.rollout.traffic import LocalTraffic
    from mlops.serving.traffic_replay import known_ids, request_body

    s, rate, share = served, 80.0, 20
    registry.promote(s.store, SERVED, s.v1, registry.PRODUCTION, expected_current=None, actor="test",
                     reason="stable for the canary fault")
    registry.promote(s.store, SERVED, s.v2, registry.STAGING, expected_current=registry.ANY, actor="test",
                     reason="blessed (test)")
    policy = parse_policy({"canary": {"steps": [share, 50], "min_requests": 40, "timeout_s": 120,
                                      "success": [{"metric": "error_rate", "max": 0.01},
                                                  {"metric": "p99_latency_ms", "max": 5000}]},
                           "poll_s": 0.25}, "faults canary policy")
    splitter = s.local.urls()["splitter"]
    timing: dict[str, float] = {}

    def kill_the_candidate_in_its_canary_step() -> None:
        wait_for(lambda: splitter_count(splitter, s.v2, "200") >= 5, f"v{s.v2} to answer canary traffic", 180, 0.05)
        pid = json.loads(s.local.state_file.read_text())["predictors"][s.v2]["pid"]
        timing["killed"] = time.monotonic()
        kill_group(pid)
        wait_for(lambda: [(r["version"], r["weight"]) for r in httpx.get(f"{splitter}/splitter/routes", timeout=10)
                          .json()["routes"]] == [(s.v1, 100)], "traffic back to stable", 60, 0.05)
        timing["restored"] = time.monotonic()

    killer = threading.Thread(target=kill_the_candidate_in_its_canary_step, daemon=True)
    with LiveTraffic(s.local.urls()["transformer"], s.project, rate) as traffic:
        killer.start()
        result = rollout(s.store, LocalTraffic(s.local, s.store), SERVED, s.v2, policy, high_stakes=False,
                         actor="test", progress=lambda *_: None)
        killer.join(90)
    assert set(timing) == {"killed", "restored"}, "the candidate was not killed during its canary step"

    # rolled back automatically, in the step where it died
    assert result.outcome == "rolled_back", result.markdown()
    [step] = result.phases
    assert step.name == f"canary {share}%" and not step.passed and "error_rate" in step.reason, result.markdown()
    # traffic: stable alone, the dead candidate retired
    assert s.local.status()["routes"] == [{"version": s.v1, "weight": 100, "fault": {}}]
    assert f"predictor v{s.v2}" not in s.local.urls()
    assert s.v2 not in json.loads(s.local.state_file.read_text())["predictors"]
    # registry: production untouched, the candidate no longer staged, and marked
    assert registry.alias_version(SERVED, registry.PRODUCTION) == s.v1
    assert registry.alias_version(SERVED, registry.STAGING) is None
    assert "error_rate" in MlflowClient().get_model_version(SERVED, s.v2).tags["mlops.rollout.rolled_back"]
    # audit: the rollback with what was restored
    event = audit.trail(s.store, SERVED)[-1]
    assert (event.action, event.version) == ("rollout_rollback", s.v2) and "error_rate" in event.reason
    assert f"traffic 100% to v{s.v1}" in event.details["restored"]
    assert not any("FAILED" in step for step in event.details["restored"]), event.details["restored"]

    # callers: errors only while the dead candidate still had its share, each a 502 naming it
    stats, seconds = traffic.stats, timing["restored"] - timing["killed"]
    errors = sum(n for status, n in stats.statuses.items() if status != 200)
    print(f"\n[killed candidate] rolled back {seconds:.2f} s after kill -9; caller errors {errors} of {stats.sent} "
          f"requests ({dict(stats.statuses)}); answered by {dict(stats.versions)}")
    assert set(stats.statuses) <= {200, 502}, stats.statuses
    assert seconds < 15
    assert 1 <= errors <= math.ceil(share / 100 * rate * seconds) + 10, (errors, seconds)
    # and once restored, every caller is answered by stable
    after = [httpx.post(f"{s.local.urls()['transformer']}/v1/models/{SERVED}:predict",
                        json=request_body(s.project, c, "v1"), timeout=30) for c in known_ids(s.project)[:30]]
    assert {(r.status_code, r.json().get("model_version")) for r in after} == {(200, s.v1)}


def test_a_model_file_tampered_in_s3_is_refused_by_the_predictor_and_by_batch_scoring(served, tmp_path,
                                                                                       monkeypatch):
    """The registered model.skops changed in the bucket after registration (MLflow stores it without our checksum
    metadata): the digest recorded at registration catches it. The predictor refuses to start, batch scoring
    refuses before any row, nothing loadable is left in either cache; restored, the same files load again."""
    s = served
    ref = model_files.resolve_model(SERVED, s.v2)
    bucket, prefix = parse_s3_uri(ref.storage_uri)
    [key] = [k for k in s.store.list_keys(prefix, bucket) if k.endswith("/model.skops")]
    resp = s.store.client.get_object(bucket, key)
    original = resp.read()
    resp.close()
    resp.release_conn()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    s.store.client.put_object(bucket, key, io.BytesIO(bytes(tampered)), len(tampered))  # anyone who can write there
    output = f"s3://{s.store.bucket}/faults-tests/tampered-out"
    try:
        port = free_ports(["predictor"])["predictor"]
        cache = tmp_path / "predictor-cache"
        started = subprocess.run(
            [sys.executable, "-m", "mlops.serving.predictor", "--project", str(s.project.root),
             "--model-version", s.v2, "--host", "127.0.0.1", "--http-port", str(port), "--cache-dir", str(cache)],
            capture_output=True, text=True, timeout=240, env=dict(os.environ), cwd=tmp_path)
        assert started.returncode != 0, started.stdout + started.stderr
        [error, *_] = [line for line in started.stderr.splitlines() if line.startswith("MLOPS-ERROR:")] or [""]
        assert ref.digest in error and "do not match the registered digest" in error, started.stderr[-3000:]
        assert "Traceback" not in started.stderr and f"loaded {SERVED}" not in started.stdout
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5)
        assert not (cache / SERVED / s.v2).exists()  # nothing loadable stays in the cache

        monkeypatch.setenv("MLOPS_MODEL_CACHE", str(tmp_path / "batch-cache"))
        with pytest.raises(ModelIntegrityError, match="do not match the registered digest"):
            run_batch_prediction(s.project, s.input_uri, output, s.v2, shards=2, workers=1, store=s.store)
        assert keys_under(s.store, output) == []  # refused before planning anything: not even a staging prefix
        assert not (tmp_path / "batch-cache" / SERVED / s.v2).exists()
    finally:
        s.store.client.put_object(bucket, key, io.BytesIO(original), len(original))
    restored = model_files.fetch_model(ref, tmp_path / "restored", s.store)
    assert model_files.load_model(restored, ref.digest).digest == ref.digest


def test_an_interrupted_commit_leaves_the_previous_output_readable_and_the_rerun_commits_once(served, tmp_path,
                                                                                              monkeypatch):
    """A run's commit died after copying one of its parts to its final name: its lock object and that orphan
    part are left, no manifest. Readers still get the previous output, whole; the rerun takes the dead lock
    over (its lease ran out), commits once and leaves nothing else behind."""
    s = served
    monkeypatch.setenv("MLOPS_MODEL_CACHE", str(tmp_path / "cache"))
    output = f"s3://{s.store.bucket}/faults-tests/commit-out"
    out = Output.parse(output)
    run_batch_prediction(s.project, s.input_uri, output, s.v1, shards=2, workers=1, store=s.store)
    previous_manifest, previous = read_manifest(output, s.store), read_predictions(output, s.store)

    planned = plan(s.project, s.input_uri, output, s.v2, shards=3, store=s.store)
    save_plan(s.store, planned.job)
    for shard in planned.job.shards:
        score_shard(s.store, planned.job, shard.index, planned.model)
    # ...then the commit: it took the lock, copied part 0 and died (its lease has run out since)
    s.store.put_bytes(json.dumps({"owner": "crashed-host:4242:0d1e", "expires": time.time() - 1}).encode(),
                      out.key(LOCK), out.bucket)
    s.store.copy(out.staged_part(planned.job.attempt, 0), out.part(planned.job, 0), out.bucket)
    left = keys_under(s.store, output)
    assert LOCK in left and any(k.startswith(f"parts-{planned.job.key[:16]}/") for k in left)

    assert read_manifest(output, s.store) == previous_manifest
    pd.testing.assert_frame_equal(read_predictions(output, s.store), previous)
    assert set(previous["model_version"]) == {s.v1} and len(previous) == len(s.rows)

    rerun = run_batch_prediction(s.project, s.input_uri, output, s.v2, shards=3, workers=1, store=s.store)
    assert not rerun.already_complete and rerun.manifest["job"] == planned.job.key
    assert keys_under(s.store, output) == sorted(["_MANIFEST.json", *(p["key"] for p in rerun.manifest["parts"])])
    got = read_predictions(output, s.store)
    assert got["customer_id"].tolist() == s.rows["customer_id"].tolist() and got["customer_id"].is_unique
    assert set(got["model_version"]) == {s.v2}
    again = run_batch_prediction(s.project, s.input_uri, output, s.v2, shards=3, workers=1, store=s.store)
    assert again.already_complete and again.manifest == rerun.manifest


# == faults that stop S3 or MLflow: a platform of this module's own ===========================================

@dataclass
class OwnPlatform:
    project: object  # the renamed credit-default copy whose model is OWN
    platform: LocalPlatform
    store: ObjectStore
    v1: str  # production
    v2: str  # the same model files registered again: another version to score with or promote
    input_uri: str
    rows: int
    output_uri: str  # holds a published output of v1
    work: Path

    @property
    def tracking_uri(self) -> str:
        return self.platform.environment()["MLFLOW_TRACKING_URI"]

    def env(self) -> dict[str, str]:
        """The environment of a command run against this platform (what `mlops platform up` writes)."""
        return {**os.environ, **self.platform.environment(), "MLOPS_HOME": str(self.platform.home),
                "MLOPS_MODEL_CACHE": str(self.work / "model-cache"), "PYTHONUNBUFFERED": "1"}

    @contextlib.contextmanager
    def active(self):
        """In-process calls (registry, batch) go to this platform; the session's settings come back after."""
        import mlflow

        previous = mlflow.get_tracking_uri()
        with pytest.MonkeyPatch.context() as patch:
            for name in ("MLOPS_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_URI",
                         "MLOPS_HOME", "MLOPS_MODEL_CACHE"):
                patch.setenv(name, self.env()[name])
            mlflow.set_tracking_uri(self.tracking_uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(previous)

    def registry_state(self) -> dict:
        """Versions with their aliases and tags, the audit trail's objects, and any registry lock."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        versions = sorted(v.version for v in client.search_model_versions(f"name = '{OWN}'"))
        return {"aliases": dict(client.get_registered_model(OWN).aliases),
                "tags": {v: dict(client.get_model_version(OWN, v).tags) for v in versions},
                "audit": self.store.list_keys(f"audit/{OWN}"),
                "lock": self.store.exists(f"locks/registry/{OWN}.json")}

    def talks_to_s3(self, pid: int) -> bool:
        """Whether process ``pid`` has a connection open to this platform's S3."""
        try:
            proc = psutil.Process(pid)
            connections = getattr(proc, "net_connections", proc.connections)("tcp")
        except psutil.NoSuchProcess:
            return False
        return any(c.raddr and c.raddr.port == self.platform.ports["s3"] for c in connections)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A second local platform on free ports, with a model in production and a published batch output."""
    from mlops.platform.datasets import DatasetInfo, write_table
    from mlops.stages import register, train_and_log

    work = tmp_path_factory.mktemp("faults-own")
    plat = LocalPlatform(home=work / "home", ports=free_ports(DEFAULT_PORTS))
    plat.up(progress=lambda *_: None)
    try:
        store = ObjectStore(plat.s3_settings())
        project = renamed(CREDIT, work, OWN)
        data = OwnPlatform(project, plat, store, "", "", "", 0, f"s3://{store.bucket}/faults/predictions", work)
        with data.active():
            raw = generate_credit_data(2_000, seed=73)  # trained on each row's own features: no feature store
            rows, path = offline_rows(project, raw), work / "train.parquet"
            # numbers as the feature store returns them (and serving sends them): float64, NaN when missing
            rows = rows.astype({c: "float64" for c in project.features.of_type("integer", "float")})
            digest = write_table(rows, str(path))
            run = train_and_log(project, str(path), DatasetInfo(str(path), len(rows), list(rows.columns), digest),
                                {**project.model.params, "max_iter": 5}).run
            data.v1, data.v2 = (register(run.model_uri, OWN, run.run_id, digest) for _ in range(2))
            registry.promote(store, OWN, data.v1, registry.PRODUCTION, expected_current=None, actor="test",
                             reason="production before the faults")
            scored = feature_rows(2_000, seed=73)  # the same applications' feature rows
            data.input_uri = put_parquet(store, scored, "faults/input/rows.parquet", work, 500)
            data.rows = len(scored)
            run_batch_prediction(project, data.input_uri, data.output_uri, data.v1, shards=2, workers=1, store=store)
        yield data
    finally:
        plat.down(progress=lambda *_: None)


def test_s3_stopped_in_the_middle_of_a_pipeline_run(own):
    """The compiled batch_prediction pipeline (kfp.local, through `mlops run`) loses S3 while its shard task
    runs: the run fails naming S3, and a promotion tried meanwhile moves nothing. After S3 comes back (same
    ports, same data): the previous output is intact and the only one readable, the registry is as it was,
    and the rerun publishes the new output once."""
    d = own
    before, manifest_before = d.registry_state(), d.store.get_bytes(Output.parse(d.output_uri).key("_MANIFEST.json"))
    s3 = d.platform.services()["s3"]
    args = ["run", "batch_prediction", "--local", "--param", f"input_uri={d.input_uri}",
            "--param", f"output_uri={d.output_uri}", "--param", f"project={d.project.root}",
            "--param", f"model_version={d.v2}", "--param", "shards=1"]
    run = Cli(args, d.env(), d.work, "s3-stopped")
    wait_for(lambda: "Executing task 'score-batch-shard'" in run.stdout() or run.proc.poll() is not None,
             "the shard task to start", 300)
    assert run.proc.poll() is None, run.finish(5)
    kill_group(s3.pid)  # S3 goes away while the task runs
    code, stdout, stderr = run.finish(300)
    assert code == 1, stdout + stderr
    assert f"[batch shard 0] S3 at {s3.url} is unreachable" in stderr, stderr
    assert "Traceback" not in stderr and "commit-batch-predictions" not in stdout

    with d.active(), pytest.raises(StorageError, match=f"S3 at {s3.url} is unreachable"):
        registry.promote(d.store, OWN, d.v2, registry.STAGING, expected_current=registry.ANY, actor="test",
                         reason="promoted while S3 is down")

    d.platform.up(progress=lambda *_: None)  # what `mlops platform up` does: same ports, same data
    assert d.platform.services()["s3"].url == s3.url and d.platform.healthy() == {"s3": True, "mlflow": True}
    out = Output.parse(d.output_uri)
    assert d.store.get_bytes(out.key("_MANIFEST.json")) == manifest_before
    left = keys_under(d.store, d.output_uri)
    staged = [k for k in left if k.startswith("_staging/")]
    assert staged and all(k.endswith("/plan.json") for k in staged), left  # no shard output of the failed run
    readable = read_predictions(d.output_uri, d.store)
    assert len(readable) == d.rows and set(readable["model_version"]) == {d.v1}
    assert d.registry_state() == before

    rerun = Cli(args, d.env(), d.work, "s3-rerun")
    code, stdout, stderr = rerun.finish(300)
    assert code == 0, stdout + stderr
    assert f"predictions: {d.output_uri}/_MANIFEST.json" in stdout and f"{OWN} v{d.v2}" in stdout
    manifest = read_manifest(d.output_uri, d.store)
    assert manifest["model"]["version"] == d.v2
    assert keys_under(d.store, d.output_uri) == sorted(["_MANIFEST.json", *(p["key"] for p in manifest["parts"])])
    published = read_predictions(d.output_uri, d.store)
    assert len(published) == d.rows and published["customer_id"].is_unique
    assert set(published["model_version"]) == {d.v2}
    assert d.registry_state() == before


def test_mlflow_killed_during_a_promotion(own, monkeypatch):
    """`mlops promote` loses MLflow after checking the version, while it waits for the registry lock: it fails
    naming MLflow, releases the lock, and nothing moved (aliases, tags, audit). The library's callers (the
    pipeline's promote step, the rollout) get the same error, never a misleading "no such version". After
    MLflow restarts, the rerun promotes once."""
    from mlflow import MlflowClient

    d = own
    with d.active():
        champion = registry.alias_version(OWN, registry.PRODUCTION)
        candidate = d.v2 if champion == d.v1 else d.v1
        MlflowClient().set_model_version_tag(OWN, candidate, "mlops.gate.champion", champion)
        registry.approve(d.store, OWN, candidate, by="risk-officer", reason="the packaged gate is high-stakes")
    before = d.registry_state()
    lock = f"locks/registry/{OWN}.json"
    d.store.put_bytes(json.dumps({"owner": "another-host:77:busy", "expires": time.time() + 120}).encode(), lock)
    args = ["promote", OWN, candidate, "--reason", "approved", "--by", "alice", "--project", str(d.project.root)]
    promote = Cli(args, d.env(), d.work, "promote")
    try:
        # it has read the version and the approval from MLflow once it polls the lock on S3
        wait_for(lambda: promote.proc.poll() is not None or d.talks_to_s3(promote.proc.pid),
                 "`mlops promote` to wait for the registry lock", 180, 0.05)
        assert promote.proc.poll() is None, promote.finish(5)
        mlflow = d.platform.services()["mlflow"]
        kill_group(mlflow.pid)
    finally:
        d.store.delete_keys([lock])  # the other holder is done
    code, stdout, stderr = promote.finish(240)
    assert code == 1, stdout + stderr
    # the first thing it asks MLflow inside the lock: whether a crashed move is left to complete
    assert f"error: MLflow at {d.tracking_uri} failed while trying to read the registry journal of {OWN}" in stderr, \
        stderr
    assert "Traceback" not in stderr
    assert not d.store.exists(lock)  # released on the way out
    assert d.store.list_keys(f"audit/{OWN}") == before["audit"]

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once while it is down
    with d.active(), pytest.raises(TrackingError, match=f"MLflow at {d.tracking_uri} failed while trying to read"):
        registry.promote(d.store, OWN, candidate, registry.PRODUCTION, expected_current=champion, actor="pipeline",
                         reason="blessed", require_approval=True)

    d.platform.up(progress=lambda *_: None)
    assert d.platform.services()["mlflow"].url == mlflow.url
    assert d.registry_state() == before  # no alias, tag or audit event moved

    code, stdout, stderr = Cli(args, d.env(), d.work, "promote-rerun").finish(240)
    assert code == 0, stdout + stderr
    assert f"{OWN} v{candidate} is production (v{champion} kept as rollback)" in stdout
    after = d.registry_state()
    assert after["aliases"] == {registry.PRODUCTION: candidate, registry.ROLLBACK: champion}
    new = [k for k in after["audit"] if k not in before["audit"]]
    events = [json.loads(d.store.get_bytes(k)) for k in new]
    assert [(e["action"], e["version"], e["details"]["alias"]) for e in events] == [
        ("promote", candidate, registry.PRODUCTION)]
