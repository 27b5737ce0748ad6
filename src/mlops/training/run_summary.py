"""What a finished training run produced, read back from MLflow for people."""

from __future__ import annotations

from typing import Any


def _gate_lines(model_name: str, run_id: str) -> list[str]:
    """The gate's rules for this run, from the blessing the evaluate step published."""
    import json

    from mlops.errors import StorageError
    from mlops.platform.storage import ObjectStore

    key = f"reports/gate/{model_name}/{run_id}/blessing.json"
    try:
        store = ObjectStore.from_env()
        blessing = json.loads(store.get_bytes(key))
    except StorageError:
        return []
    lines = [f"  {'ok  ' if r['passed'] else 'FAIL'} {r['rule']}: {r['reason']}" for r in blessing["rules"]]
    return lines + [f"  gate report: s3://{store.bucket}/reports/gate/{model_name}/{run_id}/report.html"]


def describe_training_outputs(outputs: dict[str, Any], model_name: str | None) -> list[str]:
    """Lines naming the gate's verdict and reasons, the model version, the MLflow run and its metrics."""
    import mlflow
    from mlflow import MlflowClient

    run_id, verdict = outputs.get("run_id"), outputs.get("verdict")
    if not run_id:
        return [f"outputs: {outputs}"]
    client = MlflowClient()
    run = client.get_run(run_id)
    registered = client.search_model_versions(f"run_id = '{run_id}'")
    uri = mlflow.get_tracking_uri()
    lines = [f"gate: {verdict}" + ("" if registered else " (nothing registered)"), *_gate_lines(model_name, run_id)]
    for mv in (client.get_model_version(v.name, v.version) for v in registered):
        aliases = ", ".join(mv.aliases) if getattr(mv, "aliases", None) else "no alias"
        lines.append(f"registered model version: {mv.name} v{mv.version} ({mv.status}; {aliases}) "
                     f"-> {uri}/#/models/{mv.name}/versions/{mv.version}")
    lines.append(f"MLflow run: {run_id} -> {uri}/#/experiments/{run.info.experiment_id}/runs/{run_id}")
    metrics = {k.removeprefix("validation_"): v for k, v in sorted(run.data.metrics.items())}
    lines.append("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    tags = run.data.tags
    lines.append(f"lineage: training rows {tags.get('mlops.dataset_digest', '?')[:19]}..., features "
                 f"{tags.get('mlops.feature_snapshot', '-')} (definitions {tags.get('mlops.feature_definitions', '-')[:19]}...), "
                 f"code {tags.get('mlops.code_version', '?')[:12]}, env {tags.get('mlops.environment_digest', '?')[:19]}...")
    return lines
