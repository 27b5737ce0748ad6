"""One entry for a rollout, shared by `mlops rollout` and the KFP rollout component."""

from __future__ import annotations

import contextlib
import signal
import tempfile
from pathlib import Path

from mlops.errors import ConfigError
from mlops.rollout.controller import RolloutResult, rollout

TARGETS = ("local", "cluster")


def make_driver(target: str, project, store, *, faults: dict[str, dict] | None = None,
                namespace: str | None = None):
    """The traffic driver for ``target``: local serving processes, or an InferenceService in a cluster."""
    if target == "local":
        from mlops.rollout.traffic import LocalTraffic
        from mlops.serving.local import LocalServing

        return LocalTraffic(LocalServing(project), store, faults=faults)
    if target == "cluster":
        if faults:
            raise ConfigError("fault injection is a local rehearsal; in a cluster use the mesh's fault injection")
        from mlops.rollout.cluster import ClusterTraffic

        return ClusterTraffic(store, project.names.model, project, namespace=namespace)
    raise ConfigError(f"rollout target must be one of {TARGETS}, got {target!r}")


def run_rollout(project, candidate: str, *, policy: str | None = None,
                target: str = "local", faults: dict[str, dict] | None = None, actor: str | None = None,
                namespace: str | None = None, progress=print) -> RolloutResult:
    """Resolve the candidate (a version or an alias), the policy (the project's unless ``policy`` names a file)
    and the gate's stakes, then roll out the project's model."""
    from mlops.evaluation.gate import project_gate
    from mlops.platform.storage import ObjectStore
    from mlops.registry.audit import default_actor
    from mlops.registry.model_files import resolve_model
    from mlops.rollout.policy import resolve_policy
    from mlops.training import tracking

    tracking.connect()
    store = ObjectStore.from_env()
    model = project.names.model
    version = resolve_model(model, candidate).version
    if policy is None and project.rollout is None:
        raise ConfigError(f"{project.where} declares no rollout policy (rollout: rollout.yaml)")
    with tempfile.TemporaryDirectory(prefix="mlops-rollout-") as tmp:
        rollout_policy = resolve_policy(policy or str(project.rollout), Path(tmp), store)
    high_stakes = project_gate(project).high_stakes
    driver = make_driver(target, project, store, faults=faults, namespace=namespace)
    with _terminate_as_interrupt():
        return rollout(store, driver, model, version, rollout_policy, high_stakes=high_stakes,
                       actor=actor or default_actor(), progress=progress)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a stopped pod, `kill`) interrupts like Ctrl-C, so the rollout still rolls back."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
