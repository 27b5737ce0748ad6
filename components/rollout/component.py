from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def roll_out_model(
    project: str,
    candidate: str,
    policy: str,
    target: str,
    namespace: str,
    metrics: Output[Metrics],
    summary: Output[Markdown],
) -> str:
    """Roll the project's blessed candidate out against production: shadow, canary steps, each judged by the
    project's rollout policy (policy: another policy file; empty: the project's), then promote (traffic and registry alias) or roll back automatically. Returns "promoted" or
    "rolled_back"; a rollback is an outcome, not a failed task. target: "cluster" patches the
    InferenceService named after the model (in `namespace`), "local" drives `mlops serve` processes on this machine."""
    from mlops.errors import exit_on_user_error
    from mlops.project import resolve_project
    from mlops.rollout.run import run_rollout

    with exit_on_user_error("rollout"):
        result = run_rollout(resolve_project(project), candidate, policy=policy or None, target=target,
                             namespace=namespace or None)
    with open(summary.path, "w") as fh:
        fh.write(result.markdown() + (f"\nReport: `{result.report_uri}`\n" if result.report_uri else ""))
    metrics.log_metric("promoted", 1.0 if result.outcome == "promoted" else 0.0)
    metrics.log_metric("phases_passed", float(sum(p.passed for p in result.phases)))
    for phase in result.phases:
        for name in ("error_rate", "agreement", "p99_latency_ms"):
            value = phase.metrics.get(name)
            if value is not None:
                metrics.log_metric(f"{phase.name.replace(' ', '_').replace('%', 'pct')}_{name}", round(value, 6))
    print(result.markdown())
    return result.outcome
