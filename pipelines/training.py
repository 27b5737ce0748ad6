"""The training pipeline: validate -> ingest -> train (tracked in MLflow) -> register.

Later stages (validation, features, evaluation gate, promotion) slot in
between as they land. Compiled to compiled/training_pipeline.yaml.
"""

from typing import NamedTuple

from kfp import dsl

from components.ingest import ingest_data
from components.register import register_model
from components.train import train_model
from components.validate import validate_data
from pipelines.cluster import use_platform

DEFAULT_DATA_URI = "s3://mlops/datasets/credit/train.parquet"


@dsl.pipeline(
    name="mlops-training",
    description="Validate a Parquet dataset against its data contract, train a deterministic classifier "
                "tracked in MLflow, register the model.",
)
def training_pipeline(
    data_uri: str = DEFAULT_DATA_URI,
    contract: str = "credit_applications",
    model_name: str = "credit-default",
    experiment: str = "credit-default",
    label_column: str = "default",
    timestamp_column: str = "event_timestamp",
    seed: int = 42,
    learning_rate: float = 0.1,
    max_iter: int = 200,
    max_leaf_nodes: int = 31,
    validation_fraction: float = 0.2,
) -> NamedTuple("TrainingOutputs", [("model_version", str), ("run_id", str)]):
    validate = use_platform(validate_data(data_uri=data_uri, contract=contract))
    validate.set_display_name("validate")
    ingest = use_platform(ingest_data(data_uri=data_uri, label_column=label_column,
                                      timestamp_column=timestamp_column))
    ingest.set_display_name("ingest").after(validate)
    train = use_platform(train_model(
        dataset=ingest.outputs["dataset"], data_uri=data_uri, dataset_digest=ingest.outputs["digest"],
        experiment=experiment, label_column=label_column, timestamp_column=timestamp_column, seed=seed,
        learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes,
        validation_fraction=validation_fraction))
    train.set_display_name("train").set_cpu_limit("2").set_memory_limit("4G")
    register = use_platform(register_model(model_uri=train.outputs["model_uri"], run_id=train.outputs["run_id"],
                                           model_name=model_name, dataset_digest=ingest.outputs["digest"]))
    register.set_display_name("register")
    outputs = NamedTuple("TrainingOutputs", [("model_version", str), ("run_id", str)])
    return outputs(model_version=register.output, run_id=train.outputs["run_id"])
