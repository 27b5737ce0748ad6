"""The monitoring half of `make demo`: a quiet window, then a recession arrives, is detected, and retrained for.

A scheduled monitoring run looks at the last 24 hours; the demo compresses
time, so each run here looks at exactly the traffic the demo just sent (a
policy written next to the platform state with that window).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import yaml

from mlops.local_platform import state_dir
from mlops.serving.local import LocalServing

REPLAY_S = 25.0  # seconds of live traffic per window
RATE = 60.0
LABELS_ARRIVED = 0.7  # share of the served customers whose outcome is known by the monitoring run


def _demo_policy(seconds: float) -> str:
    """The packaged policy with a window of ``seconds``: what the demo just served."""
    from mlops.monitoring.policy import PACKAGED_POLICIES

    raw = yaml.safe_load((PACKAGED_POLICIES / "credit_default.yaml").read_text())
    raw["window"]["hours"] = round(seconds / 3600, 6)
    raw["window"]["min_rows"] = 300
    path = state_dir() / "demo-monitoring-policy.yaml"
    path.write_text("# credit_default with the demo's compressed window\n" + yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def serve_window(model: str) -> tuple[float, str]:
    """Replay live traffic for REPLAY_S seconds; returns (when it started, callers' summary)."""
    from mlops.serving.traffic_replay import customer_ids, replay

    started = time.time()
    stats = replay(LocalServing(model).urls()["transformer"], model, customer_ids(), rate=RATE, duration_s=REPLAY_S)
    time.sleep(3)  # the request log flushes every 2 s
    return started, stats.summary()


def monitor_since(model: str, started: float, progress=print, **kwargs):
    """One `mlops monitor` run over the traffic sent since ``started``."""
    from mlops.monitoring.run import run_monitor

    policy = _demo_policy(time.time() - started + 1)
    run = run_monitor(model, policy=policy, progress=lambda m: progress(f"  {m}"), **kwargs)
    html = state_dir() / "reports" / f"monitoring-{time.strftime('%H%M%S')}.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(run.html)
    progress(f"  monitoring report: {html} (and {run.result.report_uri})")
    return run.result


def label_feed(store, bucket: str, applications: pd.DataFrame, model: str) -> str:
    """The outcomes of the served applications as a label feed: most known now, the rest still to come."""
    from mlops.datasets import write_table

    now = pd.Timestamp.now(tz="UTC")
    arrived = pd.Series(range(len(applications))).mod(10).lt(LABELS_ARRIVED * 10).to_numpy()
    feed = pd.DataFrame({"customer_id": applications["customer_id"].astype(str),
                         "default": applications["default"].to_numpy(),
                         "label_timestamp": [now if a else now + pd.Timedelta(days=60) for a in arrived]})
    uri = f"s3://{bucket}/labels/{model}/{now:%Y%m%dT%H%M%S}.parquet"
    write_table(feed, uri, store)
    print(f"  label feed {uri}: {int(arrived.sum())} outcomes known, {int((~arrived).sum())} still to come")
    return uri.rpartition("/")[0] + "/"


def ingest_applications(uri: str, store) -> str:
    """New applications through the feature pipeline into the online store (what the feature job does);
    returns the feature snapshot's URI."""
    from mlops import stages

    result = stages.build_features(uri, "credit_features", Path(state_dir()) / "reports" / "ingested-features", store)
    print(f"  features of {result.rows} new applications materialized online ({result.snapshot_uri})")
    return result.snapshot_uri


def batch_score(model: str, input_uri: str, output_uri: str) -> None:
    """The compiled batch prediction pipeline over ``input_uri``, then again: the rerun finds it complete."""
    from mlops.batch.report import describe_output
    from mlops.local_run import pipeline_file, run_local

    for attempt in ("run", "rerun"):
        log_file = state_dir() / "logs" / f"demo-batch-{attempt}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        result = run_local(pipeline_file("batch_prediction"),
                           {"input_uri": input_uri, "output_uri": output_uri, "model_name": model, "shards": 2},
                           state_dir() / "kfp-local", log_file)
        tasks = ", ".join(f"{k} {v:.1f} s" for k, v in result.task_seconds.items())
        print(f"  {attempt}: batch_prediction_pipeline.yaml in {result.seconds:.1f} s ({tasks}); logs {log_file}")
    for line in describe_output(output_uri):
        print(f"  {line}")
