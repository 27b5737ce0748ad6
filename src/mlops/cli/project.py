"""`mlops project list | init | check | push`, and the ``--project`` option every project command shares.

``register`` adds the commands to the main parser.
"""

from __future__ import annotations

import argparse
import os
import sys

from mlops.errors import ConfigError
from mlops.project.check import DEFAULT_SAMPLE_ROWS

ENV_PROJECT = "MLOPS_PROJECT"


def add_project_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", default=os.environ.get(ENV_PROJECT),
                        help="the project: an example's name (mlops project list), a project folder, or a pushed "
                             f"s3:// archive (default ${ENV_PROJECT})")


def project_of(args: argparse.Namespace):
    """The project ``--project`` names, loaded and checked; a one-line error when none is named."""
    from mlops.project.source import example_names, resolve_project

    named = getattr(args, "named_project", None)  # `mlops project check DIR`: the same as --project DIR
    if named:
        if args.project and args.project != named and args.project != os.environ.get(ENV_PROJECT):
            raise ConfigError(f"two projects named: {named} and --project {args.project}; name one")
        args.project = named
    if not args.project:
        raise ConfigError(f"name the project with --project (or {ENV_PROJECT}): an example "
                          f"({', '.join(example_names())}), a project folder, or a pushed s3:// archive")
    return resolve_project(args.project)


def _list(args: argparse.Namespace) -> int:
    from mlops.project.source import example_names, examples_dir, resolve_project

    for name in example_names():
        project = resolve_project(name)
        print(f"{name:20s} {project.task.name:22s} {project.description}")
    print(f"(examples in {examples_dir()})")
    return 0


def _print_check(report) -> None:
    """Each check that passed or was not tried on stdout, each problem as one ``error:`` line on stderr."""
    for line in report.done:
        print(f"ok  {line}")
    for line in report.skipped:
        print(f"--  {line}")
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from mlops.project.check import check_project

    project = project_of(args)
    report = check_project(project, data_uri=args.data, sample_rows=args.sample_rows)
    _print_check(report)
    if not report.passed:
        print(f"project {project.name}: {len(report.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"project {project.name} ({project.digest[:19]}...) is ready")
    return 0


def _push(args: argparse.Namespace) -> int:
    from mlops.platform.storage import ObjectStore
    from mlops.project import push_project
    from mlops.project.check import check_project

    project = project_of(args)
    report = check_project(project)
    if not report.passed:  # nothing is uploaded
        _print_check(report)
        return 1
    uri = push_project(project.root, ObjectStore.from_env())
    print(f"pushed {project.name} ({project.digest[:19]}...) to {uri}\n"
          f"pipelines and servers take it as: project={uri}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from mlops.project.scaffold import DataColumns, init_project

    data = columns = None
    if args.data:
        from mlops.platform.datasets import read_table

        missing = [flag for flag, value in (("--key", args.key), ("--timestamp", args.timestamp),
                                            ("--label", args.label)) if not value]
        if missing:
            raise ConfigError(f"project init --data needs {', '.join(missing)}: which columns are the entity key, "
                              "the event time and the label")
        data = read_table(args.data)
        if len(data) > args.sample_rows:
            data = data.sample(args.sample_rows, random_state=0).sort_index()
        columns = DataColumns(args.key, args.timestamp, args.label, args.positive, tuple(args.sensitive or ()),
                              args.label_timestamp)
    elif any((args.key, args.timestamp, args.label, args.positive, args.sensitive, args.label_timestamp)):
        raise ConfigError("--key, --timestamp, --label, --positive, --sensitive and --label-timestamp describe "
                          "--data; name the data too, or leave them all out for a template to fill in")
    root = init_project(args.dir, args.name, data, columns, source=args.data or "the data")
    print(f"wrote project {args.name} in {root}")
    if data is None:
        print(f"fill in every <REQUIRED: ...> in {root / 'project.yaml'}, then: mlops project check --project {root}")
    else:
        print(f"inferred from {len(data):,} rows of {args.data}; REVIEW the marked bounds, then: "
              f"mlops project check --project {root} --data {args.data}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("project", help="projects: list the examples, start one, check one, push one to S3 for a cluster")
    project_sub = p.add_subparsers(dest="project_command", metavar="ACTION", required=True)
    g = project_sub.add_parser("list", help="the example projects shipped with the suite")
    g.set_defaults(func=_list)
    g = project_sub.add_parser("check", help="load a project and everything it names: hooks, model, gate, policies, "
                               "Feast definitions; with --data, a dry run on a sample of that data")
    add_project_argument(g)
    g.add_argument("named_project", nargs="?", metavar="PROJECT", help="the project, as --project names it")
    g.add_argument("--data", help="Parquet file (path or s3://) of the project's raw data: validated against its raw "
                                  "contract, then features, labels and a small training on a sample")
    g.add_argument("--sample-rows", type=_positive_int, default=DEFAULT_SAMPLE_ROWS,
                   help=f"rows of --data the dry run uses (default {DEFAULT_SAMPLE_ROWS:,})")
    g.set_defaults(func=_check)
    g = project_sub.add_parser("init", help="a new project folder: from a sample of your data (--data with its key, "
                               "timestamp and label columns), or a template with every required field marked")
    g.add_argument("name", help="the project's name: it names the model, its experiment, Feast project and S3 prefix")
    g.add_argument("--dir", default=".", help="where the project folder is created (default: here)")
    g.add_argument("--data", help="Parquet file (path or s3://) of the raw data to infer features and contracts from")
    g.add_argument("--key", help="the entity's id column (the feature store's join key)")
    g.add_argument("--timestamp", help="the event-time column: when a row's facts were known")
    g.add_argument("--label", help="the outcome column")
    g.add_argument("--positive", help="the positive class as the label holds it (read from 0/1 or booleans if left out)")
    g.add_argument("--sensitive", nargs="*", metavar="COLUMN", help="sensitive attributes: never features, fairness "
                                                                    "judged on each")
    g.add_argument("--label-timestamp", help="when the label became known (optional)")
    g.add_argument("--sample-rows", type=_positive_int, default=20_000,
                   help="rows of --data to infer from (default 20,000)")
    g.set_defaults(func=_init)
    g = project_sub.add_parser("push", help="check a project and publish it to S3, content-addressed, for pipelines "
                               "and servers that cannot read this machine's folders")
    add_project_argument(g)
    g.add_argument("named_project", nargs="?", metavar="PROJECT", help="the project, as --project names it")
    g.set_defaults(func=_push)
