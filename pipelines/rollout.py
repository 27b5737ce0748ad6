"""The rollout pipeline: a blessed (and, if high-stakes, approved) candidate replaces production safely.

Run after the training pipeline put a version on ``staging`` (and, for a
high-stakes model, after `mlops approve`). In a cluster it patches the
model's InferenceService (KServe Serverless canary); locally it drives the
`mlops serve` processes.
"""

from kfp import dsl

from components.rollout import roll_out_model
from pipelines.cluster import use_platform


@dsl.pipeline(name="rollout", description=__doc__.splitlines()[0])
def rollout_pipeline(
    project: str,
    candidate: str = "staging",
    policy: str = "",
    target: str = "cluster",
    namespace: str = "mlops",
) -> str:
    # An empty policy is the project's rollout policy; the gate's stakes are the project's.
    task = roll_out_model(project=project, candidate=candidate, policy=policy, target=target, namespace=namespace)
    use_platform(task)
    task.set_display_name("shadow -> canary -> promote or roll back")
    return task.outputs["Output"]
