"""`mlops` as a person uses it: help, clear errors without tracebacks, the training run."""

import os
import subprocess
import sys

import pytest

from mlops.local_platform import free_ports


def mlops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mlops.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_help_lists_every_command_with_a_description():
    out = mlops("--help").stdout
    for command in ("platform", "data", "run", "compile", "demo"):
        line = next(l for l in out.splitlines() if l.strip().startswith(command + " "))
        assert len(line.split(None, 1)[1]) > 20, line


@pytest.mark.parametrize("args, message", [
    (["data", "generate", "--rows", "10", "--out", "x.parquet"], "rows must be an integer in [1000, 1000000]"),
    (["data", "generate", "--scenario", "earthquake", "--out", "x.parquet"], "scenario must be one of"),
    (["run", "training"], "add --local"),
    (["run", "nonexistent", "--local"], "no compiled pipeline 'nonexistent'"),
    (["run", "training", "--local", "--param", "epochs=3"], "has no parameter 'epochs'"),
    (["run", "training", "--local", "--param", "seed=abc"], "seed='abc' is not a valid NUMBER_INTEGER"),
    (["run", "training", "--local", "--param", "seed"], "must look like NAME=VALUE"),
])
def test_bad_arguments_get_one_clear_line(args, message, tmp_path):
    result = mlops(*args, env={"MLOPS_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unreachable_platform_is_reported_before_any_task_runs(tmp_path):
    port = free_ports(["s3"])["s3"]
    env = {"MLOPS_HOME": str(tmp_path), "MLOPS_S3_ENDPOINT": f"http://127.0.0.1:{port}",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}
    result = mlops("run", "training", "--local", env=env)
    assert result.returncode == 1 and f"S3 at http://127.0.0.1:{port} is unreachable" in result.stderr
    assert not (tmp_path / "kfp-local").exists()


@pytest.mark.platform
def test_generate_then_train_from_the_cli(platform, tmp_path):
    uri = f"s3://{platform.bucket}/tests/cli/train.parquet"
    gen = mlops("data", "generate", "--rows", "3000", "--seed", "5", "--out", uri)
    assert gen.returncode == 0, gen.stderr
    assert "wrote 3000 rows" in gen.stdout
    result = mlops("run", "training", "--local", "--param", f"data_uri={uri}", "--param", "max_iter=30",
                   "--param", "model_name=cli-model")
    assert result.returncode == 0, result.stdout + result.stderr
    # 3,000 rows leave a 600-row test set: the packaged gate refuses the model, and says why.
    assert "gate: NOT_BLESSED (nothing registered)" in result.stdout, result.stdout
    assert "  FAIL " in result.stdout and "gate report: s3://" in result.stdout, result.stdout
    assert "Executing task 'train-model'" in result.stdout  # progress stays visible


def test_schema_infer_then_validate(tmp_path):
    ref, bad = tmp_path / "ref.parquet", tmp_path / "bad.parquet"
    assert mlops("data", "generate", "--rows", "2000", "--out", str(ref)).returncode == 0
    assert mlops("data", "generate", "--rows", "2000", "--scenario", "null_column", "--out", str(bad)).returncode == 0
    inferred = mlops("schema", "infer", "--data", str(ref), "--dataset", "demo", "--key", "customer_id",
                     "--timestamp", "event_timestamp", "--out", str(tmp_path / "contracts" / "demo.yaml"))
    assert inferred.returncode == 0, inferred.stderr
    assert (tmp_path / "contracts" / "demo.profile.json").is_file()
    contract = str(tmp_path / "contracts" / "demo.yaml")
    ok = mlops("validate", "--data", str(ref), "--contract", contract, "--report-dir", str(tmp_path / "r1"))
    assert ok.returncode == 0 and "PASSED" in ok.stdout
    failed = mlops("validate", "--data", str(bad), "--contract", contract, "--report-dir", str(tmp_path / "r2"))
    assert failed.returncode == 1 and "missing.all_null [debt_to_income]" in failed.stdout
    assert (tmp_path / "r2" / "report.html").is_file()


def test_validate_with_a_broken_contract_names_the_field(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("dataset: d\ncolumns:\n  x: {type: decimal}\n")
    result = mlops("validate", "--data", str(tmp_path / "x.parquet"), "--contract", str(bad))
    assert result.returncode == 1 and "columns.x.type: must be one of" in result.stderr


@pytest.mark.platform
def test_features_online_reads_what_was_materialized(platform, tmp_path):
    from mlops.data.generator import generate_credit_data
    from mlops.datasets import write_table
    from mlops.stages import build_features
    from mlops.storage import ObjectStore

    uri = f"s3://{platform.bucket}/tests/cli/features.parquet"
    raw = generate_credit_data(2_000, seed=31)
    write_table(raw, uri)
    build_features(uri, "credit_features", tmp_path / "f", ObjectStore(platform.s3_settings()))
    recent, old = raw["customer_id"].iloc[-1], "C9999999"
    result = mlops("features", "online", "--customer", recent, "--customer", old)
    assert result.returncode == 0, result.stderr
    assert recent in result.stdout and "loan_to_income" in result.stdout
    assert f"no online values for ['{old}']" in result.stdout
