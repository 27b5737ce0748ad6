"""Batch prediction against the real local S3 and MLflow: complete, exact, idempotent, atomic, clear errors.

One module-scoped model per project (two versions trained by the suite's
stages on point-in-time features: credit-default's, and churn's with its
integer ids and its own gate's threshold) and feature-row inputs written with
small row groups so that a few thousand rows already split into several
shards. The expectations are computed in-process from the same registered
files, with a frame built here (float64 numbers, None for missing text), not
by the code under test.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops.batch import read_manifest, read_predictions, run_batch_prediction
from mlops.batch.output import Output, commit, save_plan
from mlops.batch.plan import split_rows
from mlops.batch.run import plan
from mlops.batch.scoring import score_shard
from mlops.errors import DataError, ServingError, StorageError
from mlops.platform.storage import ObjectStore
from mlops.registry import model_files
from mlops.serving.predictor import decision_threshold
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, renamed

pytestmark = pytest.mark.platform

MODEL = "batch-tests"  # a copy of credit-default under this name
THRESHOLD = 0.3  # the credit-default gate's decision threshold
ROOT = Path(__file__).resolve().parent.parent


# -- the balanced split (pure) -----------------------------------------------------------------
def _best_max(sizes: list[int], n: int) -> int:
    """The smallest possible largest run over every contiguous cut into n runs (brute force)."""
    from itertools import combinations

    best = sum(sizes)
    for cuts in combinations(range(1, len(sizes)), n - 1):
        bounds = (0, *cuts, len(sizes))
        best = min(best, max(sum(sizes[a:b]) for a, b in zip(bounds, bounds[1:])))
    return best


def test_split_rows_is_contiguous_balanced_and_never_empty():
    rng = random.Random(7)
    for _ in range(300):
        sizes = [rng.choice([1, 5, 100, 1000, rng.randint(1, 2000)]) for _ in range(rng.randint(1, 9))]
        parts = rng.randint(1, 11)
        runs = split_rows(sizes, parts)
        assert len(runs) == min(parts, len(sizes)) and all(runs)
        assert [i for run in runs for i in run] == list(range(len(sizes)))  # contiguous, in order, each once
        assert max(sum(sizes[i] for i in run) for run in runs) == _best_max(sizes, len(runs)), (sizes, parts)
    with pytest.raises(ValueError, match="at least 1"):
        split_rows([10], 0)


# -- fixtures ------------------------------------------------------------------------------------
@dataclass
class Models:
    project: object
    store: ObjectStore
    v1: str
    v2: str
    work: Path
    loaded: dict

    @property
    def model(self) -> str:
        return self.project.names.model

    def expected(self, version: str, rows: pd.DataFrame) -> np.ndarray:
        """predict_proba of the registered files of ``version``, loaded in this process."""
        if version not in self.loaded:
            ref = model_files.resolve_model(self.model, version)
            self.loaded[version] = model_files.load_model(
                model_files.fetch_model(ref, self.work / "models", self.store), ref.digest)
        model = self.loaded[version]
        frame = pd.DataFrame({name: (rows[name].astype("float64") if kind != "string"
                                     else rows[name].astype(object).where(rows[name].notna(), None))
                              for name, kind in model.columns})
        return model.estimator.predict_proba(frame)[:, 1]


def _models(platform, tmp_path_factory, train_versions, example, name, raw, variants) -> Models:
    from mlops.registry import promotion as registry

    work = tmp_path_factory.mktemp(name)
    store = ObjectStore(platform.s3_settings())
    project = renamed(example, work, name)
    versions, _ = train_versions(project, raw, work, variants)
    registry.promote(store, name, versions[0], registry.PRODUCTION, expected_current=None, actor="test",
                     reason="batch tests")
    return Models(project, store, versions[0], versions[1], work, {})


@pytest.fixture(scope="module")
def models(platform, tmp_path_factory, train_versions):
    return _models(platform, tmp_path_factory, train_versions, CREDIT, MODEL, generate_credit_data(3_000, seed=61),
                   ({"max_iter": 5}, {"max_iter": 15}))


@pytest.fixture(scope="module")
def churn_models(platform, tmp_path_factory, train_versions):
    return _models(platform, tmp_path_factory, train_versions, CHURN, "batch-churn",
                   generate_churn_data(2_000, seed=61), ({"C": 0.05}, {"C": 1.0}))


def feature_rows(n: int, seed: int, project=CREDIT) -> pd.DataFrame:
    """Feature rows as the feature store holds them: nullable integers, missing values, text with None."""
    from mlops.features.engineering import compute_features
    from mlops.project.data import generate_data

    return compute_features(project, generate_data(project, n, seed=seed)).drop(columns=["created_timestamp"])


def put_parquet(store: ObjectStore, frame: pd.DataFrame, key: str, row_group_rows: int, tmp: Path) -> str:
    local = tmp / key.replace("/", "_")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), local, row_group_size=row_group_rows)
    store.put_file(local, key)
    return f"s3://{store.bucket}/{key}"


@pytest.fixture(scope="module")
def small(models, tmp_path_factory):
    """6,000 rows in two files under a prefix, 400-row row groups (15 of them), plus a file to ignore."""
    tmp = tmp_path_factory.mktemp("small")
    rows = feature_rows(6_000, seed=62)
    put_parquet(models.store, rows.iloc[:3_200], "batch-tests/small/a.parquet", 400, tmp)
    put_parquet(models.store, rows.iloc[3_200:], "batch-tests/small/b.parquet", 400, tmp)
    models.store.put_bytes(b"", "batch-tests/small/_SUCCESS")  # Spark's marker: not data
    return f"s3://{models.store.bucket}/batch-tests/small/", rows.reset_index(drop=True)


def out_uri(models: Models, name: str) -> str:
    return f"s3://{models.store.bucket}/batch-tests/out/{name}"


def keys(models: Models, uri: str) -> list[str]:
    out = Output.parse(uri)
    return [k[len(out.prefix) + 1:] for k in models.store.list_keys(out.prefix, out.bucket)]


def assert_scored_like_in_process(models: Models, got: pd.DataFrame, rows: pd.DataFrame, version: str) -> None:
    key, threshold = models.project.entity.key, decision_threshold(models.project)
    assert len(got) == len(rows) and got[key].tolist() == rows[key].tolist()
    np.testing.assert_allclose(got["probability"].to_numpy(), models.expected(version, rows), rtol=0, atol=1e-12)
    assert got["predicted_class"].tolist() == (got["probability"] >= threshold).astype(int).tolist()
    assert set(got["model_name"]) == {models.model} and set(got["model_version"]) == {version}
    assert got["scored_at"].nunique() == 1 and str(got["scored_at"].dtype) == "datetime64[us, UTC]"
    assert got["probability"].dtype == np.float64 and got["predicted_class"].dtype == np.int64


# -- a complete, exact output ------------------------------------------------------------------
def test_cli_scores_every_row_exactly_and_publishes_through_a_manifest(models, small):
    source, rows = small
    output = out_uri(models, "cli")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "mlops.cli", "batch-predict", "--input", source, "--output", output,
                           "--project", str(models.project.root), "--shards", "4", "--chunk-rows", "1000",
                           "--progress-every", "0.1"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    assert f"committed {output}/_MANIFEST.json" in done.stdout and "6,000 in 4 part(s)" in done.stdout
    progress = [line for line in done.stderr.splitlines() if line.startswith("[batch]")]
    assert progress and "6,000/6,000 rows (100.0%)" in progress[-1]
    assert all("rows/s" in line and "ETA" in line for line in progress)

    assert_scored_like_in_process(models, read_predictions(output, models.store), rows, models.v1)
    manifest = read_manifest(output, models.store)
    assert manifest["rows"] == 6_000 and sum(p["rows"] for p in manifest["parts"]) == 6_000
    assert manifest["model"]["version"] == models.v1 and manifest["model"]["digest"].startswith("sha256:")
    assert [f["uri"].rsplit("/", 1)[-1] for f in manifest["input"]["files"]] == ["a.parquet", "b.parquet"]
    assert all(f["version"] for f in manifest["input"]["files"])  # ETags: the input's fingerprint
    assert manifest["keep"] == ["customer_id"] and manifest["threshold"] == THRESHOLD == decision_threshold(CREDIT)
    # only the manifest and the parts it lists remain: no staging, no plan
    assert sorted(keys(models, output)) == sorted(["_MANIFEST.json", *(p["key"] for p in manifest["parts"])])


def test_chunking_sharding_and_worker_processes_do_not_change_a_value(models, small):
    source, rows = small
    runs = {}
    for name, shards, workers, chunk in (("one-chunk", 1, 1, 65_536), ("tiny-chunks", 3, 1, 137),
                                         ("processes", 7, 2, 250)):
        result = run_batch_prediction(models.project, source, out_uri(models, f"chunks-{name}"), models.v1,
                                      shards=shards, workers=workers, chunk_rows=chunk, store=models.store)
        assert len(result.manifest["parts"]) == shards
        runs[name] = read_predictions(out_uri(models, f"chunks-{name}"), models.store)
    for name, got in runs.items():
        pd.testing.assert_frame_equal(got.drop(columns="scored_at"), runs["one-chunk"].drop(columns="scored_at"))
    assert_scored_like_in_process(models, runs["processes"], rows, models.v1)


def test_local_input_and_other_kept_columns(models, small, tmp_path):
    _, rows = small
    folder = tmp_path / "local-input"
    folder.mkdir()
    part = rows.iloc[:1_000]
    pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / "x.parquet", row_group_size=300)
    output = out_uri(models, "local")
    result = run_batch_prediction(models.project, str(folder), output, models.v2, shards=2, workers=1,
                                  keep="customer_id,feature_timestamp,region", store=models.store)
    got = read_predictions(output, models.store)
    assert result.rows == 1_000 and list(got.columns[:3]) == ["customer_id", "feature_timestamp", "region"]
    assert got["feature_timestamp"].tolist() == part["feature_timestamp"].tolist()
    assert got["region"].tolist() == part["region"].tolist()
    assert_scored_like_in_process(models, got, part, models.v2)



def test_churn_keeps_its_integer_entity_key_by_default_and_decides_at_its_gates_threshold(churn_models, small,
                                                                                          tmp_path):
    """The second project: integer subscriber ids kept as they are (int64), the class at churn's gate threshold
    (0.2, not credit's 0.3), churn's own feature columns; an input without the key keeps nothing."""
    m = churn_models
    rows = feature_rows(1_500, seed=62, project=CHURN)
    source = put_parquet(m.store, rows, "batch-churn/input/a.parquet", 400, tmp_path)
    output = f"s3://{m.store.bucket}/batch-churn/out/default-keep"
    result = run_batch_prediction(m.project, source, output, "production", shards=2, workers=1, store=m.store)
    got = read_predictions(output, m.store)
    assert result.rows == 1_500 and list(got.columns) == ["subscriber_id", "probability", "predicted_class",
                                                          "model_name", "model_version", "scored_at"]
    assert got["subscriber_id"].dtype == np.int64 and got["subscriber_id"].is_unique
    assert_scored_like_in_process(m, got, rows, m.v1)  # production, by alias
    assert result.manifest["keep"] == ["subscriber_id"]
    assert result.manifest["threshold"] == decision_threshold(CHURN) == 0.2 != THRESHOLD
    assert 0.2 < got["predicted_class"].mean() < 0.8  # about half are offered a discount at 0.2
    # the key is kept only when the input has it
    anonymous = put_parquet(m.store, rows.drop(columns=["subscriber_id"]), "batch-churn/input-no-key/a.parquet", 400,
                            tmp_path)
    bare = f"s3://{m.store.bucket}/batch-churn/out/no-key"
    assert run_batch_prediction(m.project, anonymous, bare, m.v2, shards=1, workers=1, store=m.store).manifest[
        "keep"] == []
    scored = read_predictions(bare, m.store)
    assert "subscriber_id" not in scored.columns and len(scored) == 1_500
    np.testing.assert_allclose(scored["probability"].to_numpy(), m.expected(m.v2, rows), rtol=0, atol=1e-12)
    # a column credit's model needs is no part of churn's input, nor the reverse
    with pytest.raises(DataError, match=r"lacks the model's feature column\(s\)"):
        run_batch_prediction(m.project, small[0], f"{bare}-credit-input", m.v1, workers=1, store=m.store)


# -- idempotent and atomic -------------------------------------------------------------------------
def test_a_rerun_of_the_same_job_is_a_noop(models, small):
    source, _ = small
    output = out_uri(models, "rerun")
    first = run_batch_prediction(models.project, source, output, "production", shards=3, workers=1, store=models.store)
    before, listing = read_predictions(output, models.store), keys(models, output)
    again = run_batch_prediction(models.project, source, output, models.v1, shards=5, workers=1, chunk_rows=99,
                                 store=models.store)  # same version by number, other shards and chunks
    assert not first.already_complete and again.already_complete
    assert again.manifest == first.manifest and keys(models, output) == listing
    after = read_predictions(output, models.store)
    pd.testing.assert_frame_equal(after, before)
    assert after["customer_id"].is_unique


def test_a_new_model_version_or_new_input_replaces_the_output(models, small, tmp_path):
    source, rows = small
    output = out_uri(models, "replace")
    old = run_batch_prediction(models.project, source, output, models.v1, shards=2, workers=1,
                               store=models.store).manifest
    new = run_batch_prediction(models.project, source, output, models.v2, shards=3, workers=1,
                               store=models.store).manifest
    assert new["model"]["version"] == models.v2 and new["job"] != old["job"]
    assert sorted(keys(models, output)) == sorted(["_MANIFEST.json", *(p["key"] for p in new["parts"])])
    assert_scored_like_in_process(models, read_predictions(output, models.store), rows, models.v2)
    # more input under the same prefix: a new fingerprint, scored again
    extra = feature_rows(1_000, seed=63)
    put_parquet(models.store, extra, "batch-tests/growing/a.parquet", 400, tmp_path)
    growing = f"s3://{models.store.bucket}/batch-tests/growing/"
    grown = run_batch_prediction(models.project, growing, output, models.v2, shards=1, workers=1, store=models.store)
    put_parquet(models.store, extra.iloc[:100], "batch-tests/growing/b.parquet", 400, tmp_path)
    regrown = run_batch_prediction(models.project, growing, output, models.v2, shards=1, workers=1,
                                   store=models.store)
    assert (grown.rows, regrown.rows, regrown.already_complete) == (1_000, 1_100, False)
    assert len(read_predictions(output, models.store)) == 1_100


def test_a_failed_shard_leaves_no_manifest_and_the_rerun_commits_once(models, small):
    source, rows = small
    output = out_uri(models, "failed-shard")
    planned = plan(models.project, source, output, models.v1, shards=3, store=models.store)
    save_plan(models.store, planned.job)
    score_shard(models.store, planned.job, 0, planned.model)  # shards 1 and 2 never finish
    with pytest.raises(DataError, match="shard 1 has no output; shard 2 has no output"):
        commit(models.store, planned.job)
    assert read_manifest(output, models.store) is None
    with pytest.raises(StorageError, match="no committed batch predictions"):
        read_predictions(output, models.store)
    result = run_batch_prediction(models.project, source, output, models.v1, shards=3, workers=1, store=models.store)
    assert not result.already_complete and result.rows == len(rows)
    assert sorted(keys(models, output)) == sorted(["_MANIFEST.json", *(p["key"] for p in result.manifest["parts"])])
    assert read_predictions(output, models.store)["customer_id"].tolist() == rows["customer_id"].tolist()


def test_an_input_replaced_after_planning_fails_the_shard(models, tmp_path):
    rows = feature_rows(1_000, seed=64)
    source = put_parquet(models.store, rows, "batch-tests/replaced/a.parquet", 400, tmp_path)
    planned = plan(models.project, source, out_uri(models, "replaced"), models.v1, shards=2, store=models.store)
    put_parquet(models.store, rows.iloc[:500], "batch-tests/replaced/a.parquet", 400, tmp_path)
    with pytest.raises(DataError, match="was replaced after this run was planned"):
        score_shard(models.store, planned.job, 0, planned.model)


def test_a_killed_run_leaves_nothing_readable_and_a_rerun_completes(models, tmp_path):
    """SIGKILL to the `mlops batch-predict` process while its worker processes score: they die with it,
    nothing is readable, and the rerun scores exactly the input's rows once and removes the staging."""
    rows = feature_rows(240_000, seed=65)
    source = put_parquet(models.store, rows, "batch-tests/large/rows.parquet", 5_000, tmp_path)
    output = out_uri(models, "killed")
    out = Output.parse(output)
    proc = subprocess.Popen([sys.executable, "-m", "mlops.cli", "batch-predict", "--input", source, "--output", output,
                             "--project", str(models.project.root), "--version", models.v1, "--shards", "8",
                             "--workers", "2", "--chunk-rows", "250"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not any("/shard-" in k for k in models.store.list_keys(out.prefix, out.bucket)):
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no shard was staged within 3 minutes"
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stderr.close()
    assert len(workers) == 2
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "worker processes outlived the killed run"
    assert read_manifest(output, models.store) is None, "the run committed before it was killed"
    staged = keys(models, output)
    assert any(k.startswith("_staging/") and k.endswith(".parquet") for k in staged)
    with pytest.raises(StorageError, match="no committed batch predictions"):
        read_predictions(output, models.store)

    result = run_batch_prediction(models.project, source, output, models.v1, shards=8, workers=2, store=models.store)
    assert not result.already_complete and result.rows == len(rows)
    got = read_predictions(output, models.store)
    assert got["customer_id"].tolist() == rows["customer_id"].tolist() and got["customer_id"].is_unique
    assert sorted(keys(models, output)) == sorted(["_MANIFEST.json", *(p["key"] for p in result.manifest["parts"])])


# -- bad input: clear errors naming what and where ------------------------------------------------
@pytest.fixture(scope="module")
def bad(models, small, tmp_path_factory):
    """Inputs that must be refused, on S3 and locally."""
    tmp = tmp_path_factory.mktemp("bad")
    _, rows = small
    store, bucket = models.store, models.store.bucket
    put_parquet(store, rows.drop(columns=["income", "log_income"]).head(50), "batch-tests/bad/no-income.parquet",
                400, tmp)
    put_parquet(store, rows.head(50).astype({"income": str}), "batch-tests/bad/text-income.parquet", 400, tmp)
    store.put_bytes(b"customer_id,income\nC1,100\n", "batch-tests/bad/csv.parquet")
    store.put_bytes(b"a,b\n", "batch-tests/bad/only-csv/data.csv")
    store.put_bytes(b"not ours", "batch-tests/out/foreign/report.txt")
    (tmp / "empty-folder").mkdir()
    return {
        "no-income": f"s3://{bucket}/batch-tests/bad/no-income.parquet",
        "text-income": f"s3://{bucket}/batch-tests/bad/text-income.parquet",
        "csv": f"s3://{bucket}/batch-tests/bad/csv.parquet",
        "only-csv": f"s3://{bucket}/batch-tests/bad/only-csv/",
        "missing": f"s3://{bucket}/batch-tests/bad/nothing-here.parquet",
        "missing-local": str(tmp / "nothing-here.parquet"),
        "empty-folder": str(tmp / "empty-folder"),
        "good": small[0],
    }


@pytest.mark.parametrize("input_key, output, options, error, words", [
    ("no-income", "bad-out", {}, DataError,
     ["no-income.parquet", "lacks the model's feature column(s)", "'income'", "'log_income'"]),
    ("text-income", "bad-out", {}, DataError, ["text-income.parquet", "income is string", "expects numbers"]),
    ("csv", "bad-out", {}, DataError, ["cannot read", "csv.parquet", "as Parquet"]),
    ("only-csv", "bad-out", {}, DataError, ["no Parquet files", "only-csv/", "data.csv"]),
    ("missing", "bad-out", {}, DataError, ["input not found", "nothing-here.parquet", "does not exist"]),
    ("missing-local", "bad-out", {}, DataError, ["input not found", "nothing-here.parquet"]),
    ("empty-folder", "bad-out", {}, DataError, ["no Parquet files", "empty-folder"]),
    ("good", "bad-out", {"keep": "customer_id,nope"}, DataError, ["lacks column(s) ['nope'] to keep"]),
    ("good", "bad-out", {"keep": "probability"}, DataError, ["cannot keep column(s) ['probability']"]),
    ("good", "foreign", {}, DataError, ["already holds objects that are not batch predictions", "report.txt"]),
    ("good", "../small/inside", {}, DataError, ["not a plain relative path"]),
    ("good", None, {}, DataError, ["must be an s3:// prefix"]),
    ("good", "bad-out", {"version_or_alias": "99"}, ServingError, ["has no version or alias '99'", MODEL]),
    ("good", "bad-out", {"shards": 0}, DataError, ["shards must be at least 1"]),
    ("good", "bad-out", {"chunk_rows": 0}, DataError, ["chunk_rows must be at least 1"]),
])
def test_bad_input_is_refused_naming_what_and_where(models, bad, input_key, output, options, error, words):
    target = "/tmp/local-output" if output is None else out_uri(models, output)
    args = {"version_or_alias": models.v1, **options}
    with pytest.raises((error, StorageError)) as raised:
        run_batch_prediction(models.project, bad[input_key], target, args.pop("version_or_alias"), workers=1,
                             store=models.store, **args)
    assert all(w in str(raised.value) for w in words), str(raised.value)
    assert read_manifest(out_uri(models, "bad-out"), models.store) is None


def test_output_overlapping_the_input_is_refused(models, small):
    with pytest.raises(DataError, match="overlap"):
        run_batch_prediction(models.project, small[0], small[0] + "predictions", models.v1, store=models.store)


@pytest.mark.parametrize("argv, code, message", [
    (["--shards", "0"], 2, "--shards: must be at least 1, got 0"),
    (["--chunk-rows", "many"], 2, "--chunk-rows: expected a whole number, got 'many'"),
    (["--version", "2", "--alias", "production"], 2, "not allowed with argument"),
    (["--version", "latest"], 1, "--version must be a version number such as 3"),
])
def test_bad_arguments_exit_with_a_one_line_error(models, small, capsys, argv, code, message):
    from mlops.cli.main import main

    cmd = ["batch-predict", "--input", small[0], "--output", out_uri(models, "bad-args"),
           "--project", str(models.project.root), *argv]
    try:
        status = main(cmd)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    assert status == code
    assert message in capsys.readouterr().err


# -- the compiled pipeline ---------------------------------------------------------------------------
def plain(text: str) -> str:
    """kfp.local's output without its terminal colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_the_compiled_pipeline_runs_end_to_end_with_kfp_local(models, small, tmp_path, capsys):
    """The very batch_prediction_pipeline.yaml that goes to Kubeflow: plan -> ParallelFor shards -> commit;
    rerun through `mlops run batch_prediction --local`, it stops after the plan."""
    from mlops.cli.main import main
    from mlops.platform.local_run import pipeline_file, run_local

    source, rows = small
    output = out_uri(models, "pipeline")
    params = {"project": models.project.source, "input_uri": source, "output_uri": output, "shards": 3,
              "chunk_rows": 1000}
    run_local(pipeline_file("batch_prediction"), params, tmp_path / "kfp", tmp_path / "run.log")
    log = plain((tmp_path / "run.log").read_text())
    assert log.count("Executing task 'score-batch-shard'") == 3, log[-3000:]
    manifest = read_manifest(output, models.store)
    assert manifest["model"]["version"] == models.v1 and len(manifest["parts"]) == 3  # production, by alias
    got = read_predictions(output, models.store)
    assert_scored_like_in_process(models, got, rows, models.v1)

    capsys.readouterr()
    argv = [a for name, value in params.items() for a in ("--param", f"{name}={value}")]
    assert main(["run", "batch_prediction", "--local", *argv]) == 0
    rerun = plain(capsys.readouterr().out)
    assert "Executing task 'plan-batch-prediction'" in rerun and "score-batch-shard" not in rerun
    assert "commit-batch-predictions" not in rerun
    assert f"predictions: {output}/_MANIFEST.json" in rerun and "6,000 in 3 part(s)" in rerun
    assert read_manifest(output, models.store) == manifest  # the same run's output: nothing scored again


def test_the_pipeline_reports_a_bad_input_by_its_step(models, tmp_path, bad):
    from mlops.errors import PipelineError
    from mlops.platform.local_run import pipeline_file, run_local

    with pytest.raises(PipelineError, match=r"\[batch plan\] .*lacks the model's feature column\(s\)"):
        run_local(pipeline_file("batch_prediction"), {"input_uri": bad["no-income"], "project": models.project.source,
                                                      "output_uri": out_uri(models, "pipeline-bad")},
                  tmp_path / "kfp", tmp_path / "run.log")
