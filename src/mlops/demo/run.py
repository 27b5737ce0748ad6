"""`make demo`: the lifecycle on this machine, told step by step.

Platform up -> demo data to S3 -> a broken batch stopped by data validation
-> the training pipeline (compiled YAML, run by kfp.local: validate, Feast
features, point-in-time retrieval, train, gate) -> a first model approved
into production -> served (predictor, splitter, feature transformer) -> a
worse candidate rejected by the gate -> a better one whose deployment is
faulty, rolled back automatically in its first canary step -> the same model
retrained bit for bit, rolled out through shadow and canary to production
-> monitoring of a quiet window (no alert) -> a drifted world served (the
project's drift scenario), detected, the training pipeline launched by
monitoring, the new model blessed, approved if high-stakes, and rolled out ->
batch scoring with the compiled batch pipeline -> the audit trail and lineage.

The project casts the story (``demo`` in its project.yaml): which of its
generator's scenarios is the broken batch and which the drift, and which
model params make the first, a worse and a better model.
"""

from __future__ import annotations

import json
import os
import sys
import time

from mlops.errors import PipelineError
from mlops.platform.datasets import write_table
from mlops.platform.local import LocalPlatform, state_dir
from mlops.platform.local_run import pipeline_file, run_local
from mlops.training.run_summary import describe_training_outputs

STEPS = 13
APPROVER = "model-risk-reviewer"


def _step(n: int, text: str) -> None:
    from mlops.demo.summary import StoryRecorder

    if isinstance(sys.stdout, StoryRecorder):
        sys.stdout.begin(n, text)
    print(f"\n=== [{n}/{STEPS}] {text}", flush=True)


def _run_training(project, data_uri: str, label: str, params: dict | None = None):
    path = pipeline_file("training")
    log_file = state_dir() / "logs" / f"demo-{label}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"pipeline: {path.name} {params or ''}; task logs: {log_file}")
    return run_local(path, {"project": project.source, "data_uri": data_uri, "model_params": json.dumps(params or {})},
                     state_dir() / "kfp-local", log_file)


def _save_report_locally(report_uri: str) -> str:
    """Copy a published validation report next to the platform state, for a browser."""
    from mlops.platform.storage import ObjectStore, parse_s3_uri

    store = ObjectStore.from_env()
    bucket, key = parse_s3_uri(report_uri)
    target = state_dir() / "reports" / key.replace("/", "_")
    store.get_file(key, target, bucket)
    return str(target)


def _approve(model: str, version: str, approver: str) -> None:
    from mlops.platform.storage import ObjectStore
    from mlops.registry import promotion as registry

    registry.approve(ObjectStore.from_env(), model, version, by=approver,
                     reason="reviewed the gate report and the fairness slices")
    print(f"approved by {approver}: {model} v{version} may go to production (through a rollout)")


def _promote_after_approval(model: str, version: str, approver: str) -> None:
    """The first version: nothing serves yet, so approval promotes it directly."""
    from mlops.platform.storage import ObjectStore
    from mlops.registry import promotion as registry

    _approve(model, version, approver)
    done = registry.promote_blessed(ObjectStore.from_env(), model, version, high_stakes=True, actor=approver,
                                    reason="approved for production")
    print(f"{model} v{version} is production" + (f" (v{done.previous} kept as rollback)" if done.previous else ""))


def _train(project, data_uri: str, label: str, params: dict) -> str:
    """One training pipeline run; prints the gate's verdict and reasons; returns the version or ''."""
    from mlflow import MlflowClient

    result = _run_training(project, data_uri, label, params)
    for line in describe_training_outputs(result.outputs, project.names.model):
        print(line)
    versions = MlflowClient().search_model_versions(f"run_id = '{result.outputs['run_id']}'")
    return str(versions[0].version) if versions else ""


def _blessed_rollout(project, high_stakes: bool, data_uri: str, label: str, faults: dict | None,
                     expected: str) -> str:
    """Train the better candidate, approve it if high-stakes, roll it out under traffic; the outcome must be
    ``expected``."""
    from mlops.demo.serving import roll_out_under_traffic

    version = _train(project, data_uri, label, project.demo.better)
    if not version:
        raise PipelineError(f"the {label} candidate was not blessed; see the gate's reasons above")
    if high_stakes:
        _approve(project.names.model, version, APPROVER)
    outcome = roll_out_under_traffic(project, version, faults={version: faults} if faults else None).outcome
    if outcome != expected:
        raise PipelineError(f"the rollout of the {label} candidate ended {outcome}, not {expected}: "
                            "see the analysis above")
    return version


def run_demo(project, rows: int = 20_000, seed: int | None = None) -> None:
    """The story of ``project``, recorded step by step; it ends with the HTML summary (also when a step fails)."""
    from mlops.demo.summary import StoryRecorder, write_summary
    from mlops.errors import ConfigError
    from mlops.platform.storage import ObjectStore

    if project.demo is None:
        raise ConfigError(f"{project.where} has no demo section: name the scenarios and model params that play "
                          "the demo's roles (see the example projects' project.yaml)")
    missing = [key for key in ("rollout", "monitoring") if getattr(project, key) is None]
    if missing:
        raise ConfigError(f"{project.where}: the demo rolls out and monitors the model, so it needs "
                          f"{' and '.join(missing)} policies ({', '.join(f'{k}: {k}.yaml' for k in missing)})")
    story, outcome = StoryRecorder(sys.stdout), "every step passed"
    sys.stdout = story
    try:
        _tell_the_story(project, rows, project.split.seed if seed is None else seed)
    except BaseException as exc:
        story.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        outcome = f"stopped at step {story.steps[-1].number if story.steps else 0}: {type(exc).__name__}"
        raise
    finally:
        sys.stdout = story.terminal
        story.finish()
        try:
            path = write_summary(state_dir() / "demo", story.steps, ObjectStore.from_env(), project.names.model,
                                 outcome)
            print(f"\nthe whole story on one page: {path} (open it in a browser; reports/ beside it)")
        except Exception as exc:  # the platform itself may be what failed: say so, keep the original error
            print(f"\n(no summary page: {exc})", file=sys.stderr)


def _refuse_a_told_story(project) -> None:
    """The story starts from an empty registry for the project's model. Told again on the same platform,
    its first model would meet the last one as a champion and no step would mean what it says; and the
    platform may hold a team's own work, so the demo never clears it."""
    from mlflow import MlflowClient

    from mlops.errors import ConfigError
    from mlops.training import tracking

    tracking.connect()
    versions = MlflowClient().search_model_versions(f"name = '{project.names.model}'")
    if versions:
        home = state_dir()
        raise ConfigError(
            f"model {project.names.model} already has {len(versions)} version(s) on the platform in {home} (an "
            "earlier demo, or your own runs), and the demo tells its story from an empty registry. Start over "
            f"with `mlops serve down --project {project.source}; mlops platform down; rm -rf {home}`, or keep it "
            "and give the demo a platform of its own after `mlops platform down`: MLOPS_HOME=/tmp/demo-home "
            f"mlops demo --project {project.source}")


def _tell_the_story(project, rows: int, seed: int) -> None:
    from mlops.evaluation.gate import project_gate
    from mlops.project.data import encode_labels, generate_data
    from mlops.registry import audit
    from mlops.registry import promotion as registry
    from mlops.rollout.policy import load_policy as load_rollout_policy

    started = time.perf_counter()
    model, demo, label = project.names.model, project.demo, project.label.column
    high_stakes = project_gate(project).high_stakes

    def rate(frame) -> float:
        return float(encode_labels(project, frame[label], "demo data").mean())

    _step(1, "local platform: S3 (SeaweedFS) + MLflow on 127.0.0.1")
    env = LocalPlatform().up()
    for key, value in env.items():
        os.environ.setdefault(key, value)
    bucket = os.environ.get("MLOPS_BUCKET", env["MLOPS_BUCKET"])
    _refuse_a_told_story(project)

    data = f"s3://{bucket}/datasets/{project.names.prefix}"
    good_uri, bad_uri = f"{data}/train.parquet", f"{data}/incoming-{demo.broken}.parquet"
    _step(2, f"demo data of project {project.name}: {rows} rows (seed {seed}), and a broken upstream batch "
             f"({demo.broken})")
    df = generate_data(project, rows, seed=seed)
    print(f"{good_uri}: {len(df)} rows, {label} rate {rate(df):.3f}, {write_table(df, good_uri)}")
    broken = generate_data(project, max(rows // 4, 2_000), seed=seed + 1, scenario=demo.broken)
    print(f"{bad_uri}: {len(broken)} rows of scenario {demo.broken}, {write_table(broken, bad_uri)}")

    _step(3, "the broken batch goes into the training pipeline: data validation must stop it")
    try:
        _run_training(project, bad_uri, "bad-batch")
    except PipelineError as exc:
        print(f"stopped as it should be:\n{exc}")
        report = next((w.split("report: ", 1)[1].strip() for w in str(exc).splitlines() if "report: s3://" in w), None)
        if report:
            print(f"validation report (HTML with plots): {_save_report_locally(report)}")
    else:
        raise PipelineError("the broken batch passed validation: the data contract is not doing its job")

    _step(4, "a first model: validate -> features -> point-in-time retrieval -> train -> gate -> staging")
    first = _train(project, good_uri, "first-model", demo.first)
    if not first:
        raise PipelineError("the first model was not blessed; see the gate's reasons above")
    if high_stakes:
        print(f"{model} is high-stakes (its gate says so): production waits for a human approval")
        _promote_after_approval(model, first, APPROVER)
    else:
        print(f"{model} is not high-stakes: the pipeline promoted v{first} to production itself")

    _step(5, "serve production: predictor, traffic splitter and feature transformer on 127.0.0.1")
    from mlops.demo.serving import serve_production

    serve_production(project, first)

    _step(6, f"a worse candidate ({_params(demo.worse)}): the gate must reject it against the champion")
    if _train(project, good_uri, "worse-model", demo.worse):
        raise PipelineError("the worse model was blessed: the gate is not doing its job")

    _step(7, f"a better candidate ({_params(demo.better)}){', approved' if high_stakes else ''}; its deployment is "
             "faulty (30% of its answers fail, injected at the splitter as a mesh would): the rollout must roll it "
             "back by itself")
    _blessed_rollout(project, high_stakes, good_uri, "better-model", faults={"error_percent": 30},
                     expected="rolled_back")

    canary = "/".join(str(step) for step in load_rollout_policy(project.rollout).canary_steps)
    _step(8, "deployment fixed; the pipeline retrains (same data, code and seed: the same predictions, bit for bit), "
             f"the gate blesses it again, and it goes shadow -> canary {canary}% -> production")
    again = _blessed_rollout(project, high_stakes, good_uri, "better-model-again", faults=None, expected="promoted")

    _step(9, f"monitoring a quiet window: live traffic from the {project.entity.name}s the model knows, their "
             "outcomes arriving late; feature drift, prediction drift and realized performance: no alert expected")
    from mlops.demo import monitoring as mon
    from mlops.platform.storage import ObjectStore

    store = ObjectStore.from_env()
    window_start, callers = mon.serve_window(project)
    print(f"  callers: {callers}")
    quiet = mon.monitor_since(project, window_start, labels_uri=mon.label_feed(project, store, bucket, df))
    if quiet.decision not in ("none", "notify"):
        raise PipelineError(f"a quiet window raised {quiet.decision}: {[a.reason for a in quiet.alerts]}")

    _step(10, f"the world changes ({demo.drift}): new data is served; monitoring detects the drift and launches "
              "the training pipeline on it; the gate judges the new model against production")
    drift_uri = f"{data}/incoming-{demo.drift}.parquet"
    drifted_data = generate_data(project, max(rows // 3, 3_000), seed=seed + 7, scenario=demo.drift,
                                 **demo.drift_options)
    print(f"  {drift_uri}: {len(drifted_data)} rows, {label} rate {rate(drifted_data):.3f} (was {rate(df):.3f}), "
          f"{write_table(drifted_data, drift_uri)}")
    snapshot = mon.ingest(project, drift_uri, store)
    window_start, callers = mon.serve_window(project)
    print(f"  callers: {callers}")
    # Callers keep calling while monitoring acts: where the policy rolls a retrained model out by itself
    # (not high-stakes), its shadow and canary judge that traffic.
    from mlops.demo.serving import live_traffic

    with live_traffic(project):
        drifted = mon.monitor_since(project, window_start, training_data=drift_uri, target="local",
                                    labels_uri=mon.label_feed(project, store, bucket, drifted_data))
    if drifted.decision != "retrain":
        raise PipelineError(f"the drift was not detected as drift to retrain for (decision {drifted.decision})")
    retrained = registry.alias_version(model, registry.STAGING)
    if retrained in (None, again):
        raise PipelineError("the retrained model was not blessed by the gate: see the monitoring actions above")

    who = ("is high-stakes: a human approves it, then it goes" if high_stakes else
           "is not high-stakes, so monitoring itself took it")
    _step(11, f"v{retrained} {who} shadow -> canary -> production under the new traffic, by the monitoring "
              "policy's rollout policy for retrained models (it is meant to decide differently: agreement and "
              "positive-rate bounds only catch a broken model)")
    from mlops.demo.serving import roll_out_under_traffic
    from mlops.monitoring.policy import project_policy

    if registry.alias_version(model, registry.PRODUCTION) != retrained:
        if high_stakes:
            _approve(model, retrained, APPROVER)
        retrained_policy = project_policy(project).rollout_policy
        if roll_out_under_traffic(project, retrained, policy=retrained_policy).outcome != "promoted":
            raise PipelineError(f"the rollout of retrained v{retrained} did not promote it: see the analysis above")
    else:
        print(f"  monitoring's retraining already rolled v{retrained} out to production")

    _step(12, f"batch scoring: the drifted data's features scored by production v{retrained} with the compiled "
              "batch prediction pipeline (plan -> shards in parallel -> commit through a manifest); run twice: the "
              "rerun finds the output complete")
    mon.batch_score(project, snapshot, f"s3://{bucket}/predictions/{model}/{demo.drift}")

    _step(STEPS, "the registry's story: audit trail and lineage of production")
    for event in audit.trail(store, model):
        print(f"  {event.at}  {event.action:19s} v{event.version} by {event.actor}: {event.reason}")
    for label_, value in registry.lineage(model, retrained):
        print(f"  {label_:>19}  {value}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s. Look around: MLflow UI at "
          f"{os.environ['MLFLOW_TRACKING_URI']}; reports in {state_dir() / 'reports'} and s3://{bucket}/reports/; "
          f"`mlops serve status --project {project.source}`; `mlops traffic --project {project.source} --rate 50 "
          f"--duration 10`; `mlops audit {model}`; `mlops serve down --project {project.source}` and "
          "`mlops platform down` to stop.")


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
