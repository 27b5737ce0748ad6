"""What a fresh cluster's object store needs before the first pipeline run.

The bucket-bootstrap Job (manifests/base/minio) runs ``mlops cluster
bootstrap --project NAME`` in the component image: it waits for MinIO to
answer, creates the buckets, and seeds the project's demo data (its own
generator) where the training pipeline looks when ``data_uri`` is empty, so
the compiled pipelines also run from the Kubeflow dashboard with only the
project named. Every step is idempotent: a rerun finds the
buckets and the data in place and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlops.errors import ConfigError, StorageError
from mlops.platform.storage import ObjectStore, parse_s3_uri

DEMO_ROWS = 20_000  # what `make demo` trains on, so both paths tell the same story


@dataclass
class BootstrapResult:
    buckets: list[str] = field(default_factory=list)
    seeded: str | None = None  # the URI written, None when the data was already there
    waited_s: float = 0.0


def wait_for_store(store: ObjectStore, timeout_s: float, progress: Callable[[str], None] = print) -> float:
    """Seconds until the store answers with our credentials; StorageError after ``timeout_s``.

    MinIO may still be starting when the Job does: connection failures are
    retried, rejected credentials are not (waiting would not fix them).
    """
    started, last = time.monotonic(), ""
    while True:
        try:
            store.check()
            return time.monotonic() - started
        except StorageError as exc:
            if "rejected the credentials" in str(exc):
                raise
            waited = time.monotonic() - started
            if waited >= timeout_s:
                raise StorageError(f"the object store did not answer within {timeout_s:.0f} s: {exc}") from None
            if str(exc) != last:
                progress(f"waiting for the object store: {exc}")
                last = str(exc)
            time.sleep(min(2.0, max(timeout_s - waited, 0.1)))


def bootstrap(store: ObjectStore, *, buckets: list[str], project=None, seed_uri: str | None = None,
              rows: int = DEMO_ROWS, seed: int | None = None, wait_s: float = 300.0,
              progress: Callable[[str], None] = print) -> BootstrapResult:
    """Create ``buckets`` (the store's own bucket first) and, with ``project``, seed its demo data at
    ``seed_uri`` (default: the project's training data location) unless present."""
    from mlops.platform.datasets import write_table
    from mlops.project import dataset_uri
    from mlops.project.data import generate_data

    if project is not None:  # refused before waiting or writing anything
        if project.data_hook is None:
            raise ConfigError(f"{project.where} has no data generator to seed demo data with; pass --no-demo-data")
        if rows < 1:
            raise ConfigError(f"demo data rows must be at least 1, got {rows}")
        seed_uri = seed_uri or dataset_uri(project, "", store.bucket)
    result = BootstrapResult(waited_s=wait_for_store(store, wait_s, progress))
    for bucket in dict.fromkeys([store.bucket, *buckets]):
        result.buckets.append(store.ensure_bucket(bucket))
        progress(f"bucket {bucket}: ready")
    if project is not None:
        bucket, key = parse_s3_uri(seed_uri)
        if store.exists(key, bucket):
            progress(f"{seed_uri}: already there, left as it is")
        else:
            try:
                df = generate_data(project, rows, seed=seed)
            except ValueError as exc:
                raise ConfigError(f"demo data of project {project.name}: {exc}") from None
            digest = write_table(df, seed_uri, store)
            result.seeded = seed_uri
            progress(f"{seed_uri}: seeded {len(df)} rows of project {project.name}'s demo data "
                     f"(seed {project.split.seed if seed is None else seed}, {digest})")
    return result
