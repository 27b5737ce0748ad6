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
from mlops.features.definitions import EVENT_TIMESTAMP, LABEL
from pipelines.cluster import use_platform

DEFAULT_DATA_URI = "s3://mlops/datasets/credit/train.parquet"


@dsl.pipeline(
    name="mlops-training",
    description="Validate credit applications against their data contract, build Feast features, retrieve "
                "point-in-time correct training rows, train a deterministic classifier tracked in MLflow, "
                "gate it against the production champion (metrics, fairness), and register and promote it "
                "only when blessed.",
)
def training_pipeline(
    data_uri: str = DEFAULT_DATA_URI,
    contract: str = "credit_applications",
    features_contract: str = "credit_features",
    gate_config: str = "credit_default",
    model_name: str = "credit-default",
    experiment: str = "credit-default",
    seed: int = 42,
    learning_rate: float = 0.1,
    max_iter: int = 200,
    max_leaf_nodes: int = 31,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> NamedTuple("TrainingOutputs", [("verdict", str), ("run_id", str)]):
    validate = use_platform(validate_data(data_uri=data_uri, contract=contract))
    validate.set_display_name("validate")
    features = use_platform(build_features(data_uri=data_uri, features_contract=features_contract))
    features.set_display_name("features").after(validate)
    retrieve = use_platform(retrieve_training_data(data_uri=data_uri, snapshot_uri=features.outputs["snapshot_uri"],
                                                   test_fraction=test_fraction))
    retrieve.set_display_name("point-in-time retrieval")
    train = use_platform(train_model(
        dataset=retrieve.outputs["train_set"], data_uri=data_uri, dataset_digest=retrieve.outputs["digest"],
        raw_data_digest=validate.outputs["data_digest"], feature_snapshot=features.outputs["snapshot_uri"],
        feature_definitions=features.outputs["definitions_version"],
        experiment=experiment, label_column=LABEL, timestamp_column=EVENT_TIMESTAMP, seed=seed,
        learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes,
        validation_fraction=validation_fraction))
    train.set_display_name("train").set_cpu_limit("2").set_memory_limit("4G")
    evaluate = use_platform(evaluate_model(
        test_set=retrieve.outputs["test_set"], model_uri=train.outputs["model_uri"], run_id=train.outputs["run_id"],
        model_name=model_name, gate_config=gate_config))
    evaluate.set_display_name("evaluate + gate")
    with dsl.If(evaluate.outputs["Output"] == "BLESSED", name="blessed"):
        promote = use_platform(promote_model(blessing=evaluate.outputs["blessing"],
                                             dataset_digest=retrieve.outputs["digest"]))
        promote.set_display_name("register + promote")
    outputs = NamedTuple("TrainingOutputs", [("verdict", str), ("run_id", str)])
    return outputs(verdict=evaluate.outputs["Output"], run_id=train.outputs["run_id"])
