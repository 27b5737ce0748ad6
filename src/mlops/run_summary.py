"""What a finished training run produced, read back from MLflow for people."""

from __future__ import annotations

from typing import Any


def describe_training_outputs(outputs: dict[str, Any]) -> list[str]:
    """Lines naming the model version, the MLflow run and its validation metrics."""
    import mlflow
    from mlflow import MlflowClient

    run_id, version = outputs.get("run_id"), outputs.get("model_version")
    if not run_id:
        return [f"outputs: {outputs}"]
    client = MlflowClient()
    run = client.get_run(run_id)
    registered = client.search_model_versions(f"run_id = '{run_id}'")
    uri = mlflow.get_tracking_uri()
    lines = []
    for mv in registered:
        lines.append(f"registered model version: {mv.name} v{mv.version} ({mv.status}) "
                     f"-> {uri}/#/models/{mv.name}/versions/{mv.version}")
    if version and not any(str(mv.version) == str(version) for mv in registered):
        lines.append(f"registered model version: {version}")
    lines.append(f"MLflow run: {run_id} -> {uri}/#/experiments/{run.info.experiment_id}/runs/{run_id}")
    metrics = {k.removeprefix("validation_"): v for k, v in sorted(run.data.metrics.items())}
    lines.append("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    tags = run.data.tags
    lines.append(f"lineage: training rows {tags.get('mlops.dataset_digest', '?')[:19]}..., features "
                 f"{tags.get('mlops.feature_snapshot', '-')} (definitions {tags.get('mlops.feature_definitions', '-')[:19]}...), "
                 f"code {tags.get('mlops.code_version', '?')[:12]}, env {tags.get('mlops.environment_digest', '?')[:19]}...")
    return lines
