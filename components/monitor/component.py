from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def check_model(
    project: str,
    policy: str,
    labels_uri: str,
    now: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
    result: Output[Artifact],
) -> str:
    """Monitor the project's production model: its latest window against its reference profile (feature,
    missing-rate and prediction drift), realized performance once labels arrive (labels_uri; empty: none),
    alerts by the project's monitoring policy (policy: another policy file; empty: the project's).
    Records the decision in the audit trail and publishes HTML/Markdown/JSON reports; launches nothing.
    Returns the decision: none, notify, retrain or rollback (a plain string: kfp.local's dsl.If reads no
    NamedTuple outputs)."""
    from mlops.errors import exit_on_user_error
    from mlops.monitoring.run import check
    from mlops.project import resolve_project

    with exit_on_user_error("monitor"):
        run = check(resolve_project(project), policy=policy or None, labels_uri=labels_uri or None,
                    now=now or None)
    checked = run.result
    with open(report.path, "w") as fh:
        fh.write(run.html)
    with open(summary.path, "w") as fh:
        fh.write(run.markdown)
    with open(result.path, "w") as fh:
        import json

        json.dump(checked.to_dict(), fh, default=str)
    metrics.log_metric("window_rows", float(checked.rows))
    if checked.drift is not None:
        metrics.log_metric("share_drifted", round(checked.drift.share_drifted, 4))
        metrics.log_metric("dataset_drift", float(checked.drift.dataset_drift))
        metrics.log_metric("prediction_drift", float(checked.drift.prediction_drift))
    if checked.labels:
        metrics.log_metric("label_coverage", round(checked.labels["coverage"], 4))
    production = checked.overall(checked.production)
    if production is not None:
        for name in ("roc_auc", "f1", "brier"):
            value = production.metrics.get(name)
            if value is not None and value == value:
                metrics.log_metric(f"realized_{name}", round(value, 6))
    print(run.markdown)
    return checked.decision


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def act_on_monitoring(
    project: str,
    checked: Input[Artifact],
    policy: str,
    rollout_policy: str,
    training_data_uri: str,
    target: str,
    namespace: str,
    summary: Output[Markdown],
) -> str:
    """Carry out the monitoring decision: revert production to the previous version through the rollout
    drivers (rollback), or launch the compiled training pipeline on training_data_uri and, once its gate
    blesses the new model (and, if high-stakes, a human approved it), the rollout pipeline (retrain).
    target: "cluster" (kfp.Client, KServe) or "local" (kfp.local, `mlops serve`). Returns the last action."""
    from mlops.errors import exit_on_user_error
    from mlops.monitoring.run import carry_out_decision
    from mlops.project import resolve_project

    with open(checked.path) as fh:
        result_json = fh.read()
    with exit_on_user_error("act on monitoring"):
        result = carry_out_decision(resolve_project(project), result_json, policy=policy or None,
                                    rollout_policy=rollout_policy or None, training_data=training_data_uri or None,
                                    target=target, namespace=namespace or None)
    with open(summary.path, "w") as fh:
        fh.write(f"# Monitoring decision: {result.decision}\n\n" + "".join(f"- {a}\n" for a in result.actions))
    return result.actions[-1] if result.actions else "nothing to do"
