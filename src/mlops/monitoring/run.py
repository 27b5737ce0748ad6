"""Entries for a monitoring run, shared by `mlops monitor` and the KFP monitoring components.

The CLI runs everything in one process: evaluate, record the decision, carry
it out, publish the reports. The pipeline splits it in two steps so the
dashboard shows the decision and the action as separate tasks:
:func:`check` (evaluate, record, publish, hand on the result) and
:func:`carry_out_decision` (roll back or retrain).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlops.monitoring.monitor import (ActContext, MonitorResult, carry_out, evaluate, publish, record_decision,
                                      report_prefix)
from mlops.monitoring.performance import LabelSpec
from mlops.monitoring.report import monitoring_html, monitoring_markdown


@dataclass
class MonitorRun:
    result: MonitorResult
    html: str
    markdown: str


def _context(project, policy: str | None, rollout_policy: str | None, target: str, training_data: str | None,
             namespace: str | None, launch: bool, actor: str | None, progress) -> ActContext:
    import tempfile
    from pathlib import Path

    from mlops.evaluation.gate import project_gate
    from mlops.monitoring.policy import load_policy, project_policy
    from mlops.platform.config_files import resolve_config_file
    from mlops.platform.storage import ObjectStore
    from mlops.registry.audit import default_actor
    from mlops.training import tracking

    tracking.connect()
    store = ObjectStore.from_env()
    if policy:
        with tempfile.TemporaryDirectory(prefix="mlops-monitor-") as tmp:
            monitoring_policy = load_policy(resolve_config_file(policy, "monitoring policy", Path(tmp), store), project)
    else:
        monitoring_policy = project_policy(project)
    gate = project_gate(project)
    return ActContext(store, project, monitoring_policy, target, actor or default_actor(), training_data or None,
                      rollout_policy or monitoring_policy.rollout_policy, gate.high_stakes, namespace, launch,
                      progress, gate.decision_threshold)


def _evaluate(model: str, ctx: ActContext, labels_uri: str | None, now) -> MonitorResult:
    from mlops.platform.datasets import read_tables
    from mlops.project.data import encode_labels

    project = ctx.project
    labels = read_tables(labels_uri, ctx.store) if labels_uri else None
    if labels is not None and project.label.column in labels.columns:
        labels[project.label.column] = encode_labels(project, labels[project.label.column], labels_uri)
    ctx.progress(f"monitoring {model}: window of {ctx.policy.window_hours:g} h"
                 + (f", labels from {labels_uri}" if labels_uri else ", no label feed"))
    result = evaluate(ctx.store, model, ctx.policy, now=now, labels=labels,
                      label_spec=LabelSpec.of(project) if labels is not None else None,
                      threshold=ctx.decision_threshold, project=project)
    for alert in result.alerts:
        ctx.progress(f"  alert {alert.name} -> {alert.action}: {alert.reason}")
    if not result.alerts:
        ctx.progress("  no alerts")
    return result


def _render_and_publish(result: MonitorResult, ctx: ActContext, prefix: str) -> MonitorRun:
    metric = ctx.policy.performance.metric
    run = MonitorRun(result, monitoring_html(result, result.reference, result.current, metric),
                     monitoring_markdown(result, metric))
    publish(ctx.store, result, prefix, run.html, run.markdown)
    return run


def run_monitor(project, *, policy: str | None = None, rollout_policy: str | None = None,
                labels_uri: str | None = None, training_data: str | None = None, target: str = "local",
                namespace: str | None = None, now=None, launch: bool = True, actor: str | None = None,
                progress=print) -> MonitorRun:
    """Evaluate the latest window of the project's model, act on the alerts, publish the reports.

    ``policy`` names a monitoring policy file instead of the project's."""
    ctx = _context(project, policy, rollout_policy, target, training_data, namespace, launch, actor, progress)
    result = _evaluate(project.names.model, ctx, labels_uri, now)
    prefix = report_prefix(ctx.store, result)
    record_decision(result, ctx)
    carry_out(result, ctx)
    for action in result.actions:
        progress(f"  {action}")
    return _render_and_publish(result, ctx, prefix)


def check(project, *, policy: str | None = None, labels_uri: str | None = None, now=None,
          actor: str | None = None, progress=print) -> MonitorRun:
    """The pipeline's first step: evaluate, record the decision, publish the reports; nothing launched."""
    ctx = _context(project, policy, None, "local", None, None, False, actor, progress)
    result = _evaluate(project.names.model, ctx, labels_uri, now)
    prefix = report_prefix(ctx.store, result)
    record_decision(result, ctx)
    return _render_and_publish(result, ctx, prefix)


def carry_out_decision(project, result_json: str, *, policy: str | None = None, rollout_policy: str | None = None,
                       training_data: str | None = None, target: str = "local", namespace: str | None = None,
                       actor: str | None = None, progress=print) -> MonitorResult:
    """The pipeline's second step: roll back or retrain as the published result decided."""
    ctx = _context(project, policy, rollout_policy, target, training_data, namespace, True, actor, progress)
    result = MonitorResult.from_dict(json.loads(result_json))
    carry_out(result, ctx)
    for action in result.actions:
        progress(f"  {action}")
    if result.report_uri:
        from mlops.platform.storage import parse_s3_uri

        bucket, prefix = parse_s3_uri(result.report_uri + "actions.json")
        ctx.store.put_bytes(json.dumps({"decision": result.decision, "actions": result.actions}, indent=2).encode(),
                            prefix, bucket, content_type="application/json")
    return result
