"""The reference profile a model is monitored against: made at training time, kept with its run.

Features are profiled over every row the model was trained and validated
on; the ``probability`` output over the validation rows (scores on training
rows are overfit, so they would make every live window look drifted).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from mlops.errors import DataError, TrackingError
from mlops.stats.profile import PROBABILITY, Profile
from mlops.stats.methods import CATEGORICAL, NUMERIC
from mlops.training.train import TrainedModel

ARTIFACT_DIR = "monitoring"
ARTIFACT_NAME = "reference_profile.json"
ARTIFACT_PATH = f"{ARTIFACT_DIR}/{ARTIFACT_NAME}"


def reference_profile(trained: TrainedModel, df: pd.DataFrame, metadata: dict | None = None) -> Profile:
    kinds = {**{c: NUMERIC for c in trained.features.numeric}, **{c: CATEGORICAL for c in trained.features.categorical}}
    return Profile.of_frame(df, kinds, outputs={PROBABILITY: trained.validation_scores},
                            metadata={"rows": len(df), **(metadata or {})}, source="training data")


def log_reference_profile(profile: Profile) -> None:
    """Attach the profile to the active MLflow run."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as tmp:
        mlflow.log_artifact(str(profile.save(Path(tmp) / ARTIFACT_NAME)), artifact_path=ARTIFACT_DIR)


def load_reference_profile(run_id: str, model: str = "", version: str = "") -> Profile:
    """The profile stored with ``run_id``; a run trained before profiles existed is a clear error."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    what = f"{model} v{version} (run {run_id})" if model else f"run {run_id}"
    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as tmp:
        try:
            path = MlflowClient().download_artifacts(run_id, ARTIFACT_PATH, tmp)
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"no reference profile ({ARTIFACT_PATH}) stored with {what}: {exc}; "
                                "retrain the model to record one") from None
        try:
            return Profile.load(path)
        except DataError as exc:
            raise DataError(f"the reference profile of {what} is unusable: {exc}") from None
