"""Tests of the credit-default example's synthetic generator (examples/credit-default/data.py).

The generator is the project's ``data.generator`` hook: the tests call it the way the suite
does (``tests.projects.generate_credit_data``, through the project), and read its documented
constants from the module the hook loads.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from mlops.project import HookError, load_hook
from tests.projects import CREDIT, generate_credit_data

GENERATOR = sys.modules[load_hook(CREDIT, CREDIT.data_hook).__module__]
CATEGORICAL_FEATURES = GENERATOR.CATEGORICAL_FEATURES
ENTITY_COLUMN = GENERATOR.ENTITY_COLUMN
LABEL_COLUMN = GENERATOR.LABEL_COLUMN
LABEL_TIMESTAMP_COLUMN = GENERATOR.LABEL_TIMESTAMP_COLUMN
MAX_ROWS = GENERATOR.MAX_ROWS
MIN_ROWS = GENERATOR.MIN_ROWS
NUMERIC_FEATURES = GENERATOR.NUMERIC_FEATURES
SCENARIOS = GENERATOR.SCENARIOS
SENSITIVE_COLUMN = GENERATOR.SENSITIVE_COLUMN
TIMESTAMP_COLUMN = GENERATOR.TIMESTAMP_COLUMN

N = 20_000
EXPECTED_COLUMNS = [
    "customer_id",
    "event_timestamp",
    "age",
    "income",
    "employment_years",
    "credit_utilization",
    "num_open_accounts",
    "num_late_payments_12m",
    "loan_amount",
    "debt_to_income",
    "home_ownership",
    "loan_purpose",
    "region",
    "employment_type",
    "gender",
    "default",
    "label_timestamp",
]
INT_COLUMNS = {"age", "num_open_accounts", "num_late_payments_12m", "default"}
FLOAT_COLUMNS = {
    "income",
    "employment_years",
    "credit_utilization",
    "loan_amount",
    "debt_to_income",
}
OBJECT_COLUMNS = {"customer_id", "gender", *CATEGORICAL_FEATURES}
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """One frame per scenario, all with the same seed and size."""
    return {s: generate_credit_data(N, seed=123, scenario=s) for s in SCENARIOS}


@pytest.fixture(scope="module")
def base(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return frames["none"]


# --------------------------------------------------------------------------
# Public constants and schema
# --------------------------------------------------------------------------


def test_constants() -> None:
    assert SCENARIOS == (
        "none",
        "covariate_shift",
        "concept_shift",
        "null_column",
        "wrong_units",
        "new_category",
        "recession",
    )
    assert (MIN_ROWS, MAX_ROWS) == (1_000, 1_000_000)
    assert (ENTITY_COLUMN, TIMESTAMP_COLUMN, LABEL_TIMESTAMP_COLUMN) == (
        "customer_id",
        "event_timestamp",
        "label_timestamp",
    )
    assert (LABEL_COLUMN, SENSITIVE_COLUMN) == ("default", "gender")
    assert list(NUMERIC_FEATURES) == EXPECTED_COLUMNS[2:10]
    assert list(CATEGORICAL_FEATURES) == EXPECTED_COLUMNS[10:14]
    assert not set(NUMERIC_FEATURES) & set(CATEGORICAL_FEATURES)


def test_the_generator_makes_the_columns_its_project_declares() -> None:
    """project.yaml and data.py describe one frame: key, timestamps, label, sensitive and slice columns."""
    assert CREDIT.data_hook is not None and str(CREDIT.data_hook) == "data.py:generate"
    assert (CREDIT.entity.key, CREDIT.event_timestamp, CREDIT.label_timestamp) == (
        ENTITY_COLUMN, TIMESTAMP_COLUMN, LABEL_TIMESTAMP_COLUMN)
    assert (CREDIT.label.column, CREDIT.sensitive) == (LABEL_COLUMN, (SENSITIVE_COLUMN,))
    raw = set(NUMERIC_FEATURES) | set(CATEGORICAL_FEATURES)
    assert set(CREDIT.slices) <= raw
    # The project's features are the raw ones plus what its feature hook derives from them.
    assert raw < set(CREDIT.features.names)
    assert set(CREDIT.features.names) - raw == {"loan_to_income", "log_income", "has_late_payments"}
    assert CREDIT.demo is not None and {CREDIT.demo.broken, CREDIT.demo.drift} <= set(SCENARIOS)


def test_the_hook_is_the_modules_generate() -> None:
    """Through the project or straight from its module, the same arguments give the same frame."""
    pd.testing.assert_frame_equal(generate_credit_data(MIN_ROWS, seed=5),
                                  GENERATOR.generate(MIN_ROWS, seed=5, scenario="none"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_columns_order_and_dtypes(frames: dict[str, pd.DataFrame], scenario: str) -> None:
    df = frames[scenario]
    assert list(df.columns) == EXPECTED_COLUMNS
    assert len(df) == N
    for col in INT_COLUMNS:
        assert df[col].dtype == np.int64, col
    for col in FLOAT_COLUMNS:
        assert df[col].dtype == np.float64, col
    for col in OBJECT_COLUMNS:
        assert df[col].dtype == object, col
        assert df[col].map(type).eq(str).all(), col
    for col in (TIMESTAMP_COLUMN, LABEL_TIMESTAMP_COLUMN):
        assert str(df[col].dtype) == "datetime64[ns, UTC]", col
    assert isinstance(df.index, pd.RangeIndex)


def test_value_ranges_and_categories(base: pd.DataFrame) -> None:
    assert base["customer_id"].is_unique
    assert base["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert base["customer_id"].iloc[0] == "C0000001"
    assert base["age"].between(18, 80).all()
    assert base["credit_utilization"].between(0.0, 1.2).all()
    assert (base["num_open_accounts"] >= 0).all()
    assert (base["num_late_payments_12m"] >= 0).all()
    assert (base["loan_amount"] > 0).all()
    assert (base["income"].dropna() > 0).all()
    assert (base["employment_years"].dropna() >= 0).all()
    assert (base["debt_to_income"].dropna() >= 0).all()
    assert set(base[LABEL_COLUMN].unique()) == {0, 1}

    assert set(base["home_ownership"]) == {"RENT", "OWN", "MORTGAGE"}
    assert set(base["loan_purpose"]) == {
        "debt_consolidation",
        "credit_card",
        "home_improvement",
        "car",
        "medical",
        "other",
    }
    assert set(base["region"]) == {"north", "south", "east", "west"}
    assert set(base["employment_type"]) == {
        "salaried",
        "self_employed",
        "unemployed",
        "retired",
    }
    assert set(base["gender"]) == {"F", "M"}
    assert base["gender"].eq("F").mean() == pytest.approx(0.5, abs=0.03)


def test_realistic_marginals(base: pd.DataFrame) -> None:
    income = base["income"].dropna()
    assert 40_000 <= income.median() <= 60_000
    # lognormal: right-skewed
    assert income.mean() > income.median()
    late = base["num_late_payments_12m"]
    assert late.median() == 0 and late.max() >= 3
    assert 0.03 <= (base["credit_utilization"] > 0.9).mean() <= 0.20


def test_missing_fractions(base: pd.DataFrame) -> None:
    na = base.isna().mean()
    assert na["income"] == pytest.approx(0.02, abs=0.006)
    assert na["employment_years"] == pytest.approx(0.07, abs=0.012)
    assert na["debt_to_income"] == pytest.approx(0.03, abs=0.007)
    others = na.drop(["income", "employment_years", "debt_to_income"])
    assert (others == 0).all(), others[others > 0]


def test_label_base_rate(base: pd.DataFrame) -> None:
    assert 0.12 <= base[LABEL_COLUMN].mean() <= 0.20


def test_label_depends_on_features_not_on_gender_directly(base: pd.DataFrame) -> None:
    y = base[LABEL_COLUMN]
    assert y.corr(base["credit_utilization"]) > 0.1
    assert y.corr(base["num_late_payments_12m"]) > 0.1
    assert y.corr(base["income"]) < -0.03
    # Non-linear term: utilization above 0.9 is much riskier.
    high = y[base["credit_utilization"] > 0.9].mean()
    mid = y[base["credit_utilization"].between(0.7, 0.9)].mean()
    assert high > mid + 0.05
    # Gender is weakly tied to income, and only weakly to the label.
    by_gender = base.groupby("gender")["income"].median()
    assert 0.8 < by_gender["F"] / by_gender["M"] < 0.97
    assert abs(y.corr(base["gender"].eq("F").astype(float))) < 0.05


# --------------------------------------------------------------------------
# Time columns
# --------------------------------------------------------------------------


def test_timestamps_sorted_and_in_window(base: pd.DataFrame) -> None:
    ts = base[TIMESTAMP_COLUMN]
    assert ts.is_monotonic_increasing
    start = pd.Timestamp("2025-01-01", tz="UTC")
    assert ts.min() >= start
    assert ts.max() < start + 180 * DAY
    # spread over the whole window, not clumped at the start
    assert ts.max() - ts.min() > 170 * DAY


def test_label_timestamp_delay(base: pd.DataFrame) -> None:
    delay = base[LABEL_TIMESTAMP_COLUMN] - base[TIMESTAMP_COLUMN]
    assert (delay > pd.Timedelta(0)).all()
    assert delay.min() >= 30 * DAY
    assert delay.max() <= 120 * DAY
    assert delay.min() < 35 * DAY and delay.max() > 115 * DAY


def test_start_and_days_arguments() -> None:
    df = generate_credit_data(MIN_ROWS, start="2024-03-10T06:00:00+02:00", days=3)
    ts = df[TIMESTAMP_COLUMN]
    start = pd.Timestamp("2024-03-10T04:00:00", tz="UTC")
    assert ts.min() >= start
    assert ts.max() < start + 3 * DAY


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------


def test_same_arguments_give_identical_frames(base: pd.DataFrame) -> None:
    again = generate_credit_data(N, seed=123, scenario="none")
    pd.testing.assert_frame_equal(base, again)
    shifted = generate_credit_data(5_000, seed=9, scenario="covariate_shift")
    pd.testing.assert_frame_equal(
        shifted, generate_credit_data(5_000, seed=9, scenario="covariate_shift")
    )


def test_different_seed_gives_different_data(base: pd.DataFrame) -> None:
    other = generate_credit_data(N, seed=124, scenario="none")
    assert not base.equals(other)
    assert not np.array_equal(base["age"].to_numpy(), other["age"].to_numpy())
    assert not base[TIMESTAMP_COLUMN].equals(other[TIMESTAMP_COLUMN])
    assert not base[LABEL_COLUMN].equals(other[LABEL_COLUMN])


# --------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"rows": 999}, r"rows must be an integer in \[1000, 1000000\]; got 999"),
        ({"rows": 1_000_001}, r"rows must be an integer in \[1000, 1000000\]; got 1000001"),
        ({"rows": 0}, r"rows must be .*got 0"),
        ({"rows": 5000.0}, r"rows must be an integer .*got 5000\.0 \(float\)"),
        ({"rows": "5000"}, r"rows must be an integer .*got '5000' \(str\)"),
        ({"rows": True}, r"rows must be an integer .*got True \(bool\)"),
        (
            {"rows": 1000, "scenario": "drift"},
            r"scenario must be one of none, covariate_shift, concept_shift, "
            r"null_column, wrong_units, new_category, recession; got 'drift'",
        ),
        ({"rows": 1000, "days": 0}, r"days must be an integer in \[1, .*\]; got 0"),
        ({"rows": 1000, "days": -5}, r"days must be .*got -5"),
        ({"rows": 1000, "start": "not-a-date"}, r"start must be a date or timestamp.*got 'not-a-date'"),
        ({"rows": 1000, "start": ""}, r"start must be a date or timestamp.*got ''"),
        ({"rows": 1000, "seed": -1}, r"seed must be an integer >= 0; got -1"),
        ({"rows": 1000, "start": "2262-03-01"}, r"must stay before"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        GENERATOR.generate(**kwargs)
    # Through the project the same refusal names the hook that raised it.
    with pytest.raises(HookError, match=r"data\.py:generate of project credit-default raised ValueError: .*" + pattern):
        generate_credit_data(**kwargs)


def test_row_bounds_are_inclusive() -> None:
    assert len(generate_credit_data(MIN_ROWS)) == MIN_ROWS
    assert len(generate_credit_data(np.int64(2_000))) == 2_000


def test_million_rows() -> None:
    df = generate_credit_data(MAX_ROWS, seed=1)
    assert df.shape == (MAX_ROWS, len(EXPECTED_COLUMNS))
    assert df["customer_id"].iloc[-1] == "C1000000"
    assert df[TIMESTAMP_COLUMN].is_monotonic_increasing


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

INPUTS = [c for c in EXPECTED_COLUMNS if c != LABEL_COLUMN]


def test_covariate_shift(frames: dict[str, pd.DataFrame], base: pd.DataFrame) -> None:
    shifted = frames["covariate_shift"]
    ratio = shifted["income"].mean() / base["income"].mean()
    assert ratio == pytest.approx(0.75, abs=0.03)
    assert shifted["credit_utilization"].mean() > base["credit_utilization"].mean() + 0.08
    late_ratio = shifted["num_late_payments_12m"].mean() / base["num_late_payments_12m"].mean()
    assert late_ratio > 1.4
    # Same rule on riskier inputs: more defaults.
    assert shifted[LABEL_COLUMN].mean() > base[LABEL_COLUMN].mean() + 0.05
    # Variables the shift does not touch are drawn identically.
    for col in ("customer_id", "event_timestamp", "age", "region", "gender", "employment_type"):
        pd.testing.assert_series_equal(shifted[col], base[col])


def test_concept_shift(frames: dict[str, pd.DataFrame], base: pd.DataFrame) -> None:
    shifted = frames["concept_shift"]
    # Inputs are exactly those of "none"...
    pd.testing.assert_frame_equal(shifted[INPUTS], base[INPUTS])
    # ...but the label follows another rule.
    assert not shifted[LABEL_COLUMN].equals(base[LABEL_COLUMN])
    late_base = base[LABEL_COLUMN].corr(base["num_late_payments_12m"])
    late_new = shifted[LABEL_COLUMN].corr(shifted["num_late_payments_12m"])
    assert late_new > late_base + 0.07
    util_base = base[LABEL_COLUMN].corr(base["credit_utilization"])
    util_new = shifted[LABEL_COLUMN].corr(shifted["credit_utilization"])
    assert util_new < util_base - 0.05
    assert shifted[LABEL_COLUMN].mean() > base[LABEL_COLUMN].mean() + 0.02


def test_recession_is_both_shifts_at_once(frames: dict[str, pd.DataFrame]) -> None:
    recession = frames["recession"]
    covariate = frames["covariate_shift"]
    # The inputs of covariate_shift exactly...
    pd.testing.assert_frame_equal(recession[INPUTS], covariate[INPUTS])
    # ...with the label drawn by the concept-shift rule on them (so it differs from both).
    assert not recession[LABEL_COLUMN].equals(covariate[LABEL_COLUMN])
    late_cov = covariate[LABEL_COLUMN].corr(covariate["num_late_payments_12m"])
    assert recession[LABEL_COLUMN].corr(recession["num_late_payments_12m"]) > late_cov + 0.05


def test_null_column(frames: dict[str, pd.DataFrame], base: pd.DataFrame) -> None:
    broken = frames["null_column"]
    assert broken["debt_to_income"].isna().all()
    assert broken["debt_to_income"].dtype == np.float64
    others = [c for c in EXPECTED_COLUMNS if c != "debt_to_income"]
    pd.testing.assert_frame_equal(broken[others], base[others])


def test_wrong_units(frames: dict[str, pd.DataFrame], base: pd.DataFrame) -> None:
    broken = frames["wrong_units"]
    ratio = broken["income"].mean() / base["income"].mean()
    assert ratio == pytest.approx(1e-3, rel=1e-9)
    assert broken["income"].isna().equals(base["income"].isna())
    assert broken["income"].median() < 1_000
    others = [c for c in EXPECTED_COLUMNS if c != "income"]
    pd.testing.assert_frame_equal(broken[others], base[others])


def test_new_category(frames: dict[str, pd.DataFrame], base: pd.DataFrame) -> None:
    broken = frames["new_category"]
    crypto = broken["loan_purpose"].eq("crypto")
    assert crypto.mean() == pytest.approx(0.15, abs=0.015)
    assert not base["loan_purpose"].eq("crypto").any()
    # Rows that are not crypto keep their original purpose; nothing else changes.
    assert broken.loc[~crypto, "loan_purpose"].equals(base.loc[~crypto, "loan_purpose"])
    others = [c for c in EXPECTED_COLUMNS if c != "loan_purpose"]
    pd.testing.assert_frame_equal(broken[others], base[others])


# --------------------------------------------------------------------------
# Learnability
# --------------------------------------------------------------------------


def test_model_reaches_realistic_auc(base: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    features = base[list(NUMERIC_FEATURES + CATEGORICAL_FEATURES)].copy()
    for col in CATEGORICAL_FEATURES:
        features[col] = features[col].astype("category").cat.codes
    cut = int(len(base) * 0.8)  # frame is sorted by time: train on the past
    model = HistGradientBoostingClassifier(random_state=0)
    model.fit(features.iloc[:cut], base[LABEL_COLUMN].iloc[:cut])
    scores = model.predict_proba(features.iloc[cut:])[:, 1]
    auc = roc_auc_score(base[LABEL_COLUMN].iloc[cut:], scores)
    assert 0.7 <= auc <= 0.92, auc
