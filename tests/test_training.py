"""The training library: deterministic, time-ordered, with clear failures."""

import numpy as np
import pytest

from mlops.data.generator import generate_credit_data
from mlops.errors import ConfigError, DataError
from mlops.training import TrainingConfig, feature_columns, predict_scores, roc_points, split_by_time, train


@pytest.fixture(scope="module")
def credit():
    return generate_credit_data(8_000, seed=11)


@pytest.fixture(scope="module")
def holdout():
    return generate_credit_data(3_000, seed=999, start="2025-08-01")


def test_same_data_and_seed_give_identical_predictions_on_a_holdout(credit, holdout):
    config = TrainingConfig(max_iter=60)
    first, second = train(credit, config), train(credit.copy(), config)
    a = predict_scores(first.pipeline, holdout, first.features.all)
    b = predict_scores(second.pipeline, holdout, second.features.all)
    assert np.array_equal(a, b)
    assert first.metrics == second.metrics


def test_model_learns_and_metrics_are_consistent(credit):
    trained = train(credit, TrainingConfig(max_iter=60))
    m = trained.metrics
    assert 0.7 < m["roc_auc"] < 0.95
    assert 0 < m["log_loss"] < 0.6 and 0 < m["brier"] < 0.2
    assert trained.train_rows + trained.validation_rows == len(credit)
    assert trained.validation_rows == 1_600


def test_features_exclude_ids_timestamps_label_and_sensitive_attribute(credit):
    cols = feature_columns(credit, TrainingConfig())
    assert set(cols.categorical) == {"home_ownership", "loan_purpose", "region", "employment_type"}
    assert "gender" not in cols.all and "customer_id" not in cols.all and "default" not in cols.all
    assert "income" in cols.numeric and "event_timestamp" not in cols.all


def test_validation_rows_are_the_most_recent(credit):
    shuffled = credit.sample(frac=1.0, random_state=0)
    train_df, valid_df = split_by_time(shuffled, "event_timestamp", 0.25)
    assert train_df["event_timestamp"].max() <= valid_df["event_timestamp"].min()
    assert len(valid_df) == 2_000


def test_unseen_category_and_missing_values_are_scored(credit):
    trained = train(credit, TrainingConfig(max_iter=30))
    new = generate_credit_data(1_000, seed=5, scenario="new_category")
    scores = predict_scores(trained.pipeline, new, trained.features.all)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_all_null_feature_is_a_clear_data_error():
    broken = generate_credit_data(2_000, seed=1, scenario="null_column")
    with pytest.raises(DataError, match=r"\['debt_to_income'\] hold no values at all"):
        train(broken, TrainingConfig(max_iter=10))


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_fraction": 0.0}, "validation_fraction"),
    ({"learning_rate": 2.0}, "learning_rate"),
    ({"max_iter": 0}, "max_iter"),
    ({"l2_regularization": -1.0}, "l2_regularization"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(**kwargs)


def test_roc_points_are_thinned_and_bounded(credit):
    trained = train(credit, TrainingConfig(max_iter=20))
    fpr, tpr, thr = roc_points(trained.validation_labels, trained.validation_scores, max_points=50)
    assert len(fpr) <= 50 and fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert all(0.0 <= t <= 1.0 for t in thr)


def test_cpu_budget_respects_the_override_and_the_affinity(monkeypatch):
    import os

    from mlops.training import cpu_budget

    monkeypatch.delenv("MLOPS_TRAIN_THREADS", raising=False)
    assert 1 <= cpu_budget() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("MLOPS_TRAIN_THREADS", "1")
    assert cpu_budget() == 1


def test_thread_count_does_not_change_the_model(credit, holdout, monkeypatch):
    monkeypatch.setenv("MLOPS_TRAIN_THREADS", "1")
    single = train(credit, TrainingConfig(max_iter=40))
    monkeypatch.setenv("MLOPS_TRAIN_THREADS", "2")
    double = train(credit, TrainingConfig(max_iter=40))
    assert np.array_equal(predict_scores(single.pipeline, holdout, single.features.all),
                          predict_scores(double.pipeline, holdout, double.features.all))


def test_log_loss_skill_does_not_move_with_the_base_rate():
    """A model as informative about each label in a period with twice the defaults keeps its skill; its log
    loss does not (the reason the gate bounds skill, not log loss)."""
    from sklearn.metrics import log_loss

    from mlops.training import log_loss_skill

    rng = np.random.default_rng(5)
    for rate in (0.17, 0.36):
        y = (rng.random(20_000) < rate).astype(int)
        baseline = log_loss(y, np.full(len(y), y.mean()))
        assert log_loss_skill(y, np.full(len(y), y.mean())) == pytest.approx(0.0, abs=1e-12)
        perfect = np.where(y == 1, 1 - 1e-9, 1e-9)
        assert log_loss_skill(y, perfect) == pytest.approx(1.0, abs=1e-6)
        assert log_loss_skill(y, np.where(y == 1, 0.8, 0.2)) == pytest.approx(
            1 - log_loss(y, np.where(y == 1, 0.8, 0.2)) / baseline)
    assert np.isnan(log_loss_skill(np.zeros(10, dtype=int), np.full(10, 0.1)))
