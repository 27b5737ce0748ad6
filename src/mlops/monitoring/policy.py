"""A monitoring policy: the window, the drift options, the performance rule and each alert's action.

Loaded strictly like the rollout policy: an unknown key, method, metric or
action is refused with the place it was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError
from mlops.monitoring.drift import DriftOptions
from mlops.monitoring.performance import resolve_kpi
from mlops.platform.config_files import mapping, number

RETRAIN, ROLLBACK, NOTIFY, IGNORE = "retrain", "rollback", "notify", "ignore"
ACTIONS = (RETRAIN, ROLLBACK, NOTIFY, IGNORE)
ALERTS = ("dataset_drift", "prediction_drift", "missing_drift", "performance_below", "worse_than_previous")
# Realized metrics that can be judged, all "higher is better" so one comparison rule serves.
HIGHER_IS_BETTER = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy")


@dataclass(frozen=True)
class PerformanceRule:
    metric: str = "roc_auc"
    window: str = "1D"
    min_labeled: int = 200
    min_value: float | None = None
    max_drop: float | None = None
    kpi: str | None = None
    kpi_params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringPolicy:
    window_hours: float
    min_rows: int
    drift: DriftOptions
    performance: PerformanceRule
    actions: dict[str, str]
    cooldown_hours: float = 24.0
    rollout: bool = True
    rollout_policy: str | None = None  # the rollout policy a retrained model goes through (None: the project's)
    source: str = field(default="", compare=False)

    def action(self, alert: str) -> str:
        return self.actions.get(alert, NOTIFY)


def _count(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f"{where} must be a positive integer, got {raw!r}")
    return raw


def _drift(raw: Any, where: str) -> DriftOptions:
    raw = mapping(raw or {}, where, {"methods", "thresholds", "drift_share", "missing_change", "numeric_method",
                                     "categorical_method"})
    for key in ("methods", "thresholds"):
        if not isinstance(raw.get(key, {}), dict):
            raise ConfigError(f"{where}.{key} must map column names to values")
    thresholds = {c: number(v, f"{where}.thresholds.{c}", 0.0) for c, v in (raw.get("thresholds") or {}).items()}
    return DriftOptions(methods=dict(raw.get("methods") or {}), thresholds=thresholds,
                        numeric_method=raw.get("numeric_method"), categorical_method=raw.get("categorical_method"),
                        drift_share=number(raw.get("drift_share", 0.5), f"{where}.drift_share", 0.0, 1.0),
                        missing_change=number(raw.get("missing_change", 0.05), f"{where}.missing_change", 0.0, 1.0))


def _performance(raw: Any, where: str, project) -> PerformanceRule:
    raw = mapping(raw or {}, where, {"metric", "window", "min_labeled", "min_value", "max_drop", "kpi", "kpi_params"})
    metric = raw.get("metric", "roc_auc")
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"{where}.metric: {metric!r} is not a judged metric; known: {list(HIGHER_IS_BETTER)}")
    kpi = raw.get("kpi")
    resolve_kpi(kpi, project)  # fail at load time, not after an hour of waiting for labels
    params = raw.get("kpi_params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.kpi_params must be a mapping")
    return PerformanceRule(
        metric, str(raw.get("window", "1D")), _count(raw.get("min_labeled", 200), f"{where}.min_labeled"),
        number(raw["min_value"], f"{where}.min_value", 0.0, 1.0) if raw.get("min_value") is not None else None,
        number(raw["max_drop"], f"{where}.max_drop", 0.0, 1.0) if raw.get("max_drop") is not None else None,
        kpi, dict(params))


def parse_policy(raw: Any, where: str = "monitoring policy", project=None, folder: Path | None = None) -> MonitoringPolicy:
    """A policy from parsed YAML; ``project`` resolves a ``file.py:function`` KPI hook, ``folder`` a relative
    ``retraining.rollout_policy`` path (both are the project's when the policy is)."""
    raw = mapping(raw, where, {"window", "drift", "performance", "actions", "retraining"}, {"window"})
    window = mapping(raw["window"], f"{where}: window", {"hours", "min_rows"}, {"hours"})
    actions = mapping(raw.get("actions") or {}, f"{where}: actions", set(ALERTS))
    for alert, action in actions.items():
        if action not in ACTIONS:
            raise ConfigError(f"{where}: actions.{alert}: unknown action {action!r}; known: {list(ACTIONS)}")
    retraining = mapping(raw.get("retraining") or {}, f"{where}: retraining",
                         {"cooldown_hours", "rollout", "rollout_policy"})
    rollout = retraining.get("rollout", True)
    if not isinstance(rollout, bool):
        raise ConfigError(f"{where}: retraining.rollout must be true or false, got {rollout!r}")
    rollout_policy = retraining.get("rollout_policy")
    if rollout_policy is not None:
        if not isinstance(rollout_policy, str) or not rollout_policy:
            raise ConfigError(f"{where}: retraining.rollout_policy must name a rollout policy file, "
                              f"got {rollout_policy!r}")
        if folder is not None and not rollout_policy.startswith("s3://") and not Path(rollout_policy).is_absolute():
            rollout_policy = str(folder / rollout_policy)
            if not Path(rollout_policy).is_file():
                raise ConfigError(f"{where}: retraining.rollout_policy {retraining['rollout_policy']!r} "
                                  f"does not exist in {folder}")
    return MonitoringPolicy(
        number(window["hours"], f"{where}: window.hours", 0.0001), _count(window.get("min_rows", 500),
                                                                        f"{where}: window.min_rows"),
        _drift(raw.get("drift"), f"{where}: drift"),
        _performance(raw.get("performance"), f"{where}: performance", project),
        dict(actions), number(retraining.get("cooldown_hours", 24.0), f"{where}: retraining.cooldown_hours", 0.0),
        rollout, rollout_policy, where)


def load_policy(path: str | Path, project=None) -> MonitoringPolicy:
    from mlops.platform.config_files import read_yaml

    path = Path(path)
    return parse_policy(read_yaml(path, "monitoring policy"), str(path), project, path.resolve().parent)


def project_policy(project) -> MonitoringPolicy:
    """The project's monitoring policy (``monitoring`` in project.yaml)."""
    if project.monitoring is None:
        raise ConfigError(f"{project.where} declares no monitoring policy (monitoring: monitoring.yaml)")
    return load_policy(project.monitoring, project)
