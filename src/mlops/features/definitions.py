"""Feature definitions as code, built from a project: the one description offline training and online serving read.

Each project gets one entity (its join key, string or integer), one feature
view over a Parquet snapshot of its engineered features (``<feast
project>_features``) and one feature service for its model. Training asks the
service for point-in-time features; serving asks the same service online, so
the two can only disagree through data, never through a second copy of the
feature list. :meth:`FeatureDefinitions.version` digests everything that
defines the features (names, types, TTL, timestamps, the service's feature
list) and is recorded as lineage with every run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

from mlops.errors import ConfigError
from mlops.project import Project

FEATURE_TIMESTAMP = "feature_timestamp"  # when a feature value became true
CREATED_TIMESTAMP = "created_timestamp"  # when it was written; breaks ties between equal feature timestamps
FEAST_TYPES = {"float": Float64, "integer": Int64, "string": String}
ENTITY_VALUE_TYPES = {"string": ValueType.STRING, "integer": ValueType.INT64}


@dataclass(frozen=True)
class FeatureDefinitions:
    """The Feast objects of one project, and the column names the feature table uses."""

    project: Project

    @property
    def entity_key(self) -> str:
        return self.project.entity.key

    @property
    def event_timestamp(self) -> str:
        return self.project.event_timestamp

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's feature columns, in order."""
        return self.project.features.names

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return self.project.features.of_type("float", "integer")

    @property
    def integer_features(self) -> tuple[str, ...]:
        return self.project.features.of_type("integer")

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return self.project.features.of_type("string")

    @property
    def table_columns(self) -> tuple[str, ...]:
        """Columns of a feature table (and of its Parquet snapshot), in order."""
        return (self.entity_key, FEATURE_TIMESTAMP, CREATED_TIMESTAMP, *self.feature_names)

    @property
    def view_name(self) -> str:
        return f"{self.project.names.feast_project}_features"

    @property
    def service_name(self) -> str:
        return self.project.names.model.replace("-", "_")

    @property
    def ttl(self) -> timedelta:
        return timedelta(days=self.project.features.ttl_days)

    @property
    def entity(self) -> Entity:
        entity = self.project.entity
        return Entity(name=entity.name, join_keys=[entity.key], value_type=ENTITY_VALUE_TYPES[entity.type],
                      description=f"The {entity.name} of project {self.project.name}, identified by {entity.key}.")

    def feature_view(self, source_path: str, ttl: timedelta | None = None) -> FeatureView:
        """The project's view over a local Parquet snapshot of its engineered features.

        Parameters
        ----------
        source_path : str
            Local path of the Parquet snapshot (the offline store, DuckDB, reads it;
            it cannot read ``s3://``, so tasks fetch the snapshot first).
        ttl : datetime.timedelta, optional
            How long a feature row stays valid (default: the project's ``features.ttl_days``):
            a point-in-time lookup finds no value when the latest row is older than
            ``ttl`` before the as-of time.

        Raises
        ------
        ConfigError
            If ``ttl`` is not a positive duration (Feast reads 0 as "never expires").
        """
        ttl = self.ttl if ttl is None else ttl
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise ConfigError(f"feature view {self.view_name!r}: ttl must be a positive timedelta, got {ttl!r}")
        source = FileSource(name=f"{self.view_name}_snapshot", path=source_path, timestamp_field=FEATURE_TIMESTAMP,
                            created_timestamp_column=CREATED_TIMESTAMP)
        return FeatureView(
            name=self.view_name, entities=[self.entity], ttl=ttl,
            schema=[Field(name=name, dtype=FEAST_TYPES[kind]) for name, kind in self.project.features.columns],
            source=source, online=True, description=f"Features of project {self.project.name}.")

    def feature_service(self, view: FeatureView) -> FeatureService:
        """Exactly the features the project's model uses, in order.

        A model that needs other features is a new project version with its own
        definitions digest, so a deployed model's feature list never changes under it.
        """
        return FeatureService(name=self.service_name, features=[view[list(self.feature_names)]],
                              description=f"Features of model {self.project.names.model}.")

    def version(self, view: FeatureView | None = None, service: FeatureService | None = None) -> str:
        """A stable digest of the feature definitions, recorded as lineage.

        The snapshot path is not part of it: the same definitions over new data
        keep their version. Identical across processes and machines, different
        whenever a name, type, the TTL, a timestamp column or the service's
        feature list changes.
        """
        view = view if view is not None else self.feature_view("<snapshot>")
        service = service if service is not None else self.feature_service(view)
        entity = self.entity
        described = {
            "entity": {"name": entity.name, "join_key": entity.join_key, "value_type": entity.value_type.name},
            "view": {
                "name": view.name,
                "ttl_seconds": view.ttl.total_seconds() if view.ttl else 0,
                "timestamp_field": getattr(view.batch_source, "timestamp_field", None),
                "created_timestamp_column": getattr(view.batch_source, "created_timestamp_column", None),
                "fields": [[f.name, f.dtype.to_value_type().name] for f in view.features],
                "online": view.online,
            },
            "service": {"name": service.name,
                        "features": [[p.name, [f.name for f in p.features]] for p in service.feature_view_projections]},
            "feature_names": list(self.feature_names),
        }
        canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
