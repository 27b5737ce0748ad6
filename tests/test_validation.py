"""Every validation check, and every breakage scenario caught by the check that names it.

The checks run against each example project's own contracts (``contracts/raw.yaml`` and
``contracts/features.yaml`` beside its ``project.yaml``): credit's scenarios and hand-made
breakage in detail, churn's (integer keys, a text label, nullable integer counts) beside them.
"""

import json

import numpy as np
import pytest

from mlops.stages import validate_dataset
from mlops.validation.checks import validate_parquet
from mlops.validation.contract import parse_contract, resolve_contract
from tests.projects import CHURN, CREDIT, EXAMPLES, generate_churn_data, generate_credit_data


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    return resolve_contract(CREDIT.contract("raw"), tmp_path_factory.mktemp("c"))


@pytest.fixture(scope="module")
def churn_contract(tmp_path_factory):
    return resolve_contract(CHURN.contract("raw"), tmp_path_factory.mktemp("churn-c"))


@pytest.fixture(scope="module")
def clean():
    return generate_credit_data(5_000, seed=21)


@pytest.fixture(scope="module")
def churn_clean():
    return generate_churn_data(5_000, seed=21)


def check(df, contract, tmp_path):
    path = tmp_path / "batch.parquet"
    df.to_parquet(path, index=False)
    return validate_parquet(path, contract)


def checks(result, severity="error"):
    return {(f.check, f.column) for f in result.findings if f.severity == severity}


def test_a_clean_batch_passes_with_nothing_to_report(clean, contract, tmp_path):
    result = check(clean, contract, tmp_path)
    assert result.passed and result.findings == [] and result.rows == 5_000
    assert result.columns["income"].drift_method == "psi" and result.columns["income"].drift_value < 0.05


def test_a_clean_batch_of_a_second_project_passes_too(churn_clean, churn_contract, tmp_path):
    result = check(churn_clean, churn_contract, tmp_path)
    assert result.passed and result.findings == [] and result.rows == 5_000
    assert churn_contract.key == [CHURN.entity.key] and result.columns["subscriber_id"].rows == 5_000
    usage = result.columns["usage_hours_30d"]
    assert usage.drift_method == "psi" and usage.drift_value < 0.05


# The generator's breakage scenarios plus the ones made by hand, each with the check that must name it.
def _missing_column(df):
    return df.drop(columns=["region"])


def _duplicated_keys(df):
    df = df.copy()
    df.loc[10:14, "customer_id"] = df.loc[0, "customer_id"]
    return df


def _wrong_types(df):
    return df.assign(age=df["age"].astype(str), num_open_accounts=df["num_open_accounts"].astype(float))


@pytest.mark.parametrize("make, expected", [
    (lambda df: generate_credit_data(5_000, seed=21, scenario="null_column"), ("missing.all_null", "debt_to_income")),
    (lambda df: generate_credit_data(5_000, seed=21, scenario="wrong_units"), ("range.below_min", "income")),
    (lambda df: generate_credit_data(5_000, seed=21, scenario="new_category"), ("category.unknown", "loan_purpose")),
    (_missing_column, ("schema.missing_column", "region")),
    (_duplicated_keys, ("key.duplicate", "customer_id")),
    (_wrong_types, ("schema.type", "age")),
    (lambda df: df.head(0), ("rows.empty", None)),
], ids=["all_null_column", "unit_change", "new_category", "missing_column", "duplicated_keys", "wrong_types",
        "empty_batch"])
def test_breakage_is_caught_by_the_check_that_names_it(clean, contract, tmp_path, make, expected):
    result = check(make(clean), contract, tmp_path)
    assert not result.passed
    assert expected in checks(result)


def _churn_duplicated_keys(df):
    df = df.copy()
    df.loc[10:14, "subscriber_id"] = df.loc[0, "subscriber_id"]
    return df


@pytest.mark.parametrize("make, expected", [
    (lambda df: generate_churn_data(5_000, seed=21, scenario="null_column"), ("missing.all_null", "usage_hours_30d")),
    (lambda df: df.assign(monthly_fee=df["monthly_fee"] * 100), ("range.above_max", "monthly_fee")),  # cents
    (lambda df: df.assign(churned=np.where(df.index % 50 == 0, "maybe", df["churned"])), ("category.unknown", "churned")),
    (lambda df: df.drop(columns=["region"]), ("schema.missing_column", "region")),
    (_churn_duplicated_keys, ("key.duplicate", "subscriber_id")),
    (lambda df: df.assign(tenure_months=df["tenure_months"].astype(str)), ("schema.type", "tenure_months")),
    (lambda df: df.assign(support_calls_90d=df["support_calls_90d"].astype("float64")),
     ("schema.type", "support_calls_90d")),
    (lambda df: df.head(0), ("rows.empty", None)),
], ids=["all_null_column", "fee_in_cents", "third_label_value", "missing_column", "duplicated_keys", "wrong_types",
        "counts_as_floats", "empty_batch"])
def test_a_second_projects_breakage_is_caught_by_its_own_contract(churn_clean, churn_contract, tmp_path, make,
                                                                 expected):
    """Churn: integer subscriber ids, a "yes"/"no" label, nullable integer counts, fees in dollars."""
    result = check(make(churn_clean), churn_contract, tmp_path)
    assert not result.passed
    assert expected in checks(result)


def test_wrong_types_name_each_column(clean, contract, tmp_path):
    result = check(_wrong_types(clean), contract, tmp_path)
    assert ("schema.type", "num_open_accounts") in checks(result)
    finding = next(f for f in result.findings if f.column == "age")
    assert finding.observed == "string" and finding.expected == "integer"


def test_all_failures_are_collected_not_just_the_first(clean, contract, tmp_path):
    broken = _duplicated_keys(_missing_column(clean)).assign(income=clean["income"] / 1000, debt_to_income=np.nan)
    got = checks(check(broken, contract, tmp_path))
    assert {("schema.missing_column", "region"), ("key.duplicate", "customer_id"),
            ("range.below_min", "income"), ("missing.all_null", "debt_to_income")} <= got


def test_missing_fraction_and_not_nullable(clean, contract, tmp_path):
    df = clean.copy()
    df.loc[: len(df) // 4, "income"] = np.nan          # 25% missing > 4.18% allowed
    df.loc[:9, "region"] = None                          # not nullable
    result = check(df, contract, tmp_path)
    assert ("missing.fraction", "income") in checks(result)
    assert ("missing.not_nullable", "region") in checks(result)


def test_range_above_max_reports_examples(clean, contract, tmp_path):
    df = clean.assign(age=clean["age"].where(clean.index > 2, 150))
    finding = next(f for f in check(df, contract, tmp_path).findings if f.check == "range.above_max")
    assert finding.column == "age" and finding.observed == 3 and "150" in finding.message


def test_row_count_bounds(clean, contract, tmp_path):
    result = check(clean.head(1_000), contract, tmp_path)  # contract min is 2000
    assert ("rows.count", None) in checks(result)


def test_extra_column_unless_allowed(clean, contract, tmp_path):
    df = clean.assign(favourite_colour="blue")
    assert ("schema.extra_column", "favourite_colour") in checks(check(df, contract, tmp_path))
    contract.allow_extra_columns = True
    try:
        assert check(df, contract, tmp_path).passed
    finally:
        contract.allow_extra_columns = False


def test_distribution_shift_is_a_warning_by_default_and_an_error_by_configuration(contract, tmp_path):
    shifted = generate_credit_data(5_000, seed=21, scenario="covariate_shift")
    result = check(shifted, contract, tmp_path)
    assert result.passed and ("drift.distribution", "credit_utilization") in checks(result, "warning")
    strict = parse_contract({"dataset": "credit_applications", "reference_profile": contract.reference_profile,
                             "severity": {"drift": "error"},
                             "columns": {"credit_utilization": {"type": "float"}}}, "strict")
    strict.path = contract.path
    strict.allow_extra_columns = True
    assert ("drift.distribution", "credit_utilization") in checks(check(shifted, strict, tmp_path))


def test_categorical_drift_methods(clean, contract, tmp_path):
    skewed = clean.assign(home_ownership=np.where(np.arange(len(clean)) % 10 < 8, "RENT", clean["home_ownership"]))
    result = check(skewed, contract, tmp_path)
    summary = result.columns["home_ownership"]
    assert summary.drift_method == "jensenshannon" and summary.drifted
    contract.drift["categorical"] = {"method": "chisquare", "threshold": 0.05}
    try:
        summary = check(skewed, contract, tmp_path).columns["home_ownership"]
        assert summary.drift_method == "chisquare" and summary.drift_value < 1e-6 and summary.drifted
    finally:
        contract.drift["categorical"] = {"method": "jensenshannon", "threshold": 0.1}


def test_nan_counts_as_missing_in_float_columns(clean, contract, tmp_path):
    df = clean.assign(credit_utilization=np.where(np.arange(len(clean)) < 5, np.nan, clean["credit_utilization"]))
    assert ("missing.not_nullable", "credit_utilization") in checks(check(df, contract, tmp_path))


def test_validation_streams_in_batches(contract, tmp_path, monkeypatch):
    """A file bigger than one batch gives the same verdict and counts as one read."""
    import mlops.validation.checks as validation

    df = generate_credit_data(20_000, seed=3)
    df.loc[19_990:, "customer_id"] = df.loc[0, "customer_id"]  # duplicates far apart
    monkeypatch.setattr(validation, "BATCH_ROWS", 1_000)
    result = check(df, contract, tmp_path)
    assert result.rows == 20_000 and result.columns["age"].rows == 20_000
    assert next(f for f in result.findings if f.check == "key.duplicate").observed == 10


def test_reports_are_written_and_readable(contract, tmp_path):
    path = tmp_path / "bad.parquet"
    generate_credit_data(3_000, seed=2, scenario="new_category").to_parquet(path)
    out = validate_dataset(str(path), CREDIT.contract("raw"), tmp_path / "report")
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert doc["passed"] is False and doc["findings"][0]["check"] == "category.unknown"
    html = (tmp_path / "report" / "report.html").read_text()
    assert "FAILED" in html and "category.unknown" in html and html.count("data:image/png;base64,") >= 10
    assert "| error | category.unknown | loan_purpose |" in (tmp_path / "report" / "summary.md").read_text()
    assert out.report_uri is None


def test_a_second_projects_reports_name_its_columns(tmp_path):
    path = tmp_path / "bad.parquet"
    generate_churn_data(3_000, seed=2, scenario="null_column").to_parquet(path)
    out = validate_dataset(str(path), CHURN.contract("raw"), tmp_path / "report")
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert doc["passed"] is False and not out.result.passed and out.result.rows == 3_000
    assert [(f["check"], f["column"]) for f in doc["findings"] if f["severity"] == "error"] == [
        ("missing.all_null", "usage_hours_30d")]
    assert "| error | missing.all_null | usage_hours_30d |" in (tmp_path / "report" / "summary.md").read_text()


@pytest.mark.platform
def test_reports_are_published_to_s3(store, contract, tmp_path):
    path = tmp_path / "ok.parquet"
    generate_credit_data(3_000, seed=2).to_parquet(path)
    shared = tmp_path / "report"  # a folder that already holds someone else's files
    shared.mkdir()
    (shared / "monitoring-1200.html").write_text("another report")
    out = validate_dataset(str(path), CREDIT.contract("raw"), shared, publish_to=store)
    prefix = out.report_uri.removeprefix(f"s3://{store.bucket}/").rsplit("/", 1)[0]
    assert set(store.read_manifest(prefix)) == {"report.html", "report.json", "summary.md"}
    assert store.list_keys(prefix + "/") == [f"{prefix}/{n}" for n in
                                             ("_MANIFEST.json", "report.html", "report.json", "summary.md")]


@pytest.mark.parametrize("project", EXAMPLES, ids=lambda p: p.name)
def test_the_committed_contracts_accept_a_million_clean_rows(project, tmp_path):
    """Plausibility bounds, not sample extremes: a large clean batch must pass, raw and as features."""
    from mlops.features.engineering import compute_features
    from mlops.project.data import generate_data

    raw = generate_data(project, 1_000_000, seed=99)
    for kind, frame in (("raw", raw), ("features", compute_features(project, raw))):
        path = tmp_path / f"{kind}.parquet"
        frame.to_parquet(path, index=False, row_group_size=65_536)
        result = validate_parquet(path, resolve_contract(project.contract(kind), tmp_path))
        assert result.errors == [], result.summary()
