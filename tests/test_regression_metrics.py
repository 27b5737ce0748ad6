"""Regression metrics against independent computations (numpy by hand, scikit-learn where it has them)."""

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops.errors import DataError
from mlops.training.regression_metrics import METRICS, mape, regression_metrics, smape


@pytest.fixture(params=[0, 1, 2], ids=["demand-like", "heavy-tailed", "negative-values"])
def sample(request):
    rng = np.random.default_rng(request.param)
    if request.param == 0:  # daily unit sales: positive counts, a model a little too low
        actual = rng.poisson(20, 500).astype(float) + 1
        predicted = actual * 0.9 + rng.normal(0, 2, 500)
    elif request.param == 1:  # delivery minutes: a long right tail
        actual = rng.lognormal(3, 0.8, 800)
        predicted = actual + rng.normal(0, 5, 800)
    else:  # a price change: either sign, never exactly zero
        actual = rng.normal(0, 10, 300)
        actual[np.abs(actual) < 1e-6] = 1.0
        predicted = actual + rng.normal(1, 3, 300)
    return actual, predicted


def test_every_metric_equals_its_independent_computation(sample):
    actual, predicted = sample
    got = regression_metrics(actual, predicted)
    assert set(got) == set(METRICS)
    residual = actual - predicted
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(residual ** 2)), rel=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(actual, predicted)), rel=1e-12)
    assert got["mae"] == pytest.approx(np.mean(np.abs(residual)), rel=1e-12)
    assert got["median_absolute_error"] == pytest.approx(np.median(np.abs(residual)), rel=1e-12)
    assert got["r2"] == pytest.approx(1 - np.sum(residual ** 2) / np.sum((actual - actual.mean()) ** 2), rel=1e-12)
    assert got["mape"] == pytest.approx(np.mean(np.abs(residual) / np.abs(actual)), rel=1e-12)
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(actual, predicted), rel=1e-9)
    assert got["smape"] == pytest.approx(np.mean(2 * np.abs(residual) / (np.abs(actual) + np.abs(predicted))),
                                         rel=1e-12)
    assert got["bias"] == pytest.approx(np.mean(residual), rel=1e-12)


def test_bias_is_positive_when_the_model_predicts_too_low():
    actual = np.array([10.0, 20.0, 30.0])
    assert regression_metrics(actual, actual - 2)["bias"] == pytest.approx(2.0)
    assert regression_metrics(actual, actual + 3)["bias"] == pytest.approx(-3.0)


def test_perfect_predictions():
    actual = np.array([1.0, 2.5, 7.0, 9.0])
    got = regression_metrics(actual, actual)
    assert got["rmse"] == got["mae"] == got["median_absolute_error"] == got["mape"] == got["smape"] == 0.0
    assert got["bias"] == 0.0 and got["r2"] == 1.0


def test_mape_refuses_a_zero_actual_value_and_smape_does_not():
    actual, predicted = np.array([0.0, 4.0, 5.0]), np.array([1.0, 4.0, 4.0])
    with pytest.raises(DataError, match="MAPE is undefined: 1 of 3 actual values are 0"):
        mape(actual, predicted)
    with pytest.raises(DataError, match="use smape or mae"):
        regression_metrics(actual, predicted)
    got = regression_metrics(actual, predicted, with_mape=False)
    assert "mape" not in got
    assert got["smape"] == pytest.approx((2 * 1 / 1 + 0 + 2 * 1 / 9) / 3)
    assert smape([0.0, 0.0], [0.0, 0.0]) == 0.0  # nothing predicted for nothing: no error


def test_r2_of_a_constant_target_is_undefined():
    assert np.isnan(regression_metrics([5.0, 5.0, 5.0], [4.0, 5.0, 6.0])["r2"])


@pytest.mark.parametrize("actual, predicted, message", [
    ([1.0, 2.0], [1.0], "(1,) predictions for (2,) actual values"),
    ([], [], "no rows"),
    ([1.0, np.nan], [1.0, 2.0], "1 of 2 rows have missing or infinite actual values"),
    ([1.0, 2.0], [np.inf, 2.0], "1 of 2 rows have missing or infinite predictions"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "one per row expected"),
])
def test_bad_inputs_are_data_errors(actual, predicted, message):
    with pytest.raises(DataError) as info:
        regression_metrics(actual, predicted)
    assert message in str(info.value)
