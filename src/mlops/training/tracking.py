"""MLflow: record a training run, all or nothing.

A run records its hyperparameters, validation metrics, the dataset's URI and
content digest, the code version, the environment lock digest and the image,
then the model (skops format, explicit pip requirements so logging does not
spend seconds inferring them). Registering the run's model as a version is
the registry's (:mod:`mlops.registry.versions`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Iterator

import pandas as pd

from mlops.errors import TrackingError
from mlops.platform.datasets import DatasetInfo
from mlops.platform.settings import mlflow_tracking_uri
from mlops.project import Project
from mlops.training.provenance import provenance_tags
from mlops.training.train import TrainedModel

MODEL_ARTIFACT = "model"
_MODEL_REQUIREMENTS = ("scikit-learn", "numpy", "pandas", "scipy", "skops")
# The non-default types our model family serialises (skops refuses unknown types
# on load). Named one by one rather than trusting whatever a file contains;
# artifact checksums guard against a tampered file.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
_TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "pandas.")


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    experiment_id: str
    model_uri: str
    url: str


def connect(uri: str | None = None, timeout: float = 5.0) -> str:
    """Point MLflow at the tracking server, failing fast if it does not answer."""
    import mlflow

    uri = uri or mlflow_tracking_uri()
    # Fail in seconds, not after MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # task logs, not terminals
    _register_header_providers_without_feast()
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as resp:  # noqa: S310
            healthy = resp.status == 200
    except OSError as exc:
        raise TrackingError(f"MLflow tracking server at {uri} is unreachable: {getattr(exc, 'reason', exc)}. "
                            "Is it running (locally: `mlops platform status`) and is MLFLOW_TRACKING_URI right?") from None
    if not healthy:
        raise TrackingError(f"MLflow tracking server at {uri} is not healthy (GET /health answered {resp.status})")
    mlflow.set_tracking_uri(uri)
    return uri


def _register_header_providers_without_feast() -> None:
    """Let MLflow load its request-header plugins, except Feast's, before its first request.

    On its first REST call MLflow imports every ``mlflow.request_header_provider`` entry point
    (mlflow/tracking/request_header/registry.py, ``register_entrypoints``). Feast 0.67 declares one,
    ``feast.infra.data_sources.mlflow.auth:FeastMLflowHeaderProvider``, and loading it imports the whole
    ``feast`` package: 3.5 s of typeguard instrumentation in every process that talks to MLflow (each
    train, evaluate and promote step, the predictor's cold start, every registry command). That provider
    adds a header only inside Feast's own MLflow data-source scope (its ``in_context()`` is False
    otherwise), which the suite never enters, so leaving it out changes no request. A process that has
    imported Feast already, or made an MLflow request, is left as it is.
    """
    registry = "mlflow.tracking.request_header.registry"
    if registry in sys.modules or "feast" in sys.modules:
        return
    import importlib

    from mlflow.utils import plugins

    everything = plugins.get_entry_points
    plugins.get_entry_points = lambda group: [e for e in everything(group) if not e.value.startswith("feast.")]
    try:
        importlib.import_module(registry)  # binds and calls the filtered lookup once, at its import
    finally:
        plugins.get_entry_points = everything


@contextlib.contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """An MLflow failure (down, restarting, erroring) as one TrackingError naming the server, never mistaken
    for a refusal such as "no such version"."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"MLflow at {mlflow.get_tracking_uri()} failed while trying to {action}: "
                            f"{getattr(exc, 'message', exc)}. Is it running (locally: `mlops platform status`) and is "
                            "MLFLOW_TRACKING_URI right?") from None


def model_requirements() -> list[str]:
    """Exact pins for the libraries the model needs at load time."""
    return [f"{name}=={metadata.version(name)}" for name in _MODEL_REQUIREMENTS]


def trusted_types(model) -> list[str]:
    """The types skops must trust to load ``model``: library types only.

    A build hook may return any estimator; its file is loaded by servers with
    skops, which refuses types it was not told to trust. Types from
    scikit-learn, NumPy, SciPy and pandas are trusted; anything else (a class of the
    project's own code) would have to be imported, as code, when a server loads
    the file, so it is refused here, before anything is logged.
    """
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = sorted(t for t in found if not t.startswith(_TRUSTED_MODULES) and t not in SKOPS_TRUSTED_TYPES)
    if foreign:
        raise TrackingError(f"the model holds type(s) {foreign} from outside scikit-learn, NumPy, SciPy and pandas; servers "
                            "load models with skops, which cannot load them safely: build it from library classes")
    return sorted(set(SKOPS_TRUSTED_TYPES) | set(found))


def run_params(project: Project, trained: TrainedModel) -> dict[str, str]:
    """What a run logs as params: the model's params as fitted, and how the project split and seeded it."""
    model = project.model
    return {**{k: json.dumps(v) if not isinstance(v, str) else v for k, v in trained.params.items()},
            "estimator": model.estimator or f"hook {model.build}", "seed": project.split.seed,
            "validation_fraction": project.split.validation_fraction,
            "test_fraction": project.split.test_fraction, "label_column": project.label.column,
            "timestamp_column": project.event_timestamp}


def log_training_run(project: Project, trained: TrainedModel, dataset: DatasetInfo, experiment: str,
                     sample: pd.DataFrame, tags: dict[str, str] | None = None,
                     within_run: Callable[[], None] | None = None) -> TrainingRun:
    """Record one training run with everything needed to reproduce it; ``within_run`` logs what
    else the run keeps (the monitoring reference profile) before the run ends."""
    import mlflow
    from mlflow.models import infer_signature

    uri = mlflow.get_tracking_uri()
    with mlflow_errors(f"record the training run in experiment {experiment!r}"):
        exp = mlflow.set_experiment(experiment)
        features = sample[trained.features.all]
        # Integers are declared as doubles: a missing value at serving time arrives as NaN.
        features = features.astype({c: "float64" for c in features.select_dtypes("integer").columns})
        signature = infer_signature(features, trained.pipeline.predict_proba(features))
        trusted = trusted_types(trained.pipeline)  # refused before a run is started
        with mlflow.start_run(experiment_id=exp.experiment_id) as run:
            mlflow.log_params(run_params(project, trained))
            mlflow.log_params({"train_rows": trained.train_rows, "validation_rows": trained.validation_rows,
                               "features": ",".join(trained.features.all)})
            mlflow.log_metrics({f"validation_{k}": v for k, v in trained.metrics.items()})
            mlflow.set_tags({**provenance_tags(), "mlops.project": project.name,
                             "mlops.project_digest": project.digest, "mlops.dataset_uri": dataset.uri,
                             "mlops.dataset_digest": dataset.digest, "mlops.dataset_rows": str(dataset.rows),
                             **(tags or {})})
            info = mlflow.sklearn.log_model(trained.pipeline, name=MODEL_ARTIFACT, signature=signature,
                                            input_example=features.head(3), pip_requirements=model_requirements(),
                                            skops_trusted_types=trusted)
            if within_run is not None:
                within_run()
    return TrainingRun(run.info.run_id, exp.experiment_id, info.model_uri,
                       f"{uri}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}")


def run_metrics(run_id: str) -> dict[str, float]:
    """A run's logged metrics; a missing run is a clear TrackingError."""
    from mlflow import MlflowClient

    with mlflow_errors(f"read run {run_id}"):
        return dict(MlflowClient().get_run(run_id).data.metrics)
