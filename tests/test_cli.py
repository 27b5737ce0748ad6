"""`mlops` as a person uses it: help, clear errors without tracebacks, projects, the training run."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from mlops.platform.local import free_ports
from tests.projects import CHURN, CREDIT, EXAMPLES, generate_churn_data, renamed


def mlops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mlops.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def refused(result, message):
    """Exit 1 with one ``error:`` line holding ``message`` (a regex), and no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and re.search(message, lines[0]), result.stderr
    return lines[0]


def test_help_lists_every_command_with_a_description():
    out = mlops("--help").stdout
    for command in ("platform", "data", "run", "compile", "demo", "project"):
        line = next(l for l in out.splitlines() if l.strip().startswith(command + " "))
        assert len(line.split(None, 1)[1]) > 20, line


@pytest.mark.parametrize("args, message", [
    (["data", "generate", "--project", "credit-default", "--rows", "10", "--out", "x.parquet"],
     r"data.py:generate of project credit-default raised ValueError: rows must be an integer in \[1000, 1000000\]"),
    (["data", "generate", "--project", "churn", "--scenario", "earthquake", "--out", "x.parquet"],
     r"data.py:generate of project churn raised ValueError: scenario must be one of"),
    (["data", "generate", "--out", "x.parquet"], r"name the project with --project \(or MLOPS_PROJECT\)"),
    (["data", "generate", "--project", "no-such-example", "--out", "x.parquet"],
     r"no example project named 'no-such-example'"),
    (["run", "training"], "add --local"),
    (["run", "nonexistent", "--local"], "no compiled pipeline 'nonexistent'"),
    (["run", "training", "--local", "--param", "epochs=3"], "has no parameter 'epochs'"),
    (["run", "batch_prediction", "--local", "--param", "shards=abc"], r"shards='abc' is not a valid NUMBER_INTEGER"),
    (["run", "training", "--local", "--param", "seed"], "must look like NAME=VALUE"),
])
def test_bad_arguments_get_one_clear_line(args, message, tmp_path):
    refused(mlops(*args, env={"MLOPS_HOME": str(tmp_path), "MLOPS_PROJECT": ""}), message)


def test_the_project_can_come_from_the_environment(tmp_path):
    out = tmp_path / "churn.parquet"
    result = mlops("data", "generate", "--rows", "1000", "--out", str(out), env={"MLOPS_PROJECT": "churn"})
    assert result.returncode == 0, result.stderr
    assert "wrote 1000 rows of churn (none, seed 7)" in result.stdout and "churned rate 0." in result.stdout


def test_unreachable_platform_is_reported_before_any_task_runs(tmp_path):
    port = free_ports(["s3"])["s3"]
    env = {"MLOPS_HOME": str(tmp_path), "MLOPS_S3_ENDPOINT": f"http://127.0.0.1:{port}",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}
    result = mlops("run", "training", "--local", "--param", "project=churn", env=env)
    assert result.returncode == 1 and f"S3 at http://127.0.0.1:{port} is unreachable" in result.stderr
    assert not (tmp_path / "kfp-local").exists()


@pytest.mark.platform
def test_generate_then_train_from_the_cli(platform, tmp_path):
    project = renamed(CREDIT, tmp_path, "cli-model")
    uri = f"s3://{platform.bucket}/tests/cli/train.parquet"
    gen = mlops("data", "generate", "--project", str(project.root), "--rows", "3000", "--seed", "5", "--out", uri)
    assert gen.returncode == 0, gen.stderr
    assert "wrote 3000 rows of cli-model" in gen.stdout and "default rate 0." in gen.stdout
    result = mlops("run", "training", "--local", "--param", f"project={project.root}", "--param", f"data_uri={uri}",
                   "--param", 'model_params={"max_iter": 30}')
    assert result.returncode == 0, result.stdout + result.stderr
    # 3,000 rows leave a 600-row test set: credit's gate refuses the model, and says why.
    assert "gate: NOT_BLESSED (nothing registered)" in result.stdout, result.stdout
    assert "  FAIL " in result.stdout and "gate report: s3://" in result.stdout, result.stdout
    assert "/reports/gate/cli-model/" in result.stdout  # the summary reads the project's model's reports
    assert "Executing task 'train-model'" in result.stdout  # progress stays visible


@pytest.mark.parametrize("project, key, timestamp, emptied", [
    (CREDIT, "customer_id", "event_timestamp", "debt_to_income"),
    (CHURN, "subscriber_id", "snapshot_timestamp", "usage_hours_30d"),
], ids=["credit-default", "churn"])
def test_schema_infer_then_validate(tmp_path, project, key, timestamp, emptied):
    ref, bad = tmp_path / "ref.parquet", tmp_path / "bad.parquet"
    name = ("--project", project.name)
    assert mlops("data", "generate", *name, "--rows", "2000", "--out", str(ref)).returncode == 0
    assert mlops("data", "generate", *name, "--rows", "2000", "--scenario", "null_column", "--out",
                 str(bad)).returncode == 0
    inferred = mlops("schema", "infer", "--data", str(ref), "--dataset", "demo", "--key", key,
                     "--timestamp", timestamp, "--out", str(tmp_path / "contracts" / "demo.yaml"))
    assert inferred.returncode == 0, inferred.stderr
    assert (tmp_path / "contracts" / "demo.profile.json").is_file()
    contract = str(tmp_path / "contracts" / "demo.yaml")
    ok = mlops("validate", "--data", str(ref), "--contract", contract, "--report-dir", str(tmp_path / "r1"))
    assert ok.returncode == 0 and "PASSED" in ok.stdout
    failed = mlops("validate", "--data", str(bad), "--contract", contract, "--report-dir", str(tmp_path / "r2"))
    assert failed.returncode == 1 and f"missing.all_null [{emptied}]" in failed.stdout
    assert (tmp_path / "r2" / "report.html").is_file()
    # The project's own contract says the same, without naming a contract at all.
    own = mlops("validate", "--data", str(bad), *name, "--report-dir", str(tmp_path / "r3"))
    assert own.returncode == 1 and f"missing.all_null [{emptied}]" in own.stdout
    assert mlops("validate", "--data", str(ref), *name, "--report-dir", str(tmp_path / "r4")).returncode == 0


@pytest.mark.parametrize("project, numeric, categorical", [
    (CREDIT, "debt_to_income", "home_ownership"),
    (CHURN, "usage_hours_30d", "payment_method"),
], ids=["credit-default", "churn"])
def test_schema_profile_follows_an_edited_contract(tmp_path, project, numeric, categorical):
    """An edited contract gets its profile rewritten; a profile that no longer fits is refused by name."""
    import yaml

    from mlops.stats.profile import Profile

    ref = tmp_path / "ref.parquet"
    assert mlops("data", "generate", "--project", project.name, "--rows", "2000", "--out", str(ref)).returncode == 0
    path = tmp_path / "contracts" / "demo.yaml"
    assert mlops("schema", "infer", "--data", str(ref), "--dataset", "demo", "--out", str(path)).returncode == 0
    profile_path = tmp_path / "contracts" / "demo.profile.json"
    assert {numeric, categorical} <= set(Profile.load(profile_path).features)

    doc = yaml.safe_load(path.read_text())
    doc["columns"][numeric]["drift"] = False
    doc["columns"][categorical]["drift"] = {"method": "chisquare", "threshold": 0.01}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    rewritten = mlops("schema", "profile", "--contract", str(path), "--data", str(ref))
    assert rewritten.returncode == 0, rewritten.stderr
    assert numeric not in Profile.load(profile_path).features
    validated = mlops("validate", "--data", str(ref), "--contract", str(path), "--report-dir", str(tmp_path / "r"))
    assert validated.returncode == 0 and "PASSED" in validated.stdout

    doc["columns"][categorical] = {"type": "float"}  # retyped, profile not rewritten
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    refused = mlops("validate", "--data", str(ref), "--contract", str(path), "--report-dir", str(tmp_path / "r2"))
    assert refused.returncode == 1 and f"summarises ['{categorical}'] as ['categorical']" in refused.stderr
    assert "mlops schema profile" in refused.stderr

    del doc["reference_profile"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    nowhere = mlops("schema", "profile", "--contract", str(path), "--data", str(ref))
    assert nowhere.returncode == 1 and "names no reference_profile file to write" in nowhere.stderr


def test_validate_with_a_broken_contract_names_the_field(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("dataset: d\ncolumns:\n  x: {type: decimal}\n")
    result = mlops("validate", "--data", str(tmp_path / "x.parquet"), "--contract", str(bad))
    assert result.returncode == 1 and "columns.x.type: must be one of" in result.stderr


@pytest.mark.platform
@pytest.mark.parametrize("example, unknown", [(CREDIT, "C9999999"), (CHURN, "99999999")], ids=lambda v: getattr(
    v, "name", v))
def test_features_online_reads_what_was_materialized(platform, tmp_path, example, unknown):
    from mlops.platform.datasets import write_table
    from mlops.platform.storage import ObjectStore
    from mlops.project.data import generate_data
    from mlops.stages import build_features

    project = renamed(example, tmp_path, f"cli-online-{example.name}")
    uri = f"s3://{platform.bucket}/tests/cli/{project.name}/features.parquet"
    raw = generate_data(project, 2_000, seed=31)
    write_table(raw, uri)
    build_features(project, uri, tmp_path / "f", ObjectStore(platform.s3_settings()))
    recent = str(raw.sort_values(project.event_timestamp)[project.entity.key].iloc[-1])
    result = mlops("features", "online", "--project", str(project.root), "--id", recent, "--id", unknown)
    assert result.returncode == 0, result.stderr
    assert recent in result.stdout and project.features.names[-1] in result.stdout
    shown = f"['{unknown}']" if project.entity.type == "string" else f"[{unknown}]"
    assert f"no online values for {shown}" in result.stdout
    if project.entity.type == "integer":
        refused(mlops("features", "online", "--project", str(project.root), "--id", "S123"),
                rf"subscriber_id 'S123' is not an integer id \(entity subscriber of project {project.name}")


# -- bad project input through the CLI: one line naming the file and the key -------------------------

def _copy(tmp_path, example=CHURN, name="p"):
    root = tmp_path / name
    shutil.copytree(example.root, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _edit(root, change):
    doc = yaml.safe_load((root / "project.yaml").read_text())
    change(doc)
    (root / "project.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def test_a_project_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "no-such-project"
    for command in (("project", "check"), ("validate", "--data", str(tmp_path / "x.parquet")),
                    ("data", "generate", "--out", str(tmp_path / "x.parquet"))):
        refused(mlops(*command, "--project", str(missing)), rf"project {re.escape(str(missing))}: not a folder")
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(modle={}), r"unknown key\(s\) \['modle'\]"),
    (lambda d: d.update(model={"estimator": "sklearn.svm.SVC"}),
     r"model.estimator 'sklearn.svm.SVC' is not allowed for binary_classification"),
    (lambda d: d["label"].update(positive=["yes", "maybe"]), r"label.positive must be the positive class"),
], ids=["unknown key", "estimator not allowed", "two positive classes"])
def test_a_bad_project_yaml_is_refused_by_every_command_naming_the_file_and_the_key(tmp_path, change, message):
    root = _edit(_copy(tmp_path), change)
    where = re.escape(str(root / "project.yaml"))
    refused(mlops("project", "check", "--project", str(root)), rf"{where}: .*{message}")
    refused(mlops("validate", "--data", str(tmp_path / "x.parquet"), "--project", str(root)), rf"{where}")


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw.assign(churned=raw["churned"].where(raw.index % 9 != 0, "maybe")),
     r"category.unknown \[churned\]"),
    (lambda raw: raw.drop(columns=["subscriber_id"]), r"schema.missing_column \[subscriber_id\]"),
    (lambda raw: raw.drop(columns=["age_band"]), r"schema.missing_column \[age_band\]"),
], ids=["label with a third value", "no entity key", "no sensitive attribute"])
def test_bad_project_data_fails_validation_naming_the_column(tmp_path, change, message):
    data = tmp_path / "batch.parquet"
    change(generate_churn_data(1_500)).to_parquet(data)
    result = mlops("validate", "--data", str(data), "--project", "churn", "--report-dir", str(tmp_path / "r"))
    assert result.returncode == 1 and "FAILED" in result.stdout and re.search(message, result.stdout), result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.platform
def test_bad_project_input_through_the_training_pipeline_registers_nothing(platform, tmp_path):
    """`mlops run training`: a project the pipeline cannot read fails its first step in one line."""
    from mlflow import MlflowClient

    client = MlflowClient()
    before = {(m.name, v.version) for m in client.search_registered_models()
              for v in client.search_model_versions(f"name = '{m.name}'")}
    root = _edit(_copy(tmp_path, name="cli-bad-project"), lambda d: d.update(modle={}))
    result = mlops("run", "training", "--local", "--param", f"project={root}")
    line = refused(result, r"\[validate\] .*unknown key\(s\) \['modle'\]")
    assert str(root / "project.yaml") in line
    assert "Executing task 'build-features'" not in result.stdout
    assert {(m.name, v.version) for m in client.search_registered_models()
            for v in client.search_model_versions(f"name = '{m.name}'")} == before


# -- mlops project list | check | push ---------------------------------------------------------------

def test_project_list_names_every_example_with_its_task():
    result = mlops("project", "list")
    assert result.returncode == 0, result.stderr
    for project in EXAMPLES:
        line = next(l for l in result.stdout.splitlines() if l.startswith(project.name + " "))
        assert "binary_classification" in line and project.description[:30] in line
    assert "(examples in " in result.stdout


@pytest.mark.parametrize("project, expected", [
    (CREDIT, ["entity customer (customer_id, string), label default (positive 1), 15 features",
              "features.hook features.py:compute_features imports",
              "model builds: Pipeline (sklearn.ensemble.HistGradientBoostingClassifier)",
              "fairness on ['gender'], high-stakes", "rollout policy rollout.yaml loads",
              "monitoring policy monitoring.yaml loads", "contract raw: raw.yaml", "contract features: features.yaml"]),
    (CHURN, ["entity subscriber (subscriber_id, integer), label churned (positive 'yes'), 10 features",
             "model.build model.py:build_model imports", "model builds: Pipeline (from model.py:build_model)",
             "fairness on ['age_band', 'gender']", "rollout policy rollout.yaml loads",
             "monitoring policy monitoring.yaml loads", "contract raw: raw.yaml", "contract features: features.yaml"]),
], ids=["credit-default", "churn"])
def test_project_check_prints_what_it_checked(project, expected):
    result = mlops("project", "check", "--project", project.name)
    assert result.returncode == 0, result.stderr
    checked = [l.removeprefix("ok  ") for l in result.stdout.splitlines() if l.startswith("ok  ")]
    for item in expected:
        assert any(item in line for line in checked), (item, result.stdout)
    assert checked[0].startswith(f"{project.where}: binary_classification")
    assert f"project {project.name} ({project.digest[:19]}...) is ready" in result.stdout
    if project is CHURN:
        assert "high-stakes" not in result.stdout


NO_PROBA = "from sklearn.linear_model import LinearRegression\n\ndef build_model(params):\n    return LinearRegression()\n"


def test_project_check_names_a_build_hook_whose_model_has_no_predict_proba(tmp_path):
    root = _copy(tmp_path)
    (root / "model.py").write_text(NO_PROBA)
    result = mlops("project", "check", "--project", str(root))
    refused(result, r"model.py:build_model of project churn returned LinearRegression, which lacks "
                    r"\['predict_proba'\]")
    assert "model builds" not in result.stdout  # it stopped at the model: nothing after it claims success


def test_project_check_names_a_hook_that_does_not_import(tmp_path):
    root = _copy(tmp_path)
    (root / "model.py").write_text("import no_such_package_here\n")
    refused(mlops("project", "check", "--project", str(root)),
            rf"{re.escape(str(root / 'model.py'))}: importing it failed: ModuleNotFoundError")


@pytest.mark.platform
def test_project_push_publishes_a_checked_project_once_and_refuses_a_broken_one(platform, store, tmp_path):
    from mlops.project import resolve_project

    project = renamed(CHURN, tmp_path, "cli-pushed")
    pushed = mlops("project", "push", "--project", str(project.root))
    assert pushed.returncode == 0, pushed.stderr
    uri = f"s3://{store.bucket}/projects/cli-pushed/{project.digest.removeprefix('sha256:')}.tar.gz"
    assert f"pushed cli-pushed ({project.digest[:19]}...) to {uri}" in pushed.stdout
    assert f"project={uri}" in pushed.stdout
    assert mlops("project", "push", "--project", str(project.root)).stdout == pushed.stdout  # content-addressed
    assert resolve_project(uri, cache_dir=tmp_path / "cache", store=store).digest == project.digest
    checked = mlops("project", "check", "--project", uri)  # a pushed project checks like a folder
    assert checked.returncode == 0 and "is ready" in checked.stdout, checked.stderr

    broken = renamed(CHURN, tmp_path, "cli-push-broken")
    (broken.root / "model.py").write_text(NO_PROBA)
    refused(mlops("project", "push", "--project", str(broken.root)), r"model.py:build_model of project "
                                                                       r"cli-push-broken returned LinearRegression")
    assert store.list_keys("projects/cli-push-broken/") == []  # checked before anything is uploaded
