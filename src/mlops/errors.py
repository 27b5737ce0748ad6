"""User-facing errors, and how a stage reports one.

An :class:`MlopsError` carries a message meant for a person: what went wrong,
where, and what to do. The CLI and the component adapters print it without a
traceback; any other exception is a bug and keeps its traceback.
"""


import contextlib
import sys
from typing import Iterator

# Prefix of the one line a failing stage prints; the local runner looks for it
# to tell the user which task failed and why, without the surrounding logs.
ERROR_MARKER = "MLOPS-ERROR:"


class MlopsError(Exception):
    """Base class of every error the suite reports to its users."""


class ConfigError(MlopsError, ValueError):
    """A setting is missing or malformed."""


class StorageError(MlopsError):
    """The object store is unreachable, refuses us, or holds bad content."""


class DataError(MlopsError):
    """A dataset is missing, unreadable, empty or lacks a required column."""


class TrackingError(MlopsError):
    """The MLflow tracking server or registry is unreachable or refuses us."""


class PlatformError(MlopsError):
    """The local platform cannot be started, inspected or stopped."""


class FeatureStoreError(MlopsError):
    """The feature store lacks something (nothing applied, no registry) or cannot be reached."""


class PipelineError(MlopsError):
    """A pipeline run failed; the message names the failing task."""


class ModelIntegrityError(MlopsError):
    """A model's files do not match the digest recorded when it was registered: refuse to serve them."""


class ServingError(MlopsError):
    """A model cannot be served (not found, not loadable) or a server cannot start."""


class HttpError(MlopsError):
    """An answer a server gives to a request it cannot serve; ``status`` is the HTTP status."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(HttpError):
    """The caller's request is wrong (4xx): the message says what to fix."""

    status = 400


class UpstreamError(HttpError):
    """A server behind this one (the predictor) failed or did not answer in time."""

    status = 502


class RolloutError(MlopsError):
    """A rollout cannot start or continue (bad config, missing versions, unreachable servers)."""


@contextlib.contextmanager
def exit_on_user_error(stage: str) -> Iterator[None]:
    """In a pipeline task: turn an MlopsError into one marked line and exit 1.

    The task then fails with a message a person can act on instead of a
    traceback; unexpected exceptions (bugs) still show theirs.
    """
    try:
        yield
    except MlopsError as exc:
        first, *rest = str(exc).splitlines() or [""]
        lines = [f"{ERROR_MARKER} [{stage}] {first}", *(f"{ERROR_MARKER} {line}" for line in rest)]
        print("\n".join(lines), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
