"""Data contracts: inference, strict loading with named errors, each project's own contracts."""

import json

import pytest
import yaml

from mlops.errors import ConfigError
from mlops.validation.contract import (contract_to_yaml, infer_contract, load_contract, parse_contract,
                                       resolve_contract, write_contract_files)
from tests.projects import CHURN, CREDIT, EXAMPLES, generate_churn_data, generate_credit_data


@pytest.fixture(scope="module")
def reference():
    return generate_credit_data(5_000, seed=1)


@pytest.fixture(scope="module")
def churn_reference():
    return generate_churn_data(3_000)


def infer(project, frame, name):
    return infer_contract(frame, name, key=[project.entity.key], timestamp=project.event_timestamp)


def test_inference_proposes_types_nullability_ranges_and_sets(reference):
    c = infer(CREDIT, reference, "credit")
    cols = c.columns
    assert cols["customer_id"].type == "string" and not cols["customer_id"].nullable
    assert cols["event_timestamp"].type == "timestamp" and cols["age"].type == "integer"
    assert cols["income"].type == "float" and cols["income"].nullable and 0.02 < cols["income"].max_missing < 0.1
    assert cols["region"].type == "category" and cols["region"].values == ["east", "north", "south", "west"]
    assert cols["income"].min <= reference["income"].min() / 2 and cols["income"].max >= reference["income"].max()
    assert c.key == ["customer_id"] and c.min_rows == 500


def test_inference_reads_integer_keys_nullable_integers_and_text_labels(churn_reference):
    """Churn: an int64 entity key, a nullable Int64 count, a yes/no label."""
    c = infer(CHURN, churn_reference, "churn")
    cols = c.columns
    assert cols["subscriber_id"].type == "integer" and not cols["subscriber_id"].nullable
    assert cols["snapshot_timestamp"].type == "timestamp" and cols["label_timestamp"].type == "timestamp"
    calls = cols["support_calls_90d"]
    assert calls.type == "integer" and calls.nullable and 0.0 < calls.max_missing < 0.1
    assert cols["churned"].type == "category" and cols["churned"].values == ["no", "yes"]
    assert cols["plan"].values == ["basic", "premium", "standard"]
    assert cols["tenure_months"].min <= churn_reference["tenure_months"].min()
    assert cols["tenure_months"].max >= churn_reference["tenure_months"].max()
    assert c.key == ["subscriber_id"] and c.timestamp == "snapshot_timestamp" and c.min_rows == 300


@pytest.mark.parametrize("project", EXAMPLES, ids=lambda p: p.name)
def test_written_contract_round_trips(project, reference, churn_reference, tmp_path):
    frame = reference if project is CREDIT else churn_reference
    c = infer(project, frame, project.names.prefix)
    path, profile = write_contract_files(c, frame, tmp_path / f"{project.names.prefix}.yaml")
    loaded = load_contract(path)
    assert loaded.columns == c.columns and loaded.key == c.key and profile.exists()
    assert loaded.reference_profile_path() == profile


@pytest.mark.parametrize("project, kind, column, low", [
    (CREDIT, "raw", "age", 18), (CREDIT, "features", "age", 18),
    (CHURN, "raw", "tenure_months", 0), (CHURN, "features", "tenure_months", 0),
], ids=lambda v: getattr(v, "name", str(v)))
def test_a_projects_contract_loads_with_its_profile(tmp_path, project, kind, column, low):
    c = resolve_contract(project.contract(kind), tmp_path)
    assert c.path == project.root / "contracts" / f"{kind}.yaml"
    assert c.reference_profile_path().is_file() and c.reference_profile_path().parent == project.root / "contracts"
    assert c.columns[column].min == low and project.entity.key in c.columns
    # The raw contract keys on the project's entity and event time; the features contract holds its features.
    if kind == "raw":
        assert c.key == [project.entity.key] and c.timestamp == project.event_timestamp
        assert project.label.column in c.columns and set(project.sensitive) <= set(c.columns)
    else:
        assert set(project.features.names) <= set(c.columns)


def base():
    return {"dataset": "d", "columns": {"x": {"type": "float"}, "k": {"type": "string", "nullable": False}}}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(colums={}), "unknown field(s) ['colums']"),
    (lambda d: d["columns"]["x"].update(type="double"), "columns.x.type: must be one of"),
    (lambda d: d["columns"]["x"].update(min=5, max=1), "min 5.0 is greater than max 1.0"),
    (lambda d: d["columns"]["x"].update(max_missing=1.5), "max_missing: must be a fraction"),
    (lambda d: d["columns"]["x"].update(max_missing="5%"), "expected a number, got '5%'"),
    (lambda d: d["columns"]["k"].update(min=1), "ranges apply to integer and float columns"),
    (lambda d: d["columns"]["x"].update(values=["a"]), "for category columns only"),
    (lambda d: d["columns"]["x"].update(drift={"method": "kolmogorov"}), "method 'kolmogorov' is not one of"),
    (lambda d: d["columns"]["k"].update(drift={"method": "wasserstein"}), "method 'wasserstein' is not one of"),
    (lambda d: d["columns"]["x"].update(drift={"method": "jensen_shannon"}), "(renamed to 'jensenshannon'"),
    (lambda d: d.update(key=["nope"]), "key: must list declared columns"),
    (lambda d: d.update(severity={"drift": "fatal"}), "must be 'error' or 'warning'"),
    (lambda d: d.update(severity={"vibes": "error"}), "unknown check family"),
    (lambda d: d.update(rows={"min": 10, "max": 5}), "need 0 <= min <= max"),
    (lambda d: d.update(timestamp="x"), "must be a declared timestamp column"),
    (lambda d: d.pop("dataset"), "a dataset name is required"),
])
def test_bad_contracts_are_refused_with_the_field_named(mutate, message):
    raw = base()
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse_contract(raw, "contracts/d.yaml")
    assert message in str(info.value) and "contracts/d.yaml" in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: d\ncolumns:\n  x: {type: float\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line \d+"):
        load_contract(path)


def test_missing_contract_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="cannot read data contract"):
        load_contract(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match=r"data contract nope does not exist \(name a file, or an s3:// URI\)"):
        resolve_contract("nope", tmp_path)
    # The library ships no dataset's contract any more: the old packaged names are just missing files.
    with pytest.raises(ConfigError, match="data contract credit_applications does not exist"):
        resolve_contract("credit_applications", tmp_path)
    with pytest.raises(ConfigError, match="must be named by a file path or an s3:// URI"):
        resolve_contract("", tmp_path)


def test_yaml_output_is_plain_yaml(reference):
    text = contract_to_yaml(infer_contract(reference, "credit"))
    assert yaml.safe_load(text)["dataset"] == "credit"


@pytest.mark.platform
@pytest.mark.parametrize("project", EXAMPLES, ids=lambda p: p.name)
def test_a_contract_on_s3_comes_with_its_profile(project, store, reference, churn_reference, tmp_path):
    frame = reference if project is CREDIT else churn_reference
    name = f"on_s3_{project.names.feast_project}"
    c = infer(project, frame, name)
    path, profile = write_contract_files(c, frame, tmp_path / "src" / f"{name}.yaml")
    store.put_file(path, f"contracts/{name}.yaml")
    store.put_file(profile, f"contracts/{name}.profile.json")
    loaded = resolve_contract(f"s3://{store.bucket}/contracts/{name}.yaml", tmp_path / "cache")
    assert loaded.columns == c.columns and loaded.reference_profile_path() == tmp_path / "cache" / profile.name
    assert loaded.reference_profile_path().read_bytes() == profile.read_bytes()


def test_a_profile_in_the_old_histogram_format_is_refused_with_the_way_to_rewrite_it(tmp_path):
    from mlops.validation.contract import load_reference_profile

    contract_path = tmp_path / "c.yaml"
    contract_path.write_text("dataset: d\nreference_profile: c.profile.json\ncolumns:\n  x: {type: float}\n")
    (tmp_path / "c.profile.json").write_text(json.dumps({"rows": 10, "columns": {"x": {
        "kind": "numeric", "inner_edges": [0.5], "counts": [5, 5], "missing": 0}}}))
    with pytest.raises(ConfigError) as info:
        load_reference_profile(load_contract(contract_path))
    message = str(info.value)
    assert "is not a reference profile" in message and str(contract_path) in message
    assert f"mlops schema profile --contract {contract_path} --data REFERENCE" in message
