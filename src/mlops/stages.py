"""The training spine's stages as plain functions: what each KFP component calls.

Components, the in-process benchmark anchor and the tests all go through
these, so a stage behaves the same wherever it runs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.monitoring.reference import log_reference_profile, reference_profile
from mlops.platform.datasets import DatasetInfo, fetch, read_parquet, require_columns
from mlops.platform.storage import ObjectStore, sha256_file
from mlops.project import Project
from mlops.registry.versions import register_model_version
from mlops.training import tracking
from mlops.training.train import TrainedModel, train

if TYPE_CHECKING:
    from mlops.evaluation.gate import Blessing
    from mlops.evaluation.metrics import EvaluationResult
    from mlops.validation.checks import ValidationResult


@dataclass
class TrainStageResult:
    run: tracking.TrainingRun
    trained: TrainedModel


def train_and_log(project: Project, dataset_path: str, dataset: DatasetInfo, params: dict | None = None,
                  tags: dict[str, str] | None = None, experiment: str | None = None) -> TrainStageResult:
    """Train the project's model on a fetched dataset and record the run (params, metrics, lineage, model)
    in MLflow, in the project's experiment unless ``experiment`` names another."""
    tracking.connect()  # fail before spending minutes on training
    df = read_parquet(dataset_path, dataset.uri)
    trained = train(project, df, params, source=dataset.uri)
    profile = reference_profile(trained, df, metadata={"dataset_uri": dataset.uri, "dataset_digest": dataset.digest})
    run = tracking.log_training_run(project, trained, dataset, experiment or project.names.experiment,
                                    sample=df.head(100), tags=tags,
                                    within_run=lambda: log_reference_profile(profile))
    return TrainStageResult(run, trained)


def register(model_uri: str, model_name: str, run_id: str, dataset_digest: str) -> str:
    """Register the run's model as a new version; returns the version number."""
    tracking.connect()
    return register_model_version(model_uri, model_name, run_id,
                                           tags={"mlops.dataset_digest": dataset_digest})


@dataclass
class ValidateStageResult:
    result: "ValidationResult"
    report_dir: Path
    report_uri: str | None  # where the reports were published on S3, if they were
    data_digest: str  # "sha256:<hex>" of the validated file


def _publish_files(store: ObjectStore, report_dir: Path, names: tuple[str, ...], prefix: str) -> None:
    """Publish exactly the reports a step wrote into ``report_dir`` as one artifact under ``prefix``.

    ``report_dir`` may hold other files (a caller's shared reports folder):
    they must not leak into the published artifact.
    """
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            shutil.copy2(report_dir / name, Path(tmp) / name)
        store.publish_dir(tmp, prefix)


def validate_dataset(data_uri: str, contract_ref: str, report_dir: str | Path,
                     publish_to: ObjectStore | None = None) -> ValidateStageResult:
    """Validate a dataset against its contract and write the JSON, HTML and Markdown reports.

    With ``publish_to``, the reports are also published to S3 under
    ``reports/validation/<dataset>/<data digest>/``: a failing pipeline step
    keeps no output artifacts, so that is where its report stays readable.
    """
    from mlops.validation.checks import validate_parquet
    from mlops.validation.contract import resolve_contract
    from mlops.validation.report import validation_html, validation_markdown

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
        _publish_files(publish_to, report_dir, ("report.json", "report.html", "summary.md"), prefix)
    return ValidateStageResult(result, report_dir, report_uri, "sha256:" + digest)


@dataclass
class FeatureStageResult:
    snapshot_uri: str
    snapshot_digest: str
    rows: int
    definitions_version: str
    validation: ValidateStageResult
    materialized: tuple  # (start, end) of the window loaded into the online store


def build_features(project: Project, data_uri: str, report_dir: str | Path,
                   store: ObjectStore) -> FeatureStageResult:
    """Raw data -> the project's features, validated against their contract, snapshotted to S3, applied and
    materialized.

    The snapshot is content-addressed, so rebuilding the same features
    publishes nothing new. Materialization loads the online store with the
    latest value per entity within the TTL before the newest feature time.
    """
    from datetime import timedelta

    from mlops.errors import DataError
    from mlops.features import definitions, engineering
    from mlops.features import store as feature_store

    with tempfile.TemporaryDirectory() as tmp:
        raw = read_parquet(fetch(data_uri, Path(tmp) / "raw.parquet", store), data_uri)
        features = engineering.compute_features(project, raw)
        local = Path(tmp) / "features.parquet"
        features.to_parquet(local, index=False)
        checked = validate_dataset(str(local), project.contract("features"), report_dir, publish_to=store)
    if not checked.result.passed:
        raise DataError(f"the computed features break their contract:\n{checked.result.summary()}\n"
                        f"  report: {checked.report_uri}")
    snapshot = feature_store.publish_snapshot(project, features, store)
    config = feature_store.FeatureStoreConfig.from_env()
    fs = feature_store.open_store(config, project)
    local_snapshot = feature_store.fetch_snapshot(snapshot.uri, config.snapshot_dir, store)
    version = feature_store.apply_definitions(fs, local_snapshot)
    newest = features[definitions.FEATURE_TIMESTAMP].max().to_pydatetime() + timedelta(seconds=1)
    window = feature_store.materialize(fs, end=newest)
    return FeatureStageResult(snapshot.uri, snapshot.digest, snapshot.rows, version, checked, window)


def retrieve_training_data(project: Project, data_uri: str, snapshot_uri: str, train_dest: str | Path,
                           test_dest: str | Path, store: ObjectStore) -> tuple[DatasetInfo, DatasetInfo]:
    """Point-in-time correct rows, split by time into a training set and a held-out test set.

    The test set is the most recent ``split.test_fraction`` of label events:
    training (and its own validation split) never sees it, and the gate
    scores champion and candidate on it. Refuses to run when the registry
    no longer reads ``snapshot_uri`` (another run applied a different snapshot
    in between): the rows would silently come from other features.
    """
    from mlops.errors import DataError
    from mlops.evaluation.metrics import split_test
    from mlops.features import engineering
    from mlops.features import store as feature_store
    from mlops.platform.datasets import check_training_data

    with tempfile.TemporaryDirectory() as tmp:
        raw = read_parquet(fetch(data_uri, Path(tmp) / "raw.parquet", store), data_uri)
    events = engineering.label_events(project, raw)
    config = feature_store.FeatureStoreConfig.from_env()
    fs = feature_store.open_store(config, project)
    expected = feature_store.fetch_snapshot(snapshot_uri, config.snapshot_dir, store)
    applied = feature_store.applied_snapshot(fs)
    if applied.resolve() != expected.resolve():
        raise DataError(f"the feature registry now reads snapshot {applied.name}, not {expected.name} from "
                        f"{snapshot_uri}: another run applied its features in between; rerun this pipeline")
    rows = feature_store.historical_features(fs, events)
    check_training_data(rows, project.label.column, project.event_timestamp, f"training rows for {data_uri}")
    infos = []
    parts = split_test(rows, project.event_timestamp, project.split.test_fraction)
    for part, dest in zip(parts, (train_dest, test_dest)):
        part.to_parquet(dest, index=False)
        infos.append(DatasetInfo(uri=data_uri, rows=len(part), columns=list(part.columns),
                                 digest="sha256:" + sha256_file(dest)))
    return infos[0], infos[1]


def check_skew(project: Project, served_uri: str, report_dir: str | Path, store: ObjectStore | None = None):
    """Compare feature vectors served online (as logged) with an offline recomputation.

    The served log holds the entity key, the request time (the project's event
    timestamp column, or the inference log's own ``logged_at``) and the feature
    columns; the offline side is the point-in-time retrieval for the same keys
    from the same Feast definitions.
    Writes ``skew.json`` and ``skew.md`` into ``report_dir`` and returns the report.
    """
    from mlops.features import skew
    from mlops.features import store as feature_store

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        served = read_parquet(fetch(served_uri, Path(tmp) / "served.parquet", store), served_uri)
    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
    feature_store.ensure_applied_snapshot(fs, store)
    keys = [project.entity.key, project.event_timestamp]
    if project.event_timestamp not in served.columns and "logged_at" in served.columns:
        served = served.rename(columns={"logged_at": project.event_timestamp})  # the inference log as written
    require_columns(served, keys, served_uri)
    offline = feature_store.historical_features(fs, served[keys])
    report = skew.compare_online_offline(served, offline, keys, project.features.names)
    (report_dir / "skew.json").write_text(report.to_json())
    (report_dir / "skew.md").write_text(f"# Online/offline feature skew\n\n```\n{report.summary()}\n```\n")
    return report


@dataclass
class GateStageResult:
    candidate: "EvaluationResult"
    champion: "EvaluationResult | None"
    champion_version: str | None
    blessing: "Blessing"
    high_stakes: bool
    report_uri: str | None


def _load_model(uri: str, what: str):
    import mlflow

    from mlops.errors import TrackingError

    try:
        return mlflow.sklearn.load_model(uri)
    except Exception as exc:  # MLflow, skops and I/O errors all mean the same here
        raise TrackingError(f"cannot load the {what} ({uri}): {type(exc).__name__}: {exc}; nothing is promoted") from None


def _scores(model, test):
    return model.predict_proba(test[list(model.feature_names_in_)])[:, 1]


def evaluate_candidate(project: Project, test_path: str | Path, model_uri: str, report_dir: str | Path,
                       store: ObjectStore | None, run_id: str = "") -> GateStageResult:
    """Score the candidate and the production champion on the same held-out test set, then apply the
    project's gate.

    Writes ``report.html``, ``blessing.json`` and ``summary.md`` into
    ``report_dir`` and, with ``store``, publishes them to
    ``reports/gate/<model>/<run id>/``.
    """
    from mlops.evaluation.gate import decide, project_gate
    from mlops.evaluation.metrics import custom_metrics, evaluate
    from mlops.evaluation.report import gate_html, gate_markdown
    from mlops.registry import promotion as registry

    tracking.connect()
    model_name = project.names.model
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    config = project_gate(project)
    test = read_parquet(test_path, "the test set")
    digest = sha256_file(test_path)

    def scored(model) -> "EvaluationResult":
        scores = _scores(model, test)
        result = evaluate(scores, test, project.label.column, config.slice_columns, config.decision_threshold)
        result.metrics.update(custom_metrics(project, test[project.label.column].to_numpy(), scores,
                                             config.decision_threshold))
        result.test_digest = digest
        return result

    candidate = scored(_load_model(model_uri, "candidate model"))
    champion_version = registry.alias_version(model_name, registry.PRODUCTION)
    champion = None
    if champion_version is not None:
        champion = scored(_load_model(f"models:/{model_name}/{champion_version}",
                                      f"champion {model_name} v{champion_version}"))
    blessing = decide(candidate, champion, config, f"{model_name} v{champion_version}" if champion_version else None)
    report_uri = None
    if store is not None:
        prefix = f"reports/gate/{model_name}/{run_id or digest[:16]}"
        report_uri = f"s3://{store.bucket}/{prefix}/report.html"
    name = f"run {run_id}" if run_id else model_uri
    (report_dir / "report.html").write_text(gate_html(model_name, candidate, champion, blessing, name,
                                                      project.label.class_names))
    # The blessing is what the promote step requires: the verdict, every rule, and
    # the champion it was judged against (the compare-and-set expectation).
    decision = json.loads(blessing.to_json()) | {"model": model_name, "run_id": run_id, "model_uri": model_uri,
                                                 "champion_version": champion_version, "report_uri": report_uri,
                                                 "test_digest": "sha256:" + digest}
    (report_dir / "blessing.json").write_text(json.dumps(decision, indent=2))
    (report_dir / "summary.md").write_text(gate_markdown(model_name, blessing, name, report_uri))
    if store is not None:
        _publish_files(store, report_dir, ("report.html", "blessing.json", "summary.md"), prefix)
    return GateStageResult(candidate, champion, champion_version, blessing, config.high_stakes, report_uri)


def promote_candidate(store: ObjectStore, model_uri: str, model_name: str, run_id: str, dataset_digest: str,
                      champion_version: str | None, high_stakes: bool, report_uri: str,
                      metrics: dict[str, float]) -> tuple[str, list[str]]:
    """Register a blessed candidate and move ``staging`` to it; ``production`` too when nothing serves yet.

    Once a production version serves callers, a new one replaces it only
    through a rollout (shadow, canary, then traffic and alias together), so
    the registry's production is always what serves. The first version of a
    model has nothing to roll out against: it becomes production here,
    unless the model is high-stakes (then after `mlops approve` and `mlops
    promote`). ``champion_version`` is the production version the gate
    compared against; the first-version promotion is a compare-and-set
    against it. Returns the version and the aliases it now holds.
    """
    from mlflow import MlflowClient

    from mlops.registry import promotion as registry
    from mlops.registry.audit import default_actor

    # A rerun after a crash between registering and moving the aliases reuses
    # the version this run already registered instead of adding a duplicate.
    tracking.connect()
    earlier = [v for v in MlflowClient().search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
               if v.status == "READY"]
    version = str(earlier[0].version) if earlier else register(model_uri, model_name, run_id, dataset_digest)
    # What the gate compared against: a later manual production promotion
    # (after an approval) is a compare-and-set against this same champion.
    client = MlflowClient()
    client.set_model_version_tag(model_name, version, registry.GATE_CHAMPION_TAG, champion_version or "none")
    client.set_model_version_tag(model_name, version, registry.GATE_REPORT_TAG, report_uri or "")
    actor = f"pipeline ({default_actor()})"
    details = {"gate_report": report_uri, "metrics": {k: round(v, 6) for k, v in metrics.items()}, "run_id": run_id}
    registry.promote(store, model_name, version, registry.STAGING,
                     expected_current=registry.ANY,
                     actor=actor, reason="blessed by the evaluation gate", details=details)
    aliases = [registry.STAGING]
    if not high_stakes and champion_version is None:
        registry.promote(store, model_name, version, registry.PRODUCTION, expected_current=champion_version,
                         actor=actor, reason="blessed by the evaluation gate (first version: nothing to roll out against)", details=details)
        aliases.append(registry.PRODUCTION)
    return version, aliases
