"""The training spine's stages as plain functions: what each KFP component calls.

Components, the in-process benchmark anchor and the tests all go through
these, so a stage behaves the same wherever it runs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops import tracking
from mlops.datasets import DatasetInfo, fetch, read_parquet
from mlops.storage import ObjectStore, sha256_file
from mlops.training import TrainedModel, TrainingConfig, train

if TYPE_CHECKING:
    from mlops.validation import ValidationResult


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


@dataclass
class ValidateStageResult:
    result: "ValidationResult"
    report_dir: Path
    report_uri: str | None  # where the reports were published on S3, if they were


def validate_dataset(data_uri: str, contract_ref: str, report_dir: str | Path,
                     publish_to: ObjectStore | None = None) -> ValidateStageResult:
    """Validate a dataset against its contract and write the JSON, HTML and Markdown reports.

    With ``publish_to``, the reports are also published to S3 under
    ``reports/validation/<dataset>/<data digest>/``: a failing pipeline step
    keeps no output artifacts, so that is where its report stays readable.
    """
    from mlops.contract import resolve_contract
    from mlops.validation import validate_parquet
    from mlops.validation_report import validation_html, validation_markdown

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        contract = resolve_contract(contract_ref, Path(tmp), publish_to)
        data = fetch(data_uri, Path(tmp) / "data.parquet", publish_to)
        digest = sha256_file(data)
        result = validate_parquet(data, contract, source=data_uri)
    report_uri = None
    if publish_to is not None:
        prefix = f"reports/validation/{contract.dataset}/{digest[:16]}"
        report_uri = f"s3://{publish_to.bucket}/{prefix}/report.html"
    result.write_json(report_dir / "report.json")
    (report_dir / "report.html").write_text(validation_html(result))
    (report_dir / "summary.md").write_text(validation_markdown(result, report_uri))
    if publish_to is not None:
        publish_to.publish_dir(report_dir, prefix)
    return ValidateStageResult(result, report_dir, report_uri)
