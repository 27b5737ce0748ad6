"""Training/serving skew detection on real feature tables (engineered from each example project's data).

Every check runs on both example projects: credit (string ids, a feature hook, Int64 counts)
and churn (integer ids, raw columns as features, a nullable Int64 count), each keyed by its own
entity key and event time and compared on its own feature list.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops.errors import DataError
from mlops.features.definitions import CREATED_TIMESTAMP, FEATURE_TIMESTAMP
from mlops.features.engineering import compute_features
from mlops.features.skew import compare_online_offline
from tests.projects import CHURN, CREDIT, EXAMPLES, generate_churn_data, generate_credit_data

# Per project: a float feature to perturb, another for float noise, a category (and a value it never
# takes), a float feature with missing values, a text feature, and an integer feature.
COLUMNS = {
    CREDIT.name: dict(num="credit_utilization", noise="loan_amount", cat="loan_purpose", new_cat="crypto",
                      nullable="debt_to_income", text="region", integer="age", unknown_id="C9999999"),
    CHURN.name: dict(num="monthly_fee", noise="usage_hours_30d", cat="plan", new_cat="platinum",
                     nullable="usage_hours_30d", text="region", integer="tenure_months", unknown_id=1),
}
RAW = {CREDIT.name: lambda: generate_credit_data(1_000, seed=8), CHURN.name: lambda: generate_churn_data(1_000, seed=8)}


@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.name)
def project(request):
    return request.param


@pytest.fixture(scope="module")
def cols(project):
    return COLUMNS[project.name]


def skew(project, served, offline, **options):
    return compare_online_offline(served, offline, (project.entity.key, project.event_timestamp),
                                  project.features.names, **options)


@pytest.fixture(scope="module")
def logged(project):
    """Feature vectors as serving would log them: keys + features, numeric Int64 included."""
    features = compute_features(project, RAW[project.name]())
    return features.rename(columns={FEATURE_TIMESTAMP: project.event_timestamp}).drop(columns=[CREATED_TIMESTAMP])


@pytest.fixture
def offline(project, logged):
    """The same vectors as the offline path returns them: numeric as float64, rows in another order."""
    out = logged.copy()
    for name in project.features.of_type("float", "integer"):
        out[name] = out[name].astype("float64")
    return out.iloc[::-1].reset_index(drop=True)


def key_of(project, frame, row):
    key, event = project.entity.key, project.event_timestamp
    value = frame.loc[row, key]
    return {key: value.item() if isinstance(value, np.generic) else value, event: frame.loc[row, event].isoformat()}


def present_rows(frame, column, count):
    return frame.index[frame[column].notna() & (frame[column] != 0)][:count].tolist()


def test_the_logged_keys_are_the_projects(project, logged):
    key = logged[project.entity.key]
    assert key.dtype == (object if project.entity.type == "string" else "int64")
    assert str(logged[project.event_timestamp].dtype) == "datetime64[ns, UTC]"


def test_identical_vectors_have_no_mismatches(project, logged, offline):
    report = skew(project, logged, offline)
    n = len(project.features.names)
    assert report.passed() and report.matched_rows == 1_000
    assert report.keys == (project.entity.key, project.event_timestamp)
    assert [s.feature for s in report.features] == list(project.features.names)
    assert all(s.compared == 1_000 and s.mismatches == 0 for s in report.features)
    assert report.mismatched_features == [] and f"all {n} features match" in report.summary()
    assert n == (15 if project is CREDIT else 10)


def test_a_perturbed_numeric_feature_is_counted_with_its_max_abs_diff(project, cols, logged, offline):
    served = logged.copy()
    rows = present_rows(logged, cols["num"], 2)
    served.loc[rows, cols["num"]] += [0.05, 0.2]
    noisy = present_rows(logged, cols["noise"], 10)[-1]
    served.loc[noisy, cols["noise"]] *= 1 + 1e-12  # within rtol: float noise is not skew
    report = skew(project, served, offline)
    found = report.feature(cols["num"])
    assert (found.kind, found.mismatches, found.mismatch_rate) == ("numeric", 2, 0.002)
    assert found.max_abs_diff == pytest.approx(0.2)
    key = project.entity.key
    assert [e[key] for e in found.examples] == logged.loc[rows, key].tolist()
    assert found.examples[1]["served"] - found.examples[1]["offline"] == pytest.approx(0.2)
    assert report.mismatched_features == [cols["num"]]
    assert not report.passed() and report.passed(max_mismatch_rate=0.002)
    # A looser tolerance accepts the smaller change only.
    assert skew(project, served, offline, atol=0.1).feature(cols["num"]).mismatches == 1


def test_a_changed_category_is_a_mismatch(project, cols, logged, offline):
    served = logged.copy()
    assert cols["new_cat"] not in set(logged[cols["cat"]])
    served.loc[5, cols["cat"]] = cols["new_cat"]
    report = skew(project, served, offline)
    found = report.feature(cols["cat"])
    assert (found.kind, found.mismatches, found.max_abs_diff) == ("categorical", 1, None)
    assert found.examples[0] == {**key_of(project, logged, 5), "served": cols["new_cat"],
                                 "offline": logged.loc[5, cols["cat"]]}


def test_nan_on_one_side_only_is_a_mismatch_and_on_both_sides_is_not(project, cols, logged, offline):
    column = cols["nullable"]
    present = present_rows(logged, column, 1)[0]
    assert logged[column].isna().any()  # rows missing on both sides stay matches
    served = logged.copy()
    served.loc[present, column] = np.nan
    served.loc[present, cols["text"]] = None
    report = skew(project, served, offline)
    assert report.feature(column).mismatches == 1
    assert report.feature(column).max_abs_diff == 0.0  # over rows where both have a value
    assert report.feature(column).examples[0]["served"] is None
    assert report.feature(cols["text"]).mismatches == 1


def test_a_missing_nullable_integer_matches_a_missing_float():
    """Churn's support_calls_90d: pd.NA in the served Int64 column, NaN in the offline float64 one."""
    features = compute_features(CHURN, RAW[CHURN.name]())
    logged = features.rename(columns={FEATURE_TIMESTAMP: CHURN.event_timestamp}).drop(columns=[CREATED_TIMESTAMP])
    offline = logged.astype({name: "float64" for name in CHURN.features.of_type("float", "integer")})
    assert str(logged["support_calls_90d"].dtype) == "Int64" and logged["support_calls_90d"].isna().any()
    calls = skew(CHURN, logged, offline).feature("support_calls_90d")
    assert (calls.kind, calls.mismatches) == ("numeric", 0)
    served = logged.copy()
    served.loc[served["support_calls_90d"].isna().idxmax(), "support_calls_90d"] = 0
    assert skew(CHURN, served, offline).feature("support_calls_90d").mismatches == 1


def test_rows_on_one_side_only_are_reported(project, cols, logged, offline):
    key = project.entity.key
    served = logged.drop(index=[0, 1])
    extra = logged.iloc[[2]].assign(**{key: cols["unknown_id"]})
    report = skew(project, pd.concat([served, extra]), offline)
    assert (report.only_served, report.only_offline, report.matched_rows) == (1, 2, 998)
    assert report.only_served_examples[0][key] == cols["unknown_id"]
    assert {e[key] for e in report.only_offline_examples} == set(logged.loc[[0, 1], key])
    assert not report.passed() and report.passed(allow_unmatched=True)
    assert "1 served-only, 2 offline-only" in report.summary()


def test_naive_and_utc_timestamps_are_the_same_key(project, logged, offline):
    event = project.event_timestamp
    served = logged.assign(**{event: logged[event].dt.tz_localize(None)})
    assert skew(project, served, offline).passed()


def test_numbers_logged_as_json_compare_numerically(project, cols, logged, offline):
    served = logged.copy()
    column = cols["nullable"]
    served[column] = [None if pd.isna(v) else float(v) for v in served[column]]  # object column, like JSON
    served[cols["integer"]] = served[cols["integer"]].astype(str)  # but strings are a type skew
    report = skew(project, served, offline)
    assert report.feature(column).mismatches == 0 and report.feature(column).kind == "numeric"
    assert report.feature(cols["integer"]).kind == "categorical"
    assert report.feature(cols["integer"]).mismatches == 1_000


def test_the_report_serializes_to_json(project, cols, logged, offline):
    integer = cols["integer"]
    served = logged.copy()
    served.loc[3, integer] += 1
    data = json.loads(skew(project, served, offline).to_json())
    found = next(f for f in data["features"] if f["feature"] == integer)
    assert found["mismatches"] == 1 and found["mismatch_rate"] == 0.001 and found["max_abs_diff"] == 1.0
    assert found["examples"][0] == {**key_of(project, logged, 3), "served": int(logged.loc[3, integer]) + 1,
                                    "offline": float(logged.loc[3, integer])}
    assert data["keys"] == [project.entity.key, project.event_timestamp]


def test_bad_inputs_are_named(project, cols, logged, offline):
    with pytest.raises(DataError, match=rf"offline frame lacks column\(s\) \['{cols['text']}'\]"):
        skew(project, logged, offline.drop(columns=[cols["text"]]))
    with pytest.raises(DataError, match="served frame has 2 rows with repeated keys"):
        skew(project, pd.concat([logged, logged.iloc[[0]]]), offline)
    with pytest.raises(DataError, match=rf"served frame lacks column\(s\) \['{project.entity.key}'\]"):
        skew(project, logged.drop(columns=[project.entity.key]), offline)
