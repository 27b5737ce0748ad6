"""Launch a compiled pipeline from monitoring: kfp.local on this machine, kfp.Client in a cluster.

Both run the very YAML in pipelines/compiled/, and both wait for the run to
end, so the caller can act on the outcome (a blessed retrained model goes on
to its rollout).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from mlops.errors import ConfigError, PipelineError

TARGETS = ("local", "cluster")
# The KFP API inside a standalone Kubeflow Pipelines install (override with KFP_HOST).
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"


@dataclass
class Launch:
    pipeline: str
    target: str
    run: str  # a run id (cluster) or the local log file
    succeeded: bool
    seconds: float
    outputs: dict = field(default_factory=dict)
    detail: str = ""


def launch_pipeline(name: str, arguments: dict, target: str, run_name: str, timeout_s: float = 3 * 3600,
                    progress=print) -> Launch:
    """Run compiled pipeline ``name`` (e.g. "training") with ``arguments`` and wait for it."""
    from mlops.platform.local_run import pipeline_file

    path = pipeline_file(name)
    if target == "local":
        return _launch_local(name, path, arguments, run_name, progress)
    if target == "cluster":
        return _launch_cluster(name, path, arguments, run_name, timeout_s, progress)
    raise ConfigError(f"launch target must be one of {TARGETS}, got {target!r}")


def _launch_local(name, path, arguments, run_name, progress) -> Launch:
    from mlops.platform.local import state_dir
    from mlops.platform.local_run import run_local

    log_file = state_dir() / "logs" / f"{run_name}.log"
    progress(f"launching the {name} pipeline with kfp.local (task logs: {log_file})")
    start = time.perf_counter()
    try:
        result = run_local(path, arguments, state_dir() / "kfp-local", log_file)
    except PipelineError as exc:
        return Launch(name, "local", str(log_file), False, time.perf_counter() - start, detail=str(exc))
    return Launch(name, "local", str(log_file), True, result.seconds, dict(result.outputs))


def _launch_cluster(name, path, arguments, run_name, timeout_s, progress) -> Launch:
    import kfp

    host = os.environ.get("KFP_HOST", IN_CLUSTER_HOST)
    start = time.perf_counter()
    try:
        client = kfp.Client(host=host)
        run = client.create_run_from_pipeline_package(str(path), arguments=arguments, run_name=run_name,
                                                      experiment_name=os.environ.get("KFP_EXPERIMENT", "monitoring"))
        progress(f"launched the {name} pipeline on Kubeflow ({host}): run {run.run_id}")
        done = client.wait_for_run_completion(run.run_id, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - any client/API failure is this launch's failure, reported as such
        raise PipelineError(f"could not run the {name} pipeline on Kubeflow at {host}: {exc}") from None
    state = str(getattr(done, "state", "UNKNOWN"))
    return Launch(name, "cluster", run.run_id, state == "SUCCEEDED", time.perf_counter() - start,
                  detail=f"run state {state}")
