"""The monitoring pipeline: check production's latest window, then act on the decision.

check (drift, missing-rate and prediction drift against the reference
profile stored with the model; realized performance from delayed labels;
alerts by the monitoring policy; reports) -> dsl.If(retrain or rollback) ->
act (launch the training pipeline on fresh data and, once blessed, the
rollout pipeline; or revert production to the previous version).

Made to run as a KFP recurring run, e.g. hourly (see README, "Monitoring").
Compiled to compiled/monitoring_pipeline.yaml.
"""

from kfp import dsl

from components.monitor import act_on_monitoring, check_model
from pipelines.cluster import use_platform


@dsl.pipeline(name="mlops-monitoring", description=__doc__.splitlines()[0])
def monitoring_pipeline(
    project: str,
    labels_uri: str = "",
    training_data_uri: str = "",
    policy: str = "",
    rollout_policy: str = "",
    target: str = "cluster",
    namespace: str = "mlops",
    now: str = "",
) -> str:
    # Empty policies are the project's; an empty labels_uri means no label feed, and an empty
    # training_data_uri lets a warranted retraining say so instead of training on stale data.
    check = use_platform(check_model(project=project, policy=policy, labels_uri=labels_uri, now=now))
    check.set_display_name("drift + performance -> decision").set_memory_limit("4G")
    with dsl.If(check.outputs["Output"] == "retrain", name="retrain"):
        retrain = use_platform(act_on_monitoring(
            project=project, checked=check.outputs["result"], policy=policy, rollout_policy=rollout_policy,
            training_data_uri=training_data_uri, target=target, namespace=namespace))
        retrain.set_display_name("retrain -> gate -> rollout")
    with dsl.If(check.outputs["Output"] == "rollback", name="rollback"):
        revert = use_platform(act_on_monitoring(
            project=project, checked=check.outputs["result"], policy=policy, rollout_policy=rollout_policy,
            training_data_uri=training_data_uri, target=target, namespace=namespace))
        revert.set_display_name("revert production")
    return check.outputs["Output"]
