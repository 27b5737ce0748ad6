"""Artifact I/O over S3 (MinIO in the cluster, SeaweedFS locally), through the minio client.

Rules this module is the one home of:

* every object we write carries its SHA-256 in metadata, and every read
  verifies it, so a tampered or truncated object is refused;
* a single object becomes visible whole or not at all (an S3 PUT, multipart
  included, is atomic); a multi-file artifact (a *prefix*) is published by
  uploading its files first and its ``_MANIFEST.json`` last, and readers only
  trust what the manifest lists, so nobody sees a half-written prefix;
* keys never escape their prefix (no ``..``, no absolute keys);
* writers that must not interleave (registry moves, batch prediction
  commits) take a lease lock: an object created with ``If-None-Match: *``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from mlops.errors import StorageError
from mlops.platform.settings import S3Settings, s3_settings

MANIFEST = "_MANIFEST.json"
_CHECKSUM_META = "sha256"
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredObject:
    """What was written or read: where, how big, and its content digest."""

    bucket: str
    key: str
    size: int
    sha256: str  # "" when unknown: not recorded, or a listing (listings carry no metadata)
    etag: str = ""  # changes whenever the object is replaced: what a fingerprint of inputs we did not write uses

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def is_s3_uri(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and a checked key."""
    if not is_s3_uri(uri):
        raise StorageError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise StorageError(f"{uri!r} must name a bucket and a key, as in s3://bucket/path/file.parquet")
    return bucket, safe_key(key)


def safe_key(key: str) -> str:
    """Return ``key`` if it stays inside its bucket, else raise.

    Refuses absolute keys, ``..`` and ``.`` segments, empty segments,
    backslashes and NUL, also when percent-encoded (``%2e%2e``, ``..%2f``,
    ``%252e``: a proxy, a client or a later reader may decode them): an
    artifact name from a request or a config must never reach outside the
    prefix it was meant for.
    """
    decoded = key
    while (once := unquote(decoded)) != decoded:  # every round shortens it: bounded
        decoded = once
    for form in (key, decoded):
        parts = form.split("/")
        if (not form or form.startswith("/") or "\\" in form or "\x00" in form
                or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", "..")):
            raise StorageError(f"object key {key!r} is not a plain relative path (no '..', no leading '/', "
                               "no empty parts, not even percent-encoded)")
    return key


def join_key(prefix: str, *parts: str) -> str:
    """Join key parts under ``prefix``, refusing any part that would escape it (``..``, an absolute part).

    Trailing slashes are dropped (``reports/`` + ``x`` is ``reports/x``); an
    empty prefix is the bucket's root.
    """
    pieces = [p.rstrip("/") for p in (prefix, *parts)]
    return safe_key("/".join(pieces[1:] if pieces[0] == "" else pieces))


class ObjectStore:
    """Checked, checksummed artifact I/O against one S3 endpoint.

    Parameters
    ----------
    settings : S3Settings
        Endpoint, TLS, credentials and default bucket.
    timeout : float
        Seconds to wait for a connection or a response before failing.
    retries : int
        Connection retries; kept small so an unreachable store fails fast.
    """

    def __init__(self, settings: S3Settings, *, timeout: float = 10.0, retries: int = 2) -> None:
        self.settings = settings
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
            retries=urllib3.Retry(total=retries, backoff_factor=0.2,
                                  status_forcelist=[500, 502, 503, 504]),
            maxsize=10,
        )
        self.client = Minio(settings.endpoint, access_key=settings.access_key,
                            secret_key=settings.secret_key, secure=settings.secure,
                            region=settings.region, http_client=http)

    @classmethod
    def from_env(cls, **kwargs) -> "ObjectStore":
        return cls(s3_settings(), **kwargs)

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    # -- errors -----------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, action: str, target: str) -> Iterator[None]:
        """Translate client and transport failures into one clear StorageError."""
        where = f"S3 at {self.settings.url}"
        try:
            yield
        except S3Error as exc:
            if exc.code in _CREDENTIAL_CODES:
                raise StorageError(
                    f"{where} rejected the credentials for access key {self.settings.access_key!r} "
                    f"while trying to {action} {target} ({exc.code}). Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."
                ) from None
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise StorageError(f"cannot {action} {target}: it does not exist ({exc.code}) on {where}") from None
            raise StorageError(f"cannot {action} {target} on {where}: {exc.code}: {exc.message}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
                raise
            reason = getattr(exc, "reason", None) or exc
            raise StorageError(
                f"{where} is unreachable while trying to {action} {target}: {reason}. "
                "Is it running (locally: `mlops platform status`) and is MLOPS_S3_ENDPOINT right?"
            ) from None

    # -- buckets ----------------------------------------------------------
    def check(self) -> None:
        """Fail fast with a clear error unless the store answers and accepts our credentials."""
        with self._errors("list", "buckets"):
            self.client.list_buckets()

    def ensure_bucket(self, bucket: str | None = None) -> str:
        bucket = bucket or self.bucket
        with self._errors("create bucket", bucket):
            if not self.client.bucket_exists(bucket):
                try:
                    self.client.make_bucket(bucket)
                except S3Error as exc:  # lost a race with another creator: fine
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        return bucket

    # -- single objects ----------------------------------------------------
    def put_file(self, path: str | os.PathLike, key: str, bucket: str | None = None) -> StoredObject:
        """Upload one file; it becomes visible whole, with its SHA-256 in metadata."""
        bucket, key = bucket or self.bucket, safe_key(key)
        digest, size = sha256_file(path), os.path.getsize(path)
        with self._errors("upload to", f"s3://{bucket}/{key}"):
            self.client.fput_object(bucket, key, str(path), metadata={_CHECKSUM_META: digest})
        return StoredObject(bucket, key, size, digest)

    def put_bytes(self, data: bytes, key: str, bucket: str | None = None,
                  content_type: str = "application/octet-stream") -> StoredObject:
        bucket, key = bucket or self.bucket, safe_key(key)
        digest = hashlib.sha256(data).hexdigest()
        with self._errors("upload to", f"s3://{bucket}/{key}"):
            self.client.put_object(bucket, key, io.BytesIO(data), len(data),
                                   content_type=content_type, metadata={_CHECKSUM_META: digest})
        return StoredObject(bucket, key, len(data), digest)

    def put_bytes_if(self, data: bytes, key: str, *, if_none_match: bool = False, if_match: str | None = None,
                     bucket: str | None = None) -> str | None:
        """Conditional PUT (S3 ``If-None-Match: *`` / ``If-Match: <etag>``): the one atomic
        compare-and-set S3 offers. Returns the new ETag, or None when the condition failed.

        minio-py's public put_object cannot send these headers, so this uses its
        single-part ``_put_object`` (pinned version; covered by tests).
        """
        bucket, key = bucket or self.bucket, safe_key(key)
        headers = {"Content-Type": "application/json",
                   "x-amz-meta-sha256": hashlib.sha256(data).hexdigest()}
        if if_none_match:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = if_match
        try:
            with self._errors("conditionally write", f"s3://{bucket}/{key}"):
                result = self.client._put_object(bucket, key, data, headers=headers)
        except StorageError as exc:
            if "PreconditionFailed" in str(exc) or "ConditionalRequestConflict" in str(exc):
                return None
            raise
        return result.etag

    def get_with_etag(self, key: str, bucket: str | None = None) -> tuple[bytes, str] | None:
        """An object's bytes and ETag (for a later If-Match), or None when absent."""
        bucket, key = bucket or self.bucket, safe_key(key)
        with self._errors("download", f"s3://{bucket}/{key}"):
            try:
                resp = self.client.get_object(bucket, key)
            except S3Error as exc:
                # Absent, or deleted since the caller last looked (a lock released between its
                # holder's two calls): one GET, no stat-then-get race.
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
            try:
                return resp.read(), resp.headers.get("ETag", "")
            finally:
                resp.close()
                resp.release_conn()

    def stat(self, key: str, bucket: str | None = None) -> StoredObject | None:
        """Size and recorded digest of an object, or None when it does not exist."""
        bucket, key = bucket or self.bucket, safe_key(key)
        try:
            with self._errors("stat", f"s3://{bucket}/{key}"):
                st = self.client.stat_object(bucket, key)
        except StorageError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return StoredObject(bucket, key, st.size or 0, (st.metadata or {}).get(f"x-amz-meta-{_CHECKSUM_META}", ""),
                            _etag(st.etag))

    def exists(self, key: str, bucket: str | None = None) -> bool:
        return self.stat(key, bucket) is not None

    def get_file(self, key: str, path: str | os.PathLike, bucket: str | None = None,
                 expected_sha256: str | None = None) -> StoredObject:
        """Download one object to ``path`` and verify its digest.

        The file appears at ``path`` only once complete and verified (written
        beside it, then renamed), so a failed download leaves nothing behind.
        """
        bucket, key = bucket or self.bucket, safe_key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            with self._errors("download", f"s3://{bucket}/{key}"):
                st = self.client.fget_object(bucket, key, tmp)
            recorded = (st.metadata or {}).get(f"x-amz-meta-{_CHECKSUM_META}", "")
            actual = sha256_file(tmp)
            for expected, what in ((expected_sha256, "the manifest"), (recorded, "its metadata")):
                if expected and expected != actual:
                    raise StorageError(f"s3://{bucket}/{key} is corrupt or was tampered with: "
                                       f"sha256 {actual} does not match {expected} recorded in {what}")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return StoredObject(bucket, key, path.stat().st_size, actual)

    def get_bytes(self, key: str, bucket: str | None = None) -> bytes:
        bucket, key = bucket or self.bucket, safe_key(key)
        with self._errors("download", f"s3://{bucket}/{key}"):
            resp = self.client.get_object(bucket, key)
            try:
                data = resp.read()
                recorded = resp.headers.get(f"x-amz-meta-{_CHECKSUM_META}", "")
            finally:
                resp.close()
                resp.release_conn()
        if recorded and hashlib.sha256(data).hexdigest() != recorded:
            raise StorageError(f"s3://{bucket}/{key} is corrupt or was tampered with: its content does not match its recorded sha256")
        return data

    def get_range(self, key: str, offset: int, length: int, bucket: str | None = None,
                  etag: str | None = None) -> bytes:
        """``length`` bytes of an object from ``offset``; with ``etag``, only from that version of it.

        For reading parts of large objects (a Parquet footer, some row groups)
        without downloading them whole; such a read cannot be checked against
        the whole object's digest, so pass the ``etag`` of the version you
        listed: a replaced object then fails instead of mixing versions.
        """
        bucket, key = bucket or self.bucket, safe_key(key)
        headers = {"If-Match": f'"{etag}"'} if etag else None
        with self._errors("read", f"bytes {offset}-{offset + length - 1} of s3://{bucket}/{key}"):
            resp = self.client.get_object(bucket, key, offset=offset, length=length, request_headers=headers)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

    def list_objects(self, prefix: str, bucket: str | None = None) -> list[StoredObject]:
        """Every object under ``prefix`` (a folder: ``prefix/...``), sorted by key, with size and ETag."""
        bucket = bucket or self.bucket
        prefix = safe_key(prefix.rstrip("/")) + "/" if prefix.strip("/") else ""
        with self._errors("list", f"s3://{bucket}/{prefix}"):
            found = [StoredObject(bucket, o.object_name, o.size or 0, "", _etag(o.etag))
                     for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)]
        return sorted(found, key=lambda o: o.key)

    def list_keys(self, prefix: str, bucket: str | None = None) -> list[str]:
        return [o.key for o in self.list_objects(prefix, bucket)]

    def copy(self, source_key: str, key: str, bucket: str | None = None) -> None:
        """Server-side copy within a bucket (metadata, hence the recorded digest, included); atomic like a PUT."""
        bucket = bucket or self.bucket
        source_key, key = safe_key(source_key), safe_key(key)
        with self._errors("copy", f"s3://{bucket}/{source_key} to {key}"):
            self.client.copy_object(bucket, key, CopySource(bucket, source_key))

    def delete_keys(self, keys: list[str], bucket: str | None = None) -> None:
        bucket = bucket or self.bucket
        for key in keys:
            with self._errors("delete", f"s3://{bucket}/{key}"):
                self.client.remove_object(bucket, safe_key(key))

    def delete_prefix(self, prefix: str, bucket: str | None = None) -> int:
        keys = self.list_keys(prefix, bucket)
        self.delete_keys(keys, bucket)
        return len(keys)

    # -- a lease lock ------------------------------------------------------
    @contextlib.contextmanager
    def lease_lock(self, key: str, what: str, *, wait_s: float = 30.0, lease_s: float = 60.0,
                   bucket: str | None = None, refused: type[Exception] = StorageError) -> Iterator[str]:
        """Hold the lock object at ``key`` (created with ``If-None-Match: *``), waiting up to ``wait_s``.

        A lock whose lease ran out (a crashed holder) is taken over with
        ``If-Match``; giving up raises ``refused`` naming ``what`` and its holder.
        """
        bucket = bucket or self.bucket
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + wait_s
        while True:
            body = json.dumps({"owner": owner, "expires": time.time() + lease_s}).encode()
            if self.put_bytes_if(body, key, if_none_match=True, bucket=bucket) is not None:
                break
            held = self.get_with_etag(key, bucket)
            if held is not None:
                data, etag = held
                if (json.loads(data).get("expires", 0) < time.time()
                        and self.put_bytes_if(body, key, if_match=etag, bucket=bucket)):
                    break  # took over an expired lease
            if time.monotonic() > deadline:
                holder = json.loads(held[0]).get("owner") if held else "?"
                raise refused(f"{what} is held by {holder}; gave up after {wait_s:.0f} s")
            time.sleep(0.1)
        try:
            yield owner
        finally:
            held = self.get_with_etag(key, bucket)
            if held is not None and json.loads(held[0]).get("owner") == owner:
                self.delete_keys([key], bucket)

    # -- multi-file artifacts ----------------------------------------------
    def publish_dir(self, local_dir: str | os.PathLike, prefix: str, bucket: str | None = None) -> StoredObject:
        """Publish a directory as one artifact: files first, the manifest last.

        Returns the manifest object; its digest identifies the whole artifact.
        """
        bucket, root = bucket or self.bucket, Path(local_dir)
        if not root.is_dir():
            raise StorageError(f"cannot publish {root}: not a directory")
        files = sorted(p for p in root.rglob("*") if p.is_file())
        entries = {}
        for p in files:
            rel = p.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            stored = self.put_file(p, join_key(prefix, rel), bucket)
            entries[rel] = {"sha256": stored.sha256, "size": stored.size}
        manifest = json.dumps({"files": entries}, indent=2, sort_keys=True).encode()
        return self.put_bytes(manifest, join_key(prefix, MANIFEST), bucket, "application/json")

    def read_manifest(self, prefix: str, bucket: str | None = None) -> dict[str, dict]:
        """The published file list of an artifact; refuses unpublished prefixes."""
        bucket = bucket or self.bucket
        key = join_key(prefix, MANIFEST)
        if not self.exists(key, bucket):
            raise StorageError(f"s3://{bucket}/{prefix} is not a published artifact (no {MANIFEST}): "
                               "it is missing or still being written")
        return json.loads(self.get_bytes(key, bucket))["files"]

    def download_dir(self, prefix: str, local_dir: str | os.PathLike, bucket: str | None = None) -> list[StoredObject]:
        """Download exactly the files a published artifact's manifest lists, verified."""
        bucket, root = bucket or self.bucket, Path(local_dir)
        # Every name is checked before anything is written: a hostile entry leaves no partial copy behind.
        files = [(root / safe_key(rel), join_key(prefix, rel), entry)
                 for rel, entry in sorted(self.read_manifest(prefix, bucket).items())]
        return [self.get_file(key, target, bucket, expected_sha256=entry["sha256"]) for target, key, entry in files]
