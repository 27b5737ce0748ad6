"""The training library: the project's estimator, deterministic, time-ordered, with clear failures."""

import numpy as np
import pytest

from mlops.errors import ConfigError, DataError
from mlops.project import HookError
from mlops.training.train import build_model, model_params, predict_scores, roc_points, split_by_time, train
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, offline_rows, renamed


@pytest.fixture(scope="module")
def credit():
    return offline_rows(CREDIT, generate_credit_data(8_000, seed=11))


@pytest.fixture(scope="module")
def holdout():
    return offline_rows(CREDIT, generate_credit_data(3_000, seed=999, start="2025-08-01"))


@pytest.fixture(scope="module")
def churn():
    return offline_rows(CHURN, generate_churn_data(5_000))


def test_same_data_and_seed_give_identical_predictions_on_a_holdout(credit, holdout):
    params = model_params(CREDIT, {"max_iter": 60})
    first, second = train(CREDIT, credit, params), train(CREDIT, credit.copy(), params)
    a = predict_scores(first.pipeline, holdout, first.features.all)
    b = predict_scores(second.pipeline, holdout, second.features.all)
    assert np.array_equal(a, b)
    assert first.metrics == second.metrics


def test_the_seed_reaches_every_unset_random_state_of_a_hook_built_model():
    model = build_model(CHURN)
    seeds = {k: v for k, v in model.get_params(deep=True).items() if k.endswith("random_state")}
    assert seeds and set(seeds.values()) == {CHURN.split.seed}


def test_model_learns_and_metrics_are_consistent(credit):
    trained = train(CREDIT, credit, model_params(CREDIT, {"max_iter": 60}))
    m = trained.metrics
    assert 0.7 < m["roc_auc"] < 0.95
    assert 0 < m["log_loss"] < 0.6 and 0 < m["brier"] < 0.2
    assert trained.train_rows + trained.validation_rows == len(credit)
    assert trained.validation_rows == 1_600
    assert trained.params["max_iter"] == 60 and trained.params["learning_rate"] == 0.1


def test_a_second_project_trains_its_own_model_on_its_own_columns(churn):
    """Churn: integer ids, string labels mapped to 0/1, a Pipeline with logistic regression from a build hook."""
    first, second = train(CHURN, churn), train(CHURN, churn.copy())
    assert 0.72 < first.metrics["roc_auc"] < 0.9
    assert type(first.pipeline.steps[-1][1]).__name__ == "LogisticRegression"
    assert first.features.all == [*CHURN.features.of_type("float", "integer"), *CHURN.features.of_type("string")]
    assert np.array_equal(first.validation_scores, second.validation_scores)
    assert set(churn[CHURN.label.column].unique()) == {0, 1}


def test_features_are_the_projects_columns_never_ids_timestamps_label_or_sensitive_attributes(credit):
    trained = train(CREDIT, credit, model_params(CREDIT, {"max_iter": 5}))
    assert set(trained.features.categorical) == {"home_ownership", "loan_purpose", "region", "employment_type"}
    assert "gender" not in trained.features.all and "customer_id" not in trained.features.all
    assert "loan_to_income" in trained.features.numeric and "event_timestamp" not in trained.features.all


def test_validation_rows_are_the_most_recent(credit):
    shuffled = credit.sample(frac=1.0, random_state=0)
    train_df, valid_df = split_by_time(shuffled, "event_timestamp", 0.25)
    assert train_df["event_timestamp"].max() <= valid_df["event_timestamp"].min()
    assert len(valid_df) == 2_000


def test_unseen_category_and_missing_values_are_scored(credit):
    trained = train(CREDIT, credit, model_params(CREDIT, {"max_iter": 30}))
    new = offline_rows(CREDIT, generate_credit_data(1_000, seed=5, scenario="new_category"))
    scores = predict_scores(trained.pipeline, new, trained.features.all)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_all_null_feature_is_a_clear_data_error():
    broken = offline_rows(CREDIT, generate_credit_data(2_000, seed=1, scenario="null_column"))
    with pytest.raises(DataError, match=r"\['debt_to_income'\] hold no values at all"):
        train(CREDIT, broken, model_params(CREDIT, {"max_iter": 10}))


@pytest.mark.parametrize("override, message", [
    ({"learning_rate_": 0.1}, r"model.params: sklearn.ensemble.HistGradientBoostingClassifier refuses them"),
    ('{"max_iter": ', r"model params override .* is not JSON"),
    ("[1, 2]", r"must be a JSON object"),
])
def test_bad_params_are_named(credit, override, message):
    with pytest.raises(ConfigError, match=message):
        train(CREDIT, credit, model_params(CREDIT, override))


def test_a_build_hook_that_returns_no_classifier_is_refused_naming_it(tmp_path):
    def edit(doc):
        doc["model"] = {"build": "model.py:build_model"}

    project = renamed(CHURN, tmp_path, "no-classifier", edit)
    (project.root / "model.py").write_text("from sklearn.linear_model import LinearRegression\n\n"
                                           "def build_model(params):\n    return LinearRegression()\n")
    project = renamed(project, tmp_path / "again", "no-classifier")  # reload: the digest covers model.py
    with pytest.raises(ConfigError, match=r"model.py:build_model of project no-classifier returned "
                                          r"LinearRegression, which lacks \['predict_proba'\]"):
        build_model(project)


def test_a_build_hook_that_raises_is_named_with_its_line(tmp_path):
    project = renamed(CHURN, tmp_path, "raising-hook")
    (project.root / "model.py").write_text("def build_model(params):\n    raise RuntimeError('no GPU here')\n")
    project = renamed(project, tmp_path / "again", "raising-hook")
    with pytest.raises(HookError, match=r"model.py:build_model of project raising-hook raised RuntimeError: "
                                        r"no GPU here \(at .*model.py:2\)"):
        build_model(project)


def test_roc_points_are_thinned_and_bounded(credit):
    trained = train(CREDIT, credit, model_params(CREDIT, {"max_iter": 20}))
    fpr, tpr, thr = roc_points(trained.validation_labels, trained.validation_scores, max_points=50)
    assert len(fpr) <= 50 and fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert all(0.0 <= t <= 1.0 for t in thr)


def test_cpu_budget_respects_the_override_and_the_affinity(monkeypatch):
    import os

    from mlops.training.train import cpu_budget

    monkeypatch.delenv("MLOPS_TRAIN_THREADS", raising=False)
    assert 1 <= cpu_budget() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("MLOPS_TRAIN_THREADS", "1")
    assert cpu_budget() == 1


def test_thread_count_does_not_change_the_model(credit, holdout, monkeypatch):
    params = model_params(CREDIT, {"max_iter": 40})
    monkeypatch.setenv("MLOPS_TRAIN_THREADS", "1")
    single = train(CREDIT, credit, params)
    monkeypatch.setenv("MLOPS_TRAIN_THREADS", "2")
    double = train(CREDIT, credit, params)
    assert np.array_equal(predict_scores(single.pipeline, holdout, single.features.all),
                          predict_scores(double.pipeline, holdout, double.features.all))


def test_log_loss_skill_does_not_move_with_the_base_rate():
    """A model as informative about each label in a period with twice the defaults keeps its skill; its log
    loss does not (the reason the gate bounds skill, not log loss)."""
    from sklearn.metrics import log_loss

    from mlops.training.train import log_loss_skill

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
