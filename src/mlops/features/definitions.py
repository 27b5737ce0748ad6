"""Feature definitions as code: the single description both offline training and online serving read.

One entity (the customer), one feature view over a Parquet snapshot of
engineered features, and one feature service per model. Training asks the
service for point-in-time features; serving asks the same service online, so
the two can only disagree through data, never through a second copy of the
feature list. :func:`definitions_version` digests everything that defines the
features (names, types, TTL, timestamps, the service's feature list) and is
recorded as lineage with every run.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

from mlops.errors import ConfigError

ENTITY_NAME = "customer"
ENTITY_KEY = "customer_id"
EVENT_TIMESTAMP = "event_timestamp"  # the as-of time of a label event (entity dataframe)
LABEL = "default"
SENSITIVE_ATTRIBUTE = "gender"  # never a feature; carried with label events for fairness evaluation
FEATURE_TIMESTAMP = "feature_timestamp"  # when a feature value became true
CREATED_TIMESTAMP = "created_timestamp"  # when it was written; breaks ties between equal feature timestamps
VIEW_NAME = "credit_features"
SERVICE_NAME = "credit_default_v1"
SOURCE_NAME = "credit_features_snapshot"
DEFAULT_TTL = timedelta(days=90)

# Raw features taken as they arrive (all generator features except the
# sensitive attribute `gender`, the label and its timestamp), then derived ones.
RAW_FEATURE_TYPES = {
    "age": Int64,
    "income": Float64,
    "employment_years": Float64,
    "credit_utilization": Float64,
    "num_open_accounts": Int64,
    "num_late_payments_12m": Int64,
    "loan_amount": Float64,
    "debt_to_income": Float64,
    "home_ownership": String,
    "loan_purpose": String,
    "region": String,
    "employment_type": String,
}
DERIVED_FEATURE_TYPES = {
    "loan_to_income": Float64,
    "log_income": Float64,
    "has_late_payments": Int64,
}
FEATURE_TYPES = {**RAW_FEATURE_TYPES, **DERIVED_FEATURE_TYPES}

FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_TYPES)
"""The model's feature columns, in order."""
NUMERIC_FEATURES: tuple[str, ...] = tuple(n for n, t in FEATURE_TYPES.items() if t is not String)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(n for n, t in FEATURE_TYPES.items() if t is String)
INTEGER_FEATURES: tuple[str, ...] = tuple(n for n, t in FEATURE_TYPES.items() if t is Int64)

ENTITY = Entity(
    name=ENTITY_NAME,
    join_keys=[ENTITY_KEY],
    value_type=ValueType.STRING,
    description="A credit applicant, identified by customer_id.",
)


def feature_view(source_path: str, ttl: timedelta = DEFAULT_TTL) -> FeatureView:
    """The ``credit_features`` view over a local Parquet snapshot of engineered features.

    Parameters
    ----------
    source_path : str
        Local path of the Parquet snapshot (the offline store, DuckDB, reads it;
        it cannot read ``s3://``, so tasks fetch the snapshot first).
    ttl : datetime.timedelta, default 90 days
        How long a feature row stays valid: a point-in-time lookup finds no
        value when the latest row is older than ``ttl`` before the as-of time.

    Returns
    -------
    feast.FeatureView
        Every feature typed (Float64, Int64 or String), keyed by ``customer_id``,
        timestamped by ``feature_timestamp`` with ``created_timestamp`` breaking ties.

    Raises
    ------
    ConfigError
        If ``ttl`` is not a positive duration (Feast reads 0 as "never expires").
    """
    if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
        raise ConfigError(f"feature view {VIEW_NAME!r}: ttl must be a positive timedelta, got {ttl!r}")
    source = FileSource(
        name=SOURCE_NAME,
        path=source_path,
        timestamp_field=FEATURE_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
    )
    return FeatureView(
        name=VIEW_NAME,
        entities=[ENTITY],
        ttl=ttl,
        schema=[Field(name=name, dtype=dtype) for name, dtype in FEATURE_TYPES.items()],
        source=source,
        online=True,
        description="Credit applicant features, engineered from raw applications.",
    )


def feature_service(view: FeatureView) -> FeatureService:
    """The ``credit_default_v1`` service: exactly the features the default model uses, in order.

    One service per model version of the feature list: a model that needs other
    features gets a new service (``credit_default_v2``), so a deployed model's
    feature list never changes under it.
    """
    return FeatureService(
        name=SERVICE_NAME,
        features=[view[list(FEATURE_NAMES)]],
        description="Features of the credit default model.",
    )


def _describe(view: FeatureView, service: FeatureService) -> dict:
    """Everything that defines the features, as plain JSON-able values (no source path)."""
    return {
        "entity": {"name": ENTITY.name, "join_key": ENTITY.join_key,
                   "value_type": ENTITY.value_type.name},
        "view": {
            "name": view.name,
            "ttl_seconds": view.ttl.total_seconds() if view.ttl else 0,
            "timestamp_field": getattr(view.batch_source, "timestamp_field", None),
            "created_timestamp_column": getattr(view.batch_source, "created_timestamp_column", None),
            "fields": [[f.name, f.dtype.to_value_type().name] for f in view.features],
            "online": view.online,
        },
        "service": {
            "name": service.name,
            "features": [[p.name, [f.name for f in p.features]] for p in service.feature_view_projections],
        },
        "feature_names": list(FEATURE_NAMES),
    }


def definitions_version(view: FeatureView | None = None, service: FeatureService | None = None) -> str:
    """A stable digest of the feature definitions, recorded as lineage.

    Parameters
    ----------
    view, service : optional
        The definitions to digest; by default the canonical ones (default TTL).
        The snapshot path is not part of the digest: the same definitions over
        new data keep their version.

    Returns
    -------
    str
        ``"sha256:<hex>"`` of a canonical JSON description (names, types, TTL,
        timestamp columns, the service's feature list); identical across
        processes and machines, different whenever any of those change.
    """
    view = view if view is not None else feature_view("<snapshot>")
    service = service if service is not None else feature_service(view)
    canonical = json.dumps(_describe(view, service), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
