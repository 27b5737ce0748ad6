"""A batch prediction from start to end: plan, score every shard, commit.

The KFP pipeline runs the same three steps as separate tasks (the shards
under ``dsl.ParallelFor``); :func:`run_batch_prediction` runs them on this
machine, the shards in parallel worker processes with one scoring thread
each (call :func:`mlops.registry.model_files.request_scoring_threads` before
scikit-learn loads, as the CLI does).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from mlops.batch import frames
from mlops.batch.inputs import fingerprint, list_input, open_parquet, with_row_groups
from mlops.batch.output import Output, check_output_location, commit, completed, save_plan
from mlops.batch.plan import Job, make_shards
from mlops.batch.progress import Progress
from mlops.batch.scoring import DEFAULT_CHUNK_ROWS, ShardResult, load_verified, score_shard
from mlops.errors import DataError, MlopsError, PipelineError
from mlops.platform.storage import ObjectStore
from mlops.registry.model_files import LoadedModel, resolve_model


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Planned:
    job: Job
    model: LoadedModel  # verified against its registered digest
    done: dict | None  # the manifest, when the output already holds this job: nothing to do


def default_output(project, output_uri: str, bucket: str) -> str:
    """An empty output URI is the project's ``s3://<bucket>/predictions/<model>``."""
    return output_uri or f"s3://{bucket}/predictions/{project.names.model}"


def plan(project, input_uri: str, output_uri: str, version_or_alias: str = "production", *,
         shards: int = 1, keep: str | list[str] | None = None,
         store: ObjectStore | None = None) -> Planned:
    """Check everything a run needs, fix what it will score, and split it into ``shards``.

    The project gives the model, the decision threshold (its gate's) and the
    column kept by default (its entity key).

    Fails before any scoring, naming what and where: a missing input, a file
    that is not Parquet, missing or mistyped feature columns, an output that
    is not ours, an unknown model version or alias, files that do not match
    the registered digest.
    """
    from mlops.serving.predictor import decision_threshold
    from mlops.training import tracking

    if shards < 1:
        raise DataError(f"shards must be at least 1, got {shards}")
    store = store or ObjectStore.from_env()
    out = Output.parse(output_uri)
    files = list_input(input_uri, store)
    check_output_location(store, out, input_uri)
    tracking.connect()
    ref = resolve_model(project.names.model, version_or_alias)
    loaded = load_verified(ref, store)
    columns = loaded.columns
    threshold = decision_threshold(project)
    parquets = [open_parquet(f, store) for f in files]
    kept = frames.resolve_keep(keep, parquets[0].schema_arrow, project.entity.key)
    for file, parquet in zip(files, parquets):
        frames.check_columns(parquet.schema_arrow, columns, kept, file.uri)
        for name in kept:
            first, this = parquets[0].schema_arrow.field(name).type, parquet.schema_arrow.field(name).type
            if this != first:
                raise DataError(f"column {name} to keep is {this} in {file.uri} but {first} in {files[0].uri}: "
                                "every input file must give it the same type")
    files = [with_row_groups(f, p) for f, p in zip(files, parquets)]
    if not sum(f.rows for f in files):
        raise DataError(f"{input_uri} holds no rows to score ({len(files)} Parquet file(s), 0 rows)")
    now = datetime.now(timezone.utc)
    job = Job(input_uri, output_uri, f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}", tuple(files),
              fingerprint(files), ref, columns, kept, threshold, now.isoformat(timespec="microseconds"),
              time.time(), make_shards(files, shards))
    return Planned(job, loaded, completed(store, job))


@dataclass(frozen=True)
class BatchResult:
    manifest: dict
    already_complete: bool
    seconds: float  # of this call

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])


def run_batch_prediction(project, input_uri: str, output_uri: str, version_or_alias: str = "production",
                         *, shards: int | None = None, workers: int | None = None,
                         chunk_rows: int = DEFAULT_CHUNK_ROWS, keep: str | list[str] | None = None,
                         store: ObjectStore | None = None, progress_interval_s: float = 5.0) -> BatchResult:
    """Plan, score every shard (``workers`` processes, default one per usable CPU), commit.

    A rerun of a job already committed (same input, same model version) does
    nothing and says so; a rerun after an interrupted run scores everything
    again and commits once.
    """
    started = time.perf_counter()
    if chunk_rows < 1:
        raise DataError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if workers is not None and workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    store = store or ObjectStore.from_env()
    planned = plan(project, input_uri, output_uri, version_or_alias,
                   shards=usable_cpus() if shards is None else shards, keep=keep, store=store)
    if planned.done is not None:
        return BatchResult(planned.done, True, time.perf_counter() - started)
    job = planned.job
    save_plan(store, job)
    model = planned.model
    workers = min(len(job.shards), workers or usable_cpus())
    progress = Progress(job.rows, f"{job.model.name} v{job.model.version} on {len(job.shards)} shard(s), "
                        f"{workers} process(es)", progress_interval_s)
    if workers == 1:
        for shard in job.shards:
            score_shard(store, job, shard.index, model, chunk_rows=chunk_rows, on_rows=progress.advance)
    else:
        score_in_processes(store, job, model, chunk_rows, workers, progress)
    progress.finish()
    manifest, _ = commit(store, job)
    return BatchResult(manifest, False, time.perf_counter() - started)


# -- worker processes --------------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when its parent dies, so a killed run leaves no process behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(settings, job: Job, model: LoadedModel, chunk_rows: int, tasks, results, counter) -> None:
    from threadpoolctl import threadpool_limits

    _die_with_parent()
    threadpool_limits(1)
    store = ObjectStore(settings)

    def count(rows: int) -> None:
        with counter.get_lock():
            counter.value += rows

    while (index := tasks.get()) is not None:
        try:
            results.put(("ok", score_shard(store, job, index, model, chunk_rows=chunk_rows, on_rows=count)))
        except MlopsError as exc:
            results.put(("error", exc))
            return
        except BaseException:  # noqa: BLE001 - a bug: report it with its traceback
            results.put(("crash", f"shard {index} failed:\n{traceback.format_exc()}"))
            return


def score_in_processes(store: ObjectStore, job: Job, model: LoadedModel, chunk_rows: int, workers: int,
                       progress: Progress) -> list[ShardResult]:
    """Score every shard in ``workers`` processes; the first failure stops them all and is raised.

    Forked where the platform allows it: the workers start with the verified
    model already loaded, instead of importing and loading it again.
    """
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    tasks, results, counter = ctx.Queue(), ctx.Queue(), ctx.Value("q", 0)
    procs = [ctx.Process(target=_worker, args=(store.settings, job, model, chunk_rows, tasks, results, counter),
                         name=f"mlops-batch-worker-{i}", daemon=True) for i in range(workers)]
    for proc in procs:  # before the queues' feeder threads exist: fork a process with no other threads
        proc.start()
    for shard in job.shards:
        tasks.put(shard.index)
    for _ in range(workers):
        tasks.put(None)
    done: list[ShardResult] = []
    try:
        while len(done) < len(job.shards):
            try:
                kind, value = results.get(timeout=min(1.0, progress.interval_s))
            except queue.Empty:
                progress.update(counter.value)
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise PipelineError(f"a scoring process died (exit code {dead[0].exitcode}: killed, or out of "
                                        "memory?) before reporting its shard") from None
                continue
            if kind == "error":
                raise value
            if kind == "crash":
                raise RuntimeError(value)
            done.append(value)
            progress.update(counter.value)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(5)
    return done
