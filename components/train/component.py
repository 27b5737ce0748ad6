from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_model(
    project: str,
    dataset: Input[Dataset],
    data_uri: str,
    dataset_digest: str,
    raw_data_digest: str,
    feature_snapshot: str,
    feature_definitions: str,
    model_params: str,
    metrics: Output[Metrics],
    validation_curves: Output[ClassificationMetrics],
    summary: Output[Markdown],
) -> NamedTuple("TrainOutputs", [("run_id", str), ("model_uri", str)]):
    """Train the project's model deterministically and record the run (params, metrics, lineage, model) in
    MLflow. ``model_params`` is a JSON object laid over the project's model params ("{}" for none)."""
    from collections import namedtuple

    from mlops.errors import exit_on_user_error
    from mlops.platform.datasets import DatasetInfo
    from mlops.platform.storage import ObjectStore
    from mlops.project import dataset_uri, resolve_project
    from mlops.reports import training_summary_markdown
    from mlops.stages import train_and_log
    from mlops.training.train import confusion
    from mlops.training.train import model_params as laid_over_project
    from mlops.training.train import roc_points

    with exit_on_user_error("train"):
        store = ObjectStore.from_env()
        spec = resolve_project(project, store=store)
        data_uri = dataset_uri(spec, data_uri, store.bucket)
        params = laid_over_project(spec, model_params)  # the parameter, not the function, is model_params
        info = DatasetInfo(uri=data_uri, rows=int(dataset.metadata.get("rows", 0)), columns=[],
                           digest=dataset_digest)
        result = train_and_log(spec, dataset.path, info, params,
                               tags={"mlops.raw_data_digest": raw_data_digest,
                                     "mlops.feature_snapshot": feature_snapshot,
                                     "mlops.feature_definitions": feature_definitions})

    trained = result.trained
    for name, value in trained.metrics.items():
        metrics.log_metric(f"validation_{name}", round(value, 6))
    from mlops.evaluation.gate import project_gate

    fpr, tpr, thresholds = roc_points(trained.validation_labels, trained.validation_scores)
    validation_curves.log_roc_curve(fpr, tpr, thresholds)
    threshold = project_gate(spec).decision_threshold  # the operating point the gate judges and serving uses
    validation_curves.log_confusion_matrix(list(spec.label.class_names),
                                           confusion(trained.validation_labels, trained.validation_scores, threshold))
    with open(summary.path, "w") as fh:
        fh.write(training_summary_markdown(result))
    print(f"MLflow run {result.run.run_id}: {result.run.url}")
    return namedtuple("TrainOutputs", ["run_id", "model_uri"])(result.run.run_id, result.run.model_uri)
