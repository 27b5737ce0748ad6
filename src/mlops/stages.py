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
from mlops.datasets import DatasetInfo, fetch, read_parquet, require_columns
from mlops.storage import ObjectStore, sha256_file
from mlops.training import TrainedModel, TrainingConfig, train

if TYPE_CHECKING:
    from mlops.validation import ValidationResult


@dataclass
class TrainStageResult:
    run: tracking.TrainingRun
    trained: TrainedModel


def train_and_log(dataset_path: str, dataset: DatasetInfo, config: TrainingConfig,
                  experiment: str, tags: dict[str, str] | None = None) -> TrainStageResult:
    """Train on a fetched dataset and record the run (params, metrics, lineage, model) in MLflow."""
    tracking.connect()  # fail before spending minutes on training
    df = read_parquet(dataset_path, dataset.uri)
    trained = train(df, config, source=dataset.uri)
    run = tracking.log_training_run(trained, config, dataset, experiment, sample=df.head(100), tags=tags)
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
    data_digest: str  # "sha256:<hex>" of the validated file


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
    return ValidateStageResult(result, report_dir, report_uri, "sha256:" + digest)


@dataclass
class FeatureStageResult:
    snapshot_uri: str
    snapshot_digest: str
    rows: int
    definitions_version: str
    validation: ValidateStageResult
    materialized: tuple  # (start, end) of the window loaded into the online store


def build_features(data_uri: str, features_contract: str, report_dir: str | Path,
                   store: ObjectStore) -> FeatureStageResult:
    """Raw data -> features, validated against their contract, snapshotted to S3, applied and materialized.

    The snapshot is content-addressed, so rebuilding the same features
    publishes nothing new. Materialization loads the online store with the
    latest value per customer within the TTL before the newest feature time.
    """
    from datetime import timedelta

    from mlops.errors import DataError
    from mlops.features import definitions, engineering, store as feature_store

    with tempfile.TemporaryDirectory() as tmp:
        raw = read_parquet(fetch(data_uri, Path(tmp) / "raw.parquet", store), data_uri)
        features = engineering.compute_features(raw)
        local = Path(tmp) / "features.parquet"
        features.to_parquet(local, index=False)
        checked = validate_dataset(str(local), features_contract, report_dir, publish_to=store)
    if not checked.result.passed:
        raise DataError(f"the computed features break their contract:\n{checked.result.summary()}\n"
                        f"  report: {checked.report_uri}")
    snapshot = feature_store.publish_snapshot(features, store)
    config = feature_store.FeatureStoreConfig.from_env()
    fs = feature_store.open_store(config)
    local_snapshot = feature_store.fetch_snapshot(snapshot.uri, config.snapshot_dir, store)
    version = feature_store.apply_definitions(fs, local_snapshot)
    newest = features[definitions.FEATURE_TIMESTAMP].max().to_pydatetime() + timedelta(seconds=1)
    window = feature_store.materialize(fs, end=newest)
    return FeatureStageResult(snapshot.uri, snapshot.digest, snapshot.rows, version, checked, window)


def retrieve_training_data(data_uri: str, snapshot_uri: str, dest: str | Path,
                           store: ObjectStore) -> DatasetInfo:
    """Point-in-time correct training rows: label events joined to the features as of each event.

    Refuses to run when the registry no longer reads ``snapshot_uri`` (another
    run applied a different snapshot in between): the training set would
    silently come from other features.
    """
    from mlops.datasets import check_training_data
    from mlops.errors import DataError
    from mlops.features import definitions, engineering, store as feature_store

    dest = Path(dest)
    raw = read_parquet(fetch(data_uri, dest, store), data_uri)
    events = engineering.label_events(raw)
    config = feature_store.FeatureStoreConfig.from_env()
    fs = feature_store.open_store(config)
    expected = feature_store.fetch_snapshot(snapshot_uri, config.snapshot_dir, store)
    applied = feature_store.applied_snapshot(fs)
    if applied.resolve() != expected.resolve():
        raise DataError(f"the feature registry now reads snapshot {applied.name}, not {expected.name} from "
                        f"{snapshot_uri}: another run applied its features in between; rerun this pipeline")
    training = feature_store.historical_features(fs, events)
    check_training_data(training, definitions.LABEL, definitions.EVENT_TIMESTAMP, f"training rows for {data_uri}")
    training.to_parquet(dest, index=False)
    return DatasetInfo(uri=data_uri, rows=len(training), columns=list(training.columns),
                       digest="sha256:" + sha256_file(dest))


def check_skew(served_uri: str, report_dir: str | Path, store: ObjectStore | None = None):
    """Compare feature vectors served online (as logged) with an offline recomputation.

    The served log holds ``customer_id``, ``event_timestamp`` (the request
    time) and the feature columns; the offline side is the point-in-time
    retrieval for the same keys from the same Feast definitions. Writes
    ``skew.json`` and ``skew.md`` into ``report_dir`` and returns the report.
    """
    from mlops.features import definitions, skew, store as feature_store

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        served = read_parquet(fetch(served_uri, Path(tmp) / "served.parquet", store), served_uri)
    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env())
    feature_store.ensure_applied_snapshot(fs, store)
    keys = [definitions.ENTITY_KEY, definitions.EVENT_TIMESTAMP]
    require_columns(served, keys, served_uri)
    offline = feature_store.historical_features(fs, served[keys])
    report = skew.compare_online_offline(served, offline)
    (report_dir / "skew.json").write_text(report.to_json())
    (report_dir / "skew.md").write_text(f"# Online/offline feature skew\n\n```\n{report.summary()}\n```\n")
    return report
