"""`mlops serve | traffic | rollout`: online serving from the command line.

``register`` adds the commands to the main parser.
"""

from __future__ import annotations

import argparse
import json

from mlops.cli.project import add_project_argument, project_of
from mlops.errors import ConfigError

ROLLED_BACK_EXIT = 2  # distinct from 1 (an error): the rollout worked, the candidate did not


def _resolve_version(model: str, ref: str) -> str:
    from mlops.registry.model_files import resolve_model
    from mlops.training import tracking

    tracking.connect()
    return resolve_model(model, ref).version


def _serve(args: argparse.Namespace) -> int:
    from mlops.serving.local import LocalServing
    from mlops.serving.traffic_replay import known_ids, request_body

    project = project_of(args)
    serving = LocalServing(project)
    model = project.names.model
    if args.action == "up":
        version = _resolve_version(model, args.version)
        urls = serving.up(version, port=args.port, request_log=not args.no_request_log)
        for name, url in urls.items():
            print(f"{name:>12}  {url}")
        example = json.dumps(request_body(project, (known_ids(project, 1) or ["<id>"])[-1], "v1"))
        print(f"\ntry: curl -s -H 'Content-Type: application/json' {urls['transformer']}/v1/models/{model}:predict "
              f"-d '{example}'")
        return 0
    if args.action == "down":
        stopped = serving.down()
        print(f"stopped {', '.join(stopped) if stopped else 'nothing (not running)'}")
        return 0
    status = serving.status()
    for name, url in status["urls"].items():
        print(f"{name:>12}  {url}")
    for route in status["routes"]:
        fault = f" fault {route['fault']}" if any(route["fault"].values()) else ""
        print(f"{'route':>12}  v{route['version']} {route['weight']}%{fault}")
    return 0 if "transformer" in status["urls"] else 1


def _traffic(args: argparse.Namespace) -> int:
    from mlops.serving.local import LocalServing
    from mlops.serving.traffic_replay import known_ids, replay

    project = project_of(args)
    url = args.url or LocalServing(project).urls().get("transformer")
    if not url:
        raise ConfigError(f"no transformer serves {project.names.model} here: start one with `mlops serve up` "
                          "or pass --url")
    if args.requests is None and args.duration is None:
        args.requests = 100
    stats = replay(url, project, known_ids(project), rate=args.rate, requests=args.requests,
                   duration_s=args.duration, protocol=args.protocol, seed=args.seed)
    print(stats.summary())
    return 0 if set(stats.statuses) <= {200} else 1


def parse_fault(text: str) -> tuple[str, dict]:
    """``VERSION:error_percent=20,delay_ms=50`` -> ("VERSION", {...})."""
    version, _, spec = text.partition(":")
    if not version or not spec:
        raise ConfigError(f"--fault {text!r} must look like VERSION:error_percent=20,delay_ms=50")
    fault = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if key not in ("error_percent", "delay_ms"):
            raise ConfigError(f"--fault {text!r}: unknown setting {key!r} (error_percent, delay_ms)")
        try:
            fault[key] = float(value)
        except ValueError:
            raise ConfigError(f"--fault {text!r}: {key} must be a number, got {value!r}") from None
    return version, fault


def _rollout(args: argparse.Namespace) -> int:
    from mlops.rollout.controller import PROMOTED
    from mlops.rollout.run import run_rollout

    result = run_rollout(project_of(args), args.candidate, policy=args.policy, target=args.target, faults=dict(parse_fault(f) for f in args.fault), actor=args.by,
                         namespace=args.namespace)
    print("\n" + result.markdown())
    if result.report_uri:
        print(f"report: {result.report_uri}")
    return 0 if result.outcome == PROMOTED else ROLLED_BACK_EXIT


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a model locally: predictor(s), traffic splitter and feature transformer")
    p.add_argument("action", choices=["up", "status", "down"])
    add_project_argument(p)
    p.add_argument("--version", default="production", help="version number or alias to serve (up)")
    p.add_argument("--port", type=int, default=8080, help="the transformer's port on 127.0.0.1 (up)")
    p.add_argument("--no-request-log", action="store_true", help="do not log served rows to S3 (up)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("traffic", help="replay inference requests for known entities at a steady rate")
    add_project_argument(p)
    p.add_argument("--url", help="transformer base URL (default: the local `mlops serve` one)")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second")
    p.add_argument("--requests", type=int, help="how many (default 100 unless --duration)")
    p.add_argument("--duration", type=float, help="for how many seconds")
    p.add_argument("--protocol", choices=["v1", "v2"], default="v1")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_traffic)

    p = sub.add_parser("rollout", help="shadow -> canary steps -> promote a blessed candidate, or roll back")
    add_project_argument(p)
    p.add_argument("--candidate", default="staging", help="version number or alias (default: staging)")
    p.add_argument("--policy", help="a rollout policy file or s3:// URI (default: the project's)")
    p.add_argument("--by", help="who runs it (default: your login name)")
    p.add_argument("--target", choices=["local", "cluster"], default="local",
                   help="local `mlops serve` processes, or the model's InferenceService in a cluster")
    p.add_argument("--namespace", help="cluster: the namespace of the InferenceService named after the model "
                   "(default: $MLOPS_SERVING_NAMESPACE or mlops)")
    p.add_argument("--fault", action="append", default=[], metavar="VERSION:error_percent=N,delay_ms=N",
                   help="local rehearsal: inject faults into one version's route at the splitter")
    p.set_defaults(func=_rollout)
