"""Where a project comes from: a shipped example by name, a local folder, or an archive pushed to S3.

Pipelines take a project as one string parameter, so one rule resolves it in
every task: a bare name (``churn``) is an example shipped with the suite (in
the checkout's ``examples/``, in the component image ``$MLOPS_EXAMPLES``); a
path is a folder; an ``s3://`` URI names an archive that ``push_project``
wrote at ``projects/<name>/<digest>.tar.gz``. An archive is accepted only when
the files it unpacks to have exactly the digest its key names, so a tampered
or truncated upload is refused before any of its code is imported.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from mlops.errors import ConfigError, StorageError
from mlops.project.spec import PROJECT_FILE, Project, load_project, project_digest, project_files

ENV_EXAMPLES = "MLOPS_EXAMPLES"
ARCHIVE_PREFIX = "projects"
_ARCHIVE_KEY = re.compile(rf"^{ARCHIVE_PREFIX}/(?P<name>[a-z][a-z0-9-]{{1,62}})/(?P<hex>[0-9a-f]{{64}})\.tar\.gz$")
_EXAMPLE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


def examples_dir() -> Path:
    """The shipped example projects: ``$MLOPS_EXAMPLES``, else the checkout's ``examples/``."""
    configured = os.environ.get(ENV_EXAMPLES, "").strip()
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "examples"


def example_names() -> list[str]:
    root = examples_dir()
    return sorted(p.name for p in root.iterdir() if (p / PROJECT_FILE).is_file()) if root.is_dir() else []


def resolve_project(ref: str, cache_dir: str | Path | None = None, store=None) -> Project:
    """The project ``ref`` names: an example's name, a folder, or a pushed archive's s3:// URI.

    Raises
    ------
    ConfigError
        An unknown example, a folder without ``project.yaml``, anything wrong in the project.
    StorageError
        An archive that is missing, or whose content does not match its digest.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"project must name an example ({', '.join(example_names()) or 'none shipped'}), "
                          f"a project folder or an s3:// archive; got {ref!r}")
    ref = ref.strip()
    if ref.startswith("s3://"):
        return dataclasses.replace(load_project(fetch_project(ref, cache_dir, store)), source=ref)
    if _EXAMPLE_NAME.match(ref) and not (Path(ref) / PROJECT_FILE).is_file():
        # A bare name is an example unless a project folder of that name is here: a folder named like an
        # example (a results directory, say) does not hide the example.
        folder = examples_dir() / ref
        if not (folder / PROJECT_FILE).is_file():
            raise ConfigError(f"no example project named {ref!r} in {examples_dir()}; known: "
                              f"{example_names()} (or pass a project folder or an s3:// archive)")
        return dataclasses.replace(load_project(folder), source=ref)
    return load_project(ref)


def cluster_source(project: Project | str) -> str:
    """How pods name ``project``: an example's name or an s3:// archive, never a path on this machine."""
    source = project.source if isinstance(project, Project) else project
    if source.startswith("s3://") or _EXAMPLE_NAME.match(source):
        return source
    raise ConfigError(f"project {source} is a folder on this machine, which pods cannot read: push it "
                      f"(`mlops project push {source}`) and use the s3:// URI it prints")


def dataset_uri(project: Project, data_uri: str, bucket: str) -> str:
    """``data_uri``, or when empty the project's training data at ``s3://<bucket>/datasets/<prefix>/train.parquet``."""
    return data_uri.strip() or f"s3://{bucket}/datasets/{project.names.prefix}/train.parquet"


# -- archives on S3 ---------------------------------------------------------------------------

def archive_bytes(root: str | Path) -> bytes:
    """A deterministic tar.gz of exactly the files the project's digest covers (fixed order, times, owners)."""
    root = Path(root)
    buffer = io.BytesIO()
    # gzip header time 0 (set when the header is written, on opening): the same project always makes the same bytes
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in project_files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def push_project(root: str | Path, store) -> str:
    """Check the project, then publish it once at ``projects/<name>/<digest>.tar.gz``; returns its URI."""
    project = load_project(root)
    key = f"{ARCHIVE_PREFIX}/{project.name}/{project.digest.removeprefix('sha256:')}.tar.gz"
    if store.stat(key) is None:
        store.ensure_bucket()
        store.put_bytes(archive_bytes(project.root), key)
    return f"s3://{store.bucket}/{key}"


def fetch_project(uri: str, cache_dir: str | Path | None = None, store=None) -> Path:
    """A verified local folder for a pushed archive: unpacked, and its digest equal to the one its key names."""
    from mlops.platform.storage import ObjectStore, parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    match = _ARCHIVE_KEY.match(key)
    if not match:
        raise ConfigError(f"{uri} is not a pushed project: its key must be {ARCHIVE_PREFIX}/<name>/<sha256>.tar.gz "
                          "(as `mlops project push` writes it)")
    expected = "sha256:" + match["hex"]
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "mlops-projects"
    folder = cache / match["name"] / match["hex"]
    if folder.is_dir() and project_digest(folder) == expected:
        return folder
    store = store or ObjectStore.from_env()
    if store.stat(key, bucket) is None:
        raise StorageError(f"project archive {uri} does not exist on S3 at {store.settings.url}")
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=_mkdir(cache / match["name"])))
    try:
        _unpack(store.get_bytes(key, bucket), staging, uri)
        actual = project_digest(staging)
        if actual != expected:
            raise StorageError(f"project archive {uri} unpacks to files with digest {actual}, not the {expected} "
                               "its key names: it was changed after it was pushed; refusing it (push it again)")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # whole or not at all: a concurrent reader sees no half-unpacked project
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _unpack(data: bytes, into: Path, uri: str) -> None:
    """Regular files only, each inside ``into``: no links, devices, absolute paths or ``..``."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                target = (into / member.name).resolve()
                if not member.isfile() or into.resolve() not in target.parents:
                    raise StorageError(f"project archive {uri} holds {member.name!r}, which is not a plain file "
                                       "inside the project; refusing it")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StorageError(f"project archive {uri} is not a readable tar.gz: {exc}") from None
