"""Data contracts: inference, strict loading with named errors, packaged contract."""

import pytest
import yaml

from mlops.contract import (PACKAGED_CONTRACTS, contract_to_yaml, infer_contract, load_contract, parse_contract,
                            resolve_contract, write_contract_files)
from mlops.data.generator import generate_credit_data
from mlops.errors import ConfigError


@pytest.fixture(scope="module")
def reference():
    return generate_credit_data(5_000, seed=1)


def test_inference_proposes_types_nullability_ranges_and_sets(reference):
    c = infer_contract(reference, "credit", key=["customer_id"], timestamp="event_timestamp")
    cols = c.columns
    assert cols["customer_id"].type == "string" and not cols["customer_id"].nullable
    assert cols["event_timestamp"].type == "timestamp" and cols["age"].type == "integer"
    assert cols["income"].type == "float" and cols["income"].nullable and 0.02 < cols["income"].max_missing < 0.1
    assert cols["region"].type == "category" and cols["region"].values == ["east", "north", "south", "west"]
    assert cols["income"].min <= reference["income"].min() / 2 and cols["income"].max >= reference["income"].max()
    assert c.key == ["customer_id"] and c.min_rows == 500


def test_written_contract_round_trips(reference, tmp_path):
    c = infer_contract(reference, "credit", key=["customer_id"], timestamp="event_timestamp")
    path, profile = write_contract_files(c, reference, tmp_path / "credit.yaml")
    loaded = load_contract(path)
    assert loaded.columns == c.columns and loaded.key == c.key and profile.exists()
    assert loaded.reference_profile_path() == profile


def test_packaged_contract_loads_with_its_profile(tmp_path):
    c = resolve_contract("credit_applications", tmp_path)
    assert c.path == PACKAGED_CONTRACTS / "credit_applications.yaml"
    assert c.reference_profile_path().is_file() and c.columns["age"].min == 18


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
    (lambda d: d["columns"]["x"].update(drift={"method": "ks"}), "method 'ks' is not one of"),
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
    with pytest.raises(ConfigError, match="no packaged data contract named 'nope'; known: \\['credit_applications', 'credit_features'\\]"):
        resolve_contract("nope", tmp_path)


def test_yaml_output_is_plain_yaml(reference):
    text = contract_to_yaml(infer_contract(reference, "credit"))
    assert yaml.safe_load(text)["dataset"] == "credit"


@pytest.mark.platform
def test_a_contract_on_s3_comes_with_its_profile(store, reference, tmp_path):
    c = infer_contract(reference, "on_s3", key=["customer_id"], timestamp="event_timestamp")
    path, profile = write_contract_files(c, reference, tmp_path / "src" / "on_s3.yaml")
    store.put_file(path, "contracts/on_s3.yaml")
    store.put_file(profile, "contracts/on_s3.profile.json")
    loaded = resolve_contract(f"s3://{store.bucket}/contracts/on_s3.yaml", tmp_path / "cache")
    assert loaded.columns == c.columns and loaded.reference_profile_path() == tmp_path / "cache" / profile.name
    assert loaded.reference_profile_path().read_bytes() == profile.read_bytes()
