"""The monitoring half of `make demo`: a quiet window, then the world drifts, is detected, and retrained for.

A scheduled monitoring run looks at the last 24 hours; the demo compresses
time, so each run here looks at exactly the traffic the demo just sent (a
policy written next to the platform state with that window).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import yaml

from mlops.platform.local import state_dir
from mlops.serving.local import LocalServing

REPLAY_S = 25.0  # seconds of live traffic per window
RATE = 60.0
LABELS_ARRIVED = 0.7  # share of the served entities whose outcome is known by the monitoring run


def _demo_policy(project, seconds: float) -> str:
    """The project's policy with a window of ``seconds``: what the demo just served. Written beside the
    platform state (inside the project it would change the project's digest), its retraining rollout
    policy made absolute; a KPI hook still resolves in the project's folder."""
    raw = yaml.safe_load(project.monitoring.read_text())
    raw["window"]["hours"] = round(seconds / 3600, 6)
    raw["window"]["min_rows"] = 300
    retraining = raw.get("retraining") or {}
    if retraining.get("rollout_policy") and not retraining["rollout_policy"].startswith("s3://"):
        retraining["rollout_policy"] = str(project.monitoring.parent / retraining["rollout_policy"])
    path = state_dir() / f"demo-monitoring-policy-{project.name}.yaml"
    path.write_text(f"# {project.monitoring} with the demo's compressed window\n"
                    + yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def serve_window(project) -> tuple[float, str]:
    """Replay live traffic for REPLAY_S seconds; returns (when it started, callers' summary)."""
    from mlops.serving.traffic_replay import known_ids, replay

    started = time.time()
    stats = replay(LocalServing(project).urls()["transformer"], project, known_ids(project), rate=RATE,
                   duration_s=REPLAY_S)
    time.sleep(3)  # the request log flushes every 2 s
    return started, stats.summary()


def monitor_since(project, started: float, progress=print, **kwargs):
    """One `mlops monitor` run over the traffic sent since ``started``."""
    from mlops.monitoring.run import run_monitor

    policy = _demo_policy(project, time.time() - started + 1)
    run = run_monitor(project, policy=policy, progress=lambda m: progress(f"  {m}"), **kwargs)
    html = state_dir() / "reports" / f"monitoring-{time.strftime('%H%M%S')}.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(run.html)
    progress(f"  monitoring report: {html} (and {run.result.report_uri})")
    return run.result


def label_feed(project, store, bucket: str, data: pd.DataFrame) -> str:
    """The outcomes of the served rows as a label feed: most known now, the rest still to come."""
    from mlops.platform.datasets import write_table

    now = pd.Timestamp.now(tz="UTC")
    key, label = project.entity.key, project.label.column
    arrived = pd.Series(range(len(data))).mod(10).lt(LABELS_ARRIVED * 10).to_numpy()
    feed = pd.DataFrame({key: data[key].to_numpy(), label: data[label].to_numpy(),
                         project.label_timestamp: [now if a else now + pd.Timedelta(days=60) for a in arrived]})
    uri = f"s3://{bucket}/labels/{project.names.model}/{now:%Y%m%dT%H%M%S}.parquet"
    write_table(feed, uri, store)
    print(f"  label feed {uri}: {int(arrived.sum())} outcomes known, {int((~arrived).sum())} still to come")
    return uri.rpartition("/")[0] + "/"


def ingest(project, uri: str, store) -> str:
    """New raw data through the feature pipeline into the online store (what the feature job does);
    returns the feature snapshot's URI."""
    from mlops import stages

    result = stages.build_features(project, uri, Path(state_dir()) / "reports" / "ingested-features", store)
    print(f"  features of {result.rows} new rows materialized online ({result.snapshot_uri})")
    return result.snapshot_uri


def batch_score(project, input_uri: str, output_uri: str) -> None:
    """The compiled batch prediction pipeline over ``input_uri``, then again: the rerun finds it complete."""
    from mlops.batch.report import describe_output
    from mlops.platform.local_run import pipeline_file, run_local

    for attempt in ("run", "rerun"):
        log_file = state_dir() / "logs" / f"demo-batch-{attempt}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        result = run_local(pipeline_file("batch_prediction"),
                           {"project": project.source, "input_uri": input_uri, "output_uri": output_uri,
                            "shards": 2},
                           state_dir() / "kfp-local", log_file)
        tasks = ", ".join(f"{k} {v:.1f} s" for k, v in result.task_seconds.items())
        print(f"  {attempt}: batch_prediction_pipeline.yaml in {result.seconds:.1f} s ({tasks}); logs {log_file}")
    for line in describe_output(output_uri):
        print(f"  {line}")
