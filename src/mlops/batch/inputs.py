"""What a batch prediction reads: one Parquet file, or every Parquet file under a prefix, on S3 or local disk.

Planning reads only footers (rows per row group, schema); a shard later
reads just its own row groups. On S3 both go through ranged GETs pinned to
the ETag listed at plan time, so a file replaced during a run fails the run
instead of mixing two versions of the data.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlops.errors import DataError, StorageError
from mlops.platform.storage import ObjectStore, is_s3_uri, parse_s3_uri

PARQUET_SUFFIX = ".parquet"


@dataclass(frozen=True)
class InputFile:
    """One Parquet file of the input, as listed when the run was planned."""

    uri: str  # s3://bucket/key or an absolute local path
    size: int
    version: str  # S3 ETag, or the local file's mtime in ns: it changes when the file is replaced
    row_groups: tuple[int, ...] = ()  # rows per row group

    @property
    def rows(self) -> int:
        return sum(self.row_groups)

    def to_json(self) -> dict:
        return {"uri": self.uri, "size": self.size, "version": self.version, "row_groups": list(self.row_groups)}

    @classmethod
    def from_json(cls, raw: dict) -> "InputFile":
        return cls(raw["uri"], int(raw["size"]), raw["version"], tuple(int(n) for n in raw["row_groups"]))


def _hidden(relative: str) -> bool:
    """Spark/Hive convention: ``_SUCCESS``, ``_staging/``, ``.tmp`` files are not data."""
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def _data_files(names: list[str], root: str, where: str) -> list[str]:
    found = [n for n in names if n.endswith(PARQUET_SUFFIX) and not _hidden(n[len(root):].lstrip("/"))]
    if not found:
        seen = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "") if names else "nothing"
        raise DataError(f"no Parquet files (*{PARQUET_SUFFIX}) under {where}; found {seen}")
    return found


def list_input(uri: str, store: ObjectStore | None = None) -> list[InputFile]:
    """The Parquet files ``uri`` names, sorted: the file itself, or the ``*.parquet`` files under a prefix.

    A prefix is a URI ending in ``/``, a local directory, or an S3 key with no
    object of its own but objects under it. Files and folders whose names
    start with ``_`` or ``.`` are skipped, as Spark and Hive do.
    """
    if is_s3_uri(uri):
        store = store or ObjectStore.from_env()
        bucket, key = parse_s3_uri(uri)
        if not key.endswith("/"):
            single = store.stat(key, bucket)
            if single is not None:
                return [InputFile(uri, single.size, single.etag)]
        listed = {o.key: o for o in store.list_objects(key, bucket)}
        if not listed:
            raise DataError(f"input not found: {uri} does not exist on S3 at {store.settings.url} "
                            "(no object with that key, and no objects under it)")
        keys = _data_files(sorted(listed), key.rstrip("/") + "/", uri)
        return [InputFile(f"s3://{bucket}/{k}", listed[k].size, listed[k].etag) for k in keys]
    path = Path(uri).resolve()
    if path.is_file():
        return [_local_file(path)]
    if not path.exists():
        raise DataError(f"input not found: {uri} does not exist")
    if not path.is_dir():
        raise DataError(f"input {uri} is neither a file nor a directory")
    names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    return [_local_file(path / name) for name in _data_files(names, "", uri)]


def _local_file(path: Path) -> InputFile:
    if not os.access(path, os.R_OK):
        raise DataError(f"input file {path} is not readable (permissions)")
    st = path.stat()
    return InputFile(str(path), st.st_size, str(st.st_mtime_ns))


def fingerprint(files: list[InputFile]) -> str:
    """``sha256:`` over every file's URI, size and version: equal only for the same files, unchanged."""
    lines = "".join(f"{f.uri}\0{f.size}\0{f.version}\n" for f in sorted(files, key=lambda f: f.uri))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


class S3RangeReader(io.RawIOBase):
    """A seekable, read-only file over one version of an S3 object: each read is a ranged GET.

    pyarrow reads a Parquet footer and then whole column chunks, so a shard
    fetches only the row groups it scores.
    """

    def __init__(self, store: ObjectStore, uri: str, size: int, etag: str) -> None:
        super().__init__()
        self.store, self.uri, self.size, self.etag = store, uri, size, etag
        self.bucket, self.key = parse_s3_uri(uri)
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        length = min(len(buffer), self.size - self.position)
        if length <= 0:
            return 0
        try:
            data = self.store.get_range(self.key, self.position, length, self.bucket, etag=self.etag)
        except StorageError as exc:
            if "PreconditionFailed" in str(exc):
                raise DataError(f"{self.uri} was replaced after this run was planned (its ETag is no longer "
                                f"{self.etag}): run the batch prediction again to score the new data") from None
            raise
        if len(data) != length:
            raise DataError(f"{self.uri} returned {len(data)} bytes where {length} were asked: it changed or "
                            "was truncated while being read")
        buffer[:length] = data
        self.position += length
        return length

    def read(self, size: int = -1) -> bytes:
        size = self.size - self.position if size is None or size < 0 else size
        out = bytearray(min(size, max(0, self.size - self.position)))
        return bytes(memoryview(out)[: self.readinto(out)])


def open_parquet(file: InputFile, store: ObjectStore | None = None) -> pq.ParquetFile:
    """Open one input file for reading its footer and row groups; not Parquet -> DataError naming it."""
    if is_s3_uri(file.uri):
        source = S3RangeReader(store or ObjectStore.from_env(), file.uri, file.size, file.version)
    else:
        now = _local_file(Path(file.uri)) if Path(file.uri).is_file() else None
        if now is None or (now.size, now.version) != (file.size, file.version):
            raise DataError(f"{file.uri} was replaced or removed after this run was planned: run the batch "
                            "prediction again to score the data as it is now")
        source = file.uri
    try:
        return pq.ParquetFile(source)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataError(f"cannot read {file.uri} as Parquet: {exc}") from None


def with_row_groups(file: InputFile, parquet: pq.ParquetFile) -> InputFile:
    meta = parquet.metadata
    return InputFile(file.uri, file.size, file.version,
                     tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))
