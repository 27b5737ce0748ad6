"""`mlops project list | check | push`, and the ``--project`` option every project command shares.

Kept apart from :mod:`mlops.cli` so each file stays small; ``register`` adds
the commands to the main parser.
"""

from __future__ import annotations

import argparse
import os

from mlops.errors import ConfigError

ENV_PROJECT = "MLOPS_PROJECT"


def add_project_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", default=os.environ.get(ENV_PROJECT),
                        help="the project: an example's name (mlops project list), a project folder, or a pushed "
                             f"s3:// archive (default ${ENV_PROJECT})")


def project_of(args: argparse.Namespace):
    """The project ``--project`` names, loaded and checked; a one-line error when none is named."""
    from mlops.project.source import example_names, resolve_project

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


def _check(args: argparse.Namespace) -> int:
    from mlops.project_check import check_project

    project = project_of(args)
    for line in check_project(project):
        print(f"ok  {line}")
    print(f"project {project.name} ({project.digest[:19]}...) is ready")
    return 0


def _push(args: argparse.Namespace) -> int:
    from mlops.project import push_project
    from mlops.project_check import check_project
    from mlops.storage import ObjectStore

    project = project_of(args)
    check_project(project)
    uri = push_project(project.root, ObjectStore.from_env())
    print(f"pushed {project.name} ({project.digest[:19]}...) to {uri}\n"
          f"pipelines and servers take it as: project={uri}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("project", help="projects: list the examples, check one, push one to S3 for a cluster")
    project_sub = p.add_subparsers(dest="project_command", metavar="ACTION", required=True)
    g = project_sub.add_parser("list", help="the example projects shipped with the suite")
    g.set_defaults(func=_list)
    g = project_sub.add_parser("check", help="load a project and everything it names: hooks, model, gate, policies")
    add_project_argument(g)
    g.set_defaults(func=_check)
    g = project_sub.add_parser("push", help="check a project and publish it to S3, content-addressed, for pipelines "
                               "and servers that cannot read this machine's folders")
    add_project_argument(g)
    g.set_defaults(func=_push)
