"""One entry for a monitoring run, shared by `mlops monitor` and the KFP monitoring component."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops.monitoring.monitor import ActContext, MonitorResult, act, evaluate, publish, report_prefix
from mlops.monitoring.performance import LabelSpec
from mlops.monitoring.report import monitoring_html, monitoring_markdown


@dataclass
class MonitorRun:
    result: MonitorResult
    html: str
    markdown: str


def run_monitor(model: str, *, policy: str = "credit_default", gate_config: str = "credit_default",
                rollout_policy: str = "credit_default", labels_uri: str | None = None,
                training_data: str | None = None, target: str = "local", namespace: str | None = None,
                now=None, launch: bool = True, actor: str | None = None, progress=print) -> MonitorRun:
    """Evaluate the latest window of ``model`` against its policy, act on the alerts, publish the reports."""
    from mlops import tracking
    from mlops.audit import default_actor
    from mlops.datasets import read_tables
    from mlops.gate import resolve_gate
    from mlops.monitoring.policy import resolve_policy
    from mlops.storage import ObjectStore

    tracking.connect()
    store = ObjectStore.from_env()
    with tempfile.TemporaryDirectory(prefix="mlops-monitor-") as tmp:
        monitoring_policy = resolve_policy(policy, Path(tmp), store)
        gate = resolve_gate(gate_config, Path(tmp), store)
    labels = read_tables(labels_uri, store) if labels_uri else None
    progress(f"monitoring {model}: window of {monitoring_policy.window_hours:g} h"
             + (f", labels from {labels_uri}" if labels_uri else ", no label feed"))
    result = evaluate(store, model, monitoring_policy, now=now, labels=labels, label_spec=LabelSpec(),
                      threshold=gate.decision_threshold)
    for alert in result.alerts:
        progress(f"  alert {alert.name} -> {alert.action}: {alert.reason}")
    if not result.alerts:
        progress("  no alerts")
    act(result, ActContext(store, monitoring_policy, target, actor or default_actor(), training_data, gate_config,
                           rollout_policy, gate.high_stakes, namespace, launch, progress))
    for action in result.actions:
        progress(f"  {action}")
    metric = monitoring_policy.performance.metric
    prefix = report_prefix(store, result)
    run = MonitorRun(result, monitoring_html(result, result.reference, result.current, metric),
                     monitoring_markdown(result, metric))
    publish(store, result, prefix, run.html, run.markdown)
    return run
