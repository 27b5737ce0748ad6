"""The batch prediction pipeline: score a Parquet dataset with the production model, published atomically.

plan -> score every shard in parallel (dsl.ParallelFor) -> commit. A rerun
with the same input and model version stops after the plan ("complete");
a rerun after a failed run scores again and commits once. Readers trust
only the output's _MANIFEST.json, written last.
"""

from kfp import dsl

from components.batch_predict import commit_batch_predictions, plan_batch_prediction, score_batch_shard
from pipelines.cluster import use_platform

# Shards scored at once. A compile-time constant in KFP: the pipeline's `shards` parameter sets how many
# there are, this how many pods run together.
PARALLELISM = 8


@dsl.pipeline(name="batch-prediction", description=__doc__.splitlines()[0])
def batch_prediction_pipeline(
    project: str,
    input_uri: str,
    output_uri: str = "",
    model_version: str = "production",
    keep: str = "",
    shards: int = 4,
    chunk_rows: int = 65536,
):
    # An empty output_uri is the project's s3://<bucket>/predictions/<model>.
    plan = use_platform(plan_batch_prediction(
        project=project, input_uri=input_uri, output_uri=output_uri, model_version=model_version, keep=keep,
        shards=shards))
    plan.set_display_name("plan: model, input, shards")
    with dsl.If(plan.outputs["Output"] == "pending", name="not-yet-scored"):
        with dsl.ParallelFor(plan.outputs["shard_list"], parallelism=PARALLELISM, name="shards") as shard:
            score = use_platform(score_batch_shard(shard=shard, chunk_rows=chunk_rows))
            score.set_display_name("score a shard")
            score.set_cpu_request("1").set_cpu_limit("1").set_memory_request("1G")  # one scoring thread
        commit = use_platform(commit_batch_predictions(output_uri=plan.outputs["resolved_output"],
                                                       attempt=plan.outputs["attempt"],
                                                       shard_results=dsl.Collected(score.outputs["Output"])))
        commit.set_display_name("commit: parts, then the manifest")
