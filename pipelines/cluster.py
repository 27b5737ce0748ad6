"""How every task finds the platform in a cluster.

Settings reach a task as environment variables with the same names the
local platform uses (see mlops.platform.settings): endpoints from the ``mlops-config``
ConfigMap, credentials from the ``mlops-s3`` Secret. kfp.local ignores this
Kubernetes configuration; there the task inherits the runner's environment.
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask

CONFIG_MAP = "mlops-config"
S3_SECRET = "mlops-s3"
CONFIG_KEYS = ("MLOPS_S3_ENDPOINT", "MLOPS_BUCKET", "MLFLOW_TRACKING_URI")
# Pods share no disk: the Feast registry lives on S3 and the online store in Redis.
FEAST_KEYS = ("MLOPS_FEAST_ONLINE_STORE", "MLOPS_FEAST_REDIS", "MLOPS_FEAST_REGISTRY")
SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def use_platform(task: PipelineTask) -> PipelineTask:
    """Give ``task`` the platform settings and credentials, from the cluster's ConfigMap and Secret.

    Caching is off: every step reads state that its parameters do not name
    (the data behind a URI, the registry's champion, the feature registry),
    so a cache hit keyed on parameters alone could replay a stale decision.
    """
    task.set_caching_options(False)
    kubernetes.use_config_map_as_env(task, config_map_name=CONFIG_MAP,
                                     config_map_key_to_env={k: k for k in CONFIG_KEYS + FEAST_KEYS})
    kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, secret_key_to_env={k: k for k in SECRET_KEYS})
    return task
