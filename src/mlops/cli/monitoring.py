"""`mlops monitor`: one monitoring run from the command line (what the scheduled pipeline runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlops.cli.project import add_project_argument, project_of

# Exit codes a scheduler can branch on: 0 nothing to do, 3 alerts recorded (notify), 4 retraining
# warranted, 5 production rolled back. 1 stays "the run itself failed".
DECISION_EXIT = {"none": 0, "ignore": 0, "notify": 3, "retrain": 4, "rollback": 5}


def _monitor(args: argparse.Namespace) -> int:
    from mlops.monitoring.run import run_monitor

    run = run_monitor(project_of(args), policy=args.policy, rollout_policy=args.rollout_policy, labels_uri=args.labels, training_data=args.training_data,
                      target=args.target, namespace=args.namespace, now=args.now, launch=not args.dry_run,
                      actor=args.by)
    print("\n" + run.markdown)
    if args.html:
        Path(args.html).write_text(run.html)
        print(f"HTML report: {args.html}")
    return DECISION_EXIT[run.result.decision]


def register(sub) -> None:
    p = sub.add_parser("monitor", help="drift and realized performance of the latest window; retrain or roll back "
                       "when the monitoring policy says so")
    add_project_argument(p)
    p.add_argument("--policy", help="a monitoring policy file (default: the project's)")
    p.add_argument("--labels", help="label events (Parquet file, or a prefix ending in /): the project's entity key, "
                   "label and label timestamp; request_id + row for an exact join")
    p.add_argument("--training-data", help="fresh labeled data to retrain on when retraining is warranted")
    p.add_argument("--rollout-policy", help="rollout policy for a retrained model (default: the monitoring "
                   "policy's retraining.rollout_policy)")
    p.add_argument("--target", choices=["local", "cluster"], default="local",
                   help="where pipelines run and traffic moves: kfp.local and `mlops serve`, or Kubeflow and KServe")
    p.add_argument("--namespace", help="cluster: namespace of the model's InferenceService")
    p.add_argument("--now", help="end of the window (default: now), e.g. 2026-01-31T00:00:00Z")
    p.add_argument("--dry-run", action="store_true", help="decide and record, but launch and change nothing")
    p.add_argument("--html", help="also write the HTML report to this file")
    p.add_argument("--by", help="who runs it (default: your login name)")
    p.set_defaults(func=_monitor)
