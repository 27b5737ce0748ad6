"""The evaluation gate: may this candidate replace the champion? Declared in a config file.

Rules, in the spirit of TFX's Evaluator blessing:

* value thresholds on the candidate's test metrics (e.g. ROC AUC >= 0.75);
* change thresholds against the champion scored on the same test set
  (e.g. F1 must beat it by more than 2% relative); skipped with no champion;
* fairness parity across the groups of each of the project's sensitive
  attributes: largest TPR, FPR and selection-rate gaps, and the four-fifths
  rule on selection rates;
* a minimum slice size: groups too small to judge make the verdict NOT_BLESSED.

The output is a blessing: BLESSED only when every rule passed, with every
rule's numbers and verdict, so a decision can be explained afterwards.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError, DataError
from mlops.evaluation.metrics import EvaluationResult, fairness
from mlops.project import TASKS, Project

BLESSED, NOT_BLESSED = "BLESSED", "NOT_BLESSED"
METRICS = TASKS["binary_classification"].metrics
LOWER_IS_BETTER = TASKS["binary_classification"].lower_is_better


@dataclass
class ValueThreshold:
    metric: str
    min: float | None = None
    max: float | None = None


@dataclass
class ChangeThreshold:
    metric: str
    relative: float | None = None  # fraction of the champion's value, e.g. 0.02
    absolute: float | None = None
    lower_is_better: bool | None = None  # None: the task's rule for the metric

    @property
    def higher_is_better(self) -> bool:
        return not (self.lower_is_better if self.lower_is_better is not None else self.metric in LOWER_IS_BETTER)


@dataclass
class FairnessRule:
    """Parity bounds, applied to each sensitive attribute the project declares."""

    max_tpr_gap: float | None = 0.1
    max_fpr_gap: float | None = 0.1
    max_selection_rate_gap: float | None = 0.1
    four_fifths: bool = True


@dataclass
class GateConfig:
    value_thresholds: list[ValueThreshold] = field(default_factory=list)
    change_thresholds: list[ChangeThreshold] = field(default_factory=list)
    fairness: FairnessRule | None = None
    # Bounds for one attribute over the shared ones (many small groups need wider bounds than two large ones).
    fairness_by_attribute: dict[str, FairnessRule] = field(default_factory=dict)
    min_slice_size: int = 100
    decision_threshold: float = 0.5
    high_stakes: bool = False
    sensitive: list[str] = field(default_factory=list)  # the project's: fairness is judged on each
    segments: list[str] = field(default_factory=list)  # the project's slices: reported per value

    @property
    def slice_columns(self) -> list[str]:
        return list(dict.fromkeys([*self.sensitive, *self.segments]))


# -- loading ----------------------------------------------------------------------
def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _entries(raw: Any, where: str, allowed: set[str], metrics: tuple[str, ...] = METRICS) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ConfigError(f"{where}: expected a list of mappings")
    for i, entry in enumerate(raw):
        unknown = set(entry) - allowed
        if unknown:
            raise ConfigError(f"{where}[{i}]: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if entry.get("metric") not in metrics:
            raise ConfigError(f"{where}[{i}].metric: must be one of {list(metrics)}, got {entry.get('metric')!r}")
    return raw


_FAIRNESS_FIELDS = {"max_tpr_gap", "max_fpr_gap", "max_selection_rate_gap", "four_fifths"}


def _fairness_rule(raw: dict, rule: FairnessRule, where: str) -> FairnessRule:
    """``rule`` with the bounds ``raw`` sets (null turns a bound off)."""
    for key in ("max_tpr_gap", "max_fpr_gap", "max_selection_rate_gap"):
        if key in raw:
            setattr(rule, key, None if raw[key] is None else _num(raw[key], f"{where}.{key}"))
    if "four_fifths" in raw:
        if not isinstance(raw["four_fifths"], bool):
            raise ConfigError(f"{where}.four_fifths: expected true or false")
        rule.four_fifths = raw["four_fifths"]
    return rule


def parse_gate(raw: Any, where: str = "gate config", metrics: tuple[str, ...] = METRICS,
               lower_is_better: frozenset[str] = LOWER_IS_BETTER) -> GateConfig:
    """Build a GateConfig from parsed YAML, refusing anything unexpected.

    ``metrics`` are the names its thresholds may use (a project adds its own to the task's), and
    ``lower_is_better`` says which of them improve downwards."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    allowed = {"value_thresholds", "change_thresholds", "fairness", "min_slice_size", "decision_threshold",
               "high_stakes"}
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    config = GateConfig()
    for i, e in enumerate(_entries(raw.get("value_thresholds"), f"{where}: value_thresholds", {"metric", "min", "max"},
                                   metrics)):
        if "min" not in e and "max" not in e:
            raise ConfigError(f"{where}: value_thresholds[{i}]: give min and/or max")
        config.value_thresholds.append(ValueThreshold(
            e["metric"], *(None if e.get(k) is None else _num(e[k], f"{where}: value_thresholds[{i}].{k}")
                           for k in ("min", "max"))))
    for i, e in enumerate(_entries(raw.get("change_thresholds"), f"{where}: change_thresholds",
                                   {"metric", "relative", "absolute"}, metrics)):
        if ("relative" in e) == ("absolute" in e):
            raise ConfigError(f"{where}: change_thresholds[{i}]: give exactly one of relative or absolute")
        kind = "relative" if "relative" in e else "absolute"
        amount = _num(e[kind], f"{where}: change_thresholds[{i}].{kind}")
        config.change_thresholds.append(ChangeThreshold(e["metric"], **{kind: amount},
                                                        lower_is_better=e["metric"] in lower_is_better))
    if raw.get("fairness") is not None:
        f = raw["fairness"]
        if not isinstance(f, dict) or set(f) - {*_FAIRNESS_FIELDS, "attributes"}:
            raise ConfigError(f"{where}: fairness: a mapping of any of {sorted(_FAIRNESS_FIELDS)} (applied to every "
                              "sensitive attribute project.yaml declares) and 'attributes' (bounds for one of them)")
        config.fairness = _fairness_rule(f, FairnessRule(), f"{where}: fairness")
        attributes = f.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise ConfigError(f"{where}: fairness.attributes: a mapping of sensitive attribute to its own bounds")
        for name, bounds in attributes.items():
            at = f"{where}: fairness.attributes.{name}"
            if not isinstance(bounds, dict) or set(bounds) - _FAIRNESS_FIELDS:
                raise ConfigError(f"{at}: a mapping of any of {sorted(_FAIRNESS_FIELDS)}")
            config.fairness_by_attribute[str(name)] = _fairness_rule(bounds, replace(config.fairness), at)
    if "min_slice_size" in raw:
        size = raw["min_slice_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"{where}: min_slice_size: expected a non-negative integer, got {size!r}")
        config.min_slice_size = size
    if "decision_threshold" in raw:
        config.decision_threshold = _num(raw["decision_threshold"], f"{where}: decision_threshold")
        if not 0.0 < config.decision_threshold < 1.0:
            raise ConfigError(f"{where}: decision_threshold must be in (0, 1)")
    if "high_stakes" in raw:
        if not isinstance(raw["high_stakes"], bool):
            raise ConfigError(f"{where}: high_stakes: expected true or false")
        config.high_stakes = raw["high_stakes"]
    return config


def load_gate(path: str | Path, project: Project | None = None) -> GateConfig:
    """A gate file; with ``project``, its thresholds may also name the project's own metrics."""
    from mlops.platform.config_files import read_yaml

    raw = read_yaml(path, "gate config")
    if project is None:
        return parse_gate(raw, str(path))
    return parse_gate(raw, str(path), project.metric_names, project.lower_is_better)


# -- deciding ---------------------------------------------------------------------
@dataclass
class RuleResult:
    rule: str
    passed: bool
    reason: str
    candidate: float | None = None
    champion: float | None = None
    threshold: float | None = None


@dataclass
class Blessing:
    verdict: str
    rules: list[RuleResult]
    champion: str | None  # e.g. "churn v3", None when there was none
    high_stakes: bool

    @property
    def blessed(self) -> bool:
        return self.verdict == BLESSED

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def summary(self) -> str:
        head = f"{self.verdict}" + (f" against champion {self.champion}" if self.champion else " (no champion)")
        lines = [f"  - {'ok  ' if r.passed else 'FAIL'} {r.rule}: {r.reason}" for r in self.rules]
        return "\n".join([head, *lines])

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"blessed": self.blessed}, indent=2, default=str)


def _value_rules(candidate: EvaluationResult, config: GateConfig) -> list[RuleResult]:
    out = []
    for t in config.value_thresholds:
        value = candidate.metrics.get(t.metric, float("nan"))
        ok_min = t.min is None or value >= t.min
        ok_max = t.max is None or value <= t.max
        bound = " and ".join(b for b in (f">= {t.min:g}" if t.min is not None else "",
                                         f"<= {t.max:g}" if t.max is not None else "") if b)
        passed = bool(ok_min and ok_max and not math.isnan(value))
        out.append(RuleResult(f"value:{t.metric}", passed, f"{t.metric} {value:.4f} must be {bound}",
                              candidate=value, threshold=t.min if t.min is not None else t.max))
    return out


def _change_rules(candidate: EvaluationResult, champion: EvaluationResult, config: GateConfig) -> list[RuleResult]:
    out = []
    for t in config.change_thresholds:
        new, old = candidate.metrics.get(t.metric, float("nan")), champion.metrics.get(t.metric, float("nan"))
        gain = (new - old) if t.higher_is_better else (old - new)
        if t.relative is not None:
            improvement = gain / abs(old) if old else float("inf") if gain > 0 else 0.0
            needed, unit = t.relative, "relative"
        else:
            improvement, needed, unit = gain, t.absolute, "absolute"
        passed = bool(improvement > needed)
        word = "higher" if t.higher_is_better else "lower"
        out.append(RuleResult(f"change:{t.metric}", passed,
                              f"{t.metric} {new:.4f} vs champion {old:.4f}: {improvement:+.2%} {unit} ({word} is better); "
                              f"must improve by more than {needed:.2%}" if unit == "relative" else
                              f"{t.metric} {new:.4f} vs champion {old:.4f}: {improvement:+.4f} ({word} is better); "
                              f"must improve by more than {needed:g}",
                              candidate=new, champion=old, threshold=needed))
    return out


def _fairness_rules(candidate: EvaluationResult, config: GateConfig) -> list[RuleResult]:
    if config.fairness is None:
        return []
    if not config.sensitive:
        raise DataError("the gate has fairness bounds but the project declares no sensitive attribute "
                        "to judge them on (project.yaml: sensitive)")
    return [r for attribute in config.sensitive for r in _parity(candidate, config, attribute)]


def _parity(candidate: EvaluationResult, config: GateConfig, attribute: str) -> list[RuleResult]:
    rule = config.fairness_by_attribute.get(attribute, config.fairness)
    groups = candidate.slices_of(attribute)
    if not groups:
        raise DataError(f"the gate checks fairness on {attribute!r} but the evaluation has no such slices")
    out = []
    small = [g for g in groups if g.size < config.min_slice_size]
    out.append(RuleResult(
        f"slice_size:{attribute}", not small,
        (f"groups {', '.join(f'{g.value} ({g.size} rows)' for g in small)} are below the minimum slice size "
         f"{config.min_slice_size}: too small to judge fairness") if small else
        f"every group of {attribute} has >= {config.min_slice_size} rows "
        f"({', '.join(f'{g.value}: {g.size}' for g in groups)})",
        candidate=float(min(g.size for g in groups)), threshold=float(config.min_slice_size)))
    f = fairness(candidate, attribute, config.min_slice_size)
    for name, gap, limit in (("tpr_gap", f.tpr_gap, rule.max_tpr_gap), ("fpr_gap", f.fpr_gap, rule.max_fpr_gap),
                             ("selection_rate_gap", f.selection_rate_gap, rule.max_selection_rate_gap)):
        if limit is not None:
            out.append(RuleResult(f"fairness:{name}:{attribute}", gap <= limit,
                                  f"largest {name.replace('_', ' ')} across {attribute} groups is {gap:.4f}, "
                                  f"must be <= {limit:g}", candidate=gap, threshold=limit))
    if rule.four_fifths:
        out.append(RuleResult(f"fairness:four_fifths:{attribute}", f.disparate_impact >= 0.8,
                              f"lowest/highest selection rate across {attribute} groups is "
                              f"{f.disparate_impact:.3f}, must be >= 0.8", candidate=f.disparate_impact,
                              threshold=0.8))
    return out


def decide(candidate: EvaluationResult, champion: EvaluationResult | None, config: GateConfig,
           champion_name: str | None = None) -> Blessing:
    """Apply every rule; BLESSED only if all pass. With no champion, change thresholds are skipped."""
    if champion is not None and candidate.test_digest and champion.test_digest != candidate.test_digest:
        raise DataError("champion and candidate were evaluated on different test sets; "
                        "compare them on the same rows")
    rules = _value_rules(candidate, config)
    if champion is not None:
        rules += _change_rules(candidate, champion, config)
    rules += _fairness_rules(candidate, config)
    verdict = BLESSED if all(r.passed for r in rules) else NOT_BLESSED
    return Blessing(verdict, rules, champion_name if champion is not None else None, config.high_stakes)


def project_gate(project: Project) -> GateConfig:
    """The project's gate: its gate file, judged on its sensitive attributes and reported per its slices."""
    config = load_gate(project.gate, project)
    config.sensitive, config.segments = list(project.sensitive), list(project.slices)
    unknown = sorted(set(config.fairness_by_attribute) - set(config.sensitive))
    if unknown:
        raise ConfigError(f"{project.gate}: fairness.attributes: {unknown} are not sensitive attributes of project "
                          f"{project.name} (project.yaml declares {list(config.sensitive)})")
    return config
