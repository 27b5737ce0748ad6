"""A project's own metrics (metrics.hook): computed on the test set, bounded by its gate like the task's."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.errors import ConfigError
from mlops.evaluation.gate import decide, project_gate
from mlops.evaluation.metrics import custom_metrics, evaluate
from mlops.project import load_project
from mlops.training.train import model_params, train
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, offline_rows, renamed


@pytest.fixture(scope="module")
def credit_scored():
    rows = offline_rows(CREDIT, generate_credit_data(6_000, seed=3))
    test = rows.iloc[-1_500:].reset_index(drop=True)
    trained = train(CREDIT, rows.iloc[:-1_500], model_params(CREDIT, {"max_iter": 20}))
    return test, trained.pipeline.predict_proba(test[trained.features.all])[:, 1]


def test_the_credit_metric_equals_an_independent_computation(credit_scored):
    test, scores = credit_scored
    y = test["default"].to_numpy()
    threshold = project_gate(CREDIT).decision_threshold
    expected = 1 - y[scores < threshold].mean() / y.mean()
    assert custom_metrics(CREDIT, y, scores, threshold) == {"default_rate_cut": pytest.approx(expected, abs=1e-12)}


def test_the_gate_bounds_a_custom_metric_and_names_it(credit_scored, tmp_path):
    test, scores = credit_scored
    strict = renamed(CREDIT, tmp_path, "strict-credit")
    gate = (strict.gate.read_text().replace("{metric: default_rate_cut, min: 0.2}", "{metric: default_rate_cut, min: 0.99}"))
    strict.gate.write_text(gate)
    strict = load_project(strict.root)
    config = project_gate(strict)
    result = evaluate(scores, test, "default", config.slice_columns, config.decision_threshold)
    result.metrics.update(custom_metrics(strict, test["default"].to_numpy(), scores, config.decision_threshold))
    blessing = decide(result, None, config)
    failed = {r.rule for r in blessing.failures}
    assert failed == {"value:default_rate_cut"}, blessing.summary()
    assert "default_rate_cut" in next(r.reason for r in blessing.failures)


def test_a_second_project_adds_its_own_metric(tmp_path):
    """Churn declares a metric that is lower-better; a change threshold on it reads the direction."""
    def edit(doc):
        doc["metrics"] = {"hook": "metrics.py:offers", "names": ["offer_rate"], "lower_is_better": ["offer_rate"]}

    hook = ("import numpy as np\n\ndef offers(y_true, scores, threshold):\n"
            "    return {'offer_rate': float(np.mean(scores >= threshold))}\n")
    project = renamed(CHURN, tmp_path, "churn-offers", edit, files={"metrics.py": hook})
    project.gate.write_text(project.gate.read_text().replace(
        "change_thresholds:", "change_thresholds:\n  - {metric: offer_rate, absolute: 0.0}", 1))
    project = load_project(project.root)
    config = project_gate(project)
    rule = next(t for t in config.change_thresholds if t.metric == "offer_rate")
    assert not rule.higher_is_better
    rows = offline_rows(project, generate_churn_data(3_000, seed=2))
    scores = np.linspace(0, 1, len(rows))
    value = custom_metrics(project, rows["churned"].to_numpy(), scores, config.decision_threshold)["offer_rate"]
    assert value == pytest.approx(np.mean(scores >= config.decision_threshold))


@pytest.mark.parametrize("body, message", [
    ("def lending_metrics(y, s, t):\n    return {'other': 1.0}\n",
     r"metrics.py:lending_metrics of project bad-metrics must return a mapping of exactly \['default_rate_cut'\]"),
    ("def lending_metrics(y, s, t):\n    return {'default_rate_cut': 'high'}\n", r"default_rate_cut='high', not a number"),
    ("def lending_metrics(y, s, t):\n    return 1 / 0\n", r"raised ZeroDivisionError"),
])
def test_a_hook_that_returns_the_wrong_shape_or_raises_is_named(tmp_path, body, message):
    project = renamed(CREDIT, tmp_path, "bad-metrics")
    (project.root / "metrics.py").write_text(body)
    project = load_project(project.root)
    with pytest.raises(ConfigError, match=message):
        custom_metrics(project, np.array([0, 1]), np.array([0.1, 0.9]), 0.5)


@pytest.mark.parametrize("metrics, message", [
    ({"hook": "metrics.py:lending_metrics"}, r"metrics: missing \['names'\]"),
    ({"hook": "metrics.py:lending_metrics", "names": ["roc_auc"]}, r"are metrics of the task binary_classification"),
    ({"hook": "metrics.py:lending_metrics", "names": ["a"], "lower_is_better": ["b"]}, r"lower_is_better names \['b'\]"),
    ({"hook": "nope.py:f", "names": ["a"]}, r"'nope.py' does not exist"),
])
def test_bad_metric_declarations_are_refused_at_load(tmp_path, metrics, message):
    with pytest.raises(ConfigError, match=message):
        renamed(CREDIT, tmp_path, "bad-declaration", lambda doc: doc.update(metrics=metrics))


def test_a_gate_naming_an_undeclared_metric_is_refused(tmp_path):
    project = renamed(CHURN, tmp_path, "undeclared")
    project.gate.write_text(project.gate.read_text() + "\n")
    text = project.gate.read_text().replace("value_thresholds:", "value_thresholds:\n  - {metric: profit, min: 1}", 1)
    project.gate.write_text(text)
    with pytest.raises(ConfigError, match=r"value_thresholds\[0\].metric: must be one of .*got 'profit'"):
        project_gate(load_project(project.root))
