"""Model versions: a training run's model registered as a READY version, with the digest of its stored files.

Registration waits until the version is READY; if anything fails on the way the version is deleted, so the
registry never holds a half-registered model.
"""

from __future__ import annotations

import contextlib
import time

from mlops.errors import TrackingError
from mlops.registry.model_files import MODEL_DIGEST_TAG
from mlops.training.tracking import mlflow_errors


def register_model_version(model_uri: str, name: str, run_id: str, tags: dict[str, str] | None = None,
                           timeout_s: float = 120.0) -> str:
    """Register ``model_uri`` as a new version of ``name``; READY or nothing.

    Returns the version number as a string.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    with mlflow_errors(f"register model {name!r}"):
        try:
            client.get_registered_model(name)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code):
                raise
            with contextlib.suppress(MlflowException):  # a concurrent creator may win: fine
                client.create_registered_model(name, description="Registered by the mlops training pipeline")
        # An MLflow 3 logged model (models:/m-<id>) must be registered with its id.
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        version = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags or {},
                                              model_id=model_id)
    try:
        deadline = time.monotonic() + timeout_s
        while version.status == "PENDING_REGISTRATION":
            if time.monotonic() > deadline:
                raise TrackingError(f"model {name} version {version.version} was not READY after {timeout_s:.0f} s")
            time.sleep(0.5)
            with mlflow_errors(f"check model {name} version {version.version}"):
                version = client.get_model_version(name, version.version)
        if version.status != "READY":
            raise TrackingError(f"model {name} version {version.version} registration ended in "
                                f"{version.status}: {version.status_message}")
        with mlflow_errors(f"record the file digest of {name} version {version.version}"):
            client.set_model_version_tag(name, version.version, MODEL_DIGEST_TAG, _stored_model_digest(client, version))
    except BaseException:
        with contextlib.suppress(Exception):
            client.delete_model_version(name, version.version)
        raise
    return str(version.version)


def _stored_model_digest(client, version) -> str:
    """Digest of the model files as stored (read back, not as written): what servers will verify."""
    import tempfile

    import mlflow.artifacts

    from mlops.registry.model_files import artifact_location, model_digest

    location = artifact_location(client, version)
    with tempfile.TemporaryDirectory(prefix="mlops-digest-") as tmp:
        return model_digest(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp))
