"""The evaluation gate: each rule, and the worse / unfair / too-small-slice candidates, on the example projects.

Credit (one sensitive attribute, gender) carries the numbers its gate was written for; churn (two, age_band
and gender) shows fairness is judged on every sensitive attribute a project declares, each named in its rules.
"""

import json

import numpy as np
import pytest

from mlops.errors import ConfigError, DataError
from mlops.evaluation.gate import BLESSED, NOT_BLESSED, decide, load_gate, parse_gate, project_gate
from mlops.evaluation.metrics import evaluate, fairness, split_test
from mlops.training.train import model_params, predict_scores, train
from tests.projects import CHURN, CREDIT, generate_churn_data, generate_credit_data, offline_rows

GATE = {
    "value_thresholds": [{"metric": "roc_auc", "min": 0.75}, {"metric": "log_loss", "max": 0.6}],
    "change_thresholds": [{"metric": "f1", "relative": 0.02}],
    "fairness": {"max_tpr_gap": 0.1, "max_fpr_gap": 0.1, "max_selection_rate_gap": 0.1, "four_fifths": True},
    "min_slice_size": 100,
    "decision_threshold": 0.3,
}


@pytest.fixture(scope="module")
def split():
    data = offline_rows(CREDIT, generate_credit_data(20_000, seed=5))
    return split_test(data, CREDIT.event_timestamp, 0.2)


@pytest.fixture(scope="module")
def models(split):
    development, _ = split
    good = train(CREDIT, development, model_params(CREDIT, {"max_iter": 150}))
    worse = train(CREDIT, development, model_params(CREDIT, {"max_iter": 3, "learning_rate": 0.05}))
    return good, worse


def score(trained, test):
    return predict_scores(trained.pipeline, test, trained.features.all)


@pytest.fixture(scope="module")
def config():
    """The inline gate, judged on the credit project's sensitive attribute and reported per its slices."""
    gate = parse_gate(GATE)
    gate.sensitive, gate.segments = list(CREDIT.sensitive), list(CREDIT.slices)
    return gate


def result_for(scores, test, config, project=CREDIT):
    result = evaluate(scores, test, project.label.column, config.slice_columns, config.decision_threshold)
    result.test_digest = "same-test-set"
    return result


def test_test_set_is_later_than_everything_training_saw(split):
    development, test = split
    assert development[CREDIT.event_timestamp].max() <= test[CREDIT.event_timestamp].min()
    assert len(test) == 4_000


def test_evaluation_reports_overall_slices_and_curves(models, split, config):
    good, _ = models
    _, test = split
    result = result_for(score(good, test), test, config)
    assert set(result.metrics) >= {"f1", "precision", "recall", "roc_auc", "pr_auc", "log_loss", "brier"}
    assert sum(map(sum, result.confusion)) == len(test)
    assert {(s.column, s.value) for s in result.slices} >= {("gender", "F"), ("gender", "M"), ("region", "north")}
    assert sum(s.size for s in result.slices_of("gender")) == len(test)
    predicted, observed = result.reliability
    assert len(predicted) == len(observed) > 3 and all(0 <= p <= 1 for p in predicted)


def test_first_model_with_no_champion_is_judged_on_values_and_fairness(models, split, config):
    good, _ = models
    _, test = split
    blessing = decide(result_for(score(good, test), test, config), None, config)
    assert blessing.verdict == BLESSED, blessing.summary()
    assert not any(r.rule.startswith("change:") for r in blessing.rules)
    assert {r.rule for r in blessing.rules if r.rule.startswith(("fairness:", "slice_size:"))} == {
        "slice_size:gender", "fairness:tpr_gap:gender", "fairness:fpr_gap:gender",
        "fairness:selection_rate_gap:gender", "fairness:four_fifths:gender"}
    assert blessing.champion is None


def test_a_worse_model_is_not_blessed_against_the_champion(models, split, config):
    good, worse = models
    _, test = split
    champion = result_for(score(good, test), test, config)
    blessing = decide(result_for(score(worse, test), test, config), champion, config, "credit-default v1")
    assert blessing.verdict == NOT_BLESSED
    failed = {r.rule for r in blessing.failures}
    assert failed == {"change:f1"}  # still a usable model, just not better than the champion
    assert "vs champion" in next(r.reason for r in blessing.rules if r.rule == "change:f1")


def test_the_same_model_does_not_beat_itself_by_the_margin(models, split, config):
    good, _ = models
    _, test = split
    same = result_for(score(good, test), test, config)
    blessing = decide(same, same, config, "credit-default v1")
    rule = next(r for r in blessing.rules if r.rule == "change:f1")
    assert not rule.passed and rule.candidate == rule.champion


def test_an_unfair_model_is_not_blessed(models, split, config):
    good, _ = models
    _, test = split
    # A model that pushes one group's scores up: same data, biased decisions.
    biased = np.clip(score(good, test) + np.where(test["gender"] == "M", 0.25, 0.0), 0, 1)
    blessing = decide(result_for(biased, test, config), None, config)
    assert blessing.verdict == NOT_BLESSED
    failed = {r.rule for r in blessing.failures}
    assert {"fairness:selection_rate_gap:gender", "fairness:four_fifths:gender"} <= failed


def test_a_too_small_slice_is_not_blessed(models, split, config):
    good, _ = models
    _, test = split
    few_women = test[(test["gender"] == "M") | (test.index.isin(test[test["gender"] == "F"].index[:40]))]
    blessing = decide(result_for(score(good, few_women), few_women, config), None, config)
    assert blessing.verdict == NOT_BLESSED
    rule = next(r for r in blessing.failures if r.rule == "slice_size:gender")
    assert "F (40 rows)" in rule.reason and "below the minimum slice size 100" in rule.reason


def test_fairness_numbers(models, split, config):
    good, _ = models
    _, test = split
    f = fairness(result_for(score(good, test), test, config), "gender")
    assert set(f.groups) == {"F", "M"} and 0 <= f.selection_rate_gap <= 1 and 0 < f.disparate_impact <= 1


def test_different_test_sets_cannot_be_compared(models, split, config):
    good, _ = models
    _, test = split
    a, b = result_for(score(good, test), test, config), result_for(score(good, test), test, config)
    b.test_digest = "another"
    with pytest.raises(DataError, match="different test sets"):
        decide(a, b, config)


def test_blessing_is_machine_readable(models, split, config):
    good, _ = models
    _, test = split
    doc = json.loads(decide(result_for(score(good, test), test, config), None, config).to_json())
    assert doc["verdict"] == BLESSED and doc["blessed"] is True and all("reason" in r for r in doc["rules"])


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g.update(colour="red"), "unknown field(s) ['colour']"),
    (lambda g: g.update(segments=["region"]), "unknown field(s) ['segments']"),  # slices are the project's
    (lambda g: g["fairness"].update(attribute="gender"), "applied to every sensitive attribute"),
    (lambda g: g["fairness"].update(attributes=["gender"]), "fairness.attributes: a mapping of sensitive attribute"),
    (lambda g: g["fairness"].update(attributes={"gender": {"max_gap": 0.2}}), "fairness.attributes.gender: a mapping"),
    (lambda g: g["fairness"].update(attributes={"gender": {"four_fifths": "no"}}),
     "fairness.attributes.gender.four_fifths: expected true or false"),
    (lambda g: g["value_thresholds"].append({"metric": "auc", "min": 1}), "metric: must be one of"),
    (lambda g: g["value_thresholds"].append({"metric": "f1"}), "give min and/or max"),
    (lambda g: g["change_thresholds"].append({"metric": "f1", "relative": 0.1, "absolute": 0.1}), "exactly one of"),
    (lambda g: g["fairness"].update(max_tpr_gap="10%"), "expected a number"),
    (lambda g: g.update(min_slice_size=-5), "non-negative integer"),
    (lambda g: g.update(decision_threshold=1.5), "decision_threshold must be in (0, 1)"),
])
def test_bad_gate_configs_are_refused(mutate, message):
    raw = json.loads(json.dumps(GATE))
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse_gate(raw, "my-project/gate.yaml")
    assert message in str(info.value) and "my-project/gate.yaml" in str(info.value)


def test_gate_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read gate config"):
        load_gate(tmp_path / "none.yaml")
    (tmp_path / "g.yaml").write_text("value_thresholds: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_gate(tmp_path / "g.yaml")


def test_absolute_change_thresholds_and_lower_is_better(models, split):
    good, worse = models
    _, test = split
    config = parse_gate({"change_thresholds": [{"metric": "log_loss", "absolute": 0.001}]})
    strong, weak = (result_for(score(m, test), test, config) for m in (good, worse))
    better = decide(strong, weak, config, "v1").rules[0]
    assert better.passed and better.candidate < better.champion  # lower log loss is the improvement
    assert not decide(weak, strong, config, "v1").rules[0].passed
    assert not decide(strong, strong, config, "v1").rules[0].passed  # equal is not "by more than"


@pytest.mark.parametrize("project", [CREDIT, CHURN], ids=lambda p: p.name)
def test_a_projects_gate_is_judged_on_its_sensitive_attributes_and_reported_per_its_slices(project):
    config = project_gate(project)
    assert config.sensitive == list(project.sensitive) and config.segments == list(project.slices)
    assert config.slice_columns == list(dict.fromkeys([*project.sensitive, *project.slices]))
    assert config.fairness is not None


def test_fairness_bounds_without_a_sensitive_attribute_are_refused(models, split):
    good, _ = models
    _, test = split
    config = parse_gate(GATE)  # fairness bounds, but nothing to judge them on
    result = result_for(score(good, test), test, config)
    with pytest.raises(DataError, match=r"declares no sensitive attribute .*project.yaml: sensitive"):
        decide(result, None, config)


# -- churn: two sensitive attributes, each judged -------------------------------------------------

@pytest.fixture(scope="module")
def churn():
    """Churn's reference data (5,000 rows, the size its gate was measured at), its model and its own gate."""
    rows = offline_rows(CHURN, generate_churn_data(5_000))
    development, test = split_test(rows, CHURN.event_timestamp, CHURN.split.test_fraction)
    model = train(CHURN, development)
    return test, score(model, test), project_gate(CHURN)


def test_churn_is_blessed_only_after_fairness_was_judged_on_each_sensitive_attribute(churn):
    test, scores, config = churn
    blessing = decide(result_for(scores, test, config, CHURN), None, config)
    assert blessing.verdict == BLESSED, blessing.summary()
    judged = {r.rule.rsplit(":", 1)[1] for r in blessing.rules if r.rule.startswith(("fairness:", "slice_size:"))}
    assert judged == {"age_band", "gender"}
    for attribute in ("age_band", "gender"):  # four_fifths is off in churn's gate
        assert {f"slice_size:{attribute}", f"fairness:tpr_gap:{attribute}", f"fairness:fpr_gap:{attribute}",
                f"fairness:selection_rate_gap:{attribute}"} <= {r.rule for r in blessing.rules}
    assert {(s.column, s.value) for s in result_for(scores, test, config, CHURN).slices} >= {
        ("age_band", "65+"), ("gender", "F"), ("region", "north")}


def test_a_candidate_unfair_on_the_second_sensitive_attribute_only_is_refused_naming_it(churn):
    """Fair across age bands (the first attribute), biased for women (the second): refused, naming gender."""
    test, scores, config = churn
    assert CHURN.sensitive == ("age_band", "gender")
    biased = np.clip(scores + np.where(test["gender"] == "F", 0.1, 0.0), 0, 1)
    blessing = decide(result_for(biased, test, config, CHURN), None, config)
    assert blessing.verdict == NOT_BLESSED
    failed = {r.rule for r in blessing.failures}
    assert failed and all(rule.endswith(":gender") for rule in failed), blessing.summary()
    assert "fairness:selection_rate_gap:gender" in failed
    assert all(r.passed for r in blessing.rules if r.rule.endswith(":age_band")), blessing.summary()
    assert all("across gender groups" in r.reason for r in blessing.failures)
    assert "FAIL fairness:selection_rate_gap:gender" in blessing.summary()


def test_a_too_small_group_of_the_second_attribute_is_not_blessed(churn):
    test, scores, config = churn
    keep = (test["gender"] == "M") | test.index.isin(test[test["gender"] == "F"].index[:30])
    blessing = decide(result_for(scores[keep.to_numpy()], test[keep], config, CHURN), None, config)
    assert blessing.verdict == NOT_BLESSED
    rule = next(r for r in blessing.failures if r.rule == "slice_size:gender")
    assert "F (30 rows)" in rule.reason


def test_churn_does_not_beat_itself_on_its_own_change_threshold(churn):
    test, scores, config = churn
    same = result_for(scores, test, config, CHURN)
    rule = next(r for r in decide(same, same, config, "churn v1").rules if r.rule == "change:roc_auc")
    assert not rule.passed and rule.candidate == rule.champion


def test_one_attribute_may_have_its_own_bounds_over_the_shared_ones(churn):
    """Shared bounds tight, age_band's own wide: the same scores pass on age_band and fail on gender."""
    test, scores, _ = churn
    raw = {"fairness": {"max_tpr_gap": 0.001, "max_fpr_gap": 0.001, "max_selection_rate_gap": None,
                        "four_fifths": False,
                        "attributes": {"age_band": {"max_tpr_gap": 1.0, "max_fpr_gap": 1.0}}},
           "decision_threshold": 0.2}
    config = parse_gate(raw)
    config.sensitive, config.segments = list(CHURN.sensitive), list(CHURN.slices)
    blessing = decide(result_for(scores, test, config, CHURN), None, config)
    rules = {r.rule: r for r in blessing.rules}
    assert rules["fairness:tpr_gap:age_band"].passed and rules["fairness:tpr_gap:age_band"].threshold == 1.0
    assert not rules["fairness:tpr_gap:gender"].passed and rules["fairness:tpr_gap:gender"].threshold == 0.001
    assert not any(name.startswith("fairness:selection_rate_gap") for name in rules)  # null: off for both
    assert blessing.verdict == NOT_BLESSED and {r.rule for r in blessing.failures} == {
        "fairness:tpr_gap:gender", "fairness:fpr_gap:gender"}


def test_bounds_for_an_attribute_the_project_does_not_declare_are_refused(tmp_path):
    import shutil

    from mlops.project import load_project

    folder = tmp_path / "churn"
    shutil.copytree(CHURN.root, folder)
    gate = folder / "gate.yaml"
    gate.write_text(gate.read_text().replace("\n    age_band:", "\n    age_bnd:", 1))
    with pytest.raises(ConfigError) as info:
        project_gate(load_project(folder))
    assert "fairness.attributes: ['age_bnd'] are not sensitive attributes of project churn" in str(info.value)
    assert str(gate) in str(info.value) and "['age_band', 'gender']" in str(info.value)
