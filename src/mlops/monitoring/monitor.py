"""One monitoring run: look at the latest window, judge it by the policy, act.

evaluate() reads the logged predictions of the window, compares them with
the production model's reference profile (drift), joins the labels that
have arrived (realized performance per version) and raises alerts.
act() carries out the strongest action the alerts call for: roll back to
the previous version through the rollout drivers, launch the training
pipeline on fresh data (then, once blessed, the rollout pipeline), or
record a notification. Every run is audited and reported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from mlops.errors import DataError
from mlops.monitoring.drift import DriftReport, compare
from mlops.monitoring.performance import (LabelJoin, LabelSpec, WindowPerformance, as_utc, join_labels,
                                          realized_performance, resolve_kpi)
from mlops.monitoring.policy import IGNORE, NOTIFY, RETRAIN, ROLLBACK, MonitoringPolicy
from mlops.stats.profile import PROBABILITY, Profile
from mlops.platform.storage import ObjectStore
from mlops.registry import audit
from mlops.registry import promotion as registry

# How long predictions wait for their labels: older ones are still joined for realized performance.
LABEL_LOOKBACK_DAYS = 180


@dataclass
class Alert:
    name: str
    action: str
    reason: str


@dataclass
class MonitorResult:
    model: str
    production: str
    previous: str | None
    window_start: str
    window_end: str
    rows: int
    drift: DriftReport | None
    drift_note: str = ""
    labels: dict | None = None
    performance: list[WindowPerformance] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    report_uri: str | None = None
    # The profiles compared, kept for the report's plots (not serialized).
    reference: Profile | None = field(default=None, repr=False)
    current: Profile | None = field(default=None, repr=False)

    @property
    def decision(self) -> str:
        """The strongest action any alert calls for."""
        strength = {a: i for i, a in enumerate((IGNORE, NOTIFY, RETRAIN, ROLLBACK))}
        return max((a.action for a in self.alerts), key=strength.__getitem__, default="none")

    def overall(self, version: str) -> WindowPerformance | None:
        return next((w for w in self.performance if w.window == "all" and w.model_version == version), None)

    @classmethod
    def from_dict(cls, doc: dict) -> "MonitorResult":
        """What acting needs of a published result (drift details stay in the report)."""
        return cls(doc["model"], doc["production"], doc.get("previous"), doc["window"]["start"],
                   doc["window"]["end"], doc["window"]["rows"], None, doc.get("drift_note", ""), doc.get("labels"),
                   [], [Alert(**a) for a in doc.get("alerts", [])], list(doc.get("actions", [])),
                   doc.get("report_uri"))

    def to_dict(self) -> dict:
        return {"model": self.model, "production": self.production, "previous": self.previous,
                "window": {"start": self.window_start, "end": self.window_end, "rows": self.rows},
                "drift": self.drift.to_json() if self.drift else None, "drift_note": self.drift_note,
                "labels": self.labels, "performance": [w.to_dict() for w in self.performance],
                "alerts": [asdict(a) for a in self.alerts], "decision": self.decision, "actions": self.actions,
                "report_uri": self.report_uri}


def _run_id(model: str, version: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(model, version).run_id


def current_profile(reference: Profile, window: pd.DataFrame, production: str) -> Profile:
    """The window's features over every logged row; its prediction profile over production's own answers."""
    served = window.loc[window["model_version"].astype(str) == production, PROBABILITY]
    return Profile.of_frame(window, reference.kinds(), outputs={PROBABILITY: served.to_numpy()},
                            max_points=None, source="the logged window")


def evaluate(store: ObjectStore, model: str, policy: MonitoringPolicy, *, label_spec: LabelSpec | None = None,
             now=None, labels: pd.DataFrame | None = None, threshold: float = 0.5, project=None) -> MonitorResult:
    """Drift and performance of the window ending ``now``, and the alerts they raise (no action taken).

    ``labels`` are label events in the task's encoding (0/1), found by ``label_spec``; ``project``
    resolves a KPI hook in its folder."""
    from mlops.monitoring.reference import load_reference_profile
    from mlops.serving.request_log import read_window

    end = pd.Timestamp.now(tz="UTC") if now is None else as_utc(now)
    production = registry.alias_version(model, registry.PRODUCTION)
    if production is None:
        raise DataError(f"{model} has no production version to monitor")
    previous = registry.alias_version(model, registry.ROLLBACK)
    start = end - pd.Timedelta(hours=policy.window_hours)
    # With labels, the label lookback is read once and the drift window is its newest part.
    first = min(start, end - pd.Timedelta(days=LABEL_LOOKBACK_DAYS)) if labels is not None else start
    history = read_window(store, model, first, end)
    window = history[history["logged_at"] >= start].reset_index(drop=True) if not history.empty else history
    result = MonitorResult(model, production, previous, start.isoformat(), end.isoformat(), len(window), None)
    if len(window) < policy.min_rows:
        result.drift_note = (f"{len(window)} logged rows in the window, fewer than the {policy.min_rows} needed "
                             "for a drift verdict")
    else:
        result.reference = load_reference_profile(_run_id(model, production), model, production)
        result.current = current_profile(result.reference, window, production)
        result.drift = compare(result.reference, result.current, policy.drift)
    if labels is not None and not history.empty:
        if label_spec is None:
            raise DataError("labels were given without a label spec (which columns hold the entity, the "
                            "outcome and when it became known)")
        joined = join_labels(history, labels, label_spec, as_of=end)
        result.labels = _label_summary(joined)
        rule = policy.performance
        result.performance = realized_performance(joined, rule.window, threshold, resolve_kpi(rule.kpi, project),
                                                  rule.kpi_params)
    result.alerts = alerts(result, policy)
    return result


def _label_summary(joined: LabelJoin) -> dict:
    return {"predictions": joined.predictions, "labeled": joined.labeled, "coverage": joined.coverage,
            "pending_labels": joined.pending_labels, "unmatched_labels": joined.unmatched_labels,
            "joined_by": joined.by}


def alerts(result: MonitorResult, policy: MonitoringPolicy) -> list[Alert]:
    """Every rule the window breaks, with the action the policy gives it."""
    found: list[tuple[str, str]] = []
    drift = result.drift
    if drift is not None:
        if drift.dataset_drift:
            found.append(("dataset_drift", f"{drift.share_drifted:.0%} of the features drifted (threshold "
                                            f"{drift.drift_share:.0%}): {', '.join(drift.drifted_features)}"))
        if drift.prediction_drift:
            out = next(c for c in drift.outputs if c.drifted)
            found.append(("prediction_drift", f"the model's {out.column} drifted ({out.method} {out.value:.3g}, "
                                               f"threshold {out.threshold:g})"))
        if drift.missing_drift:
            moved = [f"{c.column} {c.reference_missing:.1%} -> {c.current_missing:.1%}" for c in drift.features
                     if c.missing_drifted]
            found.append(("missing_drift", "missing-value rate moved: " + ", ".join(moved)))
    rule = policy.performance
    prod = result.overall(result.production)
    prod_value = prod.metrics.get(rule.metric) if prod and prod.labeled >= rule.min_labeled else None
    if prod_value is not None and rule.min_value is not None and prod_value < rule.min_value:
        found.append(("performance_below", f"production v{result.production} realized {rule.metric} "
                                           f"{prod_value:.3f} < {rule.min_value:g} over {prod.labeled} labels"))
    prev = result.overall(result.previous) if result.previous else None
    prev_value = prev.metrics.get(rule.metric) if prev and prev.labeled >= rule.min_labeled else None
    if (prod_value is not None and prev_value is not None and rule.max_drop is not None
            and prod_value < prev_value - rule.max_drop):
        found.append(("worse_than_previous", f"production v{result.production} realized {rule.metric} "
                                             f"{prod_value:.3f} is below v{result.previous}'s {prev_value:.3f} by "
                                             f"more than {rule.max_drop:g}"))
    return [Alert(name, policy.action(name), reason) for name, reason in found]


# -- acting ----------------------------------------------------------------------------------
@dataclass
class ActContext:
    """What acting needs beyond the result: where to launch, on what data, as whom."""

    store: ObjectStore
    project: object  # the monitored model's Project
    policy: MonitoringPolicy
    target: str  # local | cluster
    actor: str
    training_data: str | None = None  # fresh labeled data to retrain on
    rollout_policy: str | None = None  # a retrained model's rollout policy (None: the project's)
    high_stakes: bool = False
    namespace: str | None = None
    launch: bool = True  # False: decide and record, but launch nothing (a dry run)
    progress: object = print
    decision_threshold: float = 0.5  # the gate's: realized metrics judge the classes the model served


def act(result: MonitorResult, ctx: ActContext) -> MonitorResult:
    """Record the decision, then carry it out (the CLI's path; the pipeline runs the two as separate steps)."""
    record_decision(result, ctx)
    return carry_out(result, ctx)


def record_decision(result: MonitorResult, ctx: ActContext) -> None:
    """An audit event for any decision beyond "none": what was seen and what it calls for."""
    decision = result.decision
    if decision in ("none", IGNORE):
        return
    reasons = [f"{a.name}: {a.reason}" for a in result.alerts if a.action == decision]
    audit.record(ctx.store, audit.AuditEvent("monitoring_" + decision, result.model, result.production, ctx.actor,
                                             "; ".join(reasons),
                                             details={"alerts": [asdict(a) for a in result.alerts],
                                                      "window": [result.window_start, result.window_end],
                                                      "report": result.report_uri}))


def carry_out(result: MonitorResult, ctx: ActContext) -> MonitorResult:
    """Roll back or retrain as decided (a notification is the recorded decision itself)."""
    decision = result.decision
    if decision in (ROLLBACK, RETRAIN) and not ctx.launch:
        result.actions.append(f"{decision} warranted (dry run: nothing launched or changed)")
    elif decision == ROLLBACK:
        _roll_back(result, ctx, [f"{a.name}: {a.reason}" for a in result.alerts if a.action == ROLLBACK])
    elif decision == RETRAIN:
        _retrain(result, ctx)
    elif decision == NOTIFY:
        result.actions.append("alert recorded in the audit trail (monitoring_notify)")
    return result


def _roll_back(result: MonitorResult, ctx: ActContext, reasons: list[str]) -> None:
    from mlops.rollout.controller import revert_production
    from mlops.rollout.run import make_driver

    driver = make_driver(ctx.target, ctx.project, ctx.store, namespace=ctx.namespace)
    done = revert_production(ctx.store, driver, result.model, ctx.actor,
                             "monitoring: " + "; ".join(reasons), progress=ctx.progress)
    result.actions.append(f"production reverted v{done.previous} -> v{done.version} (traffic and registry)")


def _recent_retraining(store: ObjectStore, model: str, hours: float) -> audit.AuditEvent | None:
    since = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=hours)).isoformat()
    started = [e for e in audit.trail(store, model) if e.action == "retraining_started" and e.at >= since]
    return started[-1] if started else None


def _retrain(result: MonitorResult, ctx: ActContext) -> None:
    from mlops.monitoring.trigger import launch_pipeline

    model = result.model
    recent = _recent_retraining(ctx.store, model, ctx.policy.cooldown_hours)
    if recent is not None:
        result.actions.append(f"retraining warranted, but one started at {recent.at} (cooldown "
                              f"{ctx.policy.cooldown_hours:g} h): not launched again")
        return
    if not ctx.training_data:
        result.actions.append("retraining warranted, but no fresh training data was given (--training-data): "
                              "not launched")
        return
    staging_before = registry.alias_version(model, registry.STAGING)
    audit.record(ctx.store, audit.AuditEvent("retraining_started", model, result.production, ctx.actor,
                                             f"monitoring alerts: {', '.join(a.name for a in result.alerts)}",
                                             details={"data_uri": ctx.training_data, "target": ctx.target}))
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%d-%H%M%S")
    training = launch_pipeline("training", {"project": _pipeline_project(ctx), "data_uri": ctx.training_data},
                               ctx.target,
                               f"retrain-{model}-{stamp}", progress=ctx.progress)
    staging_after = registry.alias_version(model, registry.STAGING)
    blessed = training.succeeded and staging_after is not None and staging_after != staging_before
    outcome = {"training": {"succeeded": training.succeeded, "run": training.run, "seconds": round(training.seconds, 1),
                            "verdict": training.outputs.get("verdict"), "detail": training.detail,
                            "new_version": staging_after if blessed else None}}
    if not training.succeeded:
        result.actions.append(f"retraining failed: {training.detail}")
    elif not blessed:
        result.actions.append(f"retrained, but the gate did not bless the new model (verdict "
                              f"{training.outputs.get('verdict', 'unknown')}): production stays v{result.production}")
    else:
        result.actions.append(f"retrained: v{staging_after} blessed by the gate")
        _roll_out(result, ctx, staging_after, outcome)
    audit.record(ctx.store, audit.AuditEvent("retraining_finished", model, staging_after or result.production,
                                             ctx.actor, result.actions[-1], details=outcome))


def _roll_out(result: MonitorResult, ctx: ActContext, version: str, outcome: dict) -> None:
    from mlops.monitoring.trigger import launch_pipeline

    if registry.alias_version(result.model, registry.PRODUCTION) == version:
        result.actions.append(f"v{version} is production already (the gate is not high-stakes: the training "
                              "pipeline promoted it)")
        return
    if not ctx.policy.rollout:
        result.actions.append(f"v{version} waits on staging (policy: no automatic rollout)")
        return
    if ctx.high_stakes and registry.approval(result.model, version) is None:
        result.actions.append(f"v{version} is high-stakes: awaiting a human approval before its rollout "
                              f"(mlops approve {result.model} {version} --by NAME --reason TEXT; "
                              f"then mlops rollout {result.model} {version})")
        return
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%d-%H%M%S")
    rollout = launch_pipeline("rollout", {"project": _pipeline_project(ctx), "candidate": version,
                                          "policy": ctx.rollout_policy or "", "target": ctx.target,
                                          "namespace": ctx.namespace or "mlops"},
                              ctx.target, f"rollout-{result.model}-{stamp}", progress=ctx.progress)
    outcome["rollout"] = {"succeeded": rollout.succeeded, "run": rollout.run, "output": rollout.outputs.get("Output"),
                          "detail": rollout.detail}
    promoted = registry.alias_version(result.model, registry.PRODUCTION) == version
    why = rollout.outputs.get("Output") or rollout.detail
    result.actions.append(f"rolled out: v{version} is production" if promoted else
                          f"rollout of v{version} did not promote it ({why})")


def _pipeline_project(ctx: ActContext) -> str:
    """How a launched pipeline's tasks find the project: any source locally, an example or s3:// in a cluster."""
    from mlops.project import cluster_source

    return cluster_source(ctx.project) if ctx.target == "cluster" else ctx.project.source


def report_prefix(store: ObjectStore, result: MonitorResult) -> str:
    """reports/monitoring/<model>/<window end>: set as the result's report address before rendering."""
    from mlops.platform.storage import join_key

    stamp = result.window_end.replace(":", "").replace("+00:00", "Z")
    prefix = join_key("reports", "monitoring", result.model, stamp)
    result.report_uri = f"s3://{store.bucket}/{prefix}/"
    return prefix


def publish(store: ObjectStore, result: MonitorResult, prefix: str, html: str, markdown: str) -> None:
    """Write the JSON, HTML and Markdown reports under ``prefix``."""
    store.put_bytes(json.dumps(result.to_dict(), indent=2, default=str).encode(), f"{prefix}/monitoring.json",
                    content_type="application/json")
    store.put_bytes(html.encode(), f"{prefix}/monitoring.html", content_type="text/html")
    store.put_bytes(markdown.encode(), f"{prefix}/monitoring.md", content_type="text/markdown")
