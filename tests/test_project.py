"""Projects (issue 17): ``project.yaml`` loaded strictly, hooks imported and called with errors that name them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlops.errors import ConfigError
from mlops.project import HookError, call_hook, load_hook, load_project, project_digest

CHURN = {  # a project of another shape than credit: integer ids, string labels, two sensitive attributes
    "name": "churn",
    "task": "binary_classification",
    "description": "Will a subscriber cancel within 30 days?",
    "entity": {"name": "subscriber", "key": "subscriber_id", "type": "integer"},
    "timestamps": {"event": "as_of", "label": "label_time"},
    "label": {"column": "churned", "positive": "yes"},
    "sensitive": ["age_band", "gender"],
    "slices": ["plan"],
    "features": {"columns": {"tenure_months": "integer", "monthly_fee": "float", "plan": "string"}},
    "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5, "max_iter": 500}},
    "split": {"test_fraction": 0.25, "seed": 7},
    "gate": "gate.yaml",
}


def write_project(root: Path, doc: dict, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "gate.yaml").write_text("decision_threshold: 0.5\n")
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    return root


def test_a_project_loads_with_its_defaults(tmp_path):
    project = load_project(write_project(tmp_path / "churn", CHURN))
    assert (project.name, project.task.name, project.entity.key, project.entity.type) == \
        ("churn", "binary_classification", "subscriber_id", "integer")
    assert (project.label.column, project.label.positive) == ("churned", "yes")
    assert project.sensitive == ("age_band", "gender") and project.slices == ("plan",)
    assert project.features.names == ("tenure_months", "monthly_fee", "plan")
    assert project.features.of_type("string") == ("plan",) and project.features.hook is None
    assert project.model.estimator == "sklearn.linear_model.LogisticRegression" and project.model.params["C"] == 0.5
    assert (project.split.test_fraction, project.split.validation_fraction, project.split.seed) == (0.25, 0.2, 7)
    assert (project.names.model, project.names.feast_project, project.names.prefix) == ("churn", "churn", "churn")
    assert project.gate == (tmp_path / "churn" / "gate.yaml").resolve()
    assert project.digest.startswith("sha256:") and project.digest == project_digest(tmp_path / "churn")


def test_the_digest_changes_with_any_file_and_ignores_caches(tmp_path):
    root = write_project(tmp_path / "p", CHURN)
    before = project_digest(root)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert project_digest(root) == before
    (root / "gate.yaml").write_text("decision_threshold: 0.6\n")
    assert project_digest(root) != before


def _with(change) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(CHURN))
    change(doc)
    return doc


BAD_PROJECTS = [
    ("unknown key", lambda d: d.update(modle={}), r"unknown key\(s\) \['modle'\]"),
    ("missing label", lambda d: d.pop("label"), r"missing \['label'\]"),
    ("unknown task", lambda d: d.update(task="ranking"), r"task must be one of \['binary_classification'\]"),
    ("bad name", lambda d: d.update(name="Churn Model"), r"name must be 2-63 lower-case letters"),
    ("entity type", lambda d: d["entity"].update(type="uuid"), r"entity.type must be one of \['string', 'integer'\]"),
    ("entity unknown key", lambda d: d["entity"].update(keys="x"), r"entity: unknown key\(s\) \['keys'\]"),
    ("no positive class", lambda d: d["label"].pop("positive"), r"label: missing \['positive'\]"),
    ("positive as a list", lambda d: d["label"].update(positive=["yes"]), r"label.positive must be the positive"),
    ("feature type", lambda d: d["features"]["columns"].update(plan="category"),
     r"features.columns.plan: type must be one of \['float', 'integer', 'string'\]"),
    ("sensitive as a feature", lambda d: d["features"]["columns"].update(gender="string"),
     r"features.columns may not hold gender \(also a sensitive attribute\)"),
    ("label as a feature", lambda d: d["features"]["columns"].update(churned="string"),
     r"may not hold churned \(also the label\)"),
    ("estimator not allowed", lambda d: d["model"].update(estimator="sklearn.svm.SVC"),
     r"model.estimator 'sklearn.svm.SVC' is not allowed for binary_classification"),
    ("estimator and build", lambda d: d["model"].update(build="model.py:build_model"),
     r"name either an estimator .* or a build hook"),
    ("hook not file:function", lambda d: d["features"].update(hook="features.compute"),
     r"features.hook must name a function as file.py:function"),
    ("hook file missing", lambda d: d["features"].update(hook="features.py:compute_features"),
     r"features.hook: 'features.py' does not exist"),
    ("file outside the project", lambda d: d.update(gate="../gate.yaml"), r"gate: '../gate.yaml' is outside"),
    ("split out of range", lambda d: d["split"].update(test_fraction=0.9), r"split.test_fraction must be a number"),
    ("seed not an int", lambda d: d["split"].update(seed="7"), r"split.seed must be a non-negative integer"),
    ("slices twice", lambda d: d.update(slices=["plan", "plan"]), r"slices names \['plan'\] twice"),
]


@pytest.mark.parametrize("change, message", [pytest.param(c, m, id=i) for i, c, m in BAD_PROJECTS])
def test_a_bad_project_is_refused_naming_the_file_and_the_key(tmp_path, change, message):
    root = write_project(tmp_path / "p", _with(change))
    with pytest.raises(ConfigError, match=message) as refused:
        load_project(root)
    assert str(root / "project.yaml") in str(refused.value)


def test_a_folder_that_is_not_a_project_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        load_project(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no project.yaml in it"):
        load_project(tmp_path)
    (tmp_path / "project.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_project(tmp_path)


# -- hooks ------------------------------------------------------------------------------------

FEATURES = '''
import pandas as pd

def compute_features(raw):
    out = raw.copy()
    out["fee_per_month"] = out["monthly_fee"] / out["tenure_months"].clip(lower=1)
    return out

def broken(raw):
    return raw["no_such_column"]
'''


def test_a_hook_is_imported_from_its_project_and_called(tmp_path):
    import pandas as pd

    doc = _with(lambda d: d["features"].update(hook="features.py:compute_features"))
    project = load_project(write_project(tmp_path / "p", doc, {"features.py": FEATURES}))
    out = call_hook(project, project.features.hook, pd.DataFrame({"monthly_fee": [10.0], "tenure_months": [0]}))
    assert out["fee_per_month"].tolist() == [10.0]
    assert load_hook(project, project.features.hook) is load_hook(project, project.features.hook)  # imported once


def test_two_projects_with_the_same_hook_file_never_share_a_module(tmp_path):
    one = load_project(write_project(tmp_path / "a", _with(lambda d: d["features"].update(
        hook="features.py:compute_features")), {"features.py": "def compute_features(raw):\n    return 'a'\n"}))
    two = load_project(write_project(tmp_path / "b", _with(lambda d: d["features"].update(
        hook="features.py:compute_features")), {"features.py": "def compute_features(raw):\n    return 'b'\n"}))
    assert (call_hook(one, one.features.hook, None), call_hook(two, two.features.hook, None)) == ("a", "b")


@pytest.mark.parametrize("source, function, message", [
    ("def compute_features(raw:\n", "compute_features", r"features.py: importing it failed: SyntaxError"),
    ("import no_such_package_here\n", "compute_features", r"importing it failed: ModuleNotFoundError"),
    ("def other(raw):\n    return raw\n", "compute_features",
     r"features.py has no function 'compute_features' .* it defines \['other'\]"),
    (FEATURES, "broken", r"features.py:broken of project churn raised KeyError: 'no_such_column' \(at .*features.py:10\)"),
], ids=["syntax error", "import error", "missing function", "hook raises"])
def test_a_hook_that_fails_is_named(tmp_path, source, function, message):
    import pandas as pd

    doc = _with(lambda d: d["features"].update(hook=f"features.py:{function}"))
    project = load_project(write_project(tmp_path / "p", doc, {"features.py": source}))
    with pytest.raises(HookError, match=message) as refused:
        call_hook(project, project.features.hook, pd.DataFrame({"x": [1]}))
    assert str(project.root / "features.py") in str(refused.value) or "features.py:" in str(refused.value)


# -- bad input beyond project.yaml: where a project comes from, its data, its hooks -------------------

def test_a_project_reference_that_names_nothing_is_refused_naming_it(tmp_path):
    from mlops.project import resolve_project

    with pytest.raises(ConfigError, match=rf"project {tmp_path / 'nowhere'}: not a folder"):
        resolve_project(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"no example project named 'no-such-example' .* known: \['churn', "
                                          r"'credit-default'\]"):
        resolve_project("no-such-example")
    with pytest.raises(ConfigError, match=r"project must name an example \(churn, credit-default\)"):
        resolve_project("  ")
    with pytest.raises(ConfigError, match=r"is not a pushed project: its key must be projects/<name>/<sha256>"):
        resolve_project("s3://mlops/somewhere/churn.tar.gz")


@pytest.fixture(scope="module")
def churn_raw():
    from tests.projects import generate_churn_data

    return generate_churn_data(300)


def test_a_label_with_a_third_value_is_refused_naming_the_data_the_column_and_project_yaml(churn_raw):
    from mlops.errors import DataError
    from mlops.features.engineering import label_events
    from mlops.project.data import encode_labels
    from tests.projects import CHURN

    raw = churn_raw.copy()
    raw.loc[raw.index[::5], "churned"] = "maybe"
    with pytest.raises(DataError) as refused:
        encode_labels(CHURN, raw["churned"], "s3://mlops/churn/batch.parquet")
    message = str(refused.value)
    assert message.startswith("s3://mlops/churn/batch.parquet: label 'churned'") and CHURN.where in message
    assert "holds 3 values [\"'maybe'\", \"'no'\", \"'yes'\"]; a binary task needs exactly two" in message
    with pytest.raises(DataError, match=r"label 'churned' .* holds 3 values"):
        label_events(CHURN, raw)
    with pytest.raises(DataError, match=r"never holds the positive class 'yes'; it holds \[\"'no'\"\] "
                                        r"\(is label.positive right\?\)"):
        encode_labels(CHURN, churn_raw["churned"].where(churn_raw["churned"] != "yes", "no"), "batch")
    as_numbers = churn_raw["churned"].map({"yes": 1, "no": 0})
    with pytest.raises(DataError, match=r"never holds the positive class 'yes'"):  # 1 is not "yes"
        encode_labels(CHURN, as_numbers, "batch")


@pytest.mark.parametrize("column", ["subscriber_id", "gender", "age_band", "snapshot_timestamp", "churned"])
def test_data_without_the_entity_key_a_sensitive_attribute_a_timestamp_or_the_label_is_refused(churn_raw, column):
    from mlops.errors import DataError
    from mlops.features.engineering import label_events
    from tests.projects import CHURN

    with pytest.raises(DataError, match=rf"label_events: the raw data lacks column\(s\) \['{column}'\]"):
        label_events(CHURN, churn_raw.drop(columns=[column]))


def test_features_without_the_entity_key_are_refused_naming_it(churn_raw):
    from mlops.errors import DataError
    from mlops.features.engineering import compute_features
    from tests.projects import CHURN

    with pytest.raises(DataError, match=r"\['subscriber_id'\]"):
        compute_features(CHURN, churn_raw.drop(columns=["subscriber_id"]))


def test_check_opens_everything_a_project_names_for_both_examples():
    from mlops.project.check import check_project
    from tests.projects import CHURN, CREDIT

    churn_check = check_project(CHURN)
    assert churn_check.passed and not churn_check.skipped, churn_check.problems
    churn = churn_check.done
    assert churn[0] == (f"{CHURN.where}: binary_classification, entity subscriber (subscriber_id, integer), "
                        "label churned (positive 'yes'), 10 features")
    assert "model.build model.py:build_model imports" in churn and "data.generator data.py:generate imports" in churn
    assert "model builds: Pipeline (from model.py:build_model)" in churn
    assert any(line.startswith("gate gate.yaml:") and "fairness on ['age_band', 'gender']" in line for line in churn)
    assert any(line.startswith("contract raw: raw.yaml (") for line in churn)
    credit = check_project(CREDIT).done
    assert "features.hook features.py:compute_features imports" in credit
    assert any("fairness on ['gender']" in line and "high-stakes" in line for line in credit)
    assert any(line.startswith("model builds: Pipeline (sklearn.ensemble.HistGradientBoostingClassifier)")
               for line in credit)


NO_PROBA = "from sklearn.linear_model import LinearRegression\n\ndef build_model(params):\n    return LinearRegression()\n"


def test_check_refuses_a_build_hook_whose_model_cannot_give_probabilities_naming_the_hook(tmp_path):
    from mlops.project.check import check_project
    from tests.projects import CHURN

    root = tmp_path / "p"
    import shutil

    shutil.copytree(CHURN.root, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "model.py").write_text(NO_PROBA)
    report = check_project(load_project(root))
    [problem] = report.problems
    assert re.search(r"model.py:build_model of project churn returned LinearRegression, which lacks "
                     r"\['predict_proba'\]", problem), problem
    assert not any(line.startswith("model builds") for line in report.done)


def test_check_refuses_a_gate_naming_a_metric_neither_the_task_nor_the_project_has(tmp_path):
    import shutil

    from mlops.project.check import check_project
    from tests.projects import CHURN

    root = tmp_path / "p"
    shutil.copytree(CHURN.root, root, ignore=shutil.ignore_patterns("__pycache__"))
    gate = yaml.safe_load((root / "gate.yaml").read_text())
    gate["value_thresholds"].append({"metric": "default_rate_cut", "min": 0.2})  # credit's own metric
    (root / "gate.yaml").write_text(yaml.safe_dump(gate))
    [problem] = check_project(load_project(root)).problems
    assert re.search(rf"{re.escape(str(root / 'gate.yaml'))}: value_thresholds\[2\].metric: must be one of",
                     problem), problem


@pytest.mark.platform
def test_a_pushed_project_resolves_to_the_same_files_and_a_tampered_archive_is_refused(store, tmp_path):
    from mlops.errors import StorageError
    from mlops.project import fetch_project, push_project, resolve_project
    from tests.projects import CHURN, renamed

    project = renamed(CHURN, tmp_path, "churn-pushed")
    uri = push_project(project.root, store)
    assert uri == f"s3://{store.bucket}/projects/churn-pushed/{project.digest.removeprefix('sha256:')}.tar.gz"
    assert push_project(project.root, store) == uri  # content-addressed: pushed once
    pulled = resolve_project(uri, cache_dir=tmp_path / "cache", store=store)
    assert (pulled.digest, pulled.source, pulled.names.model) == (project.digest, uri, "churn-pushed")
    assert pulled.root != project.root and (pulled.root / "model.py").read_bytes() == \
        (project.root / "model.py").read_bytes()
    # Someone replaces the archive's bytes with another project's: refused before any of its code is imported.
    key = uri.removeprefix(f"s3://{store.bucket}/")
    other = renamed(CHURN, tmp_path, "churn-other", lambda d: d.update(description="changed"))
    from mlops.project.source import archive_bytes

    store.put_bytes(archive_bytes(other.root), key)
    with pytest.raises(StorageError, match=r"unpacks to files with digest sha256:.* not the sha256:.* its key "
                                           r"names: it was changed after it was pushed"):
        fetch_project(uri, tmp_path / "fresh-cache", store)
    assert not (tmp_path / "fresh-cache" / "churn-pushed" / project.digest.removeprefix("sha256:")).exists()
