"""`mlops cluster`: the bootstrap Job's command, the manifests' static checks, and the kind end-to-end check."""

from __future__ import annotations

import argparse

from mlops.cli.project import add_project_argument, project_of
from mlops.errors import ConfigError


def _bootstrap(args: argparse.Namespace) -> int:
    from mlops.cluster.bootstrap import bootstrap
    from mlops.platform.storage import ObjectStore

    project = None if args.no_demo_data else project_of(args)
    result = bootstrap(ObjectStore.from_env(), buckets=args.bucket, project=project, seed_uri=args.seed_uri,
                       rows=args.rows, seed=args.seed, wait_s=args.wait)
    print(f"bootstrap done: buckets {', '.join(result.buckets)}; "
          + (f"demo data seeded at {result.seeded}" if result.seeded else "no data written"))
    return 0


def _lint(args: argparse.Namespace) -> int:
    from mlops.cluster.lint import lint_tree

    found = lint_tree(args.manifests)
    if not found:
        raise ConfigError(f"no kustomization.yaml under {args.manifests}")
    for directory, problems in found.items():
        print(f"{directory}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  {problem}")
    return 1 if any(found.values()) else 0


def _e2e(args: argparse.Namespace) -> int:
    from mlops.cluster.e2e import run_e2e

    run_e2e(project_of(args), args.root, cluster=args.cluster, image=args.image, run_timeout_s=args.run_timeout)
    return 0


def register(sub) -> None:
    from mlops.cluster.bootstrap import DEMO_ROWS

    p = sub.add_parser("cluster", help="Kubernetes: the bootstrap Job's command, and the kind end-to-end check")
    cluster_sub = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    b = cluster_sub.add_parser("bootstrap", help="wait for the object store, create the buckets, seed the demo data "
                               "(idempotent; what the bucket-bootstrap Job runs)")
    b.add_argument("--bucket", action="append", default=[], help="another bucket to create (repeatable); "
                   "MLOPS_BUCKET is always created")
    add_project_argument(b)
    b.add_argument("--seed-uri", help="where the demo data goes (default: the project's training data, where the "
                   "training pipeline looks when data_uri is empty)")
    b.add_argument("--no-demo-data", action="store_true", help="create the buckets only (real clusters)")
    b.add_argument("--rows", type=int, default=DEMO_ROWS)
    b.add_argument("--seed", type=int, help="default: the project's split seed")
    b.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the object store to answer")
    b.set_defaults(func=_bootstrap)
    lint = cluster_sub.add_parser("lint", help="build every kustomization and check it: strict schemas, pinned "
                                  "images, non-root containers with requests and limits, no plaintext credentials")
    lint.add_argument("manifests", nargs="?", default="manifests", help="directory of kustomizations")
    lint.set_defaults(func=_lint)
    e = cluster_sub.add_parser("e2e", help="on a kind cluster from `make kind-up`: run the compiled training "
                               "pipeline in Kubeflow, serve the model with KServe, send V2 requests through the "
                               "gateway, one canary step (scripts/kind-e2e.sh runs it)")
    add_project_argument(e)
    e.add_argument("--root", default=".", help="the repository (kind-config.yaml, manifests/, pipelines/compiled/)")
    e.add_argument("--cluster", default="mlops", help="kind cluster name (kubeconfig context kind-NAME)")
    e.add_argument("--image", help="serving image for the transformer (default: the template's)")
    e.add_argument("--run-timeout", type=int, default=2400, help="seconds to wait for each pipeline run")
    e.set_defaults(func=_e2e)
