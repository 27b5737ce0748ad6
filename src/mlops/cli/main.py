"""`mlops`: the suite's command line, the front door for people.

Every command is a thin shell over the library. User errors print one line
(``error: ...``) and exit 1; the local platform's settings are loaded from
its environment file first, so commands find S3 and MLflow on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mlops import __version__
from mlops.cli.project import add_project_argument, project_of
from mlops.errors import ConfigError, MlopsError


# -- platform ----------------------------------------------------------------
def _platform(args: argparse.Namespace) -> int:
    from mlops.platform.local import LocalPlatform

    platform = LocalPlatform()
    if args.action == "up":
        platform.up()
        return 0
    if args.action == "down":
        platform.down()
        return 0
    status = platform.status()
    for name, info in status.items():
        state = "running" if info["running"] else "stopped"
        where = f" {info['url']} (pid {info['pid']})" if info["url"] else ""
        print(f"{name:7s} {state}{where}")
    print(f"state: {platform.home}")
    return 0 if all(i["running"] for i in status.values()) else 1


# -- data --------------------------------------------------------------------
def _data_generate(args: argparse.Namespace) -> int:
    from mlops.platform.datasets import write_table
    from mlops.project.data import encode_labels, generate_data

    project = project_of(args)
    options = {k: v for k, v in (("start", args.start), ("days", args.days)) if v is not None}
    df = generate_data(project, args.rows, seed=args.seed, scenario=args.scenario, **options)
    digest = write_table(df, args.out)
    rate = encode_labels(project, df[project.label.column], args.out).mean()
    print(f"wrote {len(df)} rows of {project.name} ({args.scenario}, seed {project.split.seed if args.seed is None else args.seed}) "
          f"to {args.out} ({digest}); {project.label.column} rate {rate:.3f}")
    return 0


# -- data contracts ----------------------------------------------------------
def _schema_infer(args: argparse.Namespace) -> int:
    from mlops.platform.datasets import read_table
    from mlops.validation.contract import infer_contract, write_contract_files

    df = read_table(args.data)
    contract = infer_contract(df, args.dataset, key=args.key, timestamp=args.timestamp)
    yaml_path, profile_path = write_contract_files(contract, df, Path(args.out))
    print(f"wrote {yaml_path} ({len(contract.columns)} columns) and its reference profile {profile_path}; "
          "review and edit the contract, then commit both")
    return 0


def _schema_profile(args: argparse.Namespace) -> int:
    from mlops.platform.datasets import read_table
    from mlops.validation.contract import load_contract, reference_profile

    contract = load_contract(args.contract)
    if not contract.reference_profile:
        raise ConfigError(f"contract {args.contract} names no reference_profile file to write")
    profile = reference_profile(read_table(args.data), contract)
    path = profile.save(contract.reference_profile_path())
    print(f"wrote {path}: {len(profile.features)} drift-checked columns of {profile.rows} rows; commit it with "
          "its contract")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from mlops.platform.storage import ObjectStore
    from mlops.stages import validate_dataset

    publish_to = ObjectStore.from_env() if args.publish else None
    contract = args.contract or project_of(args).contract(args.stage)
    out = validate_dataset(args.data, contract, args.report_dir, publish_to)
    print(out.result.summary())
    print(f"reports: {out.report_dir / 'report.html'} (HTML), report.json, summary.md"
          + (f"; published to {out.report_uri}" if out.report_uri else ""))
    return 0 if out.result.passed else 1


# -- feature store -----------------------------------------------------------
def _features_online(args: argparse.Namespace) -> int:
    from mlops.features import store as feature_store

    project = project_of(args)
    key = project.entity.key
    fs = feature_store.open_store(feature_store.FeatureStoreConfig.from_env(), project)
    ids = feature_store.online_ids(project, args.id)
    feature_store.online_features(fs, ids[:1])  # warm the store's lookups
    start = time.perf_counter()
    frame = feature_store.online_features(fs, ids)
    elapsed_ms = (time.perf_counter() - start) * 1000
    print(frame.set_index(key).T.to_string())
    print(f"\n{len(ids)} entities read from the online store in {elapsed_ms:.2f} ms")
    absent = frame.loc[frame.drop(columns=key).isna().all(axis=1), key].tolist()
    if absent:
        print(f"no online values for {absent}: unknown, or last seen longer than the feature TTL before the "
              "newest materialized data")
    return 0


def _skew(args: argparse.Namespace) -> int:
    from mlops.stages import check_skew

    report = check_skew(project_of(args), args.served, args.report_dir)
    print(report.summary())
    print(f"reports: {Path(args.report_dir) / 'skew.json'}, skew.md")
    return 0 if report.passed(max_mismatch_rate=args.max_mismatch_rate) else 1


# -- registry ------------------------------------------------------------------
def _registry_store():
    from mlops.platform.storage import ObjectStore
    from mlops.training import tracking

    tracking.connect()
    return ObjectStore.from_env()


def _approve(args: argparse.Namespace) -> int:
    from mlops.registry import promotion as registry

    key = registry.approve(_registry_store(), args.model, args.version, args.by, args.reason)
    print(f"approved {args.model} v{args.version} by {args.by}: {args.reason} (audit: {key})")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from mlops.evaluation.gate import project_gate
    from mlops.registry import promotion as registry
    from mlops.registry.audit import default_actor

    store = _registry_store()
    project = project_of(args)
    if project.names.model != args.model:
        raise ConfigError(f"{args.model} is not the model of project {project.name} ({project.names.model}): "
                          "its gate cannot say whether this model is high-stakes")
    done = registry.promote_blessed(store, args.model, args.version, high_stakes=project_gate(project).high_stakes,
                                    actor=args.by or default_actor(), reason=args.reason)
    print(f"{args.model} v{done.version} is production" + (f" (v{done.previous} kept as rollback)" if done.previous
                                                          else "") + f"; audit: {done.audit_key}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from mlops.registry import promotion as registry
    from mlops.registry.audit import default_actor

    done = registry.rollback(_registry_store(), args.model, args.by or default_actor(), args.reason,
                             expected_current=args.from_version)
    if done.already_done:
        print(f"{args.model}: v{done.previous} was rolled back already; production is v{done.version}")
        return 0
    print(f"{args.model}: production is v{done.version} again (was v{done.previous}, now the rollback alias); "
          f"audit: {done.audit_key}")
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from mlops.registry import promotion as registry

    _registry_store()
    rows = registry.lineage(args.model, args.version)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:>{width}}  {value}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from mlops.registry import audit

    for event in audit.trail(_registry_store(), args.model):
        extra = ", ".join(f"{k}={v}" for k, v in event.details.items() if v is not None)
        print(f"{event.at}  {event.action:8s} v{event.version:<4s} by {event.actor}: {event.reason}"
              + (f"  [{extra}]" if extra else ""))
    return 0


# -- compile -----------------------------------------------------------------
def _compile(args: argparse.Namespace) -> int:
    from pipelines.compile import compile_all

    for path in compile_all():
        print(f"wrote {path}")
    return 0


# -- run ---------------------------------------------------------------------
def _parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {pair!r} must look like NAME=VALUE")
        out[name] = value
    return out


def _run(args: argparse.Namespace) -> int:
    from mlops.platform.local import state_dir
    from mlops.platform.local_run import coerce_arguments, pipeline_file, pipeline_parameters, run_local

    if not args.local:
        raise ConfigError("only local runs are available from this command for now: add --local "
                          "(to run on Kubeflow, upload pipelines/compiled/*.yaml from the dashboard)")
    path = pipeline_file(args.pipeline)
    arguments = coerce_arguments(path, _parse_params(args.param))
    _preflight()
    log_file = None if args.verbose else state_dir() / "logs" / f"{args.pipeline}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"running {path} with kfp.local (SubprocessRunner)"
          + (f"; task logs in {log_file}" if log_file else "") + " ...", flush=True)
    result = run_local(path, arguments, state_dir() / "kfp-local", log_file)
    params = {name: spec.get("defaultValue") for name, spec in pipeline_parameters(path).items()} | arguments
    if args.pipeline == "batch_prediction":
        from mlops.batch.report import describe_output

        lines = describe_output(params["output_uri"])
    else:
        from mlops.project import resolve_project
        from mlops.training.run_summary import describe_training_outputs

        model = resolve_project(params["project"]).names.model if params.get("project") else None
        lines = describe_training_outputs(result.outputs, model)
    _print_run_summary(result, lines)
    if args.json:
        Path(args.json).write_text(json.dumps({"outputs": result.outputs, "seconds": result.seconds,
                                               "task_seconds": result.task_seconds}, indent=2, default=str))
    return 0


def _preflight() -> None:
    """Fail in a second, before any task starts, if S3 or MLflow cannot be reached."""
    from mlops.platform.storage import ObjectStore
    from mlops.training import tracking

    ObjectStore.from_env().check()
    tracking.connect()


def _print_run_summary(result, lines: list[str]) -> None:
    print()
    print(f"pipeline {result.pipeline} succeeded in {result.seconds:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in result.task_seconds.items())})")
    for line in lines:
        print(line)


# -- demo --------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from mlops.demo.run import run_demo

    run_demo(project_of(args), rows=args.rows, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="Kubeflow Pipelines components for the whole ML "
                                     "lifecycle, runnable on this machine with kfp.local.")
    parser.add_argument("--version", action="version", version=f"mlops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("platform", help="start, inspect or stop the local S3 + MLflow platform",
                       description="The local platform: SeaweedFS S3 and an MLflow server on 127.0.0.1.")
    p.add_argument("action", choices=["up", "status", "down"])
    p.set_defaults(func=_platform)

    p = sub.add_parser("data", help="generate a project's demo data (its own generator, with drift scenarios)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    g = data_sub.add_parser("generate", help="write a project's synthetic dataset as Parquet (path or s3://)")
    add_project_argument(g)
    g.add_argument("--rows", type=int, default=20_000, help="rows (default 20,000)")
    g.add_argument("--seed", type=int, help="default: the project's split seed")
    g.add_argument("--scenario", default="none", help="one of the project generator's scenarios (default none)")
    g.add_argument("--start", help="first event date, if the generator takes one")
    g.add_argument("--days", type=int, help="days the events span, if the generator takes it")
    g.add_argument("--out", required=True, help="destination: a local .parquet path or s3://bucket/key.parquet")
    g.set_defaults(func=_data_generate)

    p = sub.add_parser("schema", help="data contracts: infer one from a reference dataset, rewrite its profile")
    schema_sub = p.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    g = schema_sub.add_parser("infer", help="write a contract YAML and reference profile from a reference dataset")
    g.add_argument("--data", required=True, help="reference dataset: a local .parquet path or s3://bucket/key")
    g.add_argument("--dataset", required=True, help="the contract's dataset name, e.g. subscriber_snapshots")
    g.add_argument("--key", action="append", default=[], help="key column that must be unique (repeatable)")
    g.add_argument("--timestamp", help="event timestamp column")
    g.add_argument("--out", required=True, help="contract file to write, e.g. my-project/contracts/raw.yaml")
    g.set_defaults(func=_schema_infer)
    g = schema_sub.add_parser("profile", help="rewrite an edited contract's reference profile from the reference data")
    g.add_argument("--contract", required=True, help="the contract file, e.g. my-project/contracts/raw.yaml")
    g.add_argument("--data", required=True, help="reference dataset: a local .parquet path or s3://bucket/key")
    g.set_defaults(func=_schema_profile)

    p = sub.add_parser("validate", help="check a dataset against its data contract; HTML, JSON and Markdown reports")
    p.add_argument("--data", required=True, help="dataset to check: a local .parquet path or s3://bucket/key")
    add_project_argument(p)
    p.add_argument("--stage", choices=["raw", "features"], default="raw",
                   help="which of the project's contracts (default raw)")
    p.add_argument("--contract", help="a contract file or s3:// URI instead of the project's")
    p.add_argument("--report-dir", default="validation-report", help="where to write the reports")
    p.add_argument("--publish", action="store_true", help="also publish the reports to S3")
    p.set_defaults(func=_validate)

    p = sub.add_parser("features", help="the Feast feature store: read the online store")
    feat_sub = p.add_subparsers(dest="features_command", metavar="ACTION", required=True)
    g = feat_sub.add_parser("online", help="print the online feature vector of one or more entities")
    add_project_argument(g)
    g.add_argument("--id", action="append", required=True, help="entity id, the project's join key (repeatable)")
    g.set_defaults(func=_features_online)

    p = sub.add_parser("skew", help="compare served feature vectors with an offline point-in-time recomputation")
    add_project_argument(p)
    p.add_argument("--served", required=True, help="logged served vectors: Parquet path or s3:// URI with the "
                   "project's entity key, event timestamp and feature columns")
    p.add_argument("--max-mismatch-rate", type=float, default=0.0, help="allowed mismatch rate per feature")
    p.add_argument("--report-dir", default="skew-report", help="where to write skew.json and skew.md")
    p.set_defaults(func=_skew)

    p = sub.add_parser("approve", help="record a human approval of a model version for production")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--by", required=True, help="who approves")
    p.add_argument("--reason", required=True, help="why")
    p.set_defaults(func=_approve)

    p = sub.add_parser("promote", help="move production to a blessed (and, if high-stakes, approved) version")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    p.add_argument("--by", help="who (default: your login name)")
    add_project_argument(p)
    p.set_defaults(func=_promote)

    p = sub.add_parser("rollback", help="point production back at the version it replaced")
    p.add_argument("model")
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    p.add_argument("--by", help="who (default: your login name)")
    p.add_argument("--from", dest="from_version", metavar="VERSION",
                   help="the production version to roll back; rerunning with it never rolls back twice")
    p.set_defaults(func=_rollback)

    p = sub.add_parser("lineage", help="model -> run -> data -> features -> code -> image -> environment")
    p.add_argument("model")
    p.add_argument("version")
    p.set_defaults(func=_lineage)

    p = sub.add_parser("audit", help="the append-only audit trail of a model (promotions, approvals, rollbacks)")
    p.add_argument("model")
    p.set_defaults(func=_audit)

    p = sub.add_parser("run", help="run a compiled pipeline (e.g. training) on this machine with kfp.local")
    p.add_argument("pipeline", help="pipeline name, e.g. training (pipelines/compiled/<name>_pipeline.yaml)")
    p.add_argument("--local", action="store_true", help="run with kfp.local against the local platform")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="pipeline parameter, repeatable (e.g. --param data_uri=s3://mlops/x.parquet)")
    p.add_argument("--json", metavar="FILE", help="also write the run's outputs and timings to FILE")
    p.add_argument("--verbose", action="store_true", help="stream every task's logs to the terminal")
    p.set_defaults(func=_run)

    p = sub.add_parser("compile", help="compile pipelines and components to YAML (pipelines/compiled, components/*)")
    p.set_defaults(func=_compile)

    from mlops.cli.serving import register as register_serving

    register_serving(sub)

    from mlops.cli.batch import register as register_batch

    register_batch(sub)

    from mlops.cli.monitoring import register as register_monitoring

    register_monitoring(sub)

    from mlops.cli.cluster import register as register_cluster

    register_cluster(sub)

    from mlops.cli.project import register as register_project

    register_project(sub)

    p = sub.add_parser("demo", help="the end-to-end story on this machine: platform, data, training, registry")
    add_project_argument(p)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mlops.platform.local import load_platform_env

    args = build_parser().parse_args(argv)
    try:
        load_platform_env()
        return args.func(args)
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
