"""The Feast feature store: configuration, versioned snapshots on S3, apply, materialize, retrieval.

How the pieces fit:

* S3 holds the feature data as content-addressed Parquet snapshots
  (``features/<project prefix>/<sha256>.parquet``), published once and never rewritten;
* the offline store is DuckDB over a LOCAL copy of one snapshot (DuckDB cannot
  read ``s3://`` here without downloading its httpfs extension), fetched by
  digest into ``<repo_dir>/snapshots/<sha256>.parquet``. Tasks that share a
  registry fetch into the same place, so the source path the registry records
  is valid in each of them;
* the registry is a local file by default, or an ``s3://`` object shared by the
  pods of a cluster; the online store is SQLite (local) or Redis (cluster).

Every Feast failure a user can cause (nothing applied yet, a missing snapshot,
an unreachable Redis or registry bucket) becomes a :class:`FeatureStoreError`
or :class:`~mlops.errors.DataError` that says what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from feast import FeatureService, FeatureStore, FeatureView
from feast.errors import FeastObjectNotFoundException, S3RegistryBucketForbiddenAccess, S3RegistryBucketNotExist
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RepoConfig
from redis.backoff import NoBackoff
from redis.retry import Retry

from mlops.errors import ConfigError, DataError, FeatureStoreError, StorageError
from mlops.features.definitions import FEAST_TYPES, FeatureDefinitions
from mlops.features.engineering import entity_ids, utc_timestamps
from mlops.platform.settings import s3_settings
from mlops.platform.storage import ObjectStore, is_s3_uri, join_key, parse_s3_uri, sha256_file
from mlops.project import Project

ONLINE_STORES = ("sqlite", "redis")
ENV_ONLINE_STORE = "MLOPS_FEAST_ONLINE_STORE"
ENV_REDIS = "MLOPS_FEAST_REDIS"
ENV_REGISTRY = "MLOPS_FEAST_REGISTRY"
ENV_REPO = "MLOPS_FEAST_REPO"
SNAPSHOT_PREFIX = "features"  # snapshots of project P live under features/<P's prefix>/
_ROW = "_mlops_row"  # carries the caller's row order through Feast, which does not keep it
_SNAPSHOT_NAME = re.compile(r"([0-9a-f]{64})\.parquet")
_HOST_PORT = re.compile(r"[^\s:/,]+:\d{1,5}")
_INTEGER_ID = re.compile(r"^-?[0-9]{1,18}$")


# -- configuration -------------------------------------------------------------

def _check_online_store(kind: str, redis_string: str | None, kind_source: str, redis_source: str) -> None:
    if kind not in ONLINE_STORES:
        raise ConfigError(f"{kind_source}={kind!r} is not a supported online store; use one of {', '.join(ONLINE_STORES)}")
    if kind != "redis":
        return
    if not redis_string:
        raise ConfigError(f"{redis_source} is not set; the redis online store needs a connection string "
                          "such as redis.feast.svc:6379 (optionally ,password=...,ssl=true)")
    host_port = redis_string.split(",")[0].strip()
    if "://" in redis_string or not _HOST_PORT.fullmatch(host_port):
        raise ConfigError(f"{redis_source}={redis_string!r} must be host:port[,password=...,ssl=true,db=0] "
                          "(Feast's format, not a redis:// URL)")


def _check_registry(registry: str | None, source: str) -> None:
    if registry is None:
        return
    if is_s3_uri(registry):
        try:
            parse_s3_uri(registry)
        except StorageError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    elif "://" in registry or not registry.strip():
        raise ConfigError(f"{source}={registry!r} must be a local file path or s3://bucket/key")


@dataclass(frozen=True)
class FeatureStoreConfig:
    """Where the feature store keeps its registry, online store and snapshot copies.

    Parameters
    ----------
    repo_dir : pathlib.Path
        Local working directory: the SQLite online store, the default registry
        and the fetched snapshots (``snapshots/``) live here.
    online_store : {"sqlite", "redis"}, default "sqlite"
    redis_connection_string : str, optional
        Feast's ``host:port[,password=...,ssl=true]``; required for ``redis``.
    registry : str, optional
        A local path (default ``<repo_dir>/registry.db``) or ``s3://bucket/key``
        (shared by the pods of a cluster; the S3 endpoint comes from MLOPS_S3_ENDPOINT).
    """

    repo_dir: Path
    online_store: str = "sqlite"
    redis_connection_string: str | None = None
    registry: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "repo_dir", Path(self.repo_dir).resolve())
        _check_online_store(self.online_store, self.redis_connection_string,
                            "FeatureStoreConfig.online_store", "FeatureStoreConfig.redis_connection_string")
        _check_registry(self.registry, "FeatureStoreConfig.registry")
        if self.registry is not None and not is_s3_uri(self.registry):
            # Feast resolves a relative registry against its repo path; resolve it against ours.
            object.__setattr__(self, "registry", str(Path(self.registry).resolve()))

    @property
    def registry_path(self) -> str:
        return self.registry or str(self.repo_dir / "registry.db")

    @property
    def online_path(self) -> Path:
        return self.repo_dir / "online.db"

    @property
    def snapshot_dir(self) -> Path:
        return self.repo_dir / "snapshots"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "FeatureStoreConfig":
        """Read the configuration from the environment.

        ``MLOPS_FEAST_ONLINE_STORE`` (sqlite | redis, default sqlite),
        ``MLOPS_FEAST_REDIS`` (for redis), ``MLOPS_FEAST_REGISTRY`` (path or
        s3://, default ``<repo>/registry.db``) and ``MLOPS_FEAST_REPO``
        (default ``$MLOPS_HOME/feast``, else ``./.mlops/feast``).

        Raises
        ------
        ConfigError
            Naming the variable whose value is unusable.
        """
        env = os.environ if env is None else env
        kind = (env.get(ENV_ONLINE_STORE) or "sqlite").strip().lower()
        redis_string = (env.get(ENV_REDIS) or "").strip() or None
        registry = (env.get(ENV_REGISTRY) or "").strip() or None
        _check_online_store(kind, redis_string, ENV_ONLINE_STORE, ENV_REDIS)
        _check_registry(registry, ENV_REGISTRY)
        repo = (env.get(ENV_REPO) or "").strip()
        repo_dir = Path(repo) if repo else Path(env.get("MLOPS_HOME") or Path.cwd() / ".mlops") / "feast"
        return cls(repo_dir=repo_dir, online_store=kind, redis_connection_string=redis_string, registry=registry)


@dataclass(frozen=True, eq=False)
class ProjectStore:
    """A Feast store opened for one project: the store, and the project's feature definitions."""

    feast: FeatureStore
    definitions: FeatureDefinitions

    @property
    def project(self) -> Project:
        return self.definitions.project


def open_store(config: FeatureStoreConfig, project: Project) -> ProjectStore:
    """A Feast store for ``project``: DuckDB offline, SQLite or Redis online, local or S3 registry.

    Each suite project is its own Feast project (``names.feast_project``), so
    two projects share one registry and one online store without sharing a
    view, a service or an online row. For an ``s3://`` registry this sets
    ``FEAST_S3_ENDPOINT_URL`` (which Feast's S3 registry reads) from
    ``MLOPS_S3_ENDPOINT``; credentials come from the usual ``AWS_*``
    variables. Nothing is contacted yet: the registry and the online store
    are reached by the first operation.

    Raises
    ------
    ConfigError
        If an S3 registry is configured but the S3 settings are missing.
    """
    config.repo_dir.mkdir(parents=True, exist_ok=True)
    if is_s3_uri(config.registry_path):
        os.environ["FEAST_S3_ENDPOINT_URL"] = s3_settings().url
    else:
        Path(config.registry_path).parent.mkdir(parents=True, exist_ok=True)
    online = (RedisOnlineStoreConfig(connection_string=config.redis_connection_string or "")
              if config.online_store == "redis" else SqliteOnlineStoreConfig(path=str(config.online_path)))
    repo_config = RepoConfig(
        project=project.names.feast_project,
        provider="local",
        registry=config.registry_path,
        offline_store={"type": "duckdb"},
        online_store=online,
        entity_key_serialization_version=3,
        repo_path=config.repo_dir,
    )
    with _feast_errors("open the feature store", registry=config.registry_path):
        return ProjectStore(FeatureStore(config=repo_config), FeatureDefinitions(project))


def snapshot_prefix(project: Project) -> str:
    return join_key(SNAPSHOT_PREFIX, project.names.prefix)


# -- errors ----------------------------------------------------------------------

@contextlib.contextmanager
def _feast_errors(action: str, fs: ProjectStore | None = None, registry: str | None = None) -> Iterator[None]:
    """Turn the Feast failures a user can cause into one clear MlopsError."""
    registry = registry or (fs.feast.config.registry.path if fs is not None else "?")
    project = fs.feast.project if fs is not None else "?"
    try:
        yield
    except (S3RegistryBucketNotExist, S3RegistryBucketForbiddenAccess) as exc:
        raise FeatureStoreError(f"cannot {action}: the registry {registry} is not reachable ({exc}); "
                                f"check {ENV_REGISTRY}, MLOPS_S3_ENDPOINT and the AWS_* credentials") from None
    except FeastObjectNotFoundException as exc:
        raise FeatureStoreError(f"cannot {action}: {exc} (registry {registry}). "
                                "Apply the feature definitions first (mlops.features.store.apply_definitions)") from None
    except FileNotFoundError as exc:
        raise FeatureStoreError(f"cannot {action}: the registry {registry} of project {project!r} "
                                f"does not exist or is unreadable ({exc}); apply the definitions first "
                                f"or fix {ENV_REGISTRY}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        where = fs.feast.config.online_store.connection_string if fs is not None else "?"
        raise FeatureStoreError(f"cannot {action}: the Redis online store at {where} is unreachable ({exc}); "
                                f"check {ENV_REDIS} and that Redis is running") from None


def check_online_store(fs: ProjectStore, timeout: float = 2.0) -> None:
    """Fail fast, with a clear message, when a Redis online store does not answer.

    Feast's own client retries with back-off (several seconds) before failing;
    this single ping without retries reports the problem at once. SQLite needs
    no check.

    Raises
    ------
    FeatureStoreError
        Naming the connection string and ``MLOPS_FEAST_REDIS``.
    """
    online = fs.feast.config.online_store
    if not isinstance(online, RedisOnlineStoreConfig):
        return
    # Feast's own parser (private), so the ping reads the string exactly as Feast will.
    nodes, params = RedisOnlineStore._parse_connection_string(online.connection_string)
    client = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params,
                         socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))
    with _feast_errors("reach the online store", fs):
        try:
            client.ping()
        finally:
            client.close()


# -- snapshots on S3 ----------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """A published feature table: where it is, its content digest, its size."""

    uri: str
    digest: str  # "sha256:<hex>" of the Parquet bytes, also the file name
    rows: int
    uploaded: bool = True  # False when an identical snapshot was already there


def _require_feature_table(definitions: FeatureDefinitions, columns: list[str], source: str) -> None:
    missing = [c for c in definitions.table_columns if c not in columns]
    if missing:
        raise DataError(f"{source} is not a feature table: it lacks column(s) {missing} "
                        "(make it with mlops.features.engineering.compute_features)")


def publish_snapshot(project: Project, features: pd.DataFrame, store: ObjectStore) -> Snapshot:
    """Publish a project's feature table to S3 as ``features/<prefix>/<sha256>.parquet``, once.

    Parameters
    ----------
    project : Project
    features : pandas.DataFrame
        A feature table (:func:`~mlops.features.engineering.compute_features`).
    store : ObjectStore
        The object store; its default bucket receives the snapshot.

    Returns
    -------
    Snapshot
        The key is the SHA-256 of the Parquet bytes, so the same table always
        lands at the same URI; when that object already exists with that
        digest nothing is uploaded (``uploaded=False``).

    Raises
    ------
    DataError
        If ``features`` lacks feature-table columns.
    StorageError
        If S3 is unreachable or refuses the upload.
    """
    _require_feature_table(FeatureDefinitions(project), list(features.columns), "the table to publish")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "features.parquet"
        features.to_parquet(local, index=False)
        digest = sha256_file(local)
        key = join_key(snapshot_prefix(project), f"{digest}.parquet")
        existing = store.stat(key)
        uploaded = existing is None or existing.sha256 != digest
        if uploaded:
            store.ensure_bucket()
            store.put_file(local, key)
    return Snapshot(uri=f"s3://{store.bucket}/{key}", digest=f"sha256:{digest}", rows=len(features), uploaded=uploaded)


def fetch_snapshot(uri: str, cache_dir: str | os.PathLike, store: ObjectStore | None = None) -> Path:
    """A verified local copy of a published snapshot, ``<cache_dir>/<sha256>.parquet``.

    A copy already in the cache is reused only if its content still matches
    its name; otherwise it is downloaded and checked against the digest in its
    name (and the one recorded in the object's metadata).

    Raises
    ------
    DataError
        If ``uri`` is not a snapshot URI or does not exist.
    StorageError
        If the object's content does not match its digest (corrupt or tampered).
    """
    bucket, key = parse_s3_uri(uri)
    name = key.rsplit("/", 1)[-1]
    match = _SNAPSHOT_NAME.fullmatch(name)
    if not match:
        raise DataError(f"{uri} is not a feature snapshot: its name must be <sha256>.parquet, as publish_snapshot writes it")
    expected = match.group(1)
    local = Path(cache_dir) / name
    if local.is_file() and sha256_file(local) == expected:
        return local
    store = store or ObjectStore.from_env()
    if store.stat(key, bucket) is None:
        raise DataError(f"feature snapshot not found: {uri} does not exist on S3 at {store.settings.url}")
    store.get_file(key, local, bucket, expected_sha256=expected)
    return local


# -- definitions and materialization ------------------------------------------------

_ARROW_KINDS = {"INT64": pa.types.is_integer, "DOUBLE": pa.types.is_floating,
                "STRING": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)}


def _check_snapshot_schema(definitions: FeatureDefinitions, path: Path) -> None:
    """The snapshot must hold every column the view declares, with a compatible type."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read feature snapshot {path} as Parquet: {exc}") from None
    _require_feature_table(definitions, schema.names, f"feature snapshot {path}")
    wrong = {}
    for name, declared in definitions.project.features.columns:
        kind = FEAST_TYPES[declared].to_value_type().name
        arrow_type = schema.field(name).type
        if not (_ARROW_KINDS[kind](arrow_type) or pa.types.is_null(arrow_type)):
            wrong[name] = f"{arrow_type} (declared {kind})"
    if wrong:
        raise DataError(f"feature snapshot {path} has columns of the wrong type: {wrong}")


def apply_definitions(fs: ProjectStore, snapshot_path: str | os.PathLike, ttl: timedelta | None = None) -> str:
    """Register the project's entity, its feature view over ``snapshot_path`` and its feature service.

    Parameters
    ----------
    fs : ProjectStore
    snapshot_path : path
        Local Parquet snapshot (from :func:`fetch_snapshot`); recorded in the
        registry as the view's source, so every task reading this registry
        must have it at the same path.
    ttl : datetime.timedelta, optional
        Default: the project's ``features.ttl_days``.

    Returns
    -------
    str
        :meth:`~mlops.features.definitions.FeatureDefinitions.version` of what was applied.

    Raises
    ------
    DataError
        If the snapshot is missing, unreadable, or lacks / mistypes a column.
    FeatureStoreError
        If the registry cannot be reached.
    """
    path = Path(snapshot_path).resolve()
    if not path.is_file():
        raise DataError(f"feature snapshot {path} does not exist (fetch it with fetch_snapshot)")
    definitions = fs.definitions
    _check_snapshot_schema(definitions, path)
    view = definitions.feature_view(str(path), ttl)
    service = definitions.feature_service(view)
    with _feast_errors("apply the feature definitions", fs):
        fs.feast.apply([definitions.entity, view, service])
    _SERVICES.pop(fs, None)
    return definitions.version(view, service)


def _view(fs: ProjectStore) -> FeatureView:
    name = fs.definitions.view_name
    with _feast_errors(f"find feature view {name!r}", fs):
        view = fs.feast.get_feature_view(name, allow_registry_cache=True)
    source = Path(getattr(view.batch_source, "path", ""))
    if not source.is_file():
        raise DataError(f"the source of feature view {name!r}, {source}, is missing on this machine; "
                        "fetch its snapshot there first (fetch_snapshot into the feature store's snapshots dir)")
    return view


def applied_snapshot(fs: ProjectStore) -> Path:
    """The local snapshot file the registry's feature view currently reads."""
    name = fs.definitions.view_name
    with _feast_errors(f"find feature view {name!r}", fs):
        view = fs.feast.get_feature_view(name, allow_registry_cache=False)
    return Path(getattr(view.batch_source, "path", ""))


def ensure_applied_snapshot(fs: ProjectStore, store: ObjectStore | None = None) -> Path:
    """Make sure the snapshot the registry reads exists on this machine (a fresh pod has none).

    The registry records the local path ``<snapshots>/<sha256>.parquet``; the
    digest in that name finds the published snapshot on S3.
    """
    path = applied_snapshot(fs)
    if path.is_file():
        return path
    store = store or ObjectStore.from_env()
    return fetch_snapshot(f"s3://{store.bucket}/{snapshot_prefix(fs.project)}/{path.name}", path.parent, store)


# The service a store resolved, kept per store object: looking it up in the
# registry costs more than an online read itself. A process thus keeps the
# feature list it started with, as a deployed model must; apply_definitions
# through the same store refreshes it.
_SERVICES: "weakref.WeakKeyDictionary[ProjectStore, FeatureService]" = weakref.WeakKeyDictionary()


def _service(fs: ProjectStore) -> FeatureService:
    service = _SERVICES.get(fs)
    if service is None:
        name = fs.definitions.service_name
        with _feast_errors(f"find feature service {name!r}", fs):
            service = _SERVICES[fs] = fs.feast.get_feature_service(name, allow_cache=True)
    return service


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def materialize(fs: ProjectStore, end: datetime, start: datetime | None = None) -> tuple[datetime, datetime]:
    """Load the latest feature row per entity, as of ``end``, into the online store.

    Parameters
    ----------
    fs : ProjectStore
    end : datetime.datetime
        Rows with ``feature_timestamp`` up to ``end`` are considered (naive = UTC).
    start : datetime.datetime, optional
        Default ``end - ttl``: an older row has expired by ``end``, and the
        online store (which keeps no history and does not check the TTL when
        read) must not serve what an offline lookup as of ``end`` would not return.

    Returns
    -------
    tuple of datetime.datetime
        The (start, end) window materialized, for the run's log.

    Raises
    ------
    FeatureStoreError
        If nothing is applied yet or the online store is unreachable.
    DataError
        If the view's snapshot is missing on this machine.
    """
    end = _utc(end)
    view = _view(fs)
    start = _utc(start) if start is not None else end - (view.ttl or fs.definitions.ttl)
    check_online_store(fs)
    with _feast_errors("materialize features", fs):
        fs.feast.materialize(start_date=start, end_date=end, feature_views=[view.name])
    return start, end


# -- retrieval -------------------------------------------------------------------------

def _float_column(values: Iterable[object]) -> np.ndarray:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype="float64")


def _text_column(values: Iterable[object]) -> np.ndarray:
    if isinstance(values, pd.Series):
        return values.astype(object).where(values.notna(), None).to_numpy()
    return np.array(list(values), dtype=object)


def _typed(definitions: FeatureDefinitions, features: Mapping[str, Iterable[object]]) -> pd.DataFrame:
    """One representation on both paths: numeric features float64 (NaN = missing), categoricals str/None.

    Takes a frame (offline) or a dict of lists (online, where this runs on
    every read, hence plain NumPy for lists and one DataFrame construction).
    """
    numeric = set(definitions.numeric_features)
    return pd.DataFrame({name: _float_column(features[name]) if name in numeric
                         else _text_column(features[name]) for name in definitions.feature_names})


def _empty_features(definitions: FeatureDefinitions) -> pd.DataFrame:
    numeric = set(definitions.numeric_features)
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in numeric else object)
                         for c in definitions.feature_names})


def historical_features(fs: ProjectStore, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time correct features for each (entity key, event timestamp) row.

    For each row Feast returns the entity's feature row with the latest
    ``feature_timestamp`` at or before ``event_timestamp`` (ties: latest
    ``created_timestamp``), or nulls when there is none within the TTL: no
    value from after the as-of time can leak into training.

    Parameters
    ----------
    fs : ProjectStore
    entity_df : pandas.DataFrame
        The project's entity key and event timestamp (naive = UTC; looked up to
        the microsecond), optionally the label and other columns, e.g.
        :func:`~mlops.features.engineering.label_events`.

    Returns
    -------
    pandas.DataFrame
        In ``entity_df``'s row order: the key and the event timestamp (as
        given), the project's features (numeric as float64, categorical as
        str or None), then ``entity_df``'s other columns (the label, a
        sensitive attribute...) unchanged.

    Raises
    ------
    DataError
        If ``entity_df`` lacks a key column, has missing keys, or the view's snapshot is missing here.
    FeatureStoreError
        If nothing is applied yet.
    """
    definitions = fs.definitions
    key, event, names = definitions.entity_key, definitions.event_timestamp, definitions.feature_names
    missing = [c for c in (key, event) if c not in entity_df.columns]
    if missing:
        raise DataError(f"historical_features: the entity dataframe lacks column(s) {missing}; "
                        f"it has {list(entity_df.columns)}")
    # The label and any other columns the caller carries (e.g. the sensitive attribute for
    # fairness evaluation) pass through untouched, after the features.
    carried = [c for c in entity_df.columns if c not in (key, event, *names)]
    passthrough = [key, event] + carried
    given = entity_df[passthrough].reset_index(drop=True)
    if given.empty:
        return pd.concat([given[passthrough[:2]], _empty_features(definitions), given[passthrough[2:]]], axis=1)
    lookup = pd.DataFrame({
        key: entity_ids(given[key], fs.project.entity.type, key),
        event: utc_timestamps(given[event], event),
        _ROW: np.arange(len(given)),
    })
    service = _service(fs)
    _view(fs)
    with _feast_errors("retrieve historical features", fs):
        result = fs.feast.get_historical_features(entity_df=lookup, features=service).to_df()
    result = result.sort_values(_ROW, kind="stable").reset_index(drop=True)
    if not np.array_equal(result[_ROW].to_numpy(), lookup[_ROW].to_numpy()):
        raise FeatureStoreError(f"historical_features: Feast returned {len(result)} rows for "
                                f"{len(lookup)} entity rows; the result cannot be aligned")
    return pd.concat([given[passthrough[:2]], _typed(definitions, result), given[passthrough[2:]]], axis=1)


def online_features(fs: ProjectStore, entity_ids_: list) -> pd.DataFrame:
    """The current feature vectors of the entities ``entity_ids_`` from the online store.

    Returns
    -------
    pandas.DataFrame
        The entity key and the project's features (numeric as float64,
        categorical as str or None), one row per id in the order given; an
        entity the store does not know gets nulls.

    Raises
    ------
    FeatureStoreError
        If nothing is applied yet or the online store is unreachable.
    """
    definitions = fs.definitions
    key = definitions.entity_key
    ids = online_ids(fs.project, entity_ids_)
    if not ids:
        return pd.concat([pd.DataFrame({key: pd.Series(dtype=object)}), _empty_features(definitions)], axis=1)
    service = _service(fs)
    with _feast_errors("read online features", fs):
        values = fs.feast.get_online_features(features=service, entity_rows={key: ids}).to_dict()
    features = _typed(definitions, values)
    features.insert(0, key, np.array(ids, dtype=object if fs.project.entity.type == "string" else "int64"))
    return features


def online_ids(project: Project, ids: Iterable[object]) -> list:
    """Ids as the entity's join key holds them (str, or int for an integer key); a DataError names a bad one."""
    if project.entity.type == "string":
        return [str(i) for i in ids]
    out = []
    for i in ids:
        if isinstance(i, bool) or not (isinstance(i, (int, np.integer)) or (isinstance(i, str) and _INTEGER_ID.match(i))):
            raise DataError(f"{project.entity.key} {i!r} is not an integer id (entity {project.entity.name} of "
                            f"project {project.name} has integer keys)")
        out.append(int(i))
    return out
