"""`make demo`: the lifecycle on this machine, told step by step.

Platform up -> demo data to S3 -> a broken batch stopped by data validation
-> the training pipeline (compiled YAML, run by kfp.local: validate, Feast
features, point-in-time retrieval, train, gate) -> a first model approved
into production -> served (predictor, splitter, feature transformer) -> a
worse candidate rejected by the gate -> a better one whose deployment is
faulty, rolled back automatically in its first canary step -> the same model
retrained bit for bit, rolled out through shadow and canary to production
-> monitoring of a quiet window (no alert) -> a recession served, detected as
drift, the training pipeline launched by monitoring, the new model blessed,
approved and rolled out -> batch scoring with the compiled batch pipeline
-> the audit trail and lineage.
"""

from __future__ import annotations

import os
import sys
import time

from mlops.datasets import write_table
from mlops.errors import PipelineError
from mlops.local_platform import LocalPlatform, state_dir
from mlops.local_run import pipeline_file, run_local
from mlops.run_summary import describe_training_outputs

STEPS = 13
MODEL = "credit-default"


def _step(n: int, text: str) -> None:
    from mlops.demo_summary import StoryRecorder

    if isinstance(sys.stdout, StoryRecorder):
        sys.stdout.begin(n, text)
    print(f"\n=== [{n}/{STEPS}] {text}", flush=True)


def _run_training(data_uri: str, label: str, **params):
    path = pipeline_file("training")
    log_file = state_dir() / "logs" / f"demo-{label}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"pipeline: {path.name} {params or ''}; task logs: {log_file}")
    return run_local(path, {"data_uri": data_uri, "model_name": MODEL, **params}, state_dir() / "kfp-local",
                     log_file)


def _save_report_locally(report_uri: str) -> str:
    """Copy a published validation report next to the platform state, for a browser."""
    from mlops.storage import ObjectStore, parse_s3_uri

    store = ObjectStore.from_env()
    bucket, key = parse_s3_uri(report_uri)
    target = state_dir() / "reports" / key.replace("/", "_")
    store.get_file(key, target, bucket)
    return str(target)


def _approve(model: str, version: str, approver: str) -> None:
    from mlops import registry
    from mlops.storage import ObjectStore

    registry.approve(ObjectStore.from_env(), model, version, by=approver,
                     reason="reviewed the gate report and the fairness slices")
    print(f"approved by {approver}: {model} v{version} may go to production (through a rollout)")


def _promote_after_approval(model: str, version: str, approver: str) -> None:
    """The first version: nothing serves yet, so approval promotes it directly."""
    from mlflow import MlflowClient

    from mlops import registry
    from mlops.storage import ObjectStore

    _approve(model, version, approver)
    champion = MlflowClient().get_model_version(model, version).tags["mlops.gate.champion"]
    done = registry.promote(ObjectStore.from_env(), model, version, registry.PRODUCTION,
                            expected_current=None if champion == "none" else champion, actor=approver,
                            reason="approved for production", require_approval=True)
    print(f"{model} v{version} is production" + (f" (v{done.previous} kept as rollback)" if done.previous else ""))


def _train(data_uri: str, label: str, **params) -> str:
    """One training pipeline run; prints the gate's verdict and reasons; returns the version or ''."""
    from mlflow import MlflowClient

    result = _run_training(data_uri, label, **params)
    for line in describe_training_outputs(result.outputs, MODEL):
        print(line)
    versions = MlflowClient().search_model_versions(f"run_id = '{result.outputs['run_id']}'")
    return str(versions[0].version) if versions else ""


def _blessed_rollout(data_uri: str, label: str, seed: int, faults: dict | None, expected: str) -> str:
    """Train a 30-round candidate, approve it, roll it out under traffic; the outcome must be ``expected``."""
    from mlops.demo_serving import roll_out_under_traffic

    version = _train(data_uri, label, seed=seed, max_iter=30)
    if not version:
        raise PipelineError(f"the {label} candidate was not blessed; see the gate's reasons above")
    _approve(MODEL, version, "risk-officer")
    outcome = roll_out_under_traffic(MODEL, version, faults={version: faults} if faults else None).outcome
    if outcome != expected:
        raise PipelineError(f"the rollout of the {label} candidate ended {outcome}, not {expected}: "
                            "see the analysis above")
    return version


def run_demo(rows: int = 20_000, seed: int = 42) -> None:
    """The story, recorded step by step; it ends with the HTML summary (also when a step fails)."""
    from mlops.demo_summary import StoryRecorder, write_summary
    from mlops.storage import ObjectStore

    story, outcome = StoryRecorder(sys.stdout), "every step passed"
    sys.stdout = story
    try:
        _tell_the_story(rows, seed)
    except BaseException as exc:
        story.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        outcome = f"stopped at step {story.steps[-1].number if story.steps else 0}: {type(exc).__name__}"
        raise
    finally:
        sys.stdout = story.terminal
        story.finish()
        try:
            path = write_summary(state_dir() / "demo", story.steps, ObjectStore.from_env(), MODEL, outcome)
            print(f"\nthe whole story on one page: {path} (open it in a browser; reports/ beside it)")
        except Exception as exc:  # the platform itself may be what failed: say so, keep the original error
            print(f"\n(no summary page: {exc})", file=sys.stderr)


def _tell_the_story(rows: int, seed: int) -> None:
    from mlops import audit, registry
    from mlops.data.generator import generate_credit_data

    started = time.perf_counter()
    _step(1, "local platform: S3 (SeaweedFS) + MLflow on 127.0.0.1")
    env = LocalPlatform().up()
    for key, value in env.items():
        os.environ.setdefault(key, value)
    bucket = os.environ.get("MLOPS_BUCKET", env["MLOPS_BUCKET"])

    good_uri = f"s3://{bucket}/datasets/credit/train.parquet"
    bad_uri = f"s3://{bucket}/datasets/credit/incoming-wrong-units.parquet"
    _step(2, f"demo data: {rows} credit applications (seed {seed}), and a broken upstream batch")
    df = generate_credit_data(rows, seed=seed)
    print(f"{good_uri}: {len(df)} rows, default rate {df['default'].mean():.3f}, {write_table(df, good_uri)}")
    broken = generate_credit_data(max(rows // 4, 2_000), seed=seed + 1, scenario="wrong_units")
    print(f"{bad_uri}: {len(broken)} rows whose income arrives in thousands, {write_table(broken, bad_uri)}")

    _step(3, "the broken batch goes into the training pipeline: data validation must stop it")
    try:
        _run_training(bad_uri, "bad-batch")
    except PipelineError as exc:
        print(f"stopped as it should be:\n{exc}")
        report = next((w.split("report: ", 1)[1].strip() for w in str(exc).splitlines() if "report: s3://" in w), None)
        if report:
            print(f"validation report (HTML with plots): {_save_report_locally(report)}")
    else:
        raise PipelineError("the broken batch passed validation: the data contract is not doing its job")

    _step(4, "a first model: validate -> features -> point-in-time retrieval -> train -> gate -> staging")
    first = _train(good_uri, "first-model", seed=seed, max_iter=10)
    if not first:
        raise PipelineError("the first model was not blessed; see the gate's reasons above")
    print("credit decisions are high-stakes (gate config): production waits for a human approval")
    _promote_after_approval(MODEL, first, "risk-officer")

    _step(5, "serve production: predictor, traffic splitter and feature transformer on 127.0.0.1")
    from mlops.demo_serving import serve_production

    serve_production(MODEL, first)

    _step(6, "a worse candidate (3 boosting rounds): the gate must reject it against the champion")
    if _train(good_uri, "worse-model", seed=seed, max_iter=3, learning_rate=0.05):
        raise PipelineError("the worse model was blessed: the gate is not doing its job")

    _step(7, "a better candidate (30 boosting rounds), approved; its deployment is faulty (30% of its answers "
             "fail, injected at the splitter as a mesh would): the rollout must roll it back by itself")
    _blessed_rollout(good_uri, "better-model", seed, faults={"error_percent": 30}, expected="rolled_back")

    _step(8, "deployment fixed; the pipeline retrains (same data, code and seed: the same predictions, bit for bit), "
             "the gate blesses it again, and it goes shadow -> canary 5/25/50% -> production")
    again = _blessed_rollout(good_uri, "better-model-again", seed, faults=None, expected="promoted")

    _step(9, "monitoring a quiet window: live traffic from the customers the model knows, their outcomes "
             "arriving late; feature drift, prediction drift and realized performance: no alert expected")
    from mlops import demo_monitoring as mon
    from mlops.storage import ObjectStore

    store = ObjectStore.from_env()
    window_start, callers = mon.serve_window(MODEL)
    print(f"  callers: {callers}")
    quiet = mon.monitor_since(MODEL, window_start, labels_uri=mon.label_feed(store, bucket, df, MODEL))
    if quiet.decision not in ("none", "notify"):
        raise PipelineError(f"a quiet window raised {quiet.decision}: {[a.reason for a in quiet.alerts]}")

    _step(10, "a recession: new applications (lower incomes, higher utilization, more late payments, and defaults "
              "that follow a changed rule) are served; monitoring detects the drift and launches the training "
              "pipeline on them; the gate judges the new model against production")
    recession_uri = f"s3://{bucket}/datasets/credit/incoming-recession.parquet"
    recession = generate_credit_data(max(rows // 3, 3_000), seed=seed + 7, scenario="recession", start="2025-07-01",
                                     days=60)
    print(f"  {recession_uri}: {len(recession)} rows, default rate {recession['default'].mean():.3f} "
          f"(was {df['default'].mean():.3f}), {write_table(recession, recession_uri)}")
    snapshot = mon.ingest_applications(recession_uri, store)
    window_start, callers = mon.serve_window(MODEL)
    print(f"  callers: {callers}")
    drifted = mon.monitor_since(MODEL, window_start, labels_uri=mon.label_feed(store, bucket, recession, MODEL),
                                training_data=recession_uri, target="local")
    if drifted.decision != "retrain":
        raise PipelineError(f"the recession was not detected as drift to retrain for (decision {drifted.decision})")
    retrained = registry.alias_version(MODEL, registry.STAGING)
    if retrained in (None, again):
        raise PipelineError("the retrained model was not blessed by the gate: see the monitoring actions above")

    _step(11, f"v{retrained} is high-stakes: a human approves it, then it goes shadow -> canary -> production "
              "under recession traffic, by the monitoring policy's rollout policy for retrained models "
              "(it is meant to decide differently: agreement and positive-rate bounds only catch a broken model)")
    from mlops.demo_serving import roll_out_under_traffic
    from mlops.monitoring.policy import resolve_policy

    _approve(MODEL, retrained, "risk-officer")
    retrained_policy = resolve_policy("credit_default", state_dir()).rollout_policy
    if roll_out_under_traffic(MODEL, retrained, policy=retrained_policy).outcome != "promoted":
        raise PipelineError(f"the rollout of retrained v{retrained} did not promote it: see the analysis above")

    _step(12, f"batch scoring: the recession applications' features scored by production v{retrained} with the "
              "compiled batch prediction pipeline (plan -> shards in parallel -> commit through a manifest); "
              "run twice: the rerun finds the output complete")
    mon.batch_score(MODEL, snapshot, f"s3://{bucket}/predictions/{MODEL}/recession")

    _step(STEPS, "the registry's story: audit trail and lineage of production")
    for event in audit.trail(store, MODEL):
        print(f"  {event.at}  {event.action:19s} v{event.version} by {event.actor}: {event.reason}")
    for label, value in registry.lineage(MODEL, retrained):
        print(f"  {label:>19}  {value}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s. Look around: MLflow UI at "
          f"{os.environ['MLFLOW_TRACKING_URI']}; reports in {state_dir() / 'reports'} and s3://{bucket}/reports/; "
          "`mlops serve status`; `mlops traffic --rate 50 --duration 10`; `mlops audit credit-default`; "
          "`mlops serve down` and `mlops platform down` to stop.")
