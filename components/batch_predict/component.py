from typing import List

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_batch_prediction(
    project: str,
    input_uri: str,
    output_uri: str,
    model_version: str,
    keep: str,
    shards: int,
    shard_list: dsl.OutputPath(List[dict]),
    attempt: dsl.OutputPath(str),
    resolved_output: dsl.OutputPath(str),
    summary: Output[Markdown],
) -> str:
    """Check the input, the output prefix and the project's model, fix what the run scores (the version an alias points
    at, the input files and their ETags, the decision threshold, one scored_at) and split the input into shards
    of Parquet row groups balanced by rows. An empty output_uri is the project's predictions/<model>; an
    empty keep keeps the entity key. Returns "pending", or "complete" when the output already holds this
    input scored by this model version (then shard_list is empty and nothing runs)."""
    import json

    from mlops.registry.model_files import request_scoring_threads

    request_scoring_threads(1)
    from mlops.batch.output import save_plan
    from mlops.batch.report import markdown, plan_markdown
    from mlops.batch.run import default_output, plan
    from mlops.errors import exit_on_user_error
    from mlops.platform.storage import ObjectStore
    from mlops.project import resolve_project

    with exit_on_user_error("batch plan"):
        store = ObjectStore.from_env()
        spec = resolve_project(project, store=store)
        output_uri = default_output(spec, output_uri, store.bucket)
        planned = plan(spec, input_uri, output_uri, model_version or "production", shards=shards,
                       keep=keep or None, store=store)
        if planned.done is None:
            save_plan(store, planned.job)
    job = planned.job
    items = [] if planned.done else [{"output_uri": output_uri, "attempt": job.attempt, "index": s.index,
                                      "rows": s.rows} for s in job.shards]
    with open(shard_list, "w") as fh:
        json.dump(items, fh)
    with open(attempt, "w") as fh:
        fh.write(job.attempt)
    with open(resolved_output, "w") as fh:  # what commit publishes to, the default filled in
        fh.write(output_uri)
    with open(summary.path, "w") as fh:
        fh.write(markdown(output_uri, planned.done, True) if planned.done else plan_markdown(job))
    print(f"{'complete' if planned.done else 'pending'}: {job.rows:,} rows, {len(items)} shard(s) to score")
    return "complete" if planned.done else "pending"


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def score_batch_shard(shard: dict, chunk_rows: int, metrics: Output[Metrics]) -> str:
    """Score one shard of a planned run with one scoring thread, streaming chunk_rows rows at a time, and stage
    its predictions under the run's staging prefix (an atomic upload). Returns {"index", "rows", "seconds"}."""
    import json

    from mlops.registry.model_files import request_scoring_threads

    request_scoring_threads(1)  # before scikit-learn loads
    from mlops.batch.output import load_plan
    from mlops.batch.progress import Progress
    from mlops.batch.scoring import load_verified, score_shard
    from mlops.errors import exit_on_user_error
    from mlops.platform.storage import ObjectStore

    index = int(shard["index"])  # numbers in loop items may arrive as floats
    with exit_on_user_error(f"batch shard {index}"):
        store = ObjectStore.from_env()
        job = load_plan(store, shard["output_uri"], shard["attempt"])
        model = load_verified(job.model, store, expected_columns=job.columns)
        progress = Progress(job.shards[index].rows, f"shard {index} of {len(job.shards)}")
        result = score_shard(store, job, index, model, chunk_rows=chunk_rows, on_rows=progress.advance)
        progress.finish()
    metrics.log_metric("rows", float(result.rows))
    metrics.log_metric("rows_per_s", round(result.rows_per_s, 1))
    return json.dumps({"index": index, "rows": result.rows, "seconds": round(result.seconds, 3)})


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def commit_batch_predictions(
    output_uri: str,
    attempt: str,
    shard_results: List[str],
    metrics: Output[Metrics],
    summary: Output[Markdown],
) -> str:
    """Publish every staged shard of the run as the output: check each has its planned rows, copy them to
    names derived from the job, write _MANIFEST.json last, then remove older parts and staging. Returns the
    manifest's URI."""
    import json

    from mlops.batch.output import commit, load_plan
    from mlops.batch.report import markdown
    from mlops.errors import DataError, exit_on_user_error
    from mlops.platform.storage import ObjectStore

    with exit_on_user_error("batch commit"):
        store = ObjectStore.from_env()
        job = load_plan(store, output_uri, attempt)
        reported = sorted(int(json.loads(r)["index"]) for r in shard_results)
        if reported != list(range(len(job.shards))):
            raise DataError(f"run {attempt} planned {len(job.shards)} shard(s) but shards {reported} reported back")
        manifest, published = commit(store, job)
    seconds = manifest["seconds"]
    metrics.log_metric("rows", float(manifest["rows"]))
    metrics.log_metric("rows_per_s", round(manifest["rows"] / seconds, 1) if seconds > 0 else 0.0)
    metrics.log_metric("shards", float(len(manifest["parts"])))
    with open(summary.path, "w") as fh:
        fh.write(markdown(output_uri, manifest, not published))
    print(markdown(output_uri, manifest, not published))
    return f"{output_uri.rstrip('/')}/_MANIFEST.json"
