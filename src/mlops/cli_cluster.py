"""`mlops cluster`: the bootstrap Job's command, the manifests' static checks, and the kind end-to-end check."""

from __future__ import annotations

import argparse

from mlops.errors import ConfigError


def _bootstrap(args: argparse.Namespace) -> int:
    from mlops.cluster.bootstrap import bootstrap
    from mlops.storage import ObjectStore

    result = bootstrap(ObjectStore.from_env(), buckets=args.bucket, seed_uri=None if args.no_demo_data else args.seed_uri,
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

    run_e2e(args.root, cluster=args.cluster, image=args.image, run_timeout_s=args.run_timeout)
    return 0


def register(sub) -> None:
    from mlops.cluster.bootstrap import DEMO_DATA_URI, DEMO_ROWS, DEMO_SEED

    p = sub.add_parser("cluster", help="Kubernetes: the bootstrap Job's command, and the kind end-to-end check")
    cluster_sub = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    b = cluster_sub.add_parser("bootstrap", help="wait for the object store, create the buckets, seed the demo data "
                               "(idempotent; what the bucket-bootstrap Job runs)")
    b.add_argument("--bucket", action="append", default=[], help="another bucket to create (repeatable); "
                   "MLOPS_BUCKET is always created")
    b.add_argument("--seed-uri", default=DEMO_DATA_URI, help="where the demo data goes (the training pipeline's "
                   "default data_uri)")
    b.add_argument("--no-demo-data", action="store_true", help="create the buckets only (real clusters)")
    b.add_argument("--rows", type=int, default=DEMO_ROWS)
    b.add_argument("--seed", type=int, default=DEMO_SEED)
    b.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the object store to answer")
    b.set_defaults(func=_bootstrap)
    lint = cluster_sub.add_parser("lint", help="build every kustomization and check it: strict schemas, pinned "
                                  "images, non-root containers with requests and limits, no plaintext credentials")
    lint.add_argument("manifests", nargs="?", default="manifests", help="directory of kustomizations")
    lint.set_defaults(func=_lint)
    e = cluster_sub.add_parser("e2e", help="on a kind cluster from `make kind-up`: run the compiled training "
                               "pipeline in Kubeflow, serve the model with KServe, send V2 requests through the "
                               "gateway, one canary step (scripts/kind-e2e.sh runs it)")
    e.add_argument("--root", default=".", help="the repository (kind-config.yaml, manifests/, pipelines/compiled/)")
    e.add_argument("--cluster", default="mlops", help="kind cluster name (kubeconfig context kind-NAME)")
    e.add_argument("--image", help="serving image for the transformer (default: the template's)")
    e.add_argument("--run-timeout", type=int, default=2400, help="seconds to wait for each pipeline run")
    e.set_defaults(func=_e2e)
