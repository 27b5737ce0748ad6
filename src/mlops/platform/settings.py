"""One configuration story for local and in-cluster runs.

Every setting comes from the environment under the same name everywhere: on
Kubernetes from the ``mlops-config`` ConfigMap and ``mlops-s3`` Secret, locally
from the environment file that ``mlops platform up`` writes (loaded by the
CLI). Credentials follow the AWS conventions so boto3, MLflow and our minio
client all read the same variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from mlops.errors import ConfigError

DEFAULT_BUCKET = "mlops"
DEFAULT_REGION = "us-east-1"
MLFLOW_ARTIFACTS_PREFIX = "mlflow-artifacts"  # where the MLflow server stores artifacts inside the bucket


@dataclass(frozen=True)
class S3Settings:
    """Where the object store is and how to authenticate to it."""

    endpoint: str  # host:port, without scheme
    secure: bool
    access_key: str
    secret_key: str
    region: str = DEFAULT_REGION
    bucket: str = DEFAULT_BUCKET

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def __repr__(self) -> str:  # never print the secret
        return (f"S3Settings(endpoint={self.url!r}, access_key={self.access_key!r}, "
                f"secret_key='***', region={self.region!r}, bucket={self.bucket!r})")


def parse_endpoint(value: str, source: str = "MLOPS_S3_ENDPOINT") -> tuple[str, bool]:
    """Split an endpoint URL such as ``http://127.0.0.1:9000`` into host:port and TLS.

    A bare ``host:port`` means plain HTTP, as the minio client assumes.
    """
    value = value.strip()
    if "://" not in value:
        value = "http://" + value
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"{source}={value!r} is not an http(s) endpoint such as http://127.0.0.1:9000")
    if parsed.path not in ("", "/"):
        raise ConfigError(f"{source}={value!r} must not contain a path (got {parsed.path!r})")
    try:
        port = parsed.port
    except ValueError as exc:
        raise ConfigError(f"{source}={value!r} has an invalid port") from exc
    host = parsed.hostname if port is None else f"{parsed.hostname}:{port}"
    return host, parsed.scheme == "https"


def _required(env: dict[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set. {hint}")
    return value


_LOCAL_HINT = "Locally, run `mlops platform up` (the CLI then loads its settings); in a cluster, mount the mlops-config ConfigMap and mlops-s3 Secret."


def s3_settings(env: dict[str, str] | None = None) -> S3Settings:
    """Read the object-store settings from the environment."""
    env = dict(os.environ) if env is None else env
    endpoint, secure = parse_endpoint(_required(env, "MLOPS_S3_ENDPOINT", _LOCAL_HINT))
    return S3Settings(
        endpoint=endpoint,
        secure=secure,
        access_key=_required(env, "AWS_ACCESS_KEY_ID", _LOCAL_HINT),
        secret_key=_required(env, "AWS_SECRET_ACCESS_KEY", _LOCAL_HINT),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        bucket=env.get("MLOPS_BUCKET") or DEFAULT_BUCKET,
    )


def mlflow_tracking_uri(env: dict[str, str] | None = None) -> str:
    """The MLflow tracking server URI (``MLFLOW_TRACKING_URI``)."""
    env = dict(os.environ) if env is None else env
    uri = _required(env, "MLFLOW_TRACKING_URI", _LOCAL_HINT)
    if not uri.startswith(("http://", "https://")):
        raise ConfigError(f"MLFLOW_TRACKING_URI={uri!r} must be the http(s) URL of an MLflow tracking server")
    return uri.rstrip("/")


def mlflow_artifacts_root(env: dict[str, str] | None = None) -> str:
    """The S3 location behind MLflow's proxied ``mlflow-artifacts:/`` URIs.

    It is the tracking server's ``--artifacts-destination``; KServe's storage
    initializer reads models from there directly (``storageUri``).
    """
    env = dict(os.environ) if env is None else env
    root = env.get("MLOPS_MLFLOW_ARTIFACTS_ROOT", "").strip()
    if not root:
        return f"s3://{env.get('MLOPS_BUCKET') or DEFAULT_BUCKET}/{MLFLOW_ARTIFACTS_PREFIX}"
    if not root.startswith("s3://") or len(root) <= len("s3://"):
        raise ConfigError(f"MLOPS_MLFLOW_ARTIFACTS_ROOT={root!r} must be an s3://bucket/prefix URI")
    return root.rstrip("/")
