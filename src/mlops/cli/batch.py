"""`mlops batch-predict`: score a large Parquet dataset with a registered model, published atomically on S3.

``register`` adds the command to the main parser.
"""

from __future__ import annotations

import argparse

from mlops.cli.project import add_project_argument, project_of
from mlops.errors import ConfigError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _batch_predict(args: argparse.Namespace) -> int:
    from mlops.registry.model_files import request_scoring_threads

    request_scoring_threads(1)  # before scikit-learn loads: one scoring thread per process, shards in parallel
    from mlops.batch.report import summary
    from mlops.batch.run import run_batch_prediction
    from mlops.batch.scoring import DEFAULT_CHUNK_ROWS

    if args.version and not args.version.isdigit():
        raise ConfigError(f"--version must be a version number such as 3, got {args.version!r} (aliases: --alias)")
    result = run_batch_prediction(project_of(args), args.input, args.output,
                                  args.version or args.alias or "production", shards=args.shards,
                                  workers=args.workers, chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
                                  keep=args.keep, progress_interval_s=args.progress_every)
    print(summary(args.output.rstrip("/"), result.manifest, result.already_complete))
    return 0


def register(sub) -> None:
    p = sub.add_parser("batch-predict", help="score a Parquet file or prefix with a registered model; atomic output",
                       description="Score every row of a Parquet file or prefix (local or s3://) with a registered "
                       "model version of the project, in shards scored in parallel, and publish the predictions under an s3:// "
                       "prefix through a manifest: readers see all of them or none. Rerunning the same input "
                       "with the same model version does nothing.")
    p.add_argument("--input", required=True, help="a Parquet file or prefix: s3://bucket/key, s3://bucket/prefix/, "
                   "a local file or directory; it must hold the model's feature columns")
    p.add_argument("--output", required=True, help="the s3://bucket/prefix the predictions are published under")
    add_project_argument(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="the model version number to score with")
    which.add_argument("--alias", help="the registry alias to score with (default production)")
    p.add_argument("--keep", help="input columns copied to the output, comma-separated (default: the project's "
                   "entity key if the input has it)")
    p.add_argument("--shards", type=_positive, help="split the input into this many shards of Parquet row groups "
                   "(default: one per CPU)")
    p.add_argument("--workers", type=_positive, help="processes scoring shards at once (default: one per CPU)")
    p.add_argument("--chunk-rows", type=_positive,
                   help="rows scored at a time; memory does not grow with the input (default 65,536)")
    p.add_argument("--progress-every", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between progress lines on stderr (default 5)")
    p.set_defaults(func=_batch_predict)
