"""A served model's files: their digest, where they live, and loading them only when they match.

Registration records a digest of the model's files (``mlops.model_digest`` on
the model version). Whatever path the files take to a server (KServe's
storage initializer copying ``storageUri`` into ``/mnt/models``, or
:func:`fetch_model` here), the server recomputes the digest and refuses to
load files that differ from what was registered.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import ModelIntegrityError, ServingError, StorageError, TrackingError
from mlops.platform.settings import mlflow_artifacts_root
from mlops.platform.storage import ObjectStore, parse_s3_uri, safe_key, sha256_file

MODEL_DIGEST_TAG = "mlops.model_digest"
_PROXY_SCHEME = "mlflow-artifacts:/"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def model_cache_dir() -> Path:
    """Where fetched model files are kept between loads (``MLOPS_MODEL_CACHE``)."""
    return Path(os.environ.get("MLOPS_MODEL_CACHE", "/tmp/mlops-models"))


def request_scoring_threads(threads: int) -> None:
    """Ask OpenMP and BLAS for ``threads`` threads when scikit-learn loads them.

    They read these variables once, when first loaded, so this must run
    before anything imports scikit-learn; follow the model's load with
    ``threadpoolctl.threadpool_limits(threads)`` for runtimes already there.
    """
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)


def model_digest(model_dir: str | os.PathLike) -> str:
    """``sha256:<hex>`` over every file's relative path and content digest, in sorted order."""
    root = Path(model_dir)
    if not (root / "MLmodel").is_file():
        raise ServingError(f"{root} is not an MLflow model directory (no MLmodel file)")
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        lines.append(f"{path.relative_to(root).as_posix()}\0{sha256_file(path)}\n")
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def verify_model_dir(model_dir: str | os.PathLike, expected_digest: str) -> None:
    """Raise :class:`ModelIntegrityError` unless the files match the registered digest."""
    if not expected_digest.startswith("sha256:"):
        raise ModelIntegrityError(f"expected model digest {expected_digest!r} is not of the form sha256:<hex>")
    actual = model_digest(model_dir)
    if actual != expected_digest:
        raise ModelIntegrityError(f"model files in {model_dir} do not match the registered digest "
                                  f"(expected {expected_digest}, found {actual}): refusing to load them")


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, as a server needs it."""

    name: str
    version: str
    digest: str
    storage_uri: str  # s3://bucket/.../artifacts: what KServe's storageUri points at


def storage_uri(location: str, env: dict[str, str] | None = None) -> str:
    """Map MLflow's artifact location (proxied or direct) to the S3 URI of the files."""
    if location.startswith("s3://"):
        return location.rstrip("/")
    if location.startswith(_PROXY_SCHEME):
        return f"{mlflow_artifacts_root(env)}/{location[len(_PROXY_SCHEME):].lstrip('/')}".rstrip("/")
    raise ServingError(f"model artifacts at {location!r} are not on S3; "
                       "the tracking server must store artifacts in the object store")


def artifact_location(client, version) -> str:
    """Where MLflow keeps a model version's files (its logged model's artifacts)."""
    model_id = getattr(version, "model_id", None)
    if model_id:
        return client.get_logged_model(model_id).artifact_location
    return client.get_model_version_download_uri(version.name, version.version)


def resolve_model(name: str, version_or_alias: str) -> ModelRef:
    """Look a version (``"3"``) or an alias (``"production"``) up in the registry."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        if version_or_alias.isdigit():
            mv = client.get_model_version(name, version_or_alias)
        else:
            mv = client.get_model_version_by_alias(name, version_or_alias)
    except MlflowException as exc:
        raise ServingError(f"model {name!r} has no version or alias {version_or_alias!r} in the registry "
                           f"({exc.error_code})") from None
    except OSError as exc:
        raise TrackingError(f"MLflow is unreachable while resolving {name}@{version_or_alias}: {exc}") from None
    digest = mv.tags.get(MODEL_DIGEST_TAG)
    if not digest:
        raise ModelIntegrityError(f"{name} v{mv.version} has no recorded {MODEL_DIGEST_TAG}: its files cannot be "
                                  "verified, so it is not served (register it again with this suite)")
    return ModelRef(name, str(mv.version), digest, storage_uri(artifact_location(client, mv)))


def fetch_model(ref: ModelRef, cache_dir: str | os.PathLike, store: ObjectStore | None = None) -> Path:
    """Copy a model version's files from S3 into ``cache_dir/<name>/<version>`` and verify them.

    A complete, verified copy already there is reused; anything else is
    replaced, so a crash mid-download never leaves a loadable half model.
    """
    target = Path(cache_dir) / _folder_name(ref.name, "model name") / _folder_name(ref.version, "model version")
    if target.is_dir():
        try:
            verify_model_dir(target, ref.digest)
            return target
        except (ModelIntegrityError, ServingError):
            pass
    store = store or ObjectStore.from_env()
    bucket, prefix = parse_s3_uri(ref.storage_uri)
    staging = target.with_name(f".{ref.version}.partial")
    _remove_tree(staging)
    keys = store.list_keys(prefix + "/", bucket)
    if not keys:
        raise ServingError(f"no model files under {ref.storage_uri} for {ref.name} v{ref.version}")
    for key in keys:
        store.get_file(key, staging / key[len(prefix) + 1:], bucket)
    verify_model_dir(staging, ref.digest)
    _remove_tree(target)
    staging.rename(target)
    return target


def _folder_name(value: str, what: str) -> str:
    """``value`` as one folder name of the cache: a ref read from a plan or a request never reaches outside it
    (the fetch replaces what it finds at its target)."""
    try:
        safe_key(value)
        plain = "/" not in value
    except StorageError:
        plain = False
    if not plain:
        raise ServingError(f"{what} {value!r} is not a plain name: refusing to use it as a folder of the model cache")
    return value


def _remove_tree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded model and the input columns its signature declares."""

    estimator: object
    columns: tuple[tuple[str, str], ...]  # (name, MLflow type: double, long, string, ...)
    digest: str


def load_model(model_dir: str | os.PathLike, expected_digest: str) -> LoadedModel:
    """Verify the files against ``expected_digest``, then load the scikit-learn model and its signature."""
    import mlflow.sklearn
    from mlflow.models import Model

    verify_model_dir(model_dir, expected_digest)
    meta = Model.load(str(Path(model_dir) / "MLmodel"))
    if meta.signature is None or meta.signature.inputs is None or not meta.signature.inputs.has_input_names():
        raise ServingError(f"the model in {model_dir} has no named input signature; requests cannot be validated")
    columns = tuple((spec.name, str(spec.type.name if hasattr(spec.type, "name") else spec.type))
                    for spec in meta.signature.inputs.inputs)
    try:
        estimator = mlflow.sklearn.load_model(str(model_dir))
    except Exception as exc:  # noqa: BLE001 - skops/pickle errors come in many types
        raise ServingError(f"the model in {model_dir} could not be loaded: {exc}") from None
    if not hasattr(estimator, "predict_proba"):
        raise ServingError(f"the model in {model_dir} has no predict_proba; this server serves classifiers")
    return LoadedModel(estimator, columns, expected_digest)
