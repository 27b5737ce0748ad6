"""The feature store: a project's definitions as code, feature engineering, Feast operations, skew checks.

* :mod:`mlops.features.definitions` — entity, feature view, feature service and
  their digest (the one description offline training and online serving read);
* :mod:`mlops.features.engineering` — a project's raw data to feature rows and label events;
* :mod:`mlops.features.store` — configuration, snapshots on S3, apply, materialize,
  point-in-time (offline) and online retrieval;
* :mod:`mlops.features.skew` — compare what serving logged with an offline recomputation.

Submodules are imported explicitly (``from mlops.features.store import ...``):
importing Feast takes seconds, so this package imports nothing eagerly.
"""
