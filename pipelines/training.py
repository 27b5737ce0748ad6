"""The training pipeline:
validate -> features -> point-in-time retrieval (train/test split by time) -> train -> evaluate + gate
-> dsl.If(BLESSED) -> register and promote.

A batch that breaks its data contract stops at validate; features are
computed once, snapshotted and served online from the same Feast
definitions the training rows are retrieved through; nothing reaches the
registry unless the gate blesses it. Compiled to compiled/training_pipeline.yaml.
"""

from typing import NamedTuple

from kfp import dsl

from components.evaluate import evaluate_model
from components.features import build_features
from components.promote import promote_model
from components.retrieve import retrieve_training_data
from components.train import train_model
from components.validate import validate_data
from pipelines.cluster import use_platform



@dsl.pipeline(
    name="mlops-training",
    description="For any project (an example's name, or a pushed project's s3:// URI): validate its raw data "
                "against its contract, build its Feast features, retrieve point-in-time correct training rows, "
                "train its model deterministically and track it in MLflow, gate it against the production "
                "champion (metrics, fairness on every sensitive attribute), and register and promote it only "
                "when blessed. data_uri defaults to the project's s3://<bucket>/datasets/<prefix>/train.parquet.",
)
def training_pipeline(
    project: str,
    data_uri: str = "",
    model_params: str = "{}",
) -> NamedTuple("TrainingOutputs", [("verdict", str), ("run_id", str)]):
    validate = use_platform(validate_data(data_uri=data_uri, project=project,
                                              model_params=model_params))
    validate.set_display_name("validate")
    features = use_platform(build_features(project=project, data_uri=data_uri))
    features.set_display_name("features").after(validate)
    retrieve = use_platform(retrieve_training_data(project=project, data_uri=data_uri,
                                                   snapshot_uri=features.outputs["snapshot_uri"]))
    retrieve.set_display_name("point-in-time retrieval")
    train = use_platform(train_model(
        project=project, dataset=retrieve.outputs["train_set"], data_uri=data_uri,
        dataset_digest=retrieve.outputs["digest"], raw_data_digest=validate.outputs["data_digest"],
        feature_snapshot=features.outputs["snapshot_uri"], feature_definitions=features.outputs["definitions_version"],
        model_params=model_params))
    train.set_display_name("train").set_cpu_limit("2").set_memory_limit("4G")
    evaluate = use_platform(evaluate_model(
        project=project, test_set=retrieve.outputs["test_set"], model_uri=train.outputs["model_uri"],
        run_id=train.outputs["run_id"]))
    evaluate.set_display_name("evaluate + gate")
    with dsl.If(evaluate.outputs["Output"] == "BLESSED", name="blessed"):
        promote = use_platform(promote_model(blessing=evaluate.outputs["blessing"],
                                             dataset_digest=retrieve.outputs["digest"]))
        promote.set_display_name("register + promote")
    outputs = NamedTuple("TrainingOutputs", [("verdict", str), ("run_id", str)])
    return outputs(verdict=evaluate.outputs["Output"], run_id=train.outputs["run_id"])
