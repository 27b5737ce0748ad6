"""Where batch predictions go, and how they become visible: all at once, through a manifest.

Layout under the output prefix::

    _MANIFEST.json                     the only thing readers trust; written last
    parts-<job>/part-00000-of-00004.parquet   the parts the manifest lists
    _staging/<attempt>/plan.json       a run's plan
    _staging/<attempt>/shard-00000.parquet    a shard's output, before the commit
    _LOCK.json                         held while a commit runs

A shard writes only into its own run's staging prefix. The commit (under
the lock) checks that every shard's output is there with the rows the plan
gave it, copies them to names derived from the job (input fingerprint,
model version, kept columns, threshold), writes the manifest, and only then
removes what the manifest no longer lists: older parts, every run's
staging. A crash anywhere before the manifest leaves the previous output
(or none) visible; a rerun of the same job finds the same part names, so
nothing is ever duplicated.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from mlops.batch.inputs import InputFile, open_parquet
from mlops.batch.plan import Job
from mlops.errors import DataError, StorageError
from mlops.platform.storage import MANIFEST, ObjectStore, join_key, parse_s3_uri

FORMAT = "mlops.batch-predictions/1"
STAGING = "_staging"
LOCK = "_LOCK.json"
_OURS = re.compile(rf"^(?:{re.escape(MANIFEST)}|{re.escape(LOCK)}|{STAGING}/.+|parts-[0-9a-f]{{16}}/part-\d+-of-\d+\.parquet)$")
COMMIT_LEASE_S = 120.0  # copies are server-side: a thousand parts take seconds; a crashed holder blocks no longer


@dataclass(frozen=True)
class Output:
    """An output prefix on S3 and the names inside it."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> "Output":
        if not uri.startswith("s3://"):
            raise DataError(f"the output {uri!r} must be an s3:// prefix: predictions are published there with a "
                            "manifest, so readers never see a partial output (locally: `mlops platform up`)")
        bucket, key = parse_s3_uri(uri)
        return cls(bucket, key.strip("/"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, *parts: str) -> str:
        return join_key(self.prefix, *parts)

    def staging(self, attempt: str) -> str:
        return self.key(STAGING, attempt)

    def plan_key(self, attempt: str) -> str:
        return self.key(STAGING, attempt, "plan.json")

    def staged_part(self, attempt: str, index: int) -> str:
        return self.key(STAGING, attempt, f"shard-{index:05d}.parquet")

    def part(self, job: Job, index: int) -> str:
        return self.key(f"parts-{job.key[:16]}", f"part-{index:05d}-of-{len(job.shards):05d}.parquet")


# -- before a run -----------------------------------------------------------------------------
def check_output_location(store: ObjectStore, out: Output, input_uri: str) -> None:
    """Refuse an output that overlaps the input or already holds objects that are not ours.

    The commit deletes what its manifest does not list: it must never touch
    data it did not write.
    """
    if input_uri.startswith("s3://"):
        bucket, key = parse_s3_uri(input_uri)
        a, b = key.strip("/") + "/", out.prefix + "/"
        if bucket == out.bucket and (a.startswith(b) or b.startswith(a)):
            raise DataError(f"the output {out.uri} and the input {input_uri} overlap: choose an output prefix "
                            "outside the input (a rerun would read its own predictions)")
    store.ensure_bucket(out.bucket)
    foreign = [k for k in store.list_keys(out.prefix, out.bucket) if not _OURS.match(k[len(out.prefix) + 1:])]
    if foreign:
        raise DataError(f"the output {out.uri} already holds objects that are not batch predictions (e.g. "
                        f"{foreign[0]}): choose an empty prefix or one a previous batch prediction wrote")


def save_plan(store: ObjectStore, job: Job) -> None:
    out = Output.parse(job.output_uri)
    store.put_bytes(job.to_json().encode(), out.plan_key(job.attempt), out.bucket, "application/json")


def load_plan(store: ObjectStore, output_uri: str, attempt: str) -> Job:
    out = Output.parse(output_uri)
    key = out.plan_key(attempt)
    if not store.exists(key, out.bucket):
        raise DataError(f"no plan for run {attempt!r} at s3://{out.bucket}/{key}: the run was never planned, or a "
                        "later run's commit removed its staging; plan and run it again")
    return Job.from_json(store.get_bytes(key, out.bucket).decode())


# -- the manifest ------------------------------------------------------------------------------
def read_manifest(output_uri: str, store: ObjectStore | None = None) -> dict | None:
    """The committed manifest of ``output_uri``, or None when nothing was committed there."""
    store = store or ObjectStore.from_env()
    out = Output.parse(output_uri)
    if not store.exists(out.key(MANIFEST), out.bucket):
        return None
    manifest = json.loads(store.get_bytes(out.key(MANIFEST), out.bucket))
    if manifest.get("format") != FORMAT:
        raise DataError(f"{out.uri}/{MANIFEST} is not a batch predictions manifest (format "
                        f"{manifest.get('format')!r}, expected {FORMAT!r})")
    return manifest


def completed(store: ObjectStore, job: Job) -> dict | None:
    """The manifest, when the output already holds exactly this job's predictions (every part in place)."""
    out = Output.parse(job.output_uri)
    manifest = read_manifest(job.output_uri, store)
    if manifest is None or manifest["job"] != job.key:
        return None
    for part in manifest["parts"]:
        found = store.stat(out.key(part["key"]), out.bucket)
        if found is None or found.sha256 != part["sha256"]:
            return None  # removed or replaced behind our back: score again
    return manifest


def _manifest(job: Job, parts: list[dict], committed_at: float) -> dict:
    return {
        "format": FORMAT, "job": job.key, "attempt": job.attempt,
        "input": {"uri": job.input_uri, "fingerprint": job.fingerprint, "rows": job.rows,
                  "files": [f.to_json() for f in job.files]},
        "model": {"name": job.model.name, "version": job.model.version, "digest": job.model.digest},
        "threshold": job.threshold, "keep": list(job.keep), "scored_at": job.scored_at,
        "rows": sum(p["rows"] for p in parts), "parts": parts,
        "seconds": round(committed_at - job.planned_at, 3),
        "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(committed_at)),
    }


# -- the commit --------------------------------------------------------------------------------
def _staged_rows(store: ObjectStore, out: Output, key: str, size: int, etag: str) -> int:
    return open_parquet(InputFile(f"s3://{out.bucket}/{key}", size, etag), store).metadata.num_rows


def commit(store: ObjectStore, job: Job) -> tuple[dict, bool]:
    """Publish a run's staged shards as the output; returns (manifest, whether this call published it).

    Idempotent: when the output already holds this job (another attempt
    committed it) nothing changes and the existing manifest is returned.
    """
    out = Output.parse(job.output_uri)
    with store.lease_lock(out.key(LOCK), f"the commit lock of {out.uri}", wait_s=COMMIT_LEASE_S,
                          lease_s=COMMIT_LEASE_S, bucket=out.bucket):
        done = completed(store, job)
        if done is not None:
            _remove_unlisted(store, out, done)
            return done, False
        staged, problems = [], []
        for shard in job.shards:
            key = out.staged_part(job.attempt, shard.index)
            found = store.stat(key, out.bucket)
            if found is None:
                problems.append(f"shard {shard.index} has no output")
                continue
            rows = _staged_rows(store, out, key, found.size, found.etag)
            if rows != shard.rows:
                problems.append(f"shard {shard.index} wrote {rows} rows, its plan says {shard.rows}")
            staged.append((shard, key, found, rows))
        if problems:
            raise DataError(f"cannot commit run {job.attempt} to {out.uri}: " + "; ".join(problems) +
                            f" (in s3://{out.bucket}/{out.staging(job.attempt)}/). Its shards did not all finish, "
                            "or a later run's commit removed them: run the batch prediction again")
        parts = []
        for shard, key, found, rows in staged:
            final = out.part(job, shard.index)
            store.copy(key, final, out.bucket)
            parts.append({"key": final[len(out.prefix) + 1:], "rows": rows, "size": found.size,
                          "sha256": found.sha256})
        manifest = _manifest(job, parts, time.time())
        store.put_bytes(json.dumps(manifest, indent=1, sort_keys=True).encode(), out.key(MANIFEST), out.bucket,
                        "application/json")
        _remove_unlisted(store, out, manifest)
    return manifest, True


def _remove_unlisted(store: ObjectStore, out: Output, manifest: dict) -> None:
    """Remove older parts and every run's staging: what the manifest does not list, and is ours."""
    keep = {out.key(MANIFEST), out.key(LOCK)} | {out.key(p["key"]) for p in manifest["parts"]}
    store.delete_keys([k for k in store.list_keys(out.prefix, out.bucket)
                       if k not in keep and _OURS.match(k[len(out.prefix) + 1:])], out.bucket)


# -- readers -----------------------------------------------------------------------------------
def read_predictions(output_uri: str, store: ObjectStore | None = None):
    """The predictions at ``output_uri`` as one pandas DataFrame, in input order.

    Reads exactly the parts the manifest lists, each verified against its
    recorded SHA-256; refuses a prefix without a manifest (nothing
    committed: missing, still running, or interrupted).
    """
    import pandas as pd

    store = store or ObjectStore.from_env()
    out = Output.parse(output_uri)
    manifest = read_manifest(output_uri, store)
    if manifest is None:
        raise StorageError(f"{out.uri} holds no committed batch predictions (no {MANIFEST}): it is missing, still "
                           "being written, or its run was interrupted; rerun the batch prediction")
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, part in enumerate(manifest["parts"]):
            local = Path(tmp) / f"{i}.parquet"
            store.get_file(out.key(part["key"]), local, out.bucket, expected_sha256=part["sha256"])
            frames.append(pq.read_table(local).to_pandas())
    return pd.concat(frames, ignore_index=True)
