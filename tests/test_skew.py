"""Training/serving skew detection on real feature tables (engineered from generated data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops.data.generator import generate_credit_data
from mlops.errors import DataError
from mlops.features.definitions import FEATURE_NAMES, NUMERIC_FEATURES
from mlops.features.engineering import compute_features
from mlops.features.skew import compare_online_offline


@pytest.fixture(scope="module")
def logged():
    """Feature vectors as serving would log them: keys + features, numeric Int64 included."""
    features = compute_features(generate_credit_data(1_000, seed=8))
    return features.rename(columns={"feature_timestamp": "event_timestamp"}).drop(columns=["created_timestamp"])


@pytest.fixture
def offline(logged):
    """The same vectors as the offline path returns them: numeric as float64, rows in another order."""
    out = logged.copy()
    for name in NUMERIC_FEATURES:
        out[name] = out[name].astype("float64")
    return out.iloc[::-1].reset_index(drop=True)


def key_of(frame, row):
    return {"customer_id": frame.loc[row, "customer_id"], "event_timestamp": frame.loc[row, "event_timestamp"].isoformat()}


def test_identical_vectors_have_no_mismatches(logged, offline):
    report = compare_online_offline(logged, offline)
    assert report.passed() and report.matched_rows == 1_000
    assert [s.feature for s in report.features] == list(FEATURE_NAMES)
    assert all(s.compared == 1_000 and s.mismatches == 0 for s in report.features)
    assert report.mismatched_features == [] and "all 15 features match" in report.summary()


def test_a_perturbed_numeric_feature_is_counted_with_its_max_abs_diff(logged, offline):
    served = logged.copy()
    served.loc[[3, 7], "credit_utilization"] += [0.05, 0.2]
    served.loc[9, "loan_amount"] *= 1 + 1e-12  # within rtol: float noise is not skew
    report = compare_online_offline(served, offline)
    skew = report.feature("credit_utilization")
    assert (skew.kind, skew.mismatches, skew.mismatch_rate) == ("numeric", 2, 0.002)
    assert skew.max_abs_diff == pytest.approx(0.2)
    assert [e["customer_id"] for e in skew.examples] == logged.loc[[3, 7], "customer_id"].tolist()
    assert skew.examples[1]["served"] - skew.examples[1]["offline"] == pytest.approx(0.2)
    assert report.mismatched_features == ["credit_utilization"]
    assert not report.passed() and report.passed(max_mismatch_rate=0.002)


def test_a_changed_category_is_a_mismatch(logged, offline):
    served = logged.copy()
    served.loc[5, "loan_purpose"] = "crypto" if served.loc[5, "loan_purpose"] != "crypto" else "car"
    report = compare_online_offline(served, offline)
    skew = report.feature("loan_purpose")
    assert (skew.kind, skew.mismatches, skew.max_abs_diff) == ("categorical", 1, None)
    assert skew.examples[0] == {**key_of(logged, 5), "served": served.loc[5, "loan_purpose"],
                                "offline": logged.loc[5, "loan_purpose"]}


def test_nan_on_one_side_only_is_a_mismatch_and_on_both_sides_is_not(logged, offline):
    present = logged.index[logged["debt_to_income"].notna()][0]
    assert logged["debt_to_income"].isna().any()  # rows missing on both sides stay matches
    served = logged.copy()
    served.loc[present, "debt_to_income"] = np.nan
    served.loc[present, "region"] = None
    report = compare_online_offline(served, offline)
    assert report.feature("debt_to_income").mismatches == 1
    assert report.feature("debt_to_income").max_abs_diff == 0.0  # over rows where both have a value
    assert report.feature("debt_to_income").examples[0]["served"] is None
    assert report.feature("region").mismatches == 1


def test_rows_on_one_side_only_are_reported(logged, offline):
    served = logged.drop(index=[0, 1])
    extra = logged.iloc[[2]].assign(customer_id="C9999999")
    report = compare_online_offline(pd.concat([served, extra]), offline)
    assert (report.only_served, report.only_offline, report.matched_rows) == (1, 2, 998)
    assert report.only_served_examples[0]["customer_id"] == "C9999999"
    assert {e["customer_id"] for e in report.only_offline_examples} == set(logged.loc[[0, 1], "customer_id"])
    assert not report.passed() and report.passed(allow_unmatched=True)
    assert "1 served-only, 2 offline-only" in report.summary()


def test_naive_and_utc_timestamps_are_the_same_key(logged, offline):
    served = logged.assign(event_timestamp=logged["event_timestamp"].dt.tz_localize(None))
    assert compare_online_offline(served, offline).passed()


def test_numbers_logged_as_json_compare_numerically(logged, offline):
    served = logged.copy()
    served["income"] = [None if pd.isna(v) else float(v) for v in served["income"]]  # object column, like JSON
    served["age"] = served["age"].astype(str)  # but strings are a type skew
    report = compare_online_offline(served, offline)
    assert report.feature("income").mismatches == 0 and report.feature("income").kind == "numeric"
    assert report.feature("age").kind == "categorical" and report.feature("age").mismatches == 1_000


def test_the_report_serializes_to_json(logged, offline):
    served = logged.copy()
    served.loc[3, "age"] += 1
    data = json.loads(compare_online_offline(served, offline).to_json())
    age = next(f for f in data["features"] if f["feature"] == "age")
    assert age["mismatches"] == 1 and age["mismatch_rate"] == 0.001 and age["max_abs_diff"] == 1.0
    assert age["examples"][0] == {**key_of(logged, 3), "served": int(logged.loc[3, "age"]) + 1,
                                  "offline": float(logged.loc[3, "age"])}


def test_bad_inputs_are_named(logged, offline):
    with pytest.raises(DataError, match=r"offline frame lacks column\(s\) \['region'\]"):
        compare_online_offline(logged, offline.drop(columns=["region"]))
    with pytest.raises(DataError, match="served frame has 2 rows with repeated keys"):
        compare_online_offline(pd.concat([logged, logged.iloc[[0]]]), offline)
