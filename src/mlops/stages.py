"""The training spine's stages as plain functions: what each KFP component calls.

Components, the in-process benchmark anchor and the tests all go through
these, so a stage behaves the same wherever it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops import tracking
from mlops.datasets import DatasetInfo, read_parquet
from mlops.training import TrainedModel, TrainingConfig, train


@dataclass
class TrainStageResult:
    run: tracking.TrainingRun
    trained: TrainedModel


def train_and_log(dataset_path: str, dataset: DatasetInfo, config: TrainingConfig,
                  experiment: str) -> TrainStageResult:
    """Train on a fetched dataset and record the run (params, metrics, lineage, model) in MLflow."""
    tracking.connect()  # fail before spending minutes on training
    df = read_parquet(dataset_path, dataset.uri)
    trained = train(df, config, source=dataset.uri)
    run = tracking.log_training_run(trained, config, dataset, experiment, sample=df.head(100))
    return TrainStageResult(run, trained)


def register(model_uri: str, model_name: str, run_id: str, dataset_digest: str) -> str:
    """Register the run's model as a new version; returns the version number."""
    tracking.connect()
    return tracking.register_model_version(model_uri, model_name, run_id,
                                           tags={"mlops.dataset_digest": dataset_digest})
